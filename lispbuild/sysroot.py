"""Another machine's Debian, as far as a build needs it: its SBCL (sbcl.o,
sbcl.core, the contribs, and the libraries that SBCL runs on under qemu),
musl's libc.a, libzstd.a and the -dev package of each declared archive,
with the libraries they depend on. The packages are `apt-get download`ed
(Debian's own, of the architecture `dpkg --add-architecture` added, which
setup.sh does) and extracted with `dpkg-deb -x`: nothing is installed.

A sysroot is kept per user (beside the tool store), in a directory named
by the digests of its debs, so it is made once per machine and set of
packages; a new Debian update makes a new one. What apt would choose is
asked once and remembered until apt's lists change.
"""
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import MissingToolchain
from .targets import HOST, TARGETS

# What every target's build needs: its SBCL and what that runs on, musl,
# zstd (the runtime reads compressed cores).
BASE_PACKAGES = ("sbcl", "libc6", "libzstd1", "zlib1g", "musl-dev", "libzstd-dev")
APT_LISTS = Path("/var/lib/apt/lists")
OWNERS = "owners.json"  # in a sysroot: each file's package and version
# The archives each target's binaries link, as their host paths (tasks.py).
_wanted: dict[str, set[str]] = {}


def want_archives(target: str, archives):
    """Archives (as their host paths) that `target`'s binaries link: the
    sysroot holds the target's of each."""
    _wanted.setdefault(target, set()).update(map(str, archives))


def sysroots() -> Path:
    import platformdirs  # here: a build without targets needs it not
    return platformdirs.user_cache_path("lispbuild") / "sysroots"


def target_path(target: str, host_path: str) -> str:
    """Where a file of the host's multiarch directories is for `target`
    (inside its sysroot, from its root)."""
    host, other = TARGETS[HOST].gnu, TARGETS[target].gnu
    return host_path.replace(f"/{host}/", f"/{other}/").replace(f"/{host}.", f"/{other}.")


def _run(command: list[str], what: str, cwd=None) -> str:
    try:
        proc = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    except FileNotFoundError:
        raise MissingToolchain(f"{what}: {command[0]} is missing (Debian's apt and dpkg)") from None
    if proc.returncode != 0:
        raise MissingToolchain(f"{what} failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def dev_package(archive: str) -> str:
    """The Debian package that holds a host archive (dpkg -S)."""
    try:
        out = _run(["dpkg", "-S", archive], f"finding the package of {archive}")
    except MissingToolchain:
        raise MissingToolchain(
            f"{archive}: no installed Debian package holds it, so its build for another "
            f"machine cannot be found: declare archives from Debian's -dev packages "
            f"(their arm64 ones are downloaded), or build this binary for this machine "
            f"alone") from None
    return out.split(":", 1)[0].strip()


def _fields(stanzas: str) -> list[dict]:
    found, current = [], {}
    for line in stanzas.splitlines() + [""]:
        if not line.strip():
            if current:
                found.append(current)
            current = {}
        elif not line.startswith(" ") and ":" in line:
            name, _, value = line.partition(":")
            current[name] = value.strip()
    return found


def _resolve(target: str, packages: list[str]) -> list[dict]:
    """apt's candidates for `packages` of `target`'s architecture, and the
    libraries (not -dev, not libc6) each -dev one depends on."""
    arch = TARGETS[target].debian
    hint = (f"(is {arch} one of dpkg's architectures here? setup.sh adds it: "
            f"dpkg --add-architecture {arch}, then apt-get update)")
    try:
        shown = _fields(_run(["apt-cache", "show", "--no-all-versions",
                              *(f"{p}:{arch}" for p in packages)],
                             f"asking apt for {target}'s {', '.join(packages)}"))
    except MissingToolchain as error:
        raise MissingToolchain(f"{error}\n{hint}") from None
    more = {d.split()[0].split(":")[0] for s in shown if s["Package"].endswith("-dev")
            for d in s.get("Depends", "").replace("|", ",").split(",") if d.strip()}
    more = sorted(d for d in more - {s["Package"] for s in shown}
                  if not d.endswith("-dev") and not d.startswith("libc6"))
    return shown + (_resolve(target, more) if more else [])


@functools.cache
def sysroot(target: str) -> Path:
    """The sysroot of `target`, made if needed."""
    archives = sorted(_wanted.get(target, ()))
    remembered = sysroots() / f"{target}.json"  # {archives: {"lists", "root"}}
    lists = APT_LISTS.stat().st_mtime_ns if APT_LISTS.exists() else 0
    try:
        seen = json.loads(remembered.read_text())
    except (OSError, ValueError):
        seen = {}
    known = seen.get(" ".join(archives))
    if known and known.get("lists") == lists and Path(known.get("root", "")).is_dir():
        return Path(known["root"])
    request = sorted({*BASE_PACKAGES, *map(dev_package, archives)})
    debs = sorted(_resolve(target, request), key=lambda s: s["Package"])
    digest = hashlib.sha256("".join(f"{s['Package']} {s['SHA256']}\n" for s in debs)
                            .encode()).hexdigest()[:16]
    root = sysroots() / f"{target}-{digest}"
    if not root.is_dir():
        _make(target, debs, root)
    tmp = remembered.with_suffix(f".{os.getpid()}")
    remembered.parent.mkdir(parents=True, exist_ok=True)
    seen[" ".join(archives)] = {"lists": lists, "root": str(root)}
    tmp.write_text(json.dumps(seen))
    os.replace(tmp, remembered)
    return root


def _make(target: str, debs: list[dict], root: Path):
    root.parent.mkdir(parents=True, exist_ok=True)
    arch = TARGETS[target].debian
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".making-") as tmp:
        _run(["apt-get", "download", *(f"{s['Package']}:{arch}={s['Version']}" for s in debs)],
             f"apt-get download for {target}", cwd=tmp)
        tree = Path(tmp, "root")
        versions = {s["Package"]: f"{s['Package']}:{arch} {s['Version']}" for s in debs}
        owners = {}
        for deb in sorted(Path(tmp).glob("*.deb")):
            package = _check_digest(deb, {s["Package"]: s["SHA256"] for s in debs})
            _run(["dpkg-deb", "-x", str(deb), str(tree)], f"dpkg-deb -x {deb.name}")
            for line in _run(["dpkg-deb", "-c", str(deb)], f"dpkg-deb -c {deb.name}").splitlines():
                path = line.split(None, 5)[5].split(" -> ")[0].removeprefix(".")
                owners[path] = versions[package]
        (tree / OWNERS).write_text(json.dumps(owners, sort_keys=True))
        try:
            os.rename(tree, root)
        except OSError:  # another build made it meanwhile
            if not root.is_dir():
                raise
            shutil.rmtree(tree)


def _check_digest(deb: Path, expected: dict[str, str]) -> str:
    """The deb's package, once its sha256 is the one apt's lists give."""
    package = deb.name.split("_", 1)[0]
    sha256 = hashlib.sha256(deb.read_bytes()).hexdigest()
    if expected.get(package) != sha256:
        raise MissingToolchain(f"{deb.name}: its sha256 is not the one apt's lists give")
    return package


def owners(paths) -> dict[str, str]:
    """Path -> "package:ARCH version" for the files of a sysroot among
    `paths`, as a release's manifest names the toolchain."""
    found = {}
    for path in map(str, paths):
        _, mark, rest = path.partition(f"{os.sep}sysroots{os.sep}")
        if mark:
            directory, _, inside = rest.partition(os.sep)
            record = sysroots() / directory / OWNERS
            package = json.loads(record.read_text()).get(f"/{inside}") if record.exists() else None
            if package:
                found[path] = package
    return found


def specs(target: str) -> Path:
    """The musl specs of `target`'s sysroot, its paths where it is now."""
    root = sysroot(target)
    musl = TARGETS[target].musl
    made = root / "usr/lib" / musl / "sysroot.specs"
    if not made.exists():
        text = (root / "usr/lib" / musl / "musl-gcc.specs").read_text()
        text = text.replace(f"/usr/include/{musl}", f"{root}/usr/include/{musl}") \
            .replace(f"/usr/lib/{musl}", f"{root}/usr/lib/{musl}")
        tmp = made.with_suffix(f".{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, made)
    return made
