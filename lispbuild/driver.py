"""The Lisp driver: the jobs SBCL does for lispbuild, as plain data, and the
plainest way to run one: a fresh SBCL that performs the job's steps and the
job (driver.lisp). A warm worker (worker.py) is the other way; both give
the same FASLs.

lispbuild's own Lisp is compiled once per SBCL build into one FASL
(`support_fasls`), which every lispbuild SBCL loads.
"""
import fcntl
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import link
from .digest import digest_bytes
from .errors import BuildGone, LispFailure, TimeLimit
from .rebuild import Action, Context, ensure
from .scratch import process_alive, scratch_dir
from .steps import LoadState
from .toolchain import find_sbcl, musl_files, sbcl_files

TIME_LIMIT_VARIABLE = "LISPBUILD_TIME_LIMIT"
# Generous: Debian's biggest Lisp files compile in well under a minute.
DEFAULT_TIME_LIMIT = 1800.0

PACKAGE = Path(__file__).parent
# Compiled in this order into lispbuild.fasl, main.lisp last; asdf.lisp
# into its own FASL, loaded with ASDF when a job first needs it.
SUPPORT_SOURCES = ("driver.lisp", "devdump.lisp", "worker.lisp")
MAIN_SOURCE = "main.lisp"
ASDF_SUPPORT_SOURCE = "asdf.lisp"


@dataclass
class LispJob:
    """One job for SBCL: the steps of `state`, then `command` with `arguments`."""
    task: str                 # the task it is for, named in messages
    command: str              # "compile", "dump" or "asdf-graph"
    state: LoadState
    arguments: dict
    product: Path             # the file it must write (FASL, core, graph)
    library: str | None = None       # the library whose file it compiles
    base: LoadState | None = None    # that library's dependencies
    hints: dict = field(default_factory=dict)
    # A failure's message ends with what SBCL printed (where a grovel
    # file's C compiler writes its errors).
    output_on_failure: bool = False


def lisp_literal(value) -> str:
    """Python data as a Lisp form read under standard syntax."""
    if value is None or value is False:
        return "nil"
    if value is True:
        return "t"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (str, Path)):
        text = str(value).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{text}"'
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):
        return f"({lisp_literal(value[0])} . {value[1]})"
    if isinstance(value, (list, tuple)):
        return "(" + " ".join(lisp_literal(v) for v in value) + ")"
    raise TypeError(f"no Lisp literal for {value!r}")


def lisp_steps(steps) -> str:
    return "(" + " ".join(f"(:{kind} {' '.join(lisp_literal(a) for a in rest)})"
                          for kind, *rest in steps) + ")"


def lisp_plist(values: dict) -> str:
    return " ".join(f":{k.replace('_', '-')} {v if k == 'steps' else lisp_literal(v)}"
                    for k, v in values.items())


def job_form(job: LispJob, steps, diagnostics: Path) -> str:
    """The job as driver.lisp reads it, with `steps` to perform first."""
    return (f"(:{job.command} " + lisp_plist({"steps": lisp_steps(steps), **job.arguments,
                                               "diagnostics": diagnostics}) + ")")


# --- lispbuild's own Lisp, compiled once -------------------------------

def _compile_support(action: Action, ctx: Context, outputs: dict):
    # Sources named lispbuild/NAME, from the package's parent: the FASL
    # header says "compiled from" the name it is given.
    sources = [f"{PACKAGE.name}/{name}" for name in SUPPORT_SOURCES]
    proc = subprocess.run([str(find_sbcl().program), "--script",
                           str(PACKAGE / "bootstrap.lisp"),
                           str(outputs["fasl"]), str(outputs["asdf"]),
                           f"{PACKAGE.name}/{ASDF_SUPPORT_SOURCE}",
                           f"{PACKAGE.name}/{MAIN_SOURCE}", *sources],
                          cwd=PACKAGE.parent, capture_output=True, text=True, errors="replace",
                          env=sbcl_environment())
    if proc.returncode != 0:
        raise LispFailure(f"compiling lispbuild's own Lisp failed:\n"
                          f"{(proc.stderr + proc.stdout).strip()[-4000:]}")


def support_action() -> Action:
    return Action(task="lisp:lispbuild", run=_compile_support,
                  inputs=[PACKAGE / n for n in (*SUPPORT_SOURCES, MAIN_SOURCE,
                                                ASDF_SUPPORT_SOURCE, "bootstrap.lisp")],
                  params={}, toolchain=(sbcl_files,),
                  outputs={"fasl": Path("build/.lispbuild/lisp/lispbuild.fasl"),
                           "asdf": Path("build/.lispbuild/lisp/asdf-support.fasl")})


def support_fasls(ctx: Context) -> tuple[Path, Path]:
    """lispbuild.fasl and asdf-support.fasl, compiled (or restored) if needed."""
    action = support_action()
    ensure(action, ctx)
    return ctx.root / action.outputs["fasl"], ctx.root / action.outputs["asdf"]


def _build_sorted_listings(action: Action, ctx: Context, outputs: dict):
    link.build_sorted_listings(outputs["library"], ctx.root)


def sorted_listings_action() -> Action:
    """The library preloaded into release dumps (CanonicalSbcl)."""
    return Action(task="lisp:sorteddir", run=_build_sorted_listings,
                  inputs=[link.SORTED_LISTINGS_SOURCE], params={}, toolchain=(musl_files,),
                  outputs={"library": Path("build/.lispbuild/lisp/sorteddir.so")})


def sbcl_environment() -> dict:
    env = dict(os.environ)
    env["SBCL_HOME"] = str(find_sbcl().core.parent)
    return env


def asdf_cache(ctx: Context) -> str:
    """Where ASDF compiles what it loads itself (:defsystem-depends-on)."""
    return str(ctx.build / ".lispbuild" / "asdf-cache") + "/"


# --- what a job's end means ----------------------------------------------

def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def check_result(job: LispJob, status: str, diagnostics: str, output: str) -> str:
    """The notes of a job that succeeded; LispFailure saying what happened
    otherwise. `status` is "exit N" or "signal N"."""
    kind, number = status.split()
    what = f"{job.task}"
    tail = output.strip()[-3000:]
    if kind == "exit" and number == "0":
        if job.product.exists():
            return diagnostics
        raise LispFailure(f"{what}: SBCL exited with code 0 without writing "
                          f"{job.product.name} (does the code call exit while it is "
                          f"compiled or loaded?)" + (f"\n{tail}" if tail else ""))
    if kind == "exit" and number == "1" and diagnostics.strip():
        raise LispFailure(f"{what} failed:\n{diagnostics.strip()}"
                          + (f"\n{tail}" if tail and job.output_on_failure else ""))
    if kind == "signal":
        happened = f"SBCL was killed by {signal_name(int(number))}"
    else:
        happened = f"SBCL exited with code {number} without writing {job.product.name}"
    raise LispFailure(f"{what}: {happened}"
                      + (f"\n{diagnostics.strip()}" if diagnostics.strip() else "")
                      + (f"\n{tail}" if tail else ""))


def finished_job(job: LispJob, returncode: int, diagnostics: Path, output: Path) -> str:
    """check_result on what an SBCL that has exited left behind."""
    reported = diagnostics.read_text(encoding="utf-8") if diagnostics.exists() else ""
    printed = output.read_text(encoding="utf-8", errors="replace")
    status = f"signal {-returncode}" if returncode < 0 else f"exit {returncode}"
    return check_result(job, status, reported, printed)


# --- the fresh-process strategy ------------------------------------------

def time_limit() -> float:
    """Seconds a compile or dump may take (LISPBUILD_TIME_LIMIT)."""
    value = os.environ.get(TIME_LIMIT_VARIABLE, "")
    try:
        limit = float(value) if value else DEFAULT_TIME_LIMIT
    except ValueError:
        limit = 0
    if limit <= 0:
        raise LispFailure(f"{TIME_LIMIT_VARIABLE}={value!r}: give a number of seconds")
    return limit


def over_time(job: LispJob, limit: float) -> TimeLimit:
    source = job.arguments.get("source")
    return TimeLimit(f"{job.task}: stopped after {limit:g} s{f' compiling {source}' if source else ''}"
                     f" (the time limit; set {TIME_LIMIT_VARIABLE} to change it)")


def wait_while_owned(process: subprocess.Popen, owner: int, job: LispJob) -> int:
    """Wait for `process`; kill it and stop if the build's owner is gone
    (doit was killed): nothing of lispbuild outlives its build. Ctrl-C
    and the time limit kill it too."""
    limit = time_limit()
    deadline = time.monotonic() + limit
    try:
        while True:
            try:
                return process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                if not process_alive(owner):
                    raise BuildGone("the build was stopped") from None
                if time.monotonic() > deadline:
                    raise over_time(job, limit) from None
    except BaseException:
        process.kill()
        process.wait()
        raise


class FreshSbcl:
    """Each job in a new SBCL that performs all its steps itself."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def run(self, job: LispJob) -> str:
        fasl, asdf_support = support_fasls(self.ctx)
        with scratch_dir(self.ctx.build, "job-") as tmp:
            request, diagnostics = Path(tmp) / "request.lisp", Path(tmp) / "diagnostics.txt"
            request.write_text(f"({job_form(job, job.state.steps(), diagnostics)} "
                               f"{lisp_plist({'asdf_support': asdf_support, 'asdf_cache': asdf_cache(self.ctx)})})\n",
                               encoding="utf-8")
            output = Path(tmp) / "output.txt"
            with open(output, "wb") as out:
                proc = subprocess.Popen([str(find_sbcl().program), "--script", str(fasl), "run",
                                         str(request)], cwd=self.ctx.root, stdout=out,
                                        stderr=subprocess.STDOUT, env=sbcl_environment())
                returncode = wait_while_owned(proc, self.ctx.owner, job)
            return finished_job(job, returncode, diagnostics, output)

    def shutdown(self):
        pass


# personality(2) flag: no address-space randomisation (setarch -R).
ADDR_NO_RANDOMIZE = 0x0040000
CANONICAL_STACK_LIMIT = 8 << 20


def canonical_environment(preload: Path) -> dict:
    """All a release dump's SBCL sees of the environment: the same for
    every user, shell and machine (`preload` is in the canonical
    directory)."""
    return {"PATH": "/usr/bin:/bin", "SBCL_HOME": str(find_sbcl().core.parent),
            "HOME": "/nonexistent", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC",
            "LD_PRELOAD": str(preload)}


def _canonical_process():
    """In the child, before exec: fixed addresses (shared libraries, the
    C heap and the stack, which foreign pointers in the image point
    into), a fixed stack limit (it moves where the kernel maps memory),
    a fixed umask."""
    import ctypes
    import resource
    libc = ctypes.CDLL(None, use_errno=True)
    current = libc.personality(0xFFFFFFFF)
    if current == -1 or libc.personality(current | ADDR_NO_RANDOMIZE) == -1:
        raise OSError(ctypes.get_errno(), "personality(ADDR_NO_RANDOMIZE)")
    resource.setrlimit(resource.RLIMIT_STACK, (CANONICAL_STACK_LIMIT, CANONICAL_STACK_LIMIT))
    os.umask(0o022)


# Where release dumps run. The path shapes the image's bytes, so it is the
# same on every machine unless LISPBUILD_RELEASE_DIR says otherwise (a
# release's manifest records it, and `doit verify` rebuilds with it).
RELEASE_DIR_VARIABLE = "LISPBUILD_RELEASE_DIR"
DEFAULT_RELEASE_DIR = "/tmp/lispbuild-release"


def release_directory() -> str:
    return os.environ.get(RELEASE_DIR_VARIABLE) or DEFAULT_RELEASE_DIR


# Not copied with an .asd file's directory.
_NOT_SOURCES = ("build", "cache", "dist")


class CanonicalSbcl:
    """Release dumps: a fresh SBCL in a process that is the same whoever
    starts it, wherever, whenever, so the image it saves is the same bytes.

    SBCL allocates strings for its working directory and for every path it
    loads, and hash codes (of types, of generic functions) mix in the next
    allocation address: a longer project path moves them all. So the dump
    runs in PARENT/ID (release_directory()), ID a digest of the request, holding
    copies of what it loads at their paths relative to the project root;
    every path it is given is relative, or inside that directory. The
    environment, arguments, umask, stack limit and addresses (randomisation
    off) are fixed too, and so is what SBCL would read from /dev/urandom
    for a random state made while loading (seeded from the request's
    digest, driver.lisp). Directory listings come in name order
    (sorteddir.c, preloaded), whatever order the file system keeps."""

    def __init__(self, ctx: Context, parent: str):
        self.ctx = ctx
        self.parent = Path(parent)

    def run(self, job: LispJob) -> str:
        if not self.parent.is_absolute() or any(c in str(self.parent) for c in "*?["):
            raise LispFailure(f"{RELEASE_DIR_VARIABLE}={str(self.parent)!r}: give an absolute "
                              f"path without * ? or [ (SBCL reads them as wildcards)")
        fasl, asdf_support = support_fasls(self.ctx)
        listings = sorted_listings_action()
        ensure(listings, self.ctx)
        steps = job.state.steps()
        outputs = {name: value for name, value in job.arguments.items()
                   if isinstance(value, Path)}
        arguments = {**job.arguments, **{name: Path("out", value.name)
                                         for name, value in outputs.items()}}
        form = job_form(LispJob(job.task, job.command, job.state, arguments, job.product),
                        steps, Path("out/diagnostics.txt"))
        seed = digest_bytes(form.encode())
        identity = seed[:16]
        if not self.parent.exists():
            self.parent.mkdir(parents=True, exist_ok=True)
            self.parent.chmod(0o1777)  # shared by every user, as /tmp is
        here = self.parent / identity
        with open(f"{here}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            shutil.rmtree(here, ignore_errors=True)
            try:
                self._copy_inputs(steps, fasl, asdf_support, here)
                preload = here / "lispbuild/sorteddir.so"
                shutil.copyfile(self.ctx.root / listings.outputs["library"], preload)
                settings = {"asdf_support": "lispbuild/asdf-support.fasl",
                            "asdf_cache": f"{here}/asdf-cache/", "canonical": True,
                            "build_seed": seed}
                (here / "out/request.lisp").write_text(f"({form} {lisp_plist(settings)})\n",
                                                       encoding="utf-8")
                with open(here / "out/output.txt", "wb") as out:
                    proc = subprocess.Popen(
                        [str(find_sbcl().program), "--script", "lispbuild/lispbuild.fasl", "run",
                         "out/request.lisp"], cwd=here, stdout=out, stderr=subprocess.STDOUT,
                        env=canonical_environment(preload), preexec_fn=_canonical_process)
                    returncode = wait_while_owned(proc, self.ctx.owner, job)
                for name, value in outputs.items():
                    if (here / arguments[name]).exists():
                        shutil.move(here / arguments[name], value)
                return finished_job(job, returncode, here / "out/diagnostics.txt",
                                    here / "out/output.txt")
            finally:
                shutil.rmtree(here, ignore_errors=True)

    def _copy_inputs(self, steps, fasl: Path, asdf_support: Path, here: Path):
        """lispbuild's FASLs, the project's FASLs and .asd files (with the
        rest of their directory, which an .asd may read), at their relative
        paths; what lies outside the project is read where it is."""
        (here / "out").mkdir(parents=True)
        (here / "lispbuild").mkdir()
        shutil.copyfile(fasl, here / "lispbuild/lispbuild.fasl")
        shutil.copyfile(asdf_support, here / "lispbuild/asdf-support.fasl")
        for kind, *rest in steps:
            path = rest[0] if kind == "load" else rest[1] if kind == "asdf" else None
            if path is None or os.path.isabs(path):
                continue
            if kind == "load":
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
