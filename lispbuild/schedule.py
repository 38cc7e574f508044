"""Which ready task runs first: the one with the longest chain of work
behind it (the critical path, as ninja and Bazel order their queues).

doit runs the tasks that are ready first come, first served: with two
processes, a cold build of samples/webserver then compiles small libraries
while alexandria, first of the longest chain (alexandria, babel, cffi,
cl+ssl, hunchentoot), waits for a free process. doit has no hook for the
order, so lispbuild gives its task dispatcher a ready queue that hands out
first the nodes doit has not looked into (so that every task that could
run is known), then the node of highest priority; the rest of doit is
untouched. A doit whose dispatcher does not look as expected is left as
it is.
"""
import inspect
from collections import deque

from doit import control

# Rough relative cost of each kind of task (a FASL is 1).
COSTS = {"fasl": 1.0, "grovel": 3.0, "lib": 0.2, "core": 10.0, "linkage": 1.0, "runtime": 3.0,
         "exe": 1.0, "c": 1.0}

_priorities: dict[str, float] = {}


def set_priorities(tasks: list[dict]):
    """Priority of each task: its own cost plus the most expensive chain of
    tasks that wait for it."""
    names = {t["basename"] + (":" + t["name"] if t.get("name") else ""): t for t in tasks}
    waiting: dict[str, list[str]] = {name: [] for name in names}
    for name, task in names.items():
        for dep in task.get("task_dep", ()):
            waiting.setdefault(dep, []).append(name)
    memo: dict[str, float] = {}
    visiting: set[str] = set()  # a cycle (doit reports it) must not loop here
    for start in names:  # dependents before what they wait for, without recursion
        stack = [(start, False)]
        while stack:
            name, expanded = stack.pop()
            if name in memo:
                continue
            if expanded:
                visiting.discard(name)
                memo[name] = COSTS.get(name.partition(":")[0], 0.0) + max(
                    (memo.get(w, 0.0) for w in waiting.get(name, ())), default=0.0)
            elif name not in visiting:
                visiting.add(name)
                stack.append((name, True))
                stack.extend((w, False) for w in waiting.get(name, ())
                             if w not in memo and w not in visiting)
    _priorities.clear()
    _priorities.update(memo)


def _unexplored(node) -> bool:
    """A node doit has not looked into yet, whose task waits for others:
    looking costs nothing, and finds the tasks that are worth running."""
    return (node.task.task_dep and node.generator is not None
            and inspect.getgeneratorstate(node.generator) == inspect.GEN_CREATED)


class _ReadyByPriority(deque):
    def popleft(self):
        best = next((i for i, node in enumerate(self) if _unexplored(node)), None)
        if best is None:
            best = max(range(len(self)),
                       key=lambda i: (_priorities.get(self[i].task.name, 0.0), -i))
        node = self[best]
        del self[best]
        return node


class _Dispatcher(control.TaskDispatcher):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ready = _ReadyByPriority(self.ready)


def install():
    if isinstance(getattr(control, "TaskDispatcher", None), type) and \
            control.TaskDispatcher is not _Dispatcher:
        control.TaskDispatcher = _Dispatcher
