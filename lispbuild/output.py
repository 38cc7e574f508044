"""What a compile or a dump printed: kept whole in a file, shown bounded.

A job's output goes to a file as SBCL writes it, never into memory; once
the job has ended it is kept as build/.lispbuild/output/TASK.txt (the
task's name, `:` as `/`) and shown as its first and last lines, saying
how many were left out and where the whole is. A job that printed
nothing keeps no file.
"""
import os
import re
from pathlib import Path

from . import layout
from .digest import digest_bytes
from .scratch import tmp_prefix

HEAD_LINES = 15
TAIL_LINES = 25
LINE_CHARS = 400          # of one line; the rest is cut
TAIL_BYTES = 64 << 10     # read from the end for the last lines
_CHUNK = 1 << 20
_TASK = re.compile(r"([a-z][a-z-]*):([^\s]+)")


def kept_path(build: Path, task: str) -> Path:
    """output/BASENAME/NAME.txt for a task; for a job of no task (asking
    ASDF), a name made of its description."""
    named = _TASK.fullmatch(task)
    if named:
        return layout.state(build, layout.OUTPUT) / named[1] / f"{named[2]}.txt"
    words = re.sub(r"[^A-Za-z0-9.+-]+", "-", task)[:60].strip("-")
    return layout.state(build, layout.OUTPUT) / f"{words}-{digest_bytes(task.encode())[:8]}.txt"


def keep(printed: Path, build: Path, task: str) -> Path | None:
    """Move the output file `printed` to the task's place (replacing the
    last run's); None, with no file left, if it is empty."""
    dest = kept_path(build, task)
    if not printed.exists() or printed.stat().st_size == 0:
        printed.unlink(missing_ok=True)
        dest.unlink(missing_ok=True)
        return None
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{tmp_prefix()}{dest.name}")
    try:
        os.replace(printed, tmp)
    except OSError:  # another file system (a scratch directory elsewhere)
        with open(printed, "rb") as source, open(tmp, "wb") as out:
            while chunk := source.read(_CHUNK):
                out.write(chunk)
        printed.unlink()
    os.replace(tmp, dest)
    return dest


def _cut(line: bytes) -> str:
    text = line.rstrip(b"\r\n").decode("utf-8", "replace")
    return text if len(text) <= LINE_CHARS else text[:LINE_CHARS] + " [...]"


def _count_lines(f) -> tuple[int, int]:
    """(lines, bytes) of the whole file, read in chunks."""
    lines = size = 0
    last = b"\n"
    f.seek(0)
    while chunk := f.read(_CHUNK):
        lines += chunk.count(b"\n")
        size += len(chunk)
        last = chunk[-1:]
    return lines + (last != b"\n"), size


def _head(f, count: int) -> list[str]:
    """The first `count` lines, each read only up to LINE_CHARS bytes."""
    f.seek(0)
    lines = []
    while len(lines) < count:
        line = f.readline(LINE_CHARS * 4)
        if not line:
            break
        if not line.endswith(b"\n"):  # a long line: skip to its end
            while (rest := f.readline(_CHUNK)) and not rest.endswith(b"\n"):
                pass
        lines.append(_cut(line))
    return lines


def _tail(f, count: int, size: int) -> list[str]:
    start = max(0, size - TAIL_BYTES)
    f.seek(start)
    lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if start > 0:
        lines = lines[1:]  # the first is only the end of a line
    return [_cut(line) for line in lines[-count:]]


def excerpt(path: Path, shown_as: str) -> str:
    """The output at `path` as text to show: all of it when it is short,
    else its first and last lines and a line saying what was left out and
    that the whole is at `shown_as`."""
    with open(path, "rb") as f:
        total, size = _count_lines(f)
        if total <= HEAD_LINES + TAIL_LINES:
            return "\n".join(_head(f, total))
        head, tail = _head(f, HEAD_LINES), _tail(f, TAIL_LINES, size)
    left_out = total - len(head) - len(tail)
    return "\n".join([*head, f"[... {left_out:,} lines left out; all {total:,} lines "
                              f"({size:,} bytes) are in {shown_as}]", *tail])


# A compile of code outside the project (Debian's libraries) says only how
# many warnings it had, in this form; the progress reporter adds them up
# per library.
OUTSIDE_WARNINGS = re.compile(r"^(\d+) warnings? outside the project in (\S+)$")


def outside_warnings(count: int, library: str) -> str:
    return f"{count} warning{'s' if count != 1 else ''} outside the project in {library}"
