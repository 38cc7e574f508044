"""The manual's API reference is what docs/api.py writes from the
docstrings, and every function a dodo.py calls has one."""
import runpy
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_api_reference_is_fresh():
    api = runpy.run_path(str(DOCS / "api.py"))
    assert (DOCS / "api.md").read_text() == api["render"](), \
        "docs/api.md is stale: run python3 docs/api.py"


def test_every_public_function_has_a_docstring():
    api = runpy.run_path(str(DOCS / "api.py"))
    undocumented = [name for name, documented, function in api["ENTRIES"]
                    if not (documented or function).__doc__]
    assert undocumented == []


def test_every_manual_page_is_linked_from_the_manual():
    index = (DOCS / "manual.md").read_text()
    pages = {p.name for p in DOCS.glob("*.md")} - {"manual.md"}
    assert {p for p in pages if f"({p})" not in index} == set()
