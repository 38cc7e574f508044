"""Helpers for the end-to-end tests: projects in temporary directories,
built by running the real doit, SBCL and musl-gcc."""
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from dodo_text import dodo_py

REPO = Path(__file__).resolve().parents[2]


@dataclass
class DoitRun:
    returncode: int
    output: str

    @property
    def executed(self) -> set[str]:
        """Tasks doit ran (". name"), as opposed to skipped ("-- name")."""
        return {line[1:].strip() for line in self.output.splitlines()
                if line.startswith(". ")}


def doit(project: Path, *args, env=None) -> DoitRun:
    proc = subprocess.run([sys.executable, "-m", "doit", *args], cwd=project,
                          capture_output=True, text=True, env=env or os.environ.copy())
    return DoitRun(proc.returncode, proc.stdout + proc.stderr)


def built(project: Path, *args, env=None) -> DoitRun:
    result = doit(project, *args, env=env)
    assert result.returncode == 0, result.output
    return result


def built_at_once(task: str, first: Path, env_first: dict, second: Path,
                  env_second: dict) -> str:
    """`doit -n 2 TASK` in two checkouts at once (each build's processes
    compete with the other's for the cores), the second with umask 077;
    both must pass. What the first printed."""
    command = [sys.executable, "-m", "doit", "-n", "2", task]
    builds = [subprocess.Popen(command, cwd=first, env=env_first, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True),
              subprocess.Popen(command, cwd=second, env=env_second, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               preexec_fn=lambda: os.umask(0o077))]
    outputs = [build.communicate()[0] for build in builds]
    for build, output in zip(builds, outputs):
        assert build.returncode == 0, output
    return outputs[0]


def terminal_session():
    """preexec_fn of a build the test stops as Ctrl-C does: a session of
    its own whose processes take SIGINT as a terminal's do, even when the
    tests run with SIGINT ignored (a background job of a script)."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def copy_samples(dest: Path) -> Path:
    """A user project: the repository's dodo.py and samples/."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dodo.py", dest / "dodo.py")
    shutil.copytree(REPO / "samples", dest / "samples")
    return dest


ASDF_DODO = dodo_py("""\
project.asdf_system("{system}")
project.binary("{binary}", libraries=["{library}"], entry="{binary}:main"{options})
""")


def asdf_dodo(system: str, library: str = "app", binary: str = "app", options: str = "") -> str:
    """A dodo.py of one ASDF system and one binary, BINARY:MAIN its entry."""
    return ASDF_DODO.format(system=system, library=library, binary=binary, options=options)


def write_project(dest: Path, dodo: str, files: dict[str, str]) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "dodo.py").write_text(dodo)
    for name, text in files.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_text(text)
    return dest


def empty_root_command(executable: Path, tmp: Path, *args, files=()) -> list[str]:
    """A command that runs a copy of the executable in a directory holding
    nothing else (but `files`), as its root: no libc, no loader, no /proc."""
    root = tmp / f"root-{executable.name}"
    root.mkdir()
    shutil.copy(executable, root / executable.name)
    for f in files:
        shutil.copy(f, root / Path(f).name)
    chroot = ["chroot", str(root), f"/{executable.name}", *args]
    return chroot if os.geteuid() == 0 else ["unshare", "-r", *chroot]


def run_in_empty_root(executable: Path, tmp: Path, *args, files=()) -> subprocess.CompletedProcess:
    return subprocess.run(empty_root_command(executable, tmp, *args, files=files),
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def shared_store(tmp_path_factory) -> Path:
    """One store for the tests' projects, so each builds only what it changes."""
    return tmp_path_factory.mktemp("store")


@pytest.fixture
def store_env(shared_store) -> dict:
    return {**os.environ, "LISPBUILD_STORE": str(shared_store)}


@pytest.fixture(scope="session")
def samples(tmp_path_factory) -> Path:
    """The samples, built once with `doit -n 2` into the project's own cache/;
    what doit printed is kept in build-output.txt."""
    env = {k: v for k, v in os.environ.items() if k != "LISPBUILD_STORE"}
    project = copy_samples(tmp_path_factory.mktemp("samples"))
    result = built(project, "-n", "2", env=env)
    (project / "build-output.txt").write_text(result.output)
    return project
