"""`doit verify ARCHIVE`: rebuild a release archive from the sources its
manifest names, with an empty store, and compare stage by stage.

Before anything is built, every source the manifest names must be here
(relative paths under the project root, the current directory) with the
recorded sha256, and the toolchain (Debian packages and files, lispbuild,
zlib) must be the recorded one; otherwise the command says what differs
and exits 1. The rebuild runs `doit release:NAME` in a new directory
holding copies of the project's sources, with SOURCE_DATE_EPOCH from the
manifest. Its stages are compared in the order they run (FASLs, C
objects, core, linkage table, runtime, executable), then the executable,
manifest and archive themselves; the first stage that differs is named
with its files, and diffoscope's report on the first differing file is
shown when diffoscope is installed and the original bytes are at hand (in
the archive, or in the project's store). Exit 0 only when all is identical.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from doit.cmd_base import Command

from .. import layout, release
from ..digest import digest_bytes, hash_file
from ..errors import LispbuildError, ReleaseFailure
from ..store import Store
from ..toolchain import find_musl, find_sbcl
from .store_check import project_store
from ..settings import MODE_VARIABLE, RELEASE_DIR_VARIABLE

# The order in which stages run, by task prefix.
STAGES = (("FASLs", ("grovel:", "fasl:")), ("C objects", ("c:",)),
          ("core", ("release-core:",)), ("linkage table", ("release-linkage:",)),
          ("runtime", ("release-runtime:",)), ("executable", ("release-exe:",)))
DIFFOSCOPE_SECONDS = 600
REPORT_LINES = 200


def _short(digest: str) -> str:
    return digest[:16]


def read_release(archive: Path) -> tuple[dict, release.Manifest]:
    """The archive's files and its manifest; ReleaseFailure if it is not a
    release archive."""
    files = release.read_archive(archive)
    if release.MANIFEST not in files:
        raise ReleaseFailure(f"{archive} holds no {release.MANIFEST}: not a release archive")
    manifest = release.Manifest.from_bytes(files[release.MANIFEST], str(archive))
    if manifest.name not in files:
        raise ReleaseFailure(f"{archive}: holds no {manifest.name}, the executable its "
                             f"{release.MANIFEST} names")
    return files, manifest


def sums_problems(files: dict) -> list[str]:
    """Files whose bytes are not those SHA256SUMS gives."""
    problems = []
    for line in files.get(release.SUMS, b"").decode("utf-8", "replace").splitlines():
        digest, _, name = line.partition("  ")
        if name not in files:
            problems.append(f"SHA256SUMS names {name}, which the archive does not hold")
        elif digest_bytes(files[name]) != digest:
            problems.append(f"{name} in the archive does not match SHA256SUMS "
                            f"(the archive was changed after it was made)")
    return problems


def archive_problems(files: dict, manifest: dict) -> list[str]:
    """Whether the archive is whole as made: SHA256SUMS names the manifest
    and the executable, both match it, and the manifest's digest of the
    executable is the executable's."""
    problems = sums_problems(files)
    named = {line.partition("  ")[2] for line in
             files.get(release.SUMS, b"").decode("utf-8", "replace").splitlines()}
    for name in (release.MANIFEST, manifest.name):
        if name not in named:
            problems.append(f"SHA256SUMS does not name {name}")
    recorded = manifest.executable.get("sha256")
    if recorded != digest_bytes(files[manifest.name]):
        problems.append(f"the manifest gives the executable sha256 {str(recorded)[:16]}, but "
                        f"{manifest.name} in the archive has "
                        f"{_short(digest_bytes(files[manifest.name]))}")
    return problems


def release_sources_here(task_name: str, root: Path) -> list[str] | None:
    """The sources that release:NAME of the project here reads (dodo.py's
    declarations, planned as a build plans them); None if it has none."""
    from doit import loader
    from doit.cmd_base import DodoTaskLoader

    from ..keys import named_inputs
    from ..buildlock import release_build_lock
    dodo = DodoTaskLoader()
    dodo.setup({"dodoFile": "dodo.py", "cwdPath": None, "seek_file": False})
    try:
        tasks = loader.load_tasks(dodo.namespace, [])
    finally:
        release_build_lock()  # taken if ASDF was asked; the project's builds go on
    for task in tasks:
        if task.name == task_name:
            action = task.actions[0].args[0] if task.actions[0].args else None
            if not hasattr(action, "inputs"):
                return None
            return [n for n, _ in named_inputs(action.inputs[1:], str(root))]
    return None


def missing_sources(manifest: release.Manifest, root: Path) -> list[str]:
    """What the release here reads that the manifest does not name: a
    rebuild from the manifest's sources would fail for want of it."""
    here = release_sources_here(manifest.task, root)
    if here is None:
        return [f"this project declares no {manifest.task}"]
    listed = {source["path"] for source in manifest.sources}
    return [f"the manifest lacks source: {path} ({manifest.task} reads it here)"
            for path in here if path not in listed]


def _library_of(path: str, manifest: release.Manifest) -> dict | None:
    """The manifest's ASDF library outside the project that holds `path`."""
    return next((library for library in manifest.libraries
                 if os.path.isabs(library["directory"])
                 and path.startswith(library["directory"].rstrip("/") + "/")), None)


def source_problems(manifest: release.Manifest, root: Path) -> list[str]:
    """Each source missing or different here; those of an ASDF library
    found outside the project (Quicklisp, the user's source registry,
    Debian's packages) said once for the library, with where it was."""
    problems, libraries = [], {}
    owner = {source["path"]: _library_of(source["path"], manifest)
             for source in manifest.sources}
    for source in manifest.sources:
        path = root / source["path"]
        if not path.is_file():
            problem = f"missing source: {source['path']}"
        elif (here := hash_file(path)) != source["sha256"]:
            problem = (f"source differs: {source['path']} (manifest sha256 "
                       f"{_short(source['sha256'])}, here {_short(here)})")
        else:
            continue
        library = owner[source["path"]]
        if library is None:
            problems.append(problem)
        else:
            libraries.setdefault(library["library"], (library, []))[1].append(
                (problem.startswith("missing"), os.path.basename(source["path"])))
    for name, (library, found) in sorted(libraries.items()):
        version = f" {library['version']}" if library["version"] else ""
        said = (f"library {name} (ASDF system {library['system']}{version}, found in "
                f"{library['found_in']} at {library['directory']})")
        total = sum(1 for owned in owner.values() if owned is library)
        missing = [file for gone, file in found if gone]
        differ = [file for gone, file in found if not gone]
        if len(missing) == total:
            problems.append(f"{said}: missing here")
            continue
        if missing:
            problems.append(f"{said}: {len(missing)} of its files missing here: "
                            f"{', '.join(missing)}")
        if differ:
            problems.append(f"{said}: {len(differ)} of its files differ here: "
                            f"{', '.join(differ)}")
    return problems


def toolchain_problems(manifest: release.Manifest) -> list[str]:
    recorded = manifest.toolchain
    archives = [role[len("archive "):] for role in recorded if role.startswith("archive ")]
    try:
        here = release.toolchain_identity(release.toolchain_files(
            find_sbcl(manifest.target), find_musl(manifest.target), archives, manifest.target))
    except (LispbuildError, OSError) as error:
        return [f"toolchain: {error}"]
    problems = []
    for role in sorted(set(recorded) | set(here)):
        old, new = recorded.get(role), here.get(role)
        if old is None or new is None:
            problems.append(f"toolchain {role}: {'not recorded' if old is None else 'missing here'}")
        elif old.get("package") != new["package"]:
            problems.append(f"toolchain {role}: built with {old.get('package')}, here "
                            f"{new['package']} ({new['path']})")
        elif old.get("sha256") != new["sha256"]:
            problems.append(f"toolchain {role}: {new['path']} differs (manifest sha256 "
                            f"{_short(old['sha256'])}, here {_short(new['sha256'])})")
    identity = release.lispbuild_identity()
    for part, label in (("version", "lispbuild version"), ("files", "lispbuild's files"),
                        ("zlib", "zlib (which compresses the archive)")):
        if manifest.lispbuild.get(part) != identity[part]:
            problems.append(f"{label}: built with {manifest.lispbuild.get(part)}, "
                            f"here {identity[part]}")
    return problems


def rebuild(manifest: release.Manifest, root: Path, where: Path) -> Path:
    """Copy the project's sources to `where` and run its release there;
    the archive it made."""
    for source in manifest.sources:
        if not os.path.isabs(source["path"]):
            (where / source["path"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / source["path"], where / source["path"])
    env = {name: value for name, value in os.environ.items()
           if name not in ("LISPBUILD_STORE", "LISPBUILD_REMOTE")}
    env["SOURCE_DATE_EPOCH"] = str(manifest.source_date_epoch)
    # The copy is no git tree: it is told the commit the manifest records,
    # and a release that was made dirty is made dirty again.
    revision = manifest.revision
    env[release.REVISION_VARIABLE] = json.dumps(revision)
    if revision and revision.get("dirty"):
        env[release.ALLOW_DIRTY_VARIABLE] = "1"
    env[RELEASE_DIR_VARIABLE] = manifest.dump_directory
    env[MODE_VARIABLE] = manifest.mode  # as it was built (a binary's mode= says the same)
    print(f"rebuilding {manifest.task} in {where}, with an empty store", flush=True)
    proc = subprocess.run([sys.executable, "-m", "doit", "-n", "2", manifest.task], cwd=where,
                          env=env)
    archive = where / release.archive_name(manifest.name, manifest.version, manifest.platform)
    if proc.returncode != 0 or not archive.exists():
        raise ReleaseFailure(f"the rebuild failed (doit exited with {proc.returncode}): "
                             f"see its output above")
    return archive


def first_difference(old: release.Manifest, new: release.Manifest) -> tuple[str, list] | None:
    """(stage, [(path, old sha256, new sha256)]) of the first stage whose
    outputs differ, comparing two manifests."""
    rebuilt = {stage["task"]: stage for stage in new.stages}
    for label, prefixes in STAGES:
        differing = []
        for stage in old.stages:
            if not stage["task"].startswith(prefixes):
                continue
            again = rebuilt.get(stage["task"], {"outputs": {}})
            for role, output in sorted(stage["outputs"].items()):
                other = again["outputs"].get(role, {}).get("sha256")
                if other != output["sha256"]:
                    differing.append((output["path"], output["sha256"], other))
        if differing:
            return label, differing
    return None


def diffoscope(original: Path, rebuilt: Path):
    """diffoscope's report, when it is installed."""
    program = shutil.which("diffoscope")
    if program is None:
        print("(install diffoscope to see what differs inside the files)")
        return
    print(f"diffoscope {original} {rebuilt}:", flush=True)
    try:
        proc = subprocess.run([program, "--text", "-", str(original), str(rebuilt)],
                              capture_output=True, text=True, errors="replace",
                              timeout=DIFFOSCOPE_SECONDS)
    except subprocess.TimeoutExpired:
        print(f"(diffoscope did not finish within {DIFFOSCOPE_SECONDS} s)")
        return
    lines = (proc.stdout + proc.stderr).splitlines()
    print("\n".join(lines[:REPORT_LINES]))
    if len(lines) > REPORT_LINES:
        print(f"... ({len(lines) - REPORT_LINES} more lines)")


def verify(archive: Path, root: Path, store: Store | None) -> int:
    files, manifest = read_release(archive)
    name, version = manifest.name, manifest.version
    print(f"verifying {archive.name}: {name} {version}, "
          f"{len(manifest.sources)} sources, {len(manifest.stages)} stages")
    problems = archive_problems(files, manifest)
    if problems:
        print(f"cannot verify: {archive.name} is not whole as it was made (changed after, or "
              f"cut short):\n  " + "\n  ".join(problems))
        return 1
    problems = source_problems(manifest, root)
    if problems:
        print(f"cannot verify: the sources here are not those of {archive.name}:\n  "
              + "\n  ".join(problems))
        return 1
    problems = missing_sources(manifest, root)
    if problems:
        print(f"cannot verify: {archive.name}'s manifest does not list every source its "
              f"release reads:\n  " + "\n  ".join(problems))
        return 1
    problems = toolchain_problems(manifest)
    if problems:
        print(f"cannot verify: this machine's toolchain is not the one {archive.name} was "
              f"built with:\n  " + "\n  ".join(problems))
        return 1
    with tempfile.TemporaryDirectory(prefix="lispbuild-verify-") as tmp:
        where = Path(tmp) / "project"
        new_archive = rebuild(manifest, root, where)
        new_files, new_manifest = read_release(new_archive)
        found = first_difference(manifest, new_manifest)
        if found is None and new_files[name] != files[name]:
            found = ("executable", [(f"{name} in the archive",
                                     digest_bytes(files[name]),
                                     new_manifest.executable["sha256"])])
        if found is None and new_archive.read_bytes() != archive.read_bytes():
            found = ("archive", [(archive.name, hash_file(archive),
                                  hash_file(new_archive))])
        if found is None:
            print(f"identical: every stage, the executable and the archive "
                  f"(sha256 {hash_file(archive)})")
            return 0
        stage, differing = found
        print(f"first difference: stage {stage}, {len(differing)} file(s):")
        for path, old, new in differing:
            print(f"  {path}: recorded {_short(old)}, rebuilt {_short(new) if new else 'none'}")
        path, old, new = differing[0]
        if stage == "executable" and path.endswith("in the archive"):
            original = Path(tmp) / f"{name}.from-archive"
            original.write_bytes(files[name])
            diffoscope(original, where / layout.binary_stages(name, True, manifest.target)["exe"])
        elif stage == "archive":
            diffoscope(archive, new_archive)
        elif store is not None and store.object_path(old).exists() and new:
            diffoscope(store.object_path(old), where / path)
        else:
            print("(the recorded bytes of that file are not in this project's store, so "
                  "diffoscope cannot compare them)")
        return 1


class Verify(Command):
    """doit's `verify` command, installed with lispbuild (entry point group
    doit.COMMAND)."""
    name = "verify"
    doc_purpose = "rebuild a release archive from its sources and compare it, stage by stage"
    doc_usage = "ARCHIVE"
    doc_description = ("Run in the project root. Exits with 0 only when the rebuild is "
                       "identical, stage by stage and byte for byte.")

    def execute(self, params, args):
        if len(args) != 1:
            print("name one archive: doit verify dist/NAME-VERSION-TARGET.tar.gz",
                  file=sys.stderr)
            return 2
        try:
            where = project_store()
        except Exception:  # no dodo.py here (the manifest names it): no store to look in
            where = None
        try:
            return verify(Path(args[0]).absolute(), Path.cwd(), where and Store(where))
        except ReleaseFailure as error:
            print(error, file=sys.stderr)
            return 1
