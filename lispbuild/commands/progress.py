"""What a build shows while it runs: ninja's status line.

On a terminal, one line is rewritten in place, "[done/total] 12.3 s task",
where total counts only the tasks that will run: every task with actions
that the selection needs, less those found up to date so far (as ninja's
count shrinks when a restat finds nothing to do). What a task said (the
project's diagnostics, a fresh SBCL's reason) is printed above the line
when the task ends, so that lines of two tasks never mix; a run or test
task writes to the terminal itself, after a line naming it. Elsewhere (a
log, a pipe) the lines are doit's own (". task", "-- task"), each task's
words after its line, and nothing is rewritten.
"""
import shutil
import time

from doit.reporter import ConsoleReporter

from ..output import OUTSIDE_WARNINGS
from ..settings import SHOW_ALL_VARIABLE


class ProgressReporter(ConsoleReporter):
    desc = "lispbuild: [done/total] status line on a terminal"

    def __init__(self, outstream, options):
        super().__init__(outstream, options)
        isatty = getattr(outstream, "isatty", None)
        self.live = bool(isatty and isatty())
        self.start = time.monotonic()
        self.pending: set[str] = set()
        self.done = 0
        self.current = ""
        self.shown = False
        self.outside: dict[str, int] = {}  # library: warnings in its code

    def initialize(self, tasks, selected_tasks):
        todo, seen = list(selected_tasks), set()
        while todo:
            name = todo.pop()
            if name in seen or name not in tasks:
                continue
            seen.add(name)
            task = tasks[name]
            todo += [*task.task_dep, *task.setup_tasks]
            if task.actions and not name.startswith("_"):
                self.pending.add(name)

    def status(self) -> str:
        return (f"[{self.done}/{self.done + len(self.pending)}] "
                f"{time.monotonic() - self.start:.1f} s {self.current}")

    def _draw(self):
        if self.live:
            width = shutil.get_terminal_size().columns
            self.outstream.write("\r\x1b[K" + self.status()[:max(width - 1, 10)])
            self.outstream.flush()
            self.shown = True

    def write(self, text):
        """Text above the status line."""
        if self.shown:
            self.outstream.write("\r\x1b[K")
            self.shown = False
        self.outstream.write(text)

    def execute_task(self, task):
        if not task.actions or task.name.startswith("_"):
            return
        self.current = task.name
        if not self.live:
            self.write(f".  {task.title()}\n")
        elif task.verbosity >= 2:  # it writes to the terminal itself, below its line
            self.write(self.status() + "\n")
        else:
            self._draw()

    def _finished(self, task, failed: bool):
        """Count it, and write what it said that was kept from the terminal
        (at verbosity 0, its stderr; on a failure, its stdout too)."""
        self.pending.discard(task.name)
        if task.actions and not task.name.startswith("_"):
            self.done += 1
        verbosity = task.verbosity if task.verbosity is not None else 1
        said = "".join((a.out or "" if failed and verbosity < 2 else "")
                       + (a.err or "" if verbosity < 1 else "") for a in task.actions)
        kept = []
        for line in said.splitlines():
            counted = OUTSIDE_WARNINGS.match(line)
            if counted:
                library = counted.group(2)
                self.outside[library] = self.outside.get(library, 0) + int(counted.group(1))
            else:
                kept.append(line)
        if "".join(kept).strip():
            self.write("\n".join(kept) + "\n")

    def _ended_on_terminal(self, task):
        # A program's last line may lack its newline (rt's "No tests
        # failed."): end it, or the status line would write over it.
        if self.live and task.verbosity is not None and task.verbosity >= 2:
            self.outstream.write("\n")

    def add_success(self, task):
        self._ended_on_terminal(task)
        self._finished(task, failed=False)
        self._draw()

    def add_failure(self, task, fail):
        self._ended_on_terminal(task)
        self._finished(task, failed=True)
        if fail.report:
            self.failures.append({"task": task, "exception": fail})
            self._write_failure({"task": task, "exception": fail})
        self._draw()

    def skip_uptodate(self, task):
        self.pending.discard(task.name)
        if self.live:
            self._draw()
        else:
            super().skip_uptodate(task)

    def skip_ignore(self, task):
        self.pending.discard(task.name)
        super().skip_ignore(task)

    def complete_run(self):
        # What failed tasks said is written already, as they ended.
        shown = self.shown
        if self.outside:
            self.write("warnings in code outside the project (" + ", ".join(
                f"{library} {count}" for library, count in sorted(self.outside.items()))
                + f"); {SHOW_ALL_VARIABLE}=all shows them\n")
        if self.live and shown:
            self.current = "failed" if self.failures or self.runtime_errors else "done"
            self.write(self.status() + "\n")
        if self.runtime_errors:
            self.write("#" * 40 + "\nExecution aborted.\n" + "\n".join(self.runtime_errors) + "\n")
