"""release:NAME: the smoke run of a release executable, then its archive
with the manifest that names every input (release.py)."""
import os
from pathlib import Path

from .. import observed, release
from ..sbcl.driver import time_limit
from ..graph import BinaryNode
from ..action import Action, Context
from ..keys import action_key, named_inputs
from ..targets import TARGETS
from ..toolchain import (find_musl, find_program, find_sbcl, for_target, musl_files,
                         runtime_files, sbcl_files)
from .binary import archives_of, dump_release_core


def make_release(action: Action, ctx: Context, outputs: dict):
    """The smoke run, then the archive with its manifest (release.py)."""
    p = action.parameters()
    target = p.get("target", "")
    release.check_clean(action.task, p["revision"])
    exe = ctx.root / p["exe"]
    if p["smoke_args"] is not None:
        qemu = [str(find_program(TARGETS[target].qemu, "qemu-user-static"))] if target else []
        print(release.smoke_run(exe, p["smoke_args"], ctx.build, action.task, time_limit(),
                                qemu))
    dump = next(stage for stage in action.means["stages"] if stage.run is dump_release_core)
    stages = [{"task": stage.task, "key": action_key(stage, ctx),
               "outputs": {role: {"path": str(path), "sha256": ctx.file_digest(path)}
                           for role, path in sorted(stage.outputs.items())}}
              for stage in action.means["stages"]]
    sources = {name: ctx.digests.digest(path)
               for name, path in named_inputs(action.inputs[1:], str(ctx.root))}
    # And what its stages read beyond what they declared (observed.py).
    for stage in action.means["stages"]:
        if observed.ROLE in stage.outputs:
            sources.update(observed.inputs(
                (ctx.root / stage.outputs[observed.ROLE]).read_text(encoding="utf-8")))
    sources = [{"path": name, "sha256": sha256} for name, sha256 in sorted(sources.items())]
    manifest = release.Manifest(
        name=p["binary"], version=p["version"], mode=p["mode"],
        platform=target or release.PLATFORM,
        source_date_epoch=p["epoch"], revision=p["revision"], smoke_args=p["smoke_args"],
        lispbuild=release.lispbuild_identity(), dump_directory=dump.params["dump_directory"],
        toolchain=release.toolchain_identity(
            release.toolchain_files(find_sbcl(target), find_musl(target), p["archives"],
                                    target)),
        sources=sources, libraries=p["libraries"], stages=stages,
        executable={"name": p["binary"], "sha256": ctx.file_digest(p["exe"])})
    release.write_archive(outputs["archive"], f"{p['binary']}-{p['version']}", p["binary"],
                          exe, manifest, p["epoch"])


def release_action(node: BinaryNode, stages: list[Action], version: str, origin,
                   sources: list[str], libraries: list[dict]) -> Action:
    """release:NAME: the archive of the release executable (the last of
    `stages`, every action its bytes come from, whose keys and outputs
    the manifest records), checked by a smoke run. `origin()` is where
    the sources come from (release.Origin), asked when the task is;
    `libraries`, the manifest's record of its ASDF systems."""
    b, t = node.binary, node.binary.target
    exe = stages[-1].outputs["exe"]
    own = [s for s in sources if not os.path.isabs(s)]
    # Another machine's is named as the binary is, its archive by its target.
    name = b.name.removesuffix(f"@{t}") if t else b.name
    return Action(
        task=f"release:{b.name}", run=make_release, inputs=[exe, *sources],
        late=lambda: {"epoch": origin().epoch, "revision": origin().revision(own)},
        params={"binary": name, "version": version, "exe": str(exe), "mode": node.mode,
                "archives": archives_of(b), "libraries": libraries,
                "smoke_args": None if b.smoke_args is None else list(b.smoke_args),
                **({"target": t} if t else {})},
        outputs={"archive": Path(release.archive_name(name, version, t or release.PLATFORM))},
        toolchain=tuple(for_target(find, t) for find in (sbcl_files, runtime_files, musl_files)),
        # The stages' keys and outputs follow from the inputs and toolchain.
        means={"stages": stages})
