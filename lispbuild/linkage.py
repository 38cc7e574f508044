"""Linkage: the foreign symbols an image needs, resolved against the object
files and static archives that will be linked, read with pyelftools; and
the symbol table the static runtime answers dlsym() from.

Resolution follows the link line: the first provider of a name wins, as
the linker's archive search would pick it.
"""
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import LispbuildError, UndeclaredForeignLibrary, UnresolvedSymbols
from .targets import HOST, TARGETS

_DEFINED_BINDS = ("STB_GLOBAL", "STB_WEAK", "STB_GNU_UNIQUE")


@dataclass(frozen=True)
class Entry:
    name: str
    data: bool    # a variable (its address is stored), not a function
    undefined: bool = False  # the dynamic build image lacked it too


def read_linkage(path: Path) -> tuple[list[Entry], list[str]]:
    """Parse the record core:NAME writes: "function NAME" or "data NAME",
    and " undefined" after it when the dynamic image could not find it;
    then "named NAME" for each string of the image that could name a C
    symbol. Returns the entries and the named strings."""
    entries, named = [], []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        kind, _, rest = line.partition(" ")
        name, _, flag = rest.partition(" ")
        if kind == "named" and name and not flag:
            named.append(name)
            continue
        if kind not in ("function", "data") or not name or flag not in ("", "undefined"):
            raise LispbuildError(f"{path}:{number}: not a linkage entry: {line!r}")
        entries.append(Entry(name, kind == "data", bool(flag)))
    return entries, named


def keep_named(record: Path, defined: set[str]):
    """Rewrite the record keeping, of its "named" lines, those whose name
    is in `defined`."""
    lines = Path(record).read_text().splitlines(keepends=True)
    Path(record).write_text("".join(
        line for line in lines
        if not line.startswith("named ") or line[6:].strip() in defined))


def foreign_library_name(shared_object: str) -> str:
    """"/usr/lib/MULTIARCH/libssl.so.3" -> "libssl"."""
    return Path(shared_object).name.split(".so")[0]


def check_foreign_libraries(binary: str, shared_objects: list[str], declared: list[str]):
    """Every shared library the image loaded must be replaced by archives."""
    missing = [so for so in shared_objects if foreign_library_name(so) not in declared]
    if missing:
        raise UndeclaredForeignLibrary(
            f"binary {binary}: the image loads "
            + ", ".join(missing) + " (through CFFI or load-shared-object), and the static "
            "executable cannot: declare the archives that replace it, e.g. "
            + "foreign_libraries={"
            + ", ".join(f"'{foreign_library_name(so)}': ['/usr/lib/{TARGETS[HOST].gnu}/"
                        f"{foreign_library_name(so)}.a']" for so in missing) + "}")


def _elf_symbols(data: bytes) -> set[str]:
    # Imported here: pyelftools costs 20 ms, and a no-op build never reads ELF.
    from elftools.elf.elffile import ELFFile
    elf = ELFFile(io.BytesIO(data))
    symtab = elf.get_section_by_name(".symtab")
    if symtab is None:
        return set()
    return {sym.name for sym in symtab.iter_symbols()
            if sym.name and sym.entry.st_info.bind in _DEFINED_BINDS
            and sym.entry.st_shndx != "SHN_UNDEF"}


def _ar_members(data: bytes, path: Path):
    """The (name, bytes) of each ELF member of a System V / GNU archive."""
    if not data.startswith(b"!<arch>\n"):
        raise LispbuildError(f"{path} is not a static archive (ar) file")
    names = b""
    offset = 8
    while offset + 60 <= len(data):
        header = data[offset:offset + 60]
        name = header[:16].decode().rstrip()
        size = int(header[48:58].decode().strip())
        body = data[offset + 60:offset + 60 + size]
        offset += 60 + size + (size & 1)
        if name == "//":
            names = body
        elif name in ("/", "/SYM64/"):
            continue
        else:
            if name.startswith("/") and name[1:].isdigit():
                start = int(name[1:])
                name = names[start:names.index(b"/\n", start)].decode()
            yield name.rstrip("/"), body


def _archive_index(data: bytes) -> set[str] | None:
    """The names in an archive's symbol index (the "/" or "/SYM64/" member
    `ar s` writes, which the linker itself searches): every global or weak
    symbol its members define. None if it has no index."""
    header = data[8:68]
    name, size = header[:16].decode().rstrip(), int(header[48:58].decode().strip() or 0)
    body = data[68:68 + size]
    if name == "/":
        width = 4
    elif name == "/SYM64/":
        width = 8
    else:
        return None
    count = int.from_bytes(body[:width], "big")
    names = body[width + width * count:].split(b"\0")[:count]
    return {n.decode() for n in names}


def defined_symbols(path: Path) -> list[str]:
    """Every global or weak symbol defined in an object file or archive:
    from the archive's symbol index when it has one (reading every member's
    symbol table with pyelftools takes seconds for libcrypto.a, the index
    milliseconds, and they name the same symbols)."""
    data = Path(path).read_bytes()
    if data.startswith(b"\x7fELF"):
        return sorted(_elf_symbols(data))
    if not data.startswith(b"!<arch>\n"):
        raise LispbuildError(f"{path} is not a static archive (ar) file")
    index = _archive_index(data)
    if index is not None:
        return sorted(index)
    found = set()
    for _, body in _ar_members(data, path):
        if body.startswith(b"\x7fELF"):
            found |= _elf_symbols(body)
    return sorted(found)


def archive_members(path: Path) -> list[tuple[list[str], list[str]]]:
    """The (defined, undefined) global symbols of each ELF member of an
    archive, read with pyelftools."""
    from elftools.elf.elffile import ELFFile
    members = []
    for _, body in _ar_members(Path(path).read_bytes(), path):
        if not body.startswith(b"\x7fELF"):
            continue
        symtab = ELFFile(io.BytesIO(body)).get_section_by_name(".symtab")
        defined, undefined = set(), set()
        for sym in symtab.iter_symbols() if symtab is not None else ():
            if not sym.name or sym.entry.st_info.bind not in _DEFINED_BINDS:
                continue
            (undefined if sym.entry.st_shndx == "SHN_UNDEF" else defined).add(sym.name)
        members.append((sorted(defined), sorted(undefined)))
    return members


def named_symbols(named: list[str], providers: list[tuple[str, set[str]]],
                  members_of) -> list[str]:
    """The named strings of an image that the static executable can answer
    dlsym() for without risking its link: each is defined by a provider
    that is linked whole (members_of(label) is None: objects, the runtime,
    libc), or by an archive member whose own undefined symbols are all
    defined by an object or by that archive or one after it in link order
    (the linker searches each archive once, in order)."""
    whole = set().union(*(names for label, names in providers if members_of(label) is None))
    found = []
    for name in named:
        position = next((i for i, (_, names) in enumerate(providers) if name in names), None)
        if position is None:
            continue
        label = providers[position][0]
        members = members_of(label)
        if members is None:
            found.append(name)
            continue
        later = set().union(*(names for _, names in providers[position:]))
        needs = next((undefined for defined, undefined in members if name in defined), None)
        if needs is not None and all(n in whole or n in later for n in needs):
            found.append(name)
    return found


def resolve_symbols(binary: str, entries: list[Entry],
                    providers: list[tuple[str, set[str]]]) -> tuple[dict[str, str], list[str]]:
    """Map each entry's name to the first provider (in link order) that
    defines it. A name that nothing provides is tolerated, and returned in
    the second value, if the dynamic image lacked it too although it had
    loaded its shared libraries (e.g. cl+ssl declares OpenSSL 1.x functions
    that OpenSSL 3 does not have); otherwise UnresolvedSymbols names them."""
    resolved, missing, tolerated = {}, [], []
    for entry in entries:
        provider = next((label for label, names in providers if entry.name in names), None)
        if provider is not None:
            resolved[entry.name] = provider
        elif entry.undefined:
            tolerated.append(entry.name)
        else:
            missing.append(entry.name)
    if missing:
        raise UnresolvedSymbols(
            f"binary {binary} needs foreign symbols that nothing to be linked provides: "
            + ", ".join(missing) + "\nsearched, in link order: "
            + ", ".join(label for label, _ in providers)
            + "\ndeclare the static archive that defines them in the binary's archives")
    return resolved, tolerated


def _c_name(index: int) -> str:
    return f"lispbuild_symbol_{index}"


_ASM_SAFE = re.compile(r"^[A-Za-z_.$][A-Za-z0-9_.$@]*$")


def symbol_table_source(names: list[str], libraries: list[str] = ()) -> str:
    """C source of the tables that dlsym() and dlopen() search: one address
    per name, sorted by name (bsearch), each symbol declared under an alias
    so that its C type, or a clash with a builtin, does not matter; and the
    sorted names (foreign_library_name) of the libraries whose archives are
    linked in, the only ones dlopen() finds."""
    names = sorted(set(names))
    libraries = sorted(set(libraries))
    lines = ["/* Generated by lispbuild: the foreign symbols of the image. */",
             "struct lispbuild_symbol { const char *name; void *address; };"]
    for i, name in enumerate(names):
        if not _ASM_SAFE.match(name):
            raise LispbuildError(f"foreign symbol name {name!r} cannot be linked")
        lines.append(f'extern char {_c_name(i)}[] __asm__("{name}");')
    lines.append("const struct lispbuild_symbol lispbuild_symbols[] = {")
    lines += [f'  {{{json.dumps(name)}, {_c_name(i)}}},' for i, name in enumerate(names)]
    lines.append("};")
    lines.append(f"const unsigned long lispbuild_symbol_count = {len(names)};")
    lines.append("const char *const lispbuild_libraries[] = {"
                 + "".join(f"{json.dumps(name)}, " for name in libraries) + "0};")
    lines.append(f"const unsigned long lispbuild_library_count = {len(libraries)};")
    return "\n".join(lines) + "\n"
