"""`doit watch -v`'s phases, from a doit JSON report made up here."""
import datetime

from lispbuild.commands.timing import line, phases, reloaded
from lispbuild.settings import RUN_EXE_TASK

T0 = 1_700_000_000.0  # the build's start, seconds since the epoch


def task(name: str, start: float | None, elapsed: float | None, result="success") -> dict:
    started = None if start is None else datetime.datetime.fromtimestamp(
        T0 + start, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    return {"name": name, "result": result, "started": started, "elapsed": elapsed}


REPORT = [task("fasl:app/package.lisp", None, None, "up-to-date"),
          task("fasl:app/a.lisp", 0.20, 0.05), task("fasl:app/b.lisp", 0.22, 0.08),
          task("lib:app", 0.31, 0.01), task("core:app", 0.33, 0.70),
          task("exe:app", 1.05, 0.15), task(f"{RUN_EXE_TASK}:app", 1.21, 0.0),
          task("release:app", 1.21, 0.02)]


def test_each_phase_is_the_span_of_its_tasks_and_the_graph_is_before_the_first():
    found = dict(phases(REPORT, saved=T0 - 0.1, detected=T0 - 0.04, build_start=T0,
                        build_end=T0 + 1.3, restart=0.02))
    assert list(found) == ["detection", "graph", "compile", "dump", "executable", "other",
                           "restart"]
    expected = {"detection": 0.06, "graph": 0.20, "compile": 0.12, "dump": 0.70,
                "executable": 0.15, "other": 0.02, "restart": 0.02}
    assert all(abs(found[k] - v) < 1e-4 for k, v in expected.items()), found


def test_a_first_build_has_no_detection_and_a_build_with_nothing_to_do_is_all_graph():
    found = phases([task("fasl:app/a.lisp", None, None, "up-to-date")], saved=None,
                   detected=None, build_start=T0, build_end=T0 + 0.3, restart=None)
    assert [phase for phase, _ in found] == ["graph"] and abs(found[0][1] - 0.3) < 1e-6
    assert line(found, None, T0 + 0.3) == "  graph 0.30 s"


def test_the_line_ends_with_the_time_from_the_save():
    assert line([("detection", 0.05), ("compile", 0.5)], T0, T0 + 1.234) == \
        "  detection 0.05 s, compile 0.50 s; save to ready 1.23 s"


def test_a_reload_is_its_own_phase_and_ends_when_the_program_is_ready():
    report = REPORT[:4] + [task("reload:app", 0.32, 0.01)] + REPORT[4:]
    found = dict(phases(report, saved=T0 - 0.1, detected=T0 - 0.04, build_start=T0,
                        build_end=T0 + 1.3, restart=None))
    assert list(found) == ["detection", "graph", "compile", "reload", "dump", "executable",
                           "other"]
    assert abs(found["reload"] - 0.01) < 1e-4
    assert abs(reloaded(report) - (T0 + 0.33)) < 1e-4
    assert reloaded(REPORT) is None
