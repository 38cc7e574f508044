"""Writes docs/api.md, the API reference, from the docstrings of what a
dodo.py calls: `python3 docs/api.py` (tests/unit/test_docs.py checks that
the file is what this writes)."""
import inspect
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import lispbuild  # noqa: E402

ENTRIES = [
    ("lispbuild.Project", lispbuild.Project, lispbuild.Project.__init__),
    ("project.library", None, lispbuild.Project.library),
    ("project.asdf_system", None, lispbuild.Project.asdf_system),
    ("project.binary", None, lispbuild.Project.binary),
    ("project.test", None, lispbuild.Project.test),
    ("project.run", None, lispbuild.Project.run),
    ("lispbuild.tasks", None, lispbuild.tasks),
    ("lispbuild.doit_config", None, lispbuild.doit_config),
    ("lispbuild.shared_store", None, lispbuild.shared_store),
]


def signature(function) -> str:
    parameters = list(inspect.signature(function).parameters.values())
    if parameters and parameters[0].name == "self":
        parameters = parameters[1:]
    return str(inspect.Signature(parameters)).replace(" -> ", " -> ")


def render() -> str:
    out = ["# API reference", "",
           "Generated from the docstrings by `python3 docs/api.py`; what each",
           "declaration means is in [declaring.md](declaring.md).", ""]
    for name, documented, function in ENTRIES:
        doc = inspect.getdoc(documented or function) or ""
        out += [f"## `{name}{signature(function)}`", "", doc, ""]
    return "\n".join(out)


if __name__ == "__main__":
    (Path(__file__).parent / "api.md").write_text(render())
