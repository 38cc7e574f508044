"""What `doit coverage` says of sb-cover's report: the per-file table on the
terminal and an lcov file (what CI services and editors read), both read
from the HTML report sb-cover wrote, so that the three agree.

sb-cover's cover-index.html has one row a source file (expressions and
branches covered, of all); each file's page marks every character with a
state: 1 executed, 2 not executed; for a branch, 5 both ways taken, 6
only the second, 9 only the first, 10 neither; 0 not instrumented, 15
conditionalized out.
"""
import html
import os
import re
from dataclasses import dataclass
from pathlib import Path

INDEX = "cover-index.html"

_TITLE = re.compile(r"<h3>Coverage report: ([^<]*?) ?<br />")
_ROW = re.compile(r"<td class='text-cell'><a href='([0-9a-f]+\.html)'>([^<]*)</a></td>"
                  r"((?:<td>[^<]*</td>){6})")
_CELL = re.compile(r"<td>([^<]*)</td>")
_LINE = re.compile(r"<div class='line-number'><code>(\d+)</code></div>")
_SPAN = re.compile(r"<span class='state-(\d+)'>(.*?)</span>", re.S)
EXECUTED, NOT_EXECUTED = {1, 5, 6, 9}, {2, 10}
BRANCHES = {5: (1, 1), 6: (0, 1), 9: (1, 0), 10: (0, 0)}  # (first way, second way) taken


@dataclass(frozen=True)
class FileCoverage:
    page: str            # its page in the report
    expressions: tuple[int, int]   # covered, all
    branches: tuple[int, int]


def _count(cell: str) -> int:
    return 0 if cell.strip() in ("", "-") else int(cell)


def read_index(text: str) -> list[FileCoverage]:
    """The rows of cover-index.html, in its order."""
    files = []
    for match in _ROW.finditer(text):
        ok, total, _, branch_ok, branch_total, _ = _CELL.findall(match.group(3))
        files.append(FileCoverage(match.group(1), (_count(ok), _count(total)),
                                  (_count(branch_ok), _count(branch_total))))
    return files


def source_of(page: str) -> str:
    """The source file a page reports on, as sb-cover names it."""
    return html.unescape(_TITLE.search(page).group(1))


def line_states(page: str) -> dict[int, set[int]]:
    """Each source line's states, from a file's page: those of the
    characters that are not blanks."""
    lines = {}
    parts = _LINE.split(page)
    for number, body in zip(parts[1::2], parts[2::2]):
        states = set()
        for state, text in _SPAN.findall(body):
            if html.unescape(text).strip():
                states.add(int(state))
        lines[int(number)] = states
    return lines


def lcov_record(source: str, page: str) -> str:
    """One lcov record: a line is hit if anything on it ran, missed if
    something on it was instrumented and nothing ran; each branch mark is
    a branch point of two ways."""
    out = [f"SF:{source}"]
    hit = found = 0
    branches = []
    for line, states in sorted(line_states(page).items()):
        for state in sorted(states & BRANCHES.keys()):
            branches.append((line, len(branches), BRANCHES[state]))
        if states & EXECUTED:
            out.append(f"DA:{line},1")
            hit, found = hit + 1, found + 1
        elif states & NOT_EXECUTED:
            out.append(f"DA:{line},0")
            found += 1
    for line, block, ways in branches:
        out += [f"BRDA:{line},{block},{way},{taken}" for way, taken in enumerate(ways)]
    taken = sum(sum(ways) for _, _, ways in branches)
    out += [f"BRF:{2 * len(branches)}", f"BRH:{taken}", f"LF:{found}", f"LH:{hit}",
            "end_of_record"]
    return "\n".join(out) + "\n"


def percent(part: tuple[int, int]) -> str:
    covered, total = part
    return f"{100 * covered / total:5.1f}%" if total else "    -"


def table(rows: list[tuple[str, FileCoverage]]) -> str:
    """The terminal's table: expressions and branches covered, per file
    (`rows`: its name, its numbers) and in all."""
    totals = [(name, f.expressions, f.branches) for name, f in rows]
    totals.append(("all", tuple(map(sum, zip(*(f.expressions for _, f in rows)))) or (0, 0),
                   tuple(map(sum, zip(*(f.branches for _, f in rows)))) or (0, 0)))
    width = max(len(r[0]) for r in totals)
    lines = [f"{'file':<{width}}  expressions           branches"]
    for name, expressions, branches in totals:
        lines.append(f"{name:<{width}}  {percent(expressions)} {expressions[0]:>5}/"
                     f"{expressions[1]:<5}  {percent(branches)} {branches[0]:>5}/{branches[1]:<5}")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def write_outputs(directory: Path, root: Path) -> str:
    """index.html beside sb-cover's cover-index.html, lcov.info with every
    file's record (paths from the project root where they are under it);
    the terminal's table."""
    index = (directory / INDEX).read_text(encoding="utf-8", errors="replace")
    (directory / "index.html").write_text(index, encoding="utf-8")
    rows, records = [], []
    for f in read_index(index):
        page = (directory / f.page).read_text(encoding="utf-8", errors="replace")
        source = source_of(page)
        if Path(source).is_absolute() and Path(source).is_relative_to(root):
            source = os.path.relpath(source, root)
        rows.append((source, f))
        records.append(lcov_record(source, page))
    (directory / "lcov.info").write_text("".join(records), encoding="utf-8")
    return table(rows)
