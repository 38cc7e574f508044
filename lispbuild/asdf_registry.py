"""Where a build's ASDF looks for systems (sbcl/asdf-registry.lisp does
the looking): the project's `registry=` trees first; then, as in the
user's own Lisp, the source registry ASDF configures from the
environment (CL_SOURCE_REGISTRY, source-registry.conf and .conf.d/, its
defaults, Debian's /usr/share/common-lisp/source/ among them), then
Quicklisp's local-projects/ and installed dists. A hermetic build
(Project(hermetic=True), LISPBUILD_HERMETIC=1) has the trees and Debian's
sources only.

This module says what ASDF's answer depends on beyond the .asd files
(`Registry.identity`, in the answer's key), where a system was found
(`origin`), and which other places hold a system ASDF found
(`shadowed`)."""
import os
from dataclasses import dataclass
from pathlib import Path

from .digest import DigestCache
from .settings import asdf_environment, settings

DEBIAN_SOURCES = "/usr/share/common-lisp/source/"
CONFIG = "source-registry.conf"
RULE = ("ASDF's rule: the project's registry trees, then the source registry in "
        "order, then Quicklisp's local-projects, then its dists by preference; in "
        "one tree, the shallowest file")


def _home() -> Path:
    return Path(asdf_environment()["HOME"] or Path.home())


def config_files() -> list[Path]:
    """Every file ASDF may read its source registry's configuration from:
    source-registry.conf and source-registry.conf.d/*.conf in the user's
    XDG configuration directory, the XDG_CONFIG_DIRS, and /etc (uiop's
    xdg-config-pathnames and system-config-pathnames); a .conf.d
    directory that does not exist stands for itself."""
    env = asdf_environment()
    home = env["XDG_CONFIG_HOME"] or str(_home() / ".config")
    dirs = [home, *(env["XDG_CONFIG_DIRS"] or "/etc/xdg").split(":"), "/etc"]
    found = []
    for top in (Path(d) / "common-lisp" for d in dirs if d):
        found.append(top / CONFIG)
        conf_d = top / f"{CONFIG}.d"
        found += sorted(conf_d.glob("*.conf")) if conf_d.is_dir() else [conf_d]
    return found


@dataclass(frozen=True)
class Quicklisp:
    """A Quicklisp installation (~/quicklisp/, with its setup.lisp), read
    as its client reads it: local-projects/ trees, then each enabled dist
    (dists/NAME/enabled.txt), the highest preference.txt first (0 without
    one), whose installed/systems/SYSTEM.txt names the system's .asd file
    relative to the installation."""
    home: Path
    dists: tuple[Path, ...]

    @property
    def local_projects(self) -> Path:
        return self.home / "local-projects"

    def indexes(self) -> list[Path]:
        return [dist / "installed" / "systems" for dist in self.dists]

    def installed(self, system: str) -> list[tuple[str, str]]:
        """(.asd file, dist name) of each installed dist that has `system`."""
        found = []
        for dist, index in zip(self.dists, self.indexes()):
            try:
                relative = (index / f"{system}.txt").read_text().strip()
            except OSError:
                continue
            found.append((str(self.home / relative), dist.name))
        return found


def _preference(dist: Path) -> int:
    try:
        return int((dist / "preference.txt").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def find_quicklisp() -> Quicklisp | None:
    home = _home() / "quicklisp"
    if not (home / "setup.lisp").is_file():
        return None
    try:
        dists = [d for d in (home / "dists").iterdir() if (d / "enabled.txt").is_file()]
    except OSError:
        dists = []
    return Quicklisp(home, tuple(sorted(dists, key=lambda d: (-_preference(d), d.name))))


@dataclass(frozen=True)
class Registry:
    """Where a build's ASDF looks (the module's doc). `trees`: absolute
    directories ending in /."""
    trees: tuple[str, ...]
    inherit: bool
    quicklisp: Quicklisp | None

    def job_arguments(self) -> dict:
        """asdf-registry.lisp's arguments: :quicklisp is (HOME LOCAL-PROJECTS
        INDEX...), directories."""
        quicklisp = self.quicklisp
        return {"registry": list(self.trees), "inherit": self.inherit,
                "quicklisp": quicklisp and [f"{quicklisp.home}/", f"{quicklisp.local_projects}/",
                                            *(f"{i}/" for i in quicklisp.indexes())]}

    def identity(self, digests: DigestCache) -> dict:
        """What ASDF's answer depends on besides the .asd files it read and
        the directories it searched (asdf.py checks those): the variables
        and configuration files it reads, and Quicklisp's installed dists."""
        if not self.inherit:
            return {"hermetic": True}
        files = {}
        for path in config_files():
            try:
                files[str(path)] = digests.digest(path)
            except OSError:
                files[str(path)] = None
        quicklisp = None
        if self.quicklisp is not None:
            quicklisp = {}
            for index in self.quicklisp.indexes():
                try:
                    quicklisp[str(index)] = sorted(os.listdir(index))
                except OSError:
                    quicklisp[str(index)] = None
        return {"environment": asdf_environment(),
                "files": files, "quicklisp": quicklisp}

    def origin(self, asd: str) -> str:
        """Where, in words, the system of `asd` (a path) was found."""
        quicklisp = self.quicklisp
        if any(asd.startswith(tree) for tree in self.trees if tree != DEBIAN_SOURCES):
            return "the project's registry"
        if quicklisp is not None and asd.startswith(f"{quicklisp.local_projects}/"):
            return "Quicklisp's local-projects"
        if quicklisp is not None and asd.startswith(f"{quicklisp.home}/dists/"):
            return f"Quicklisp's dist {asd[len(str(quicklisp.home)) + 7:].split('/')[0]}"
        if asd.startswith(DEBIAN_SOURCES):
            return "Debian's packages"
        return "the ASDF source registry"

    def shadowed(self, primary: str, used: str, asd_files: list[str]) -> str | None:
        """The message saying which .asd file ASDF used for the systems of
        primary name `primary` when other places hold one by that name
        (`asd_files`: every .asd file of the places searched), or None."""
        others = [f for f in asd_files if os.path.basename(f) == f"{primary}.asd"]
        if self.quicklisp is not None:
            others += [asd for asd, _ in self.quicklisp.installed(primary)]
        others = sorted({os.path.realpath(f) for f in others} - {os.path.realpath(used)})
        if not others:
            return None
        also = "; ".join(f"{f} ({self.origin(f)})" for f in others)
        return (f"asdf: system {primary}: using {used} ({self.origin(used)}); "
                f"also found: {also} ({RULE})")


def registry(root: Path, trees: list[str], hermetic: bool) -> Registry:
    """The Registry of a project at `root` with `registry=` trees `trees`."""
    own = tuple(f"{root / t}/" for t in trees)
    if hermetic or settings().hermetic:
        return Registry(own + (DEBIAN_SOURCES,), False, None)
    return Registry(own, True, find_quicklisp())
