"""run:NAME and test:NAME: a built program, run; never up to date."""
import inspect
import subprocess
from pathlib import Path

from doit.exceptions import TaskFailed

from .. import layout
from ..sbcl.driver import signal_name, time_limit
from ..errors import LispFailure
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


def run_executable(path: Path, args: list, exit_code: int, limited: bool):
    """Run a built program; fail unless it exits with exit_code. A test
    (limited) is stopped after the time limit: SIGTERM, then SIGKILL."""
    try:
        limit = time_limit() if limited else None
    except LispFailure as error:
        return TaskFailed(str(error))
    shown = layout.executable(path.name)
    process = subprocess.Popen([str(path), *args])
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
