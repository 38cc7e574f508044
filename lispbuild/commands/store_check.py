"""`doit store-check`: verify every object and record of the project's
store (and of lispbuild's own tool store), removing what is bad. Builds
check what they restore anyway; this finds damage before a build meets it,
and says what it removed."""
import sys
from pathlib import Path

from doit.cmd_base import Command, DodoTaskLoader

from ..settings import STORE_CONFIG
from ..store import Store


def project_store() -> Path | None:
    """The store that dodo.py (in the current directory) declares, or None
    if its DOIT_CONFIG does not come from lispbuild.doit_config(project)."""
    loader = DodoTaskLoader()
    loader.setup({"dodoFile": "dodo.py", "cwdPath": None, "seek_file": False})
    config = loader.load_doit_config()
    return Path(config[STORE_CONFIG]) if STORE_CONFIG in config else None


class StoreCheck(Command):
    """doit's `store-check` command, installed with lispbuild (entry point
    group doit.COMMAND)."""
    name = "store-check"
    doc_purpose = "verify every object and record of the store; remove what is bad"
    doc_usage = ""
    doc_description = ("Reads DOIT_CONFIG from dodo.py to find the project's store. Exits "
                       "with 1 if it removed anything.")

    def execute(self, params, args):
        store = project_store()
        if store is None:
            print("dodo.py's DOIT_CONFIG does not come from lispbuild.doit_config(project)",
                  file=sys.stderr)
            return 2
        import platformdirs
        removed = 0
        for what, root in (("store", store),
                           ("tool store", platformdirs.user_cache_path("lispbuild") / "toolchain")):
            if not root.exists():
                continue
            counts = Store(root).check(lambda line: print(f"{what}: {line}"))
            print(f"{what} {root}: {counts['objects']} objects, {counts['records']} action "
                  f"records, {counts['derived']} derived records checked; "
                  f"{counts['removed']} removed")
            removed += counts["removed"]
        return 1 if removed else 0
