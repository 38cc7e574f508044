"""Release dumps: a fresh SBCL in a process that is the same whoever
starts it, wherever, whenever, so the image it saves is the same bytes.

SBCL allocates strings for its working directory and for every path it
loads, and hash codes (of types, of generic functions) mix in the next
allocation address: a longer project path moves them all. So the dump
runs in PARENT/ID (release_directory(), ID a digest of the request),
holding copies of what it loads at their paths relative to the project
root; every path it is given is relative, or inside that directory. The
environment, arguments, umask, stack limit and addresses (randomisation
off) are fixed too, and so is what SBCL would read from /dev/urandom for
a random state made while loading (seeded from the request's digest,
driver.lisp). Directory listings come in name order (sorteddir.c,
preloaded), whatever order the file system keeps.

PARENT/ID is the same path for every user, so it must not be a directory
that anyone else can reach. The dump runs in a mount namespace of its
own (a user namespace too when not root): there an empty tmpfs hides the
directory above PARENT (/tmp), and the build's own scratch directory is
mounted at PARENT/ID. Nothing is created in the shared directory, nothing
another user put there is seen, and nothing is left when the dump ends.
Another machine's SBCL runs under qemu from a copy of its sysroot (hard
links where the file system allows) in PARENT/ID, not from the user's
cache, so that the paths its image may keep are the same for every user.

Where the kernel allows no namespace (user namespaces turned off, a
container's seccomp profile), PARENT/ID itself is created, owned by the
user, mode 0700, after checking that nobody else controls PARENT; a
directory or link of another user's there fails the task, naming it.
"""
import os
import shutil
import subprocess
from pathlib import Path

from .. import layout
from ..action import Context
from ..digest import digest_bytes
from ..errors import LispFailure
from ..jobs import LispJob
from ..rebuild import ensure
from ..targets import target_of
from ..toolchain import find_sbcl
from .outcome import finished_job
from .driver import (job_form, lisp_plist, sorted_listings_action, support_fasls,
                     wait_while_owned)
from .isolation import DEFAULT_RELEASE_DIR, dump_directory, hidden_directory
from ..settings import RELEASE_DIR_VARIABLE, settings


def release_directory() -> str:
    return settings().release_dir or DEFAULT_RELEASE_DIR


def canonical_environment(preload: Path, shared_libraries: Path, sbcl_home: Path) -> dict:
    """All a release dump's SBCL sees of the environment: the same for
    every user, shell and machine (`preload` and `shared_libraries`, the
    project's C libraries, are in the canonical directory; so is another
    machine's SBCL_HOME, in its sysroot's copy)."""
    return {"PATH": "/usr/bin:/bin", "SBCL_HOME": str(sbcl_home),
            "HOME": "/nonexistent", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC",
            "LD_PRELOAD": str(preload), "LD_LIBRARY_PATH": str(shared_libraries)}


# Not copied with an .asd file's directory.
_NOT_SOURCES = (layout.BUILD, "cache", layout.DIST)


class CanonicalSbcl:
    """Each job in a fresh SBCL, in the canonical process of the module's
    doc, under the directory the job's hints name (release_directory)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    @staticmethod
    def _check_paths(parent: Path, steps, target: str):
        if not parent.is_absolute() or any(c in str(parent) for c in "*?["):
            raise LispFailure(f"{RELEASE_DIR_VARIABLE}={str(parent)!r}: give an absolute "
                              f"path without * ? or [ (SBCL reads them as wildcards)")
        hidden = hidden_directory(parent / "x")
        if hidden == Path("/"):
            raise LispFailure(f"{RELEASE_DIR_VARIABLE}={str(parent)!r}: give a directory "
                              f"below another than / (the dump hides the one above it)")
        sbcl = find_sbcl(target)
        read_where_they_are = [sbcl.qemu or sbcl.program] + ([] if target else [sbcl.core]) + [
            Path(path) for kind, *rest in steps if kind in ("load", "asdf")
            for path in [rest[0] if kind == "load" else rest[1]] if os.path.isabs(path)]
        for path in read_where_they_are:
            if path.is_relative_to(hidden):
                raise LispFailure(f"{path}: a release dump cannot read it, since it hides "
                                  f"{hidden} (the directory above {RELEASE_DIR_VARIABLE}="
                                  f"{parent}): set {RELEASE_DIR_VARIABLE} elsewhere")

    def run(self, job: LispJob) -> str:
        steps = job.state.steps()
        target = target_of(steps)
        parent = Path(job.hints["release_directory"])
        self._check_paths(parent, steps, target)
        support = support_fasls(self.ctx, target)
        listings = sorted_listings_action(target)
        ensure(listings, self.ctx)
        outputs = {name: value for name, value in job.arguments.items()
                   if isinstance(value, Path)}
        arguments = {**job.arguments, **{name: Path("out", value.name)
                                         for name, value in outputs.items()}}
        form = job_form(LispJob(job.task, job.command, job.state, arguments, job.product),
                        steps, Path("out/diagnostics.txt"))
        seed = digest_bytes(form.encode())
        visible = parent / seed[:16]
        uid, gid = os.getuid(), os.getgid()
        with dump_directory(self.ctx.build, visible) as where:
            here = where.real
            self._copy_inputs(steps, support, here)
            shutil.copyfile(self.ctx.root / listings.outputs["library"],
                            here / "lispbuild/sorteddir.so")
            command, home = self._sbcl(target, here, visible)
            fasls = {"asdf": "lispbuild/asdf.fasl",
                     "asdf_support": "lispbuild/asdf-support.fasl",
                     "asdf_cache": f"{visible}/asdf-cache/", "canonical": True,
                     "build_seed": seed}
            (here / "out/request.lisp").write_text(f"({form} {lisp_plist(fasls)})\n",
                                                   encoding="utf-8")
            with open(here / "out/output.txt", "wb") as out:
                proc = subprocess.Popen(
                    [*command, "--script", "lispbuild/lispbuild.fasl", "run",
                     "out/request.lisp"], stdout=out, stderr=subprocess.STDOUT,
                    env=canonical_environment(visible / "lispbuild/sorteddir.so",
                                              visible / layout.SHARED_LIBRARIES, home),
                    preexec_fn=lambda: where.preexec(uid, gid))
                returncode = wait_while_owned(proc, self.ctx.owner, job)
            for name, value in outputs.items():
                if (here / arguments[name]).exists():
                    shutil.move(here / arguments[name], value)
            if "reads" in outputs and outputs["reads"].exists():
                _files_read_in_project(outputs["reads"], visible, self.ctx.root)
            return finished_job(job, returncode, here / "out/diagnostics.txt",
                                here / "out/output.txt", self.ctx.build)

    def shutdown(self):
        pass

    @staticmethod
    def _sbcl(target: str, here: Path, visible: Path) -> tuple[list[str], Path]:
        """The SBCL's command and SBCL_HOME. Another machine's sysroot is
        in the user's cache: it is linked (or copied) into the canonical
        directory, where its paths, which the image may keep, are the same
        for every user."""
        sbcl = find_sbcl(target)
        if sbcl.sysroot is None:
            return sbcl.command(), sbcl.home
        shutil.copytree(sbcl.sysroot, here / "sysroot", symlinks=True,
                        copy_function=_link_or_copy)
        inside = visible / "sysroot"
        return sbcl.command(inside), inside / sbcl.home.relative_to(sbcl.sysroot)

    def _copy_inputs(self, steps, support, here: Path):
        """lispbuild's FASLs, the project's FASLs and .asd files (with the
        rest of their directory, which an .asd may read), at their relative
        paths; what lies outside the project is read where it is."""
        (here / "out").mkdir(parents=True)
        (here / "lispbuild").mkdir()
        shutil.copyfile(support.lispbuild, here / "lispbuild/lispbuild.fasl")
        shutil.copyfile(support.asdf, here / "lispbuild/asdf.fasl")
        shutil.copyfile(support.asdf_support, here / "lispbuild/asdf-support.fasl")
        for kind, *rest in steps:
            path = rest[0] if kind in ("load", "foreign") else rest[1] if kind == "asdf" else None
            if path is None or os.path.isabs(path):
                continue
            if kind in ("load", "foreign"):
                (here / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.ctx.root / path, here / path)
            else:
                directory = Path(path).parent
                shutil.copytree(self.ctx.root / directory, here / directory, dirs_exist_ok=True,
                                ignore=lambda d, names: [
                                    n for n in names if n.startswith(".")
                                    or (Path(d) == self.ctx.root and n in _NOT_SOURCES)])
        # ASDF keeps each .asd file's write date, and the dates move what
        # the image allocates after them: every copy is dated 1970.
        for directory, _, names in os.walk(here):
            for name in names:
                os.utime(os.path.join(directory, name), (0, 0))


def _link_or_copy(source, destination):
    try:
        os.link(source, destination)
    except OSError:  # another file system
        shutil.copy2(source, destination)


def _files_read_in_project(listing: Path, visible: Path, root: Path):
    """The files a dump read, as the project's: what it read of the copies
    at `visible` is the project's file of the same name; lispbuild's own
    files there, its request, ASDF's cache and another machine's sysroot
    are not the project's."""
    inside = f"{visible}/"
    own = ("lispbuild/", "out/", "asdf-cache/", "sysroot/")
    lines = []
    for path in listing.read_text(encoding="utf-8").splitlines():
        if path.startswith(inside):
            rest = path[len(inside):]
            if rest.startswith(own):
                continue
            path = str(root / rest)
        lines.append(path + "\n")
    listing.write_text("".join(lines), encoding="utf-8")
