"""A write that failed for want of space: which file system is full, and
what was being written, since neither SBCL (whose own words cannot be
written to a full disk either) nor Python's OSError says so."""
import errno
import os
from pathlib import Path

# Less than this left is taken for full: a write that failed has just
# used up what there was, less what it could not write.
NEARLY_FULL = 16 << 20


def mount_point(path: Path) -> Path:
    """The directory where the file system holding `path` is mounted."""
    path = Path(os.path.abspath(path))
    while not path.exists():
        path = path.parent
    device = path.stat().st_dev
    while path != path.parent and path.parent.stat().st_dev == device:
        path = path.parent
    return path


def free_bytes(path: Path) -> int:
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


def _existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists():
        path = path.parent
    return path


def describe(path: Path) -> str | None:
    """"the file system at M is full: N bytes free", if the one holding
    `path` is."""
    try:
        where = _existing(path)
        free = free_bytes(where)
        if free >= NEARLY_FULL:
            return None
        return f"the file system at {mount_point(where)} is full: {free:,} bytes free"
    except OSError:
        return None


def full_notes(paths: list[Path]) -> list[str]:
    """describe() of each full file system among those holding `paths`, once each."""
    seen, notes = set(), []
    for path in paths:
        note = describe(path)
        if note is None:
            continue
        device = os.stat(_existing(path)).st_dev
        if device not in seen:
            seen.add(device)
            notes.append(note)
    return notes


def full_note(product: Path, build: Path) -> str:
    """For a job that ended without its product: which of the file
    systems it wrote to is full, if one is."""
    return "".join(f"; {note}" for note in full_notes([product, build]))


def no_space(error: OSError, task: str, writing: str, places: list[Path]) -> str | None:
    """The message for an OSError ENOSPC (or EDQUOT) that `task` met while
    `writing` (its outputs, say), somewhere under `places` (build/, the
    store); None for another error. The file it names is where the space
    ran out (its half-written bytes are removed by now, so the space they
    took is free again); without one, the places that are full now."""
    if error.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    what = "no space left on device" if error.errno == errno.ENOSPC else "disk quota exceeded"
    end = ". Nothing half-written was kept: free some space and build again"
    if error.filename:
        where = _existing(Path(error.filename))
        return (f"{task}: {what} writing {error.filename}: the file system at "
                f"{mount_point(where)} is full ({free_bytes(where):,} bytes free once the "
                f"half-written file was removed){end}")
    notes = full_notes(places)
    return (f"{task}: {what} writing {writing}; "
            + ("; ".join(notes) if notes else
               "none of " + ", ".join(map(str, places)) + " looks full now") + end)
