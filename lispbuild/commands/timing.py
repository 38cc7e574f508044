"""Where a watch's rebuild spent its time (`doit watch -v`): from a save to
the program reloaded or restarted, in phases, from doit's JSON report of
the build."""
import datetime

from ..settings import RUN_EXE_TASK

# The phase of each kind of task: the prefix of its name.
PHASES = {"fasl": "compile", "grovel": "compile", "lib": "compile", "c": "compile",
          "clib": "compile", "core": "dump", "base": "dump", "linkage": "executable",
          "runtime": "executable", "exe": "executable", "reload": "reload"}
ORDER = ("detection", "graph", "compile", "reload", "dump", "executable", "other", "restart")
# Tasks that only group others (no work of their own).
GROUPS = {RUN_EXE_TASK}


def _started(task: dict) -> float:
    """A task's start, in seconds since the epoch (doit writes it as UTC)."""
    when = datetime.datetime.strptime(task["started"], "%Y-%m-%d %H:%M:%S.%f")
    return when.replace(tzinfo=datetime.timezone.utc).timestamp()


def phases(report: list[dict], saved: float | None, detected: float | None,
           build_start: float, build_end: float,
           restart: float | None) -> list[tuple[str, float]]:
    """(phase, seconds) of one rebuild, in order. `report` is doit's JSON
    report's tasks; times are seconds since the epoch: the newest save
    (None for the first build), when the watch saw it, the build's start
    and end; `restart` is how long restarting the programs took (None if
    none runs). Phases of tasks that ran at the same time (two processes)
    are the span from the first one's start to the last one's end, so
    their sum can be less than the build."""
    spans: dict[str, list[float]] = {}
    for task in report:
        kind = task["name"].partition(":")[0]
        if task.get("started") is None or task.get("elapsed") is None or kind in GROUPS:
            continue  # up to date (its check is part of the graph's time), or a group
        phase = PHASES.get(kind, "other")
        start = _started(task)
        span = spans.setdefault(phase, [start, start + task["elapsed"]])
        span[0], span[1] = min(span[0], start), max(span[1], start + task["elapsed"])
    first = min((s for s, _ in spans.values()), default=build_end)
    found = {"graph": max(0.0, first - build_start)}
    if saved is not None and detected is not None:
        found["detection"] = max(0.0, detected - saved)
    found.update((phase, end - start) for phase, (start, end) in spans.items())
    if restart is not None:
        found["restart"] = restart
    return [(phase, found[phase]) for phase in ORDER if phase in found]


def reloaded(report: list[dict]) -> float | None:
    """When the last reload task ended (seconds since the epoch), if one ran."""
    ends = [_started(t) + t["elapsed"] for t in report
            if t["name"].startswith("reload:") and t.get("started") and t.get("elapsed") is not None]
    return max(ends, default=None)


def line(found: list[tuple[str, float]], saved: float | None, ready: float) -> str:
    """The line `doit watch -v` prints after a rebuild."""
    parts = ", ".join(f"{phase} {seconds:.2f} s" for phase, seconds in found)
    total = f"; save to ready {ready - saved:.2f} s" if saved is not None else ""
    return f"  {parts}{total}"
