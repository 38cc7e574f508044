"""Tasks of Lisp files: fasl:LIB/FILE compiles one file, grovel:LIB/FILE
runs a CFFI grovel or wrapper file's processor, lib:LIB reports what the
library's files leave undefined."""
import re
import sys

from .. import layout, link, observed, reuse
from ..jobs import LispJob
from ..graph import FaslNode, library_task
from ..output import outside_warnings
from ..action import Action, Context
from ..settings import settings
from ..toolchain import find_musl, find_sbcl, musl_files, sbcl_files


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


def compile_fasl(action: Action, ctx: Context, outputs: dict):
    p = action.params
    report_warnings(ctx.lisp.run(LispJob(
        task=action.task, command="compile", state=action.state, product=outputs["fasl"],
        arguments={"source": p["source"], "output": outputs["fasl"],
                   "undefined": outputs["undefined"], "reads": outputs[observed.ROLE],
                   "trace": outputs[reuse.ROLE],
                   "external_format": p["external_format"], "features": p["features"],
                   "policy": [tuple(q) for q in p["policy"]],
                   "fail_on_warning": p["fail_on_warning"],
                   **({"asdf_system": p["asdf_system"]} if "asdf_system" in p else {})},
        library=p["library"], base=action.means["base"],
        hints={"project": action.means["project"],
               # The library's zygote is worth an image for the builds to
               # come where it was built before (an edit), or on the first
               # build where it is the one a user edits most (no other
               # library depends on it).
               "save_image": action.means["top"]
                             or (ctx.root / action.outputs["fasl"]).exists()})), action)
    observed.record(outputs[observed.ROLE], action, ctx, find_sbcl().core.parent)


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
                "fail_on_warning": library.fail_on_warning,
                # Its :around-compile hook is ASDF's to find.
                **({"asdf_system": library.asdf_system} if library.asdf_system else {})},
        outputs={"fasl": node.fasl, "undefined": node.undefined,
                 observed.ROLE: node.fasl.removesuffix(".fasl") + ".reads",
                 reuse.ROLE: reuse.trace_path(node.fasl)},
        toolchain=(sbcl_files,),
        state=node.state, means={"base": node.base, "project": in_project(library),
                                 "top": node.top})


def grovel_action(node: FaslNode) -> Action:
    library = node.library
    return Action(
        task=f"grovel:{node.name}", run=grovel, inputs=[node.grovel],
        params={"source": node.grovel, "library": library.name,
                "features": list(library.features), "cc_flags": list(link.GROVEL_FLAGS)},
        outputs={"lisp": node.source, **({"c": node.wrapper_c} if node.wrapper_c else {})},
        toolchain=(sbcl_files, musl_files), state=node.state,
        means={"project": in_project(library)})


def in_project(library) -> bool:
    return not library.directory.is_absolute()


def library_action(library, nodes: list[FaslNode], complete) -> Action:
    return Action(
        task=library_task(library.name), run=check_undefined,
        inputs=[node.undefined for node in nodes],
        params={"library": library.name, "fail_on_warning": library.fail_on_warning},
        outputs={"report": layout.undefined_report(library.name)}, toolchain=(sbcl_files,),
        state=complete, means={"project": in_project(library)})
