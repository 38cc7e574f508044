"""run:NAME and test:NAME: a built program, run; never up to date."""
import inspect
import subprocess
from pathlib import Path

from doit.exceptions import TaskFailed

from .. import layout
from ..sbcl.driver import time_limit
from ..sbcl.outcome import signal_name
from ..errors import LispFailure, MissingToolchain
from ..targets import TARGETS, variant
from ..toolchain import find_program
from ..buildlock import release_build_lock
from ..settings import STOP_GRACE_SECONDS, TIME_LIMIT_VARIABLE


def program_starts() -> bool:
    """A run or test task's check: never up to date; and the build lock is
    let go, since the program (a server, say) may run for hours while
    other builds of the project go on."""
    release_build_lock()
    return False


program_starts.__signature__ = inspect.signature(program_starts)


def fail(message: str):
    return TaskFailed(message)


def run_executable(path: Path, args: list, exit_code: int, limited: bool, target: str = ""):
    """Run a built program (another machine's under its qemu); fail unless
    it exits with exit_code, its own. A test (limited) is stopped after
    the time limit: SIGTERM, then SIGKILL."""
    try:
        limit = time_limit() if limited else None
        qemu = [] if not target else [str(find_program(TARGETS[target].qemu, "qemu-user-static"))]
    except (LispFailure, MissingToolchain) as error:
        return TaskFailed(str(error))
    shown = layout.executable(path.name, target)
    process = subprocess.Popen([*qemu, str(path), *args])
    try:
        returncode = process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return TaskFailed(f"{shown} was stopped after {limit:g} s"
                          f" (the time limit; set {TIME_LIMIT_VARIABLE} to change it)")
    except BaseException:
        process.kill()
        process.wait()
        raise
    if returncode < 0:
        return TaskFailed(f"{shown} was killed by {signal_name(-returncode)}")
    if returncode != exit_code:
        return TaskFailed(f"{shown} exited with {returncode}, expected {exit_code}")
    return None


def program_tasks(kind: str, run, targets: list[str], root: Path):
    """run:NAME or test:NAME (`kind`) of each machine its binary is built
    for (`targets`, "" this one): another's is run:NAME@TARGET, under
    that machine's qemu."""
    for t in targets:
        exe = layout.executable(run.binary, t)
        yield {"basename": kind, "name": variant(run.name, t),
               "actions": [(run_executable, [root / exe, list(run.args), run.exit_code,
                                             kind == "test", t])],
               "task_dep": [f"exe:{variant(run.binary, t)}"], "verbosity": 2,
               "uptodate": [(program_starts, [])],
               "doc": f"{kind} {exe} {' '.join(run.args)}"}
