"""An action, one task's work as plain data, and the context it runs in
(where the project, its build directory and stores are; how Lisp jobs
run). rebuild.py decides from their keys (keys.py) what to run."""
import functools
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import layout
from .digest import DigestCache
from .errors import InputUnreadable, MissingSource
from .keys import named_inputs, package_digest
from .steps import LoadState, StateDigests
from .store import Store


@dataclass(eq=False)
class Context:
    """Where a project's files, build directory and store are, and the
    remote store behind it; the process
    that owns the build (doit's main process: warm workers end with it);
    and how Lisp jobs run (`lisp`: runners.Runners, set by whoever makes
    the context)."""
    root: Path
    store_root: Path
    owner: int = field(default_factory=os.getpid)
    # Which build this is, for `doit why` (doit's processes fork from the one
    # that made the context, and share it).
    build_id: str = field(default_factory=lambda: f"{os.getpid()}-{time.time_ns()}")
    lisp: object = None
    remote: object = None  # a remote.RemoteStore behind the store, or None
    # The actions of doit's graph, by task (tasks.py), for current.py.
    graph_actions: dict = field(default_factory=dict)

    @property
    def build(self) -> Path:
        return self.root / layout.BUILD

    @functools.cached_property
    def store(self) -> Store:
        return Store(self.store_root)

    @functools.cached_property
    def tool_store(self) -> Store:
        """Where lispbuild keeps what it makes for itself (its compiled Lisp,
        the development runtime): per user, not per project, as they
        depend only on lispbuild and the SBCL build."""
        import platformdirs  # here: a no-op build does not need it
        return Store(platformdirs.user_cache_path("lispbuild") / "toolchain")

    @functools.cached_property
    def digests(self) -> DigestCache:
        return DigestCache(layout.state(self.build, layout.DIGESTS))

    @functools.cached_property
    def states(self) -> StateDigests:
        from .toolchain import sbcl_files
        toolchain = json.dumps(self.toolchain_digests(sbcl_files))
        root = hashlib.sha256(b"lispbuild load state\0" + package_digest().encode() + b"\0"
                              + toolchain.encode()).hexdigest()
        return StateDigests(root, self.file_digest,
                            lambda path: named_inputs([path], str(self.root))[0][0])

    def toolchain_paths(self, find) -> list[str]:
        """The toolchain files `find` names, once a build: the toolchain
        does not change while it builds."""
        cache = self.__dict__.setdefault("_toolchain_paths", {})
        if find not in cache:
            cache[find] = [os.path.abspath(path) for path in find()]
        return cache[find]

    def toolchain_digests(self, find) -> list:
        """[name, digest] of the toolchain files `find` names, once a build."""
        cache = self.__dict__.setdefault("_toolchain", {})
        if find not in cache:
            cache[find] = [[name, self.digests.digest(path)] for name, path
                           in named_inputs(self.toolchain_paths(find), str(self.root))]
        return cache[find]

    def file_digest(self, path) -> str:
        try:
            return self.digests.digest(os.path.join(self.root, path))
        except FileNotFoundError:
            raise MissingSource(f"{path} does not exist (the task that writes it did "
                                f"not run, or failed)") from None
        except OSError as error:
            raise InputUnreadable(f"cannot read {path}: {error.strerror}") from None


@dataclass
class Action:
    """One task's work, as plain data.

    `run(action, ctx, outputs)` writes each output role to the scratch path it is
    given; `inputs` are the files it reads; `toolchain` are functions that
    find the toolchain files it uses (looked up when the key is computed,
    so that a missing package fails the task, not the loading of dodo.py);
    `outputs` maps roles to paths under the project root; `means` is what
    `run` may use to get there faster without changing the result (a
    worker hint), and is not part of the key. `state` is what SBCL loads
    before the action (steps.py): its digest, which covers the contents of
    every file it loads, is part of the key."""
    task: str
    run: Callable
    inputs: list  # paths (str or Path), relative to the root or absolute
    params: dict
    outputs: dict[str, Path | str]
    toolchain: tuple[Callable[[], list[Path]], ...] = ()
    executable: frozenset = field(default_factory=frozenset)
    means: dict = field(default_factory=dict)
    state: LoadState | None = None
    # Parameters found only when the task is checked (a release's git
    # origin: a build that does not release asks git nothing).
    late: Callable[[], dict] | None = None

    def parameters(self) -> dict:
        return self.params if self.late is None else {**self.params, **self.late()}
