"""Release archives: dist/NAME-VERSION-TARGET.tar.gz (TARGET x86_64-linux,
aarch64-linux: targets.py), the same bytes
whoever builds them from the same sources with the same toolchain.

An archive holds one directory, NAME-VERSION/, with the static executable,
`manifest.json` (every source with its sha256, the ASDF systems with
where each was found, the toolchain's Debian packages and files, lispbuild's identity, every stage's key and output
digests) and `SHA256SUMS` (of the other two). The tar is written here, not
by tar(1): names sorted, mode 0755 or 0644, owner and group 0 with no
names, every mtime the release's epoch, ustar headers (no pax times), and
gzip without a name or time.

The epoch is SOURCE_DATE_EPOCH when set; else the time of the project's
last git commit; else the newest modification time of the project's own
sources. `doit verify` (verify.py) sets SOURCE_DATE_EPOCH from the manifest.
"""
import json
import os
import shutil
import subprocess
import zlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from . import layout
from .digest import digest_bytes, hash_file
from .errors import ReleaseFailure
from .keys import in_sysroot, package_digest
from .scratch import tmp_prefix
from .sysroot import owners as sysroot_owners
from .targets import HOST, TARGETS, variant
from .toolchain import archive_path, find_asdf_source, find_program
from .settings import ALLOW_DIRTY_VARIABLE, REVISION_VARIABLE, settings

PLATFORM = HOST  # a binary's target when it names none
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
FORMAT = 3  # of the manifest (2: its mode; 3: its ASDF libraries)


def archive_name(name: str, version: str, platform: str = PLATFORM) -> str:
    """The archive's path from the project root."""
    return layout.archive(name, version, platform)




@dataclass
class Origin:
    """Where a build's sources come from: the archives' time (see the
    module's doc), and the git commit with the files that differ from it
    (paths relative to the root), or None outside a git tree."""
    epoch: int
    commit: str | None
    changed: frozenset

    def revision(self, sources: list[str]) -> dict | None:
        """The manifest's record of the commit, with which of `sources` (a
        release's own, relative) differ from it: uncommitted, or untracked."""
        if self.commit is None:
            return None
        return {"git": self.commit, "dirty": sorted(set(sources) & self.changed)}


def _git(root: Path, *args: str) -> str | None:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


def source_origin(root: Path, own_sources: list[str]) -> Origin:
    """The Origin of the project's sources. SOURCE_DATE_EPOCH and
    LISPBUILD_SOURCE_REVISION (JSON of a manifest's "revision", which
    `doit verify` sets) say it where the sources are not the git tree."""
    value = settings().source_date_epoch
    if value and not value.isdigit():
        raise ReleaseFailure(f"SOURCE_DATE_EPOCH={value!r}: give a number of seconds "
                             f"since 1970")
    given = settings().source_revision
    if given is not None:
        try:
            revision = json.loads(given)
            commit, changed = revision["git"], frozenset(revision["dirty"])
        except (ValueError, TypeError, KeyError):
            if given not in ("", "null"):
                raise ReleaseFailure(f"{REVISION_VARIABLE}={given!r}: give the JSON of a "
                                     f"manifest's revision, or null") from None
            commit, changed = None, frozenset()
        return Origin(int(value) if value else 0, commit, changed)
    commit = _git(root, "rev-parse", "--verify", "-q", "HEAD") if shutil.which("git") else None
    if commit is None:
        epoch = int(value) if value else max(
            (int((root / path).stat().st_mtime) for path in own_sources), default=0)
        return Origin(epoch, None, frozenset())
    tracked = set((_git(root, "ls-files", "-z") or "").split("\0"))
    modified = set((_git(root, "diff", "--name-only", "--relative", "-z", "HEAD") or "")
                   .split("\0"))
    changed = frozenset(p for p in own_sources if p not in tracked or p in modified)
    time = (_git(root, "log", "-1", "--format=%ct") or "").strip()
    epoch = int(value) if value else int(time) if time.isdigit() else 0
    return Origin(epoch, commit.strip(), changed)


def check_clean(task: str, revision: dict | None):
    """Refuse a release whose sources differ from their commit, as cargo
    refuses to publish a dirty tree, unless LISPBUILD_ALLOW_DIRTY=1."""
    if not revision or not revision["dirty"] or settings().allow_dirty:
        return
    dirty = revision["dirty"]
    raise ReleaseFailure(
        f"{task}: {len(dirty)} of its sources differ from git commit {revision['git'][:12]} "
        f"(uncommitted or untracked): {', '.join(dirty[:5])}"
        f"{f' and {len(dirty) - 5} more' if len(dirty) > 5 else ''}; commit them, or set "
        f"{ALLOW_DIRTY_VARIABLE}=1 to release anyway (the manifest then lists them as dirty)")


def lispbuild_identity() -> dict:
    """lispbuild's version and a digest of all its files (its Lisp and
    C are inputs of the stages, its Python decides what they are), and the
    zlib that compresses the archive."""
    from importlib import metadata  # here, as tarfile below: a no-op build loads this module
    return {"version": metadata.version("lispbuild"),
            "files": package_digest((".py", ".lisp", ".c")),
            "zlib": zlib.ZLIB_RUNTIME_VERSION}


def _owning_packages(paths: list[Path]) -> dict[str, str]:
    """Path -> "package version" from dpkg's database, for those it knows."""
    proc = subprocess.run(["dpkg-query", "-S", *map(str, paths)], capture_output=True,
                          text=True)
    owners = {}
    for line in proc.stdout.splitlines():
        package, _, path = line.partition(": ")
        if "," not in package:  # a path several packages share is a directory
            owners[path.strip()] = package.split(":")[0]
    versions = {}
    names = sorted(set(owners.values()))
    if names:
        proc = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\n", *names],
                              capture_output=True, text=True)
        versions = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    return {path: f"{package} {versions.get(package, '?')}" for path, package in owners.items()}


def toolchain_identity(files: dict[str, Path]) -> dict:
    """Each toolchain file (role -> path) with its sha256 and the Debian
    package (and version) it came from."""
    paths = {role: Path(os.path.realpath(path)) for role, path in files.items()}
    owners = {**_owning_packages(sorted(set(paths.values()))),
              **sysroot_owners(paths.values())}
    # A sysroot's file by its name in the sysroot: the archive's bytes
    # must not depend on where the user's cache is.
    return {role: {"path": in_sysroot(str(path)), "sha256": hash_file(path),
                   "package": owners.get(str(path))}
            for role, path in sorted(paths.items())}


def toolchain_files(sbcl, musl, archives: list[str], target: str = "") -> dict[str, Path]:
    """Everything outside the project that the release's bytes come from
    (for another machine, its sysroot's files, its cross gcc and the qemu
    that runs its SBCL)."""
    gcc = str(musl.real_gcc)
    found = {"sbcl": sbcl.program, "sbcl.core": sbcl.core, "sbcl.o": sbcl.runtime_o,
             "musl-gcc": musl.gcc, "gcc": musl.real_gcc,
             "musl-gcc.specs": musl.libc.with_name("musl-gcc.specs"),
             "musl libc.a": musl.libc, "libzstd.a": musl.zstd}
    if target:
        found["qemu"] = find_program(TARGETS[target].qemu, "qemu-user-static")
    for role, question in (("cc1", "-print-prog-name=cc1"), ("ld", "-print-prog-name=ld"),
                           ("libgcc.a", "-print-libgcc-file-name")):
        answer = subprocess.run([gcc, question], capture_output=True, text=True).stdout.strip()
        path = Path(answer) if os.path.isabs(answer) else shutil.which(answer)
        if path:
            found[role] = Path(path)
    asdf = find_asdf_source()
    if asdf:
        found.update({"cl-asdf asdf.lisp": asdf.source, "cl-asdf version": asdf.version_file})
    for archive in archives:
        found[f"archive {archive}"] = archive_path(target, archive)
    return found


def smoke_run(exe: Path, args: list, build: Path, task: str, limit: float,
              qemu: list[str] = ()) -> str:
    """Run the release executable once, in the project root (another
    machine's under `qemu`); raise ReleaseFailure unless it exits 0. What
    it prints is kept under build/ (output.py) and shown bounded when it
    fails."""
    from . import output
    shown = " ".join([exe.name, *args])
    printed = layout.state(build, layout.OUTPUT) / f"{tmp_prefix()}smoke"
    printed.parent.mkdir(parents=True, exist_ok=True)
    with open(printed, "wb") as out:
        try:
            proc = subprocess.run([*qemu, str(exe), *args], cwd=build.parent, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=limit)
        except subprocess.TimeoutExpired:
            proc = None
    kept = output.keep(printed, build, task)
    said = f":\n{output.excerpt(kept, os.path.relpath(kept, build.parent))}" if kept else ""
    if proc is None:
        raise ReleaseFailure(f"smoke run `{shown}` did not end within {limit:g} s{said}")
    if proc.returncode != 0:
        raise ReleaseFailure(f"smoke run `{shown}` exited with {proc.returncode}, not 0{said}")
    return f"smoke run `{shown}`: exit 0"


@dataclass(frozen=True)
class Manifest:
    """manifest.json: what a release was built from and what it made."""
    name: str
    version: str
    mode: str                  # the compilation mode of its project libraries (modes.py)
    platform: str
    source_date_epoch: int
    revision: dict | None      # Origin.revision
    smoke_args: list | None
    lispbuild: dict            # lispbuild_identity()
    dump_directory: str
    toolchain: dict            # toolchain_identity()
    sources: list              # [{"path", "sha256"}], by path
    libraries: list            # its ASDF systems: [{"library", "system", "version", "directory", "found_in"}]
    stages: list               # [{"task", "key", "outputs": {role: {"path", "sha256"}}}]
    executable: dict           # {"name", "sha256"}
    format: int = FORMAT

    @property
    def target(self) -> str:
        """The machine it runs on, as a binary's plan names it ("": this one's)."""
        return "" if self.platform == PLATFORM else self.platform

    @property
    def task(self) -> str:
        """The task that makes it: release:NAME, or release:NAME@TARGET."""
        return f"release:{variant(self.name, self.target)}"

    def to_bytes(self) -> bytes:
        return (json.dumps(asdict(self), indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> "Manifest":
        """The manifest `where` (an archive) holds; ReleaseFailure, saying
        what is wrong, if it is not one this lispbuild writes."""
        try:
            record = json.loads(data)
        except ValueError as error:
            raise ReleaseFailure(f"{where}: {MANIFEST} cannot be read ({error})") from None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ReleaseFailure(f"{where}: not a release archive of this lispbuild (manifest "
                                 f"format {record.get('format') if isinstance(record, dict) else None!r})")
        missing = [f.name for f in fields(cls) if f.name not in record]
        if missing:
            raise ReleaseFailure(f"{where}: {MANIFEST} lacks {', '.join(missing)}")
        return cls(**{f.name: record[f.name] for f in fields(cls)})


def write_archive(path: Path, top: str, exe_name: str, exe: Path, manifest: Manifest,
                  epoch: int):
    """The deterministic tar.gz (see the module's doc)."""
    import gzip
    import io
    import tarfile
    files = {exe_name: (exe.read_bytes(), 0o755), MANIFEST: (manifest.to_bytes(), 0o644)}
    sums = "".join(f"{digest_bytes(data)}  {name}\n"
                   for name, (data, _) in sorted(files.items()))
    files[SUMS] = (sums.encode(), 0o644)
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(_entry(f"{top}/", tarfile.DIRTYPE, 0o755, 0, epoch))
        for name in sorted(files):
            data, mode = files[name]
            tar.addfile(_entry(f"{top}/{name}", tarfile.REGTYPE, mode, len(data), epoch),
                        io.BytesIO(data))
    with open(path, "wb") as out:
        with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9,
                           mtime=epoch) as gz:
            gz.write(tar_bytes.getvalue())


def _entry(name: str, kind: bytes, mode: int, size: int, epoch: int):
    import tarfile
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, mode, size, epoch
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def read_archive(path: Path) -> dict:
    """{name inside NAME-VERSION/: bytes} of a release archive."""
    import tarfile
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            return {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in members
                    if "/" in m.name}
    except (OSError, tarfile.TarError, EOFError) as error:
        raise ReleaseFailure(f"{path} is not a release archive: {error}") from None
