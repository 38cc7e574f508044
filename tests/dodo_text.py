"""The dodo.py of a test project: its declarations, between the lines every
lispbuild project starts and ends with."""

HEAD = "import lispbuild\nproject = lispbuild.Project()\n"
TAIL = ("DOIT_CONFIG = lispbuild.doit_config(project)\n"
        "def task_lispbuild():\n"
        "    yield from lispbuild.tasks(project)\n")


def dodo_py(declarations: str) -> str:
    """dodo.py for `declarations` (project.library(...) lines and the like)."""
    return HEAD + declarations.lstrip("\n") + TAIL
