"""Embedding: the core appended to the static runtime the way
save-lisp-and-die :executable t lays it out, and the check that the result
needs no dynamic loader."""
import struct
from pathlib import Path

from .errors import NotStatic
from .store import copy_file

CORE_MAGIC = 0x5342434C  # "SBCL"
CORE_ALIGNMENT = 32768
RESOURCES_MAGIC = int.from_bytes(b"LBRES001", "little")
PAYLOAD_MAGIC = int.from_bytes(b"LBPAY001", "little")


def embed_core(runtime: Path, core: Path, output: Path,
               resources: list[tuple[str, Path]] = (),
               payload: list[tuple[str, Path | None]] = ()):
    """runtime bytes, the resources (if any), the payload (if any), zero
    padding to 32 KiB, the core, then the core's offset and the magic (8
    bytes each, little-endian): the runtime finds its core by reading the
    last 16 bytes of its own file, the program its resources by reading the
    16 before the core and its payload by the 16 before those
    (sbcl/resources.lisp, which says their layout; sbcl/payload.lisp)."""
    with open(core, "rb") as f:
        if struct.unpack("<Q", f.read(8))[0] != CORE_MAGIC:
            raise NotStatic(f"{core} is not an SBCL core")
    with open(output, "wb") as out:
        with open(runtime, "rb") as rt:
            copy_file(rt, out)
        mark = _write_table(out, resources, RESOURCES_MAGIC) if resources or payload else b""
        if payload:
            mark = _write_table(out, payload, PAYLOAD_MAGIC) + mark
        length = out.tell() + len(mark)
        start = -(-length // CORE_ALIGNMENT) * CORE_ALIGNMENT
        out.write(b"\0" * (start - length) + mark)
        with open(core, "rb") as c:
            copy_file(c, out)
        out.seek(0, 2)
        out.write(struct.pack("<QQ", start, CORE_MAGIC))


def _write_table(out, entries: list[tuple[str, Path | None]], magic: int) -> bytes:
    """A table of named files (None: no bytes) and their bytes, from where
    `out` is; the 16 bytes that find it."""
    start = out.tell()
    names = [name.encode() for name, _ in entries]
    sizes = [Path(path).stat().st_size if path else 0 for _, path in entries]
    position = start + 8 + 24 * len(entries)
    out.write(struct.pack("<Q", len(entries)))
    for name, size in zip(names, sizes):
        out.write(struct.pack("<QQQ", len(name), position, size))
        position += len(name) + size
    for name, (_, path) in zip(names, entries):
        out.write(name)
        if path:
            with open(path, "rb") as f:
                copy_file(f, out)
    return struct.pack("<QQ", start, magic)


PT_DYNAMIC, PT_INTERP = 2, 3


def _program_header_types(path: Path) -> list[int]:
    """The p_type of each program header of a 64-bit little-endian ELF file."""
    with open(path, "rb") as f:
        header = f.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
            raise NotStatic(f"{path} is not a 64-bit little-endian ELF file")
        phoff, = struct.unpack_from("<Q", header, 32)
        phentsize, phnum = struct.unpack_from("<HH", header, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return [struct.unpack_from("<I", table, i * phentsize)[0] for i in range(phnum)]


def check_static(path: Path):
    """Raise NotStatic if the ELF file asks for an interpreter or libraries.
    Its program headers say so (no PT_INTERP, no PT_DYNAMIC: then nothing
    can be needed); only a dynamic one is read further, to name what."""
    if not {PT_INTERP, PT_DYNAMIC} & set(_program_header_types(path)):
        return
    # Imported here: pyelftools costs 20 ms, and a static executable does not need it.
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        elf = ELFFile(f)
        problems = [f"program header {seg.header.p_type}" for seg in elf.iter_segments()
                    if seg.header.p_type in ("PT_INTERP", "PT_DYNAMIC")]
        dynamic = elf.get_section_by_name(".dynamic")
        if dynamic is not None:
            problems += [f"DT_NEEDED {tag.needed}" for tag in dynamic.iter_tags()
                         if tag.entry.d_tag == "DT_NEEDED"]
    if problems:
        raise NotStatic(f"{path} is not a static executable: " + ", ".join(problems))
