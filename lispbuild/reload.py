"""Hot reload: a program that `doit watch run:NAME` keeps running takes the
project's newly compiled FASLs into itself instead of being restarted
(reload.lisp is the program's side; development executables only).

What a run's program holds is its binary's `Plan`: the load steps of its
image, the files they read, and which FASLs may be reloaded (the project's
own Lisp, not its dependencies', not groveled bindings). When the watch
starts the program it writes what the program holds (build/.lispbuild/
reload/NAME.json). In each later build the task reload:NAME, which runs
once the binary's FASLs and C objects are built and beside its dump,
compares the build's plan and files with it (`decide`): only project
FASLs changed, so they are sent to the program over its socket, in load
order; anything else (C objects or archives, a dependency, an .asd, files
added or removed) means a restart, which the watch makes after the build,
saying why. So does a FASL that fails to load, and a runtime that the new
build linked differently (`verdict`).
"""
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from . import layout
from .scratch import process_alive
from .steps import step_files

# How long the program may take to answer (its hook waits 5 s at most).
ANSWER_SECONDS = 30.0


@dataclass(frozen=True)
class Plan:
    """What a run's program holds, as JSON-able data."""
    steps: list           # the image's load steps (steps.py), as lists
    reloadable: list      # the FASLs among them that a reload may load
    others: list          # other files the program was built from: C objects, archives
    runtime: str          # the runtime it runs on (linked anew when the linkage changes)

    def files(self) -> list[str]:
        return [f for step in self.steps for f in step_files(tuple(step))] + list(self.others)

    def as_dict(self) -> dict:
        return {"steps": self.steps, "reloadable": self.reloadable, "others": self.others,
                "runtime": self.runtime}


def socket_path(run: str) -> str:
    """The program's socket, from the project root (the program binds it
    from there): short, whatever the root's length."""
    return layout.from_root(f"reload/{run}.sock")


def state_path(root: Path, run: str) -> Path:
    return layout.state(root / layout.BUILD, f"reload/{run}.json")


def digests_of(root: Path, paths, digest) -> dict[str, str | None]:
    found = {}
    for path in paths:
        try:
            found[path] = digest(str(root / path))
        except OSError:
            found[path] = None
    return found


def remember(root: Path, run: str, held: dict):
    """What the running program holds: its pid, its plan's steps and the
    digests of its files, its runtime's digest; written when it starts and
    after each reload."""
    path = state_path(root, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(held))
    os.replace(tmp, path)


def started(root: Path, run: str, pid: int, plan: Plan, digest):
    """The watch started the program `pid` on this build."""
    remember(root, run, {"pid": pid, "steps": plan.steps,
                         "digests": digests_of(root, plan.files(), digest),
                         "runtime": digests_of(root, [plan.runtime], digest)[plan.runtime]})


def recalled(root: Path, run: str) -> dict | None:
    """What the running program holds, or None if none runs."""
    try:
        state = json.loads(state_path(root, run).read_text())
    except (OSError, ValueError):
        return None
    return state if process_alive(state.get("pid", 0)) else None


def forget(root: Path, run: str):
    state_path(root, run).unlink(missing_ok=True)
    (root / socket_path(run)).unlink(missing_ok=True)


def decide(held: dict, plan: Plan, digests: dict) -> tuple[str, object]:
    """("same", None), ("reload", FASLs in load order) or ("restart",
    why): from what the program holds and the build's plan and digests."""
    if held["steps"] != plan.steps:
        return "restart", "its files or their order changed"
    changed = [f for f in plan.files() if held["digests"].get(f) != digests.get(f)]
    if not changed:
        return "same", None
    reloadable = set(plan.reloadable)
    fixed = [f for f in changed if f not in reloadable]
    if fixed:
        return "restart", f"{fixed[0]} changed, which a reload cannot load"
    return "reload", changed


def send(run: str, fasls: list[str], root: Path) -> str:
    """The program's answer to loading `fasls`: "ok MS" or "error TEXT"."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(ANSWER_SECONDS)
        try:
            connection.connect(str(root / socket_path(run)))
        except OSError:
            # A long root: bind and connect from it.
            connection.connect(socket_path(run))
        connection.sendall("".join(f"{root / f}\n" for f in fasls).encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            part = connection.recv(4096)
            if not part:
                break
            answer += part
    return answer.decode(errors="replace").strip() or "error no answer"


def reload_run(run: str, plan: Plan, root: Path, digest):
    """The task reload:RUN: reload the program the watch keeps running, if
    it can be trusted to; otherwise leave the reason for the watch, which
    restarts it after the build. Says what it did on the watch's own
    output at once (the program runs the new code from now on)."""
    held = recalled(root, run)
    if held is None:
        return
    digests = digests_of(root, plan.files(), digest)
    what, detail = decide(held, plan, digests)
    if what == "reload":
        start = time.monotonic()
        try:
            answer = send(run, detail, root)
        except OSError as error:
            answer = f"error it does not listen ({error.strerror or error})"
        if answer.startswith("ok"):
            remember(root, run, dict(held, digests=digests))
            names = ", ".join(os.path.basename(f) for f in detail)
            _say(f"reloaded {names} into {run} (pid {held['pid']}) in "
                 f"{(time.monotonic() - start) * 1000:.0f} ms")
            return
        detail = answer.removeprefix("error ")
    if what != "same":
        remember(root, run, dict(held, restart=detail))


def verdict(root: Path, run: str, plan: Plan, digest) -> str | None:
    """After a good build: None if the running program may go on (it holds
    this build's code), else why it must be restarted."""
    held = recalled(root, run)
    if held is None:
        return "it is not running"
    if held.get("restart"):
        return held["restart"]
    if held["runtime"] != digests_of(root, [plan.runtime], digest)[plan.runtime]:
        return "its runtime was linked anew (C code, archives or foreign symbols changed)"
    what, detail = decide(held, plan, digests_of(root, plan.files(), digest))
    if what == "reload":
        return f"{detail[0]} changed and was not reloaded"
    return None if what == "same" else detail


def _say(line: str):
    # On the watch's output, from the task's process, as the watch says it.
    os.write(1, f"{time.strftime('%H:%M:%S')} {line}\n".encode())


def write_watch_file(root: Path, inputs: list[str], runs: dict):
    """What the watch needs to know of a build; written by tasks.py when a
    watch asks for it (LISPBUILD_WATCH)."""
    path = layout.state(root / layout.BUILD, layout.WATCH)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"inputs": sorted(set(inputs)), "runs": runs}))
    os.replace(tmp, path)
