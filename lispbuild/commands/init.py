"""`lispbuild init`: a dodo.py for a directory of ASDF systems.

It reads the .asd files under the directory (not build/, cache/, dist/ or
hidden ones), declares each system they define with
`project.asdf_system`, and says what it found: a system with an
:entry-point is a program (ASDF's program-op), which the build makes into
build/bin/NAME by itself. What it cannot decide from the text, it names:
a test-op (lispbuild runs a function that returns the suite's verdict,
which an .asd does not name), an :entry-point of another build operation.
It never overwrites a dodo.py.
"""
import re
import sys
from pathlib import Path

from .. import layout
from ..asd_forms import defsystem_forms, suite_runner

SKIPPED = {layout.BUILD, layout.DIST, "cache"}  # what builds and stores make

_STRING_OPTION = r":{}\s+\"([^\"]*)\""


class InitRefused(Exception):
    pass


def asd_files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*.asd")):
        parts = path.relative_to(root).parts[:-1]
        if not any(p in SKIPPED or p.startswith(".") for p in parts):
            found.append(path)
    return found


def option(form: str, name: str) -> str | None:
    match = re.search(_STRING_OPTION.format(re.escape(name)), form, re.I)
    return match.group(1) if match else None


def describe(name: str, form: str) -> tuple[list[str], list[str]]:
    """What the text says of a system: lines found, lines undecided."""
    found, undecided = [], []
    entry = option(form, "entry-point")
    operation = option(form, "build-operation")
    if entry and operation in (None, "program-op", "asdf:program-op"):
        binary = (option(form, "build-pathname") or name).rstrip("/").rpartition("/")[2]
        found.append(f"{name}: a program: build/bin/{binary.replace('/', '--')} runs {entry}")
    else:
        found.append(f"{name}: a library")
        if entry:
            undecided.append(f"{name}: :entry-point with :build-operation {operation!r}, "
                             f"not program-op: no binary declared")
    runner = suite_runner(form)
    if runner:
        found.append(f"{name}: its test-op runs {runner}'s runner: the suite build/bin/"
                     f"{name.replace('/', '--')}, task test:{name.replace('/', '--')}")
    elif re.search(r"\(\s*test-op\b", form, re.I):
        undecided.append(f"{name}: has a test-op; to run its suite as a test:NAME task, "
                         f"add project.test(NAME, libraries=[\"{name}\"], "
                         f"function=\"package:function\") naming a function of no "
                         f"arguments that returns true when the suite passes")
    return found, undecided


DODO = '''"""Written by `lispbuild init`: the ASDF systems of this directory.
`doit` builds every program among them into build/bin/; see lispbuild's
README for libraries, tests and runs."""
import lispbuild

project = lispbuild.Project()
{declarations}
DOIT_CONFIG = lispbuild.doit_config(project)


def task_lispbuild():
    yield from lispbuild.tasks(project)
'''


def init(root: Path) -> tuple[str, list[str], list[str]]:
    """dodo.py's text for `root`, what was found, what was not decided."""
    if (root / "dodo.py").exists():
        raise InitRefused(f"{root / 'dodo.py'} exists; lispbuild init does not overwrite it")
    files = asd_files(root)
    if not files:
        raise InitRefused(f"no .asd file under {root}: nothing to declare")
    declarations, found, undecided = [], [], []
    for asd in files:
        systems = defsystem_forms(asd.read_text(encoding="utf-8", errors="replace"))
        relative = asd.relative_to(root)
        if not systems:
            undecided.append(f"{relative}: no defsystem found in it")
        for name, form in systems:
            declarations.append(f'project.asdf_system("{name}")  # {relative}')
            seen, unsure = describe(name, form)
            found += seen
            undecided += unsure
    return DODO.format(declarations="\n".join(declarations) + "\n"), found, undecided


def main(argv=None) -> int:
    """The console script: `lispbuild init`."""
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["init"]:
        print("usage: lispbuild init   (writes dodo.py for the .asd files here)",
              file=sys.stderr)
        return 2
    root = Path.cwd()
    try:
        text, found, undecided = init(root)
    except InitRefused as refusal:
        print(f"lispbuild init: {refusal}", file=sys.stderr)
        return 1
    (root / "dodo.py").write_text(text)
    for line in found:
        print(f"found: {line}")
    for line in undecided:
        print(f"not decided: {line}")
    print("wrote dodo.py; build with: doit -n 2")
    return 0
