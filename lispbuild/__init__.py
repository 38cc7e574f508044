"""lispbuild: static SBCL executables from Lisp sources, through a
content-hashed doit task graph. See docs/manual.md for the model and the API."""
from .declare import Project, shared_store
from .errors import LispbuildError
from .tasks import doit_config, doit_tasks as tasks

__all__ = ["Project", "shared_store", "tasks", "doit_config", "LispbuildError"]
