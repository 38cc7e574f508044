"""The package's structure, enforced: which modules may import which (read
with ast), what `import lispbuild` loads, and which code is in the keys."""
import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

from lispbuild.keys import PACKAGE, key_code, package_digest

# Layers, lowest first: a module may import its own layer's and lower ones.
# The model and engine (the package's own modules); SBCL's side, jobs and
# runners (sbcl/); what each task is (rules/); the doit tasks made of them
# (tasks.py, and the package's entry, __init__.py); the commands that
# drive builds.
LAYERS = {"": 0, "sbcl": 1, "rules": 2, "tasks": 3, "commands": 4}


def layer(module: Path) -> str:
    parts = module.relative_to(PACKAGE).parts
    if parts in (("tasks.py",), ("__init__.py",)):
        return "tasks"
    return parts[0] if len(parts) > 1 else ""


def imported_layers(module: Path) -> set[str]:
    """The layers a module imports from, by its relative imports."""
    found = set()
    here = module.relative_to(PACKAGE).parts[:-1]
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(here[:len(here) - (node.level - 1)])
            target = base + (node.module.split(".") if node.module else [])
            names = [target] if target else [[a.name] for a in node.names]
            for name in names:
                found.add("tasks" if name == ["tasks"]
                          else name[0] if name[0] in LAYERS else "")
    return found


def test_no_module_imports_from_a_layer_above_its_own():
    wrong = {str(m.relative_to(PACKAGE)): sorted(imported_layers(m))
             for m in PACKAGE.rglob("*.py")
             if any(LAYERS[l] > LAYERS[layer(m)] for l in imported_layers(m))}
    assert wrong == {}


def test_importing_lispbuild_loads_no_command():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, lispbuild; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True).stdout.split()
    assert [m for m in loaded if m.startswith("lispbuild.commands")] == []
    assert "watchfiles" not in loaded and "lispbuild.tasks" in loaded


def test_a_command_edited_changes_no_key_and_the_builder_edited_changes_all(tmp_path):
    names = {p.relative_to(PACKAGE).as_posix() for p in key_code()}
    assert {"rebuild.py", "sbcl/driver.lisp", "sbcl/worker.py", "rules/lisp.py",
            "tasks.py"} <= names
    assert not any(n.startswith("commands/") for n in names)
    copy = tmp_path / "lispbuild"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = package_digest(package=copy)
    (copy / "commands" / "why.py").write_text("# edited\n")
    (copy / "commands" / "progress.py").write_text("# edited\n")
    assert package_digest.__wrapped__(package=copy) == before
    (copy / "steps.py").write_text((copy / "steps.py").read_text() + "# edited\n")
    assert package_digest.__wrapped__(package=copy) != before


def test_no_module_is_over_350_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in [*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.lisp")]
            if "__pycache__" not in p.parts and (n := len(p.read_text().splitlines())) > 350}
    assert long == {}


def test_the_environment_is_read_in_settings_py_only():
    """No module but settings.py reads a LISPBUILD_ variable or
    SOURCE_DATE_EPOCH from os.environ (it passes the environment on to
    the programs it starts, and a watch sets its builds' variables)."""
    readers = {}
    for module in PACKAGE.rglob("*.py"):
        if module.name == "settings.py" or "__pycache__" in module.parts:
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("get", "getenv") and node.args
                    and "environ" in ast.unparse(node.func)
                    and not (isinstance(node.args[0], ast.Constant)
                             and node.args[0].value in ("LD_LIBRARY_PATH", "SBCL_HOME"))):
                readers.setdefault(str(module.relative_to(PACKAGE)), []).append(
                    ast.unparse(node))
    assert readers == {}


def test_paths_under_build_are_named_in_layout_py_only():
    """No module but layout.py spells a path under build/ or dist/ (its
    docstrings may describe one)."""
    spelled = {}
    for module in PACKAGE.rglob("*.py"):
        if module.name == "layout.py" or "__pycache__" in module.parts:
            continue
        tree = ast.parse(module.read_text())
        # Ids of this tree's nodes only: a freed tree's ids are reused.
        docstrings = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body \
                    and isinstance(node.body[0], ast.Expr):
                docstrings.add(id(node.body[0].value))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in docstrings
                    and (node.value in ("build", "dist", ".lispbuild")
                         or node.value.startswith(("build/", "dist/", ".lispbuild/")))):
                spelled.setdefault(str(module.relative_to(PACKAGE)), []).append(node.value)
    # Debian's cl-asdf keeps its asdf.lisp in a build/ of its own.
    assert spelled == {"toolchain.py": ["build"]}


LISP = sorted((PACKAGE / "sbcl").glob("*.lisp"))
SUPPORTED_SBCL = {"sb-ext", "sb-alien", "sb-mop", "sb-thread", "sb-sprof"}  # SBCL's documented interfaces


def lisp_code(path: Path) -> str:
    """The file without its comments (a ; inside a string cuts a line short:
    that only hides code from these checks)."""
    return "\n".join(line.split(";", 1)[0] for line in path.read_text().splitlines())


def test_sbcl_internals_are_named_in_internals_lisp_only():
    """Every other file refers to SBCL's internals as sbcl:NAME, which
    internals.lisp exports after checking that this SBCL defines NAME."""
    assert len(LISP) > 10
    used = {}
    for path in LISP:
        if path.name != "internals.lisp":
            # Code is written in lower case; docstrings name symbols in upper.
            for match in re.finditer(r"\b(sb-[a-z0-9-]+)::?", lisp_code(path)):
                if match.group(1) not in SUPPORTED_SBCL:
                    used.setdefault(path.name, set()).add(match.group(0))
    assert used == {}


def test_lisp_files_call_each_other_through_exported_functions():
    """No file looks up a function of lispbuild's by its name's string, or
    reaches into a package's unexported symbols; each file but the last
    ones (main.lisp, the scripts, asdf-registry.lisp and asdf-plan.lisp in
    asdf.lisp's package)
    defines its own package, with its exports (consulted.lisp is in
    trace.lisp's)."""
    for path in LISP:
        code = lisp_code(path)
        assert not re.search(r'find-symbol\s+"[^"]*"\s+[:#"]*lispbuild', code, re.I), path.name
        assert not re.search(r"lispbuild[/a-z-]*::", code, re.I), path.name
    packages = {path.name: re.search(r"\(defpackage #:(lispbuild/[a-z-]+)", lisp_code(path))
                for path in LISP}
    assert {name for name, found in packages.items() if not found} == {
        "main.lisp", "bootstrap.lisp", "asdf-choice.lisp", "asdf-registry.lisp", "asdf-plan.lisp",
        "internals.lisp",
        "consulted.lisp"}
    # asdf.lisp defines what driver.lisp declares and exports for it.
    assert {name for name, found in packages.items()
            if found and "(:export" not in lisp_code(PACKAGE / "sbcl" / name)} == {"asdf.lisp"}
