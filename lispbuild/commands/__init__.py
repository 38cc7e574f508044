"""doit's plug-ins that lispbuild installs (entry points in pyproject.toml):
the commands `watch`, `coverage`, `why`, `verify` and `store-check`, and
the progress reporter; and the console script `lispbuild init` (init.py). They use the build; nothing of the build imports
them, and their code is not part of any key (keys.package_digest)."""
import os

# -n N of the commands that run builds of their own, as doit's own -n.
PROCESSES_OPTION = {"name": "processes", "short": "n", "long": "process", "type": int,
                    "default": max(2, os.cpu_count() or 2),
                    "help": "doit processes each build runs [default: %(default)s]"}
