"""What an .asd file's text says beyond what ASDF answers: the systems it
defines (for `lispbuild init`), whether a system's test-op is one call of a
known test runner, and the binaries the asked systems declare by
themselves (program-op's :entry-point, a test-op's suite)."""
import re
from pathlib import Path

from .declare import Binary, Library, Project, library_name


_DEFSYSTEM = re.compile(r"\(\s*(?:asdf:|asdf/defsystem:)?defsystem\s+"
                        r"(?:\"([^\"]+)\"|#?:?([^\s()\"]+))", re.I)
_PERFORM_TEST_OP = re.compile(r":perform\s*\(\s*test-op\s*\([^()]*\)\s*", re.I)
_SYMBOL_CALL = re.compile(r"\(\s*(?:uiop:)?symbol-call\s+['#:]*([\w.+-]+)\s+['#:]*([\w!*+.-]+)",
                          re.I)
# The runners whose value is the suite's verdict, by (package, function).
RUNNERS = {("fiveam", "run!"): "fiveam", ("5am", "run!"): "fiveam",
           ("it.bese.fiveam", "run!"): "fiveam", ("rt", "do-tests"): "rt",
           ("parachute", "test"): "parachute", ("rove", "run"): "rove",
           ("prove", "run"): "prove", ("lisp-unit2", "run-tests"): "lisp-unit2"}


def defsystem_forms(text: str) -> list[tuple[str, str]]:
    """(name, its defsystem form's text) of each system an .asd's text
    defines, in order; a form's text runs to the next defsystem."""
    text = re.sub(r";[^\n]*", "", text)  # comments
    found = list(_DEFSYSTEM.finditer(text))
    return [((m.group(1) or m.group(2)).lower(),
             text[m.end():found[i + 1].start() if i + 1 < len(found) else len(text)])
            for i, m in enumerate(found)]


def _form_end(text: str, start: int) -> int | None:
    """Where the parenthesized form at `start` ends (strings skipped)."""
    depth, i, in_string = 0, start, False
    while i < len(text):
        c = text[i]
        if in_string:
            i += 1 if c == "\\" else 0
            in_string = c != '"'
        elif c == '"':
            in_string = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def suite_runner(form: str) -> str | None:
    """The framework whose runner a system's test-op calls, when its
    :perform is that one call (so its value is the verdict): FiveAM's run!,
    rt's do-tests, Parachute's test, rove's and prove's run, lisp-unit2's
    run-tests. None when its
    test-op first needs another system (:in-order-to, as cl+ssl's loads
    its tests): the suite's image would not hold it, and a runner that
    finds no test says it passed."""
    if re.search(r":in-order-to\s*\(\s*\(\s*test-op\b", form, re.I):
        return None
    perform = _PERFORM_TEST_OP.search(form)
    call = perform and _SYMBOL_CALL.match(form, perform.end())
    end = call and _form_end(form, call.start())
    if not end or not re.match(r"\s*\)", form[end:]):
        return None
    return RUNNERS.get((call.group(1).lower(), call.group(2).lower()))


def program_of(system: str, entry: str, build_pathname: str, operation: str):
    """(entry, binary name) of a system that ASDF's program-op makes into an
    executable (`asdf:make`): it has an :entry-point and its
    :build-operation is program-op or unset; the binary is named as its
    :build-pathname's file ("bin/app": app), else as the system."""
    if operation not in ("", "program-op", "asdf:program-op", "asdf/bundle:program-op"):
        return None
    name = build_pathname.rstrip("/").rpartition("/")[2] or system.replace("/", "--")
    return entry, name


def test_runner_of(system: str, asd: str) -> str | None:
    try:
        text = Path(asd).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return next((suite_runner(form) for name, form in defsystem_forms(text)
                 if name == system.lower()), None)


def asdf_programs(project: Project, libraries: dict[str, Library]) -> dict[str, Binary]:
    """The binaries the asked systems declare by themselves. program-op:
    build/bin/NAME runs the :entry-point as UIOP's image does, with no
    arguments, exiting 0 if it returns true and 1 if false. A test-op that
    is one call of a known runner (suite_runner): a suite build/bin/LIB and
    its task test:LIB, whose verdict is the runner's value. A system that
    a binary of dodo.py already uses, or whose name one has, makes none."""
    used = {name for b in project.binaries.values() for name in b.libraries}
    found = {}
    for system in sorted(project.asdf_systems_by_name):
        library = libraries.get(library_name(system))
        if library is None or library.name in used:
            continue
        if library.program is not None:
            entry, name = library.program
            made = Binary(name=name, libraries=(library.name,), entry=entry, c_sources=(),
                          archives=(), compression=False, test=True, version=library.version)
        elif library.test_runner is not None:
            name = library.name
            made = Binary(name=name, libraries=(library.name,),
                          entry="lispbuild/driver:run-test-op", c_sources=(), archives=(),
                          compression=False, test=True, version=library.version,
                          smoke_args=(), test_op=(library.asdf_system, library.test_runner))
        else:
            continue
        if name not in project.binaries and name not in found:
            found[name] = made
    return found
