"""What a Lisp job's end means: the notes of a job that succeeded, or a
LispFailure that says what happened, with what SBCL printed."""
import os
import signal
from pathlib import Path

from ..errors import LispFailure
from ..jobs import LispJob


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def check_result(job: LispJob, status: str, diagnostics: str, printed: Path | None,
                 build: Path) -> str:
    """The notes of a job that succeeded; LispFailure saying what happened
    otherwise. `status` is "exit N" or "signal N"; `printed` the file that
    holds what SBCL printed, kept under build/ (output.py) and shown as
    its first and last lines."""
    from .. import space  # here: a build with nothing to do needs it not
    kind, number = status.split()
    what = f"{job.task}"
    said = printed_words(job.task, printed, build) if printed is not None else ""
    if kind == "exit" and number == "0":
        if job.product.exists():
            # What the project's own code printed while it compiled is
            # shown, as ASDF's REPL would show it; a dump's (SBCL's own
            # words) is only kept.
            if said and job.command == "compile" and job.hints.get("project"):
                return f"{diagnostics}{said.lstrip()}\n"
            return diagnostics
        raise LispFailure(f"{what}: SBCL exited with code 0 without writing "
                          f"{job.product.name} (does the code call exit while it is "
                          f"compiled or loaded?){said}")
    if kind == "exit" and number == "1" and diagnostics.strip():
        raise LispFailure(f"{what} failed:\n{diagnostics.strip()}{said}")
    if kind == "signal":
        happened = f"SBCL was killed by {signal_name(int(number))}"
    else:
        happened = f"SBCL exited with code {number} without writing {job.product.name}"
    raise LispFailure(f"{what}: {happened}" + space.full_note(job.product, build)
                      + (f"\n{diagnostics.strip()}" if diagnostics.strip() else "") + said)


def printed_words(task: str, printed: Path, build: Path) -> str:
    """What a job printed (the file `printed`, then kept under build/ by
    output.py), as "\nTASK printed:\n" and its first and last lines; "" if
    nothing."""
    from .. import output
    kept = output.keep(printed, build, task)
    shown = output.excerpt(kept, os.path.relpath(kept, build.parent)).strip() if kept else ""
    return f"\n{task} printed:\n{shown}" if shown else ""


def finished_job(job: LispJob, returncode: int, diagnostics: Path, printed: Path,
                 build: Path) -> str:
    """check_result on what an SBCL that has exited left behind."""
    reported = diagnostics.read_text(encoding="utf-8") if diagnostics.exists() else ""
    status = f"signal {-returncode}" if returncode < 0 else f"exit {returncode}"
    return check_result(job, status, reported, printed, build)
