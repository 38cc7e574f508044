"""The Lisp driver: the jobs SBCL does for lispbuild, as plain data, and the
plainest way to run one: a fresh SBCL that performs the job's steps and the
job (driver.lisp). A warm worker (worker.py) is the other way; both give
the same FASLs.

lispbuild's own Lisp is compiled once per SBCL build into one FASL
(`support_fasls`), which every lispbuild SBCL loads.
"""
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .. import layout, link
from ..errors import BuildGone, LispFailure, TimeLimit
from ..jobs import LispJob
from ..action import Action, Context
from ..rebuild import ensure
from ..scratch import process_alive, scratch_dir
from ..targets import state_target, variant, without_target
from ..toolchain import (find_asdf_source, find_sbcl, for_target, musl_files, sbcl_files,
                         version_numbers)
from .outcome import finished_job
from ..settings import TIME_LIMIT_VARIABLE, settings

# Generous: Debian's biggest Lisp files compile in well under a minute.
DEFAULT_TIME_LIMIT = 1800.0

PACKAGE = Path(__file__).parent   # lispbuild/sbcl: the Lisp files
# Where they are named from: the directory that holds lispbuild/.
NAMED_FROM = PACKAGE.parent.parent
# Compiled in this order into lispbuild.fasl, main.lisp last; the
# ASDF_SUPPORT_SOURCES into their own FASL, loaded with ASDF when a job
# first needs it.
INTERNALS = "internals.lisp"  # the SBCL internals used, checked first (the scripts load it)
SUPPORT_SOURCES = (INTERNALS, "driver.lisp", "syscalls.lisp", "trace.lisp", "consulted.lisp",
                   "chain.lisp", "compile.lisp",
                   "grovel.lisp", "perfmap.lisp", "resources.lisp", "kept-paths.lisp", "foreign-record.lisp",
                   "entry.lisp", "dump.lisp", "devdump.lisp", "coverage.lisp",
                   "request.lisp", "worker.lisp")
MAIN_SOURCE = "main.lisp"
ASDF_SUPPORT_SOURCES = ("asdf.lisp", "asdf-registry.lisp", "asdf-plan.lisp")
# Only development executables load these (development.fasl).
DEVELOPMENT_SOURCES = ("reload.lisp", "develop.lisp", "payload.lisp")


def lisp_literal(value) -> str:
    """Python data as a Lisp form read under standard syntax."""
    if value is None or value is False:
        return "nil"
    if value is True:
        return "t"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, Path)):
        text = str(value).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{text}"'
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):
        return f"({lisp_literal(value[0])} . {value[1]})"
    if isinstance(value, (list, tuple)):
        return "(" + " ".join(lisp_literal(v) for v in value) + ")"
    raise TypeError(f"no Lisp literal for {value!r}")


def lisp_step(step) -> str:
    kind, *rest = step
    return f"(:{kind} {' '.join(lisp_literal(a) for a in rest)})"


def lisp_steps(steps) -> str:
    return "(" + " ".join(map(lisp_step, steps)) + ")"


# Arguments given as Lisp text already, as lisp_steps writes them.
STEP_ARGUMENTS = ("steps", "payload")


def lisp_argument(name: str, value) -> str:
    if name in STEP_ARGUMENTS:
        return value
    if name == "load_as":  # a step
        return lisp_step(value)
    if name == "then":     # a compile's followers: each a plist of arguments
        return "(" + " ".join(f"({lisp_plist(follower)})" for follower in value) + ")"
    return lisp_literal(value)


def lisp_plist(values: dict) -> str:
    return " ".join(f":{k.replace('_', '-')} {lisp_argument(k, v)}" for k, v in values.items())


def job_form(job: LispJob, steps, diagnostics: Path) -> str:
    """The job as driver.lisp reads it, with `steps` to perform first."""
    return (f"(:{job.command} " + lisp_plist({"steps": lisp_steps(without_target(steps)),
                                               **job.arguments,
                                               "diagnostics": diagnostics}) + ")")


# --- lispbuild's own Lisp, compiled once -------------------------------

ASDF_CHOICE = "asdf-choice.lisp"


def _named(name: str) -> str:
    """A Lisp file as lispbuild/sbcl/NAME, from NAMED_FROM: the FASL header
    says "compiled from" the name it is given, the same wherever lispbuild
    is installed."""
    return (PACKAGE / name).relative_to(NAMED_FROM).as_posix()


def _compile_support(action: Action, ctx: Context, outputs: dict):
    _run_sbcl_script(action.params.get("target", ""), "compiling lispbuild's own Lisp",
                     "bootstrap.lisp",
                     str(outputs["fasl"]), str(outputs["development"]), str(outputs["asdf"]),
                     str(ctx.root / _tools(action.params.get("target", "")) / "asdf.fasl"),
                     _named(MAIN_SOURCE),
                     *map(_named, SUPPORT_SOURCES), "--", *map(_named, DEVELOPMENT_SOURCES),
                     "--", *map(_named, ASDF_SUPPORT_SOURCES))


def _run_sbcl_script(target: str, what: str, script: str, *arguments: str) -> str:
    proc = subprocess.run([*find_sbcl(target).command(), "--script", str(PACKAGE / script),
                           *arguments],
                          cwd=NAMED_FROM, capture_output=True, text=True, errors="replace",
                          env=sbcl_environment(target=target))
    if proc.returncode != 0:
        raise LispFailure(f"{what} failed:\n{(proc.stderr + proc.stdout).strip()[-4000:]}")
    return proc.stdout


def _choose_asdf(action: Action, ctx: Context, outputs: dict):
    """ASDF's own choice, made once: the newer of SBCL's ASDF and Debian's
    cl-asdf, which ASDF would otherwise compile into every build's cache
    and upgrade itself to in every process."""
    target = action.params.get("target", "")
    newer = find_asdf_source()
    own = _run_sbcl_script(target, "asking SBCL's ASDF its version", ASDF_CHOICE,
                           "version").strip()
    if newer is not None and newer.version() > version_numbers(own):
        _run_sbcl_script(target, f"compiling {newer.source}", ASDF_CHOICE, "compile",
                         str(newer.source), str(outputs["fasl"]))
    else:
        shutil.copyfile(find_sbcl(target).home / "contrib" / "asdf.fasl", outputs["fasl"])


TOOLS = Path(layout.from_root(layout.TOOLS))  # where lispbuild's own Lisp is compiled


def _tools(target: str) -> Path:
    """Where lispbuild's own Lisp is compiled for `target`'s SBCL."""
    return TOOLS / target if target else TOOLS


def asdf_action(target: str = "") -> Action:
    return Action(task=variant("lisp:asdf", target), run=_choose_asdf,
                  inputs=[PACKAGE / ASDF_CHOICE, PACKAGE / INTERNALS],
                  params={"target": target} if target else {},
                  toolchain=(for_target(sbcl_files, target),),
                  outputs={"fasl": _tools(target) / "asdf.fasl"})


def support_action(target: str = "") -> Action:
    tools = _tools(target)
    return Action(task=variant("lisp:lispbuild", target), run=_compile_support,
                  inputs=[PACKAGE / n for n in (*SUPPORT_SOURCES, MAIN_SOURCE,
                                                *DEVELOPMENT_SOURCES, *ASDF_SUPPORT_SOURCES,
                                                "bootstrap.lisp")]
                  + [tools / "asdf.fasl"],
                  params={"target": target} if target else {},
                  toolchain=(for_target(sbcl_files, target),),
                  outputs={"fasl": tools / "lispbuild.fasl", "asdf": tools / "asdf-support.fasl",
                           "development": tools / "development.fasl"})


@dataclass(frozen=True)
class Support:
    """The FASLs every lispbuild SBCL loads: lispbuild's, and with the
    first ASDF step, the ASDF the build uses and lispbuild's ASDF side."""
    lispbuild: Path
    asdf: Path
    asdf_support: Path
    development: Path  # what only development executables load (develop.lisp)


def support_fasls(ctx: Context, target: str = "") -> Support:
    """lispbuild.fasl, asdf.fasl and asdf-support.fasl of `target`'s SBCL,
    compiled (or restored) if needed."""
    asdf = asdf_action(target)
    ensure(asdf, ctx)
    action = support_action(target)
    ensure(action, ctx)
    return Support(ctx.root / action.outputs["fasl"], ctx.root / asdf.outputs["fasl"],
                   ctx.root / action.outputs["asdf"], ctx.root / action.outputs["development"])


def support_settings(ctx: Context, support: Support) -> dict:
    """Where a fresh SBCL or a worker finds ASDF, lispbuild's ASDF side, and
    the cache for what ASDF compiles itself."""
    return {"asdf": support.asdf, "asdf_support": support.asdf_support,
            "asdf_cache": asdf_cache(ctx)}


def _build_sorted_listings(action: Action, ctx: Context, outputs: dict):
    link.build_sorted_listings(outputs["library"], ctx.root, action.task,
                               action.params.get("target", ""))


def sorted_listings_action(target: str = "") -> Action:
    """The library preloaded into release dumps (canonical.py), for the
    glibc `target`'s SBCL runs on."""
    return Action(task=variant("lisp:sorteddir", target), run=_build_sorted_listings,
                  inputs=[link.SORTED_LISTINGS_SOURCE], params={"target": target} if target else {},
                  toolchain=(for_target(musl_files, target),),
                  outputs={"library": _tools(target) / "sorteddir.so"})


def sbcl_environment(root: Path | None = None, target: str = "") -> dict:
    """The environment of lispbuild's SBCLs (`target`'s); in a project
    (`root`), the dynamic loader also finds the shared libraries built
    from its libraries' C files (graph.shared_library), as their code asks
    for them by name."""
    env = dict(os.environ)
    env["SBCL_HOME"] = str(find_sbcl(target).home)
    if root is not None and not target:
        # There before the SBCL starts: glibc remembers a directory that
        # was missing at its first search and never looks in it again.
        (root / layout.SHARED_LIBRARIES).mkdir(parents=True, exist_ok=True)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            [str(root / layout.SHARED_LIBRARIES)] + [p for p in [os.environ.get("LD_LIBRARY_PATH")] if p])
    return env



def asdf_cache(ctx: Context) -> str:
    """Where ASDF compiles what it loads itself (:defsystem-depends-on)."""
    return str(layout.state(ctx.build, layout.ASDF_CACHE)) + "/"


# --- the fresh-process strategy ------------------------------------------

def time_limit() -> float:
    """Seconds a compile or dump may take (LISPBUILD_TIME_LIMIT)."""
    value = settings().time_limit or ""
    try:
        limit = float(value) if value else DEFAULT_TIME_LIMIT
    except ValueError:
        limit = 0
    if limit <= 0:
        raise LispFailure(f"{TIME_LIMIT_VARIABLE}={value!r}: give a number of seconds")
    return limit


def job_time_limit(job: LispJob) -> float:
    """Seconds a job may take: the time limit for each file a compile
    compiles (its own and its followers', which compile.lisp limits each)."""
    return time_limit() * (1 + len(job.arguments.get("then", ())))


def over_time(job: LispJob, limit: float) -> TimeLimit:
    source = job.arguments.get("source")
    return TimeLimit(f"{job.task}: stopped after {limit:g} s{f' compiling {source}' if source else ''}"
                     f" (the time limit; set {TIME_LIMIT_VARIABLE} to change it)")


def wait_while_owned(process: subprocess.Popen, owner: int, job: LispJob) -> int:
    """Wait for `process`; kill it and stop if the build's owner is gone
    (doit was killed): nothing of lispbuild outlives its build. Ctrl-C
    and the time limit kill it too."""
    limit = job_time_limit(job)
    deadline = time.monotonic() + limit
    try:
        while True:
            try:
                return process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                if not process_alive(owner):
                    raise BuildGone("the build was stopped") from None
                if time.monotonic() > deadline:
                    raise over_time(job, limit) from None
    except BaseException:
        process.kill()
        process.wait()
        raise


class FreshSbcl:
    """Each job in a new SBCL that performs all its steps itself."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def run(self, job: LispJob) -> str:
        target = state_target(job.state)
        support = support_fasls(self.ctx, target)
        with scratch_dir(self.ctx.build, "job-") as tmp:
            request, diagnostics = Path(tmp) / "request.lisp", Path(tmp) / "diagnostics.txt"
            request.write_text(f"({job_form(job, job.state.steps(), diagnostics)} "
                               f"{lisp_plist(support_settings(self.ctx, support))})\n",
                               encoding="utf-8")
            printed = Path(tmp) / "output.txt"
            with open(printed, "wb") as out:
                proc = subprocess.Popen([*find_sbcl(target).command(), "--script",
                                         str(support.lispbuild), "run",
                                         str(request)], cwd=self.ctx.root, stdout=out,
                                        stderr=subprocess.STDOUT,
                                        env=sbcl_environment(self.ctx.root, target))
                returncode = wait_while_owned(proc, self.ctx.owner, job)
            return finished_job(job, returncode, diagnostics, printed, self.ctx.build)

    def shutdown(self):
        pass
