"""Tasks of Lisp files: fasl:LIB/FILE compiles one file, grovel:LIB/FILE
runs a CFFI grovel or wrapper file's processor, lib:LIB reports what the
library's files leave undefined."""
import re
import sys
from pathlib import Path

from .. import layout, link, observed, reuse
from ..jobs import LispJob
from ..graph import FaslNode, library_task
from ..output import outside_warnings
from ..sbcl.driver import time_limit
from ..sbcl.outcome import printed_words
from ..action import Action, Context
from ..settings import settings
from ..targets import state_target
from ..toolchain import find_musl, find_sbcl, for_target, musl_files, sbcl_files


def print_notes(notes: str):
    if notes.strip():
        print(notes.rstrip(), file=sys.stderr)


# The first line of a diagnostic: "FILE:LINE: KIND: text".
DIAGNOSTIC = re.compile(r"^\S[^:]*:\d*:? (STYLE-WARNING|WARNING|ERROR|read error)")


def report_warnings(notes: str, action: Action):
    """The project's own warnings in full; code outside it (Debian's
    libraries) only counted, unless LISPBUILD_WARNINGS=all."""
    if action.means["project"] or settings().show_all_warnings:
        print_notes(notes)
    else:
        count = sum(1 for line in notes.splitlines() if DIAGNOSTIC.match(line))
        if count:
            print(outside_warnings(count, action.params["library"]), file=sys.stderr)


def compile_arguments(action: Action, outputs: dict) -> dict:
    """The compile job's arguments: the file, where each output goes, and
    the step that loads its FASL (its trace loads it so)."""
    p = action.params
    return {"source": p["source"], "output": outputs["fasl"],
            "undefined": outputs["undefined"], "reads": outputs[observed.ROLE],
            "trace": outputs[reuse.ROLE], "load_as": p["step"],
            "external_format": p["external_format"], "features": p["features"],
            "policy": [tuple(q) for q in p["policy"]],
            "fail_on_warning": p["fail_on_warning"],
            **({"asdf_system": p["asdf_system"]} if "asdf_system" in p else {})}


def followers(action: Action, ctx: Context) -> list[Action]:
    """The files that follow this one in its library's chain (graph.py)
    and were never compiled into build/: a cold build's. They compile in
    the job's process, each after the one before it is loaded, as ASDF
    compiles a system: one process, not one a file. Where a FASL is there
    already (an edit), its own task decides, as its trace may reuse it."""
    chain, task = [], action.means.get("follower")
    while task:
        follower = ctx.graph_actions.get(task)
        if follower is None or (ctx.root / follower.outputs["fasl"]).exists() \
                or not all((ctx.root / i).is_file() for i in follower.inputs):
            break
        chain.append(follower)
        task = follower.means.get("follower")
    return chain


# A follower's files besides its outputs: what it reported, what it
# printed, and the mark that it compiled (compile.lisp).
FOLLOWER_FILES = ("diagnostics", "log", "done")


def compile_fasl(action: Action, ctx: Context, outputs: dict) -> list:
    """Compile the file, and its followers when it has any: those that
    compiled, each with its outputs' paths, for the rebuilder to record
    under their own keys (rebuild.py)."""
    p = action.params
    chain = [(follower, _follower_paths(follower, Path(outputs["fasl"]).parent / f"then-{i}"),
              [ctx.file_digest(i) for i in follower.inputs])
             for i, follower in enumerate(followers(action, ctx))]
    arguments = compile_arguments(action, outputs)
    if chain:
        arguments["then"] = [{**compile_arguments(f, paths), **{k: paths[k] for k in FOLLOWER_FILES}}
                             for f, paths, _ in chain]
        # Each follower's own (compile.lisp): one over it is its task's to report.
        arguments["time_limit"] = time_limit()
    report_warnings(ctx.lisp.run(LispJob(
        task=action.task, command="compile", state=action.state, product=outputs["fasl"],
        arguments=arguments, library=p["library"], base=action.means["base"],
        hints={"project": action.means["project"],
               # The library's zygote is worth an image for the builds to
               # come where it was built before (an edit), or on the first
               # build where it is the one a user edits most (no other
               # library depends on it).
               "save_image": action.means["top"]
                             or (ctx.root / action.outputs["fasl"]).exists()})), action)
    sbcl_home = find_sbcl(library_target(action)).home
    observed.record(outputs[observed.ROLE], action, ctx, sbcl_home)
    compiled = []
    for follower, paths, sources in chain:
        # Not compiled, or its source edited while it was: its task compiles it.
        if not paths["done"].exists() \
                or [ctx.file_digest(i) for i in follower.inputs] != sources:
            break
        notes = paths["diagnostics"].read_text(encoding="utf-8")
        # As a compile's own job shows it: the project's own code's words.
        said = printed_words(follower.task, paths["log"], ctx.build)
        if said and follower.means["project"]:
            notes += f"{said.lstrip()}\n"
        report_warnings(notes, follower)
        observed.record(paths[observed.ROLE], follower, ctx, sbcl_home)
        compiled.append((follower, {role: paths[role] for role in follower.outputs}))
    return compiled


def _follower_paths(follower: Action, directory: Path) -> dict[str, Path]:
    directory.mkdir()
    paths = {role: directory / Path(path).name for role, path in follower.outputs.items()}
    return {**paths, **{name: directory / name for name in FOLLOWER_FILES}}


def grovel(action: Action, ctx: Context, outputs: dict):
    p = action.params
    if "c" in outputs:  # a wrapper file: CFFI-GROVEL writes C and Lisp, compiles nothing
        report_warnings(ctx.lisp.run(LispJob(
            task=action.task, command="wrapper", state=action.state, product=outputs["lisp"],
            arguments={"source": p["source"], "output": outputs["lisp"],
                       "c_output": outputs["c"], "features": p["features"]})), action)
        return
    report_warnings(ctx.lisp.run(LispJob(
        task=action.task, command="grovel", state=action.state, product=outputs["lisp"],
        arguments={"source": p["source"], "output": outputs["lisp"],
                   "cc": str(find_musl().gcc), "cc_flags": p["cc_flags"],
                   "features": p["features"]})), action)


def check_undefined(action: Action, ctx: Context, outputs: dict):
    """What the library's files refer to undefined, checked with the whole
    library loaded: reported as compile_fasl reports (a function defined
    in a later file of the library is not). SBCL runs only when a file
    refers to something undefined."""
    p = action.params
    references = [path for path in action.inputs
                  if (ctx.root / path).stat().st_size > 0]
    if not references:
        outputs["report"].write_bytes(b"")
        return
    report_warnings(ctx.lisp.run(LispJob(
        task=action.task, command="check-undefined", state=action.state,
        product=outputs["report"],
        arguments={"references": [str(ctx.root / r) for r in references],
                   "output": outputs["report"], "fail_on_warning": p["fail_on_warning"]})),
        action)


def fasl_action(node: FaslNode) -> Action:
    library = node.library
    return Action(
        task=f"fasl:{node.name}", run=compile_fasl, inputs=[node.source],
        params={"source": node.source, "library": library.name,
                "external_format": node.external_format, "features": list(library.features),
                "policy": [list(q) for q in library.policy],
                "fail_on_warning": library.fail_on_warning, "step": list(node.step),
                # Its :around-compile hook is ASDF's to find.
                **({"asdf_system": library.asdf_system} if library.asdf_system else {})},
        outputs={"fasl": node.fasl, "undefined": node.undefined,
                 observed.ROLE: node.fasl.removesuffix(".fasl") + ".reads",
                 reuse.ROLE: reuse.trace_path(node.fasl)},
        toolchain=(for_target(sbcl_files, library.target),),
        state=node.state, means={"base": node.base, "project": in_project(library),
                                 "top": node.top,
                                 "follower": node.follower and f"fasl:{node.follower}"})


def grovel_action(node: FaslNode) -> Action:
    library = node.library
    return Action(
        task=f"grovel:{node.name}", run=grovel, inputs=[node.grovel],
        params={"source": node.grovel, "library": library.name,
                "features": list(library.features), "cc_flags": list(link.GROVEL_FLAGS)},
        outputs={"lisp": node.source, **({"c": node.wrapper_c} if node.wrapper_c else {})},
        toolchain=(sbcl_files, musl_files), state=node.state,
        means={"project": in_project(library)})


def library_target(action: Action) -> str:
    """The target whose SBCL runs the action (targets.py)."""
    return state_target(action.state)


def in_project(library) -> bool:
    return not library.directory.is_absolute()


def library_action(library, nodes: list[FaslNode], complete) -> Action:
    return Action(
        task=library_task(library.name), run=check_undefined,
        inputs=[node.undefined for node in nodes],
        params={"library": library.name, "fail_on_warning": library.fail_on_warning},
        outputs={"report": layout.undefined_report(library.name)},
        toolchain=(for_target(sbcl_files, library.target),),
        state=complete, means={"project": in_project(library)})
