"""Reading sb-cover's HTML report (coverage.py), without SBCL: a page and
an index in sb-cover's own format, as its report writes them."""
from lispbuild import coverage

INDEX = ("<table class='summary'><tr class='subheading'><td colspan='7'>src/</td></tr>\n"
         "<tr class='odd'><td class='text-cell'><a href='0a1b.html'>src/a.lisp</a></td>"
         "<td>6</td><td>8</td><td> 75.0</td><td>1</td><td>2</td><td> 50.0</td></tr>"
         "<tr class='even'><td class='text-cell'><a href='2c3d.html'>src/b.lisp</a></td>"
         "<td>3</td><td>3</td><td>100.0</td><td>0</td><td>0</td><td>-</td></tr></table>")


def line(number: int, *spans: tuple[int, str]) -> str:
    return (f"<nobr><div class='source'><div class='line-number'><code>{number}</code></div>"
            "<code>&#160;" + "".join(f"<span class='state-{s}'>{t}</span>" for s, t in spans)
            + "</code></div></nobr>\n")


PAGE = ("<h3>Coverage report: src/a.lisp <br />\n</h3>"
        + line(1, (1, "&#40;defpackage&#160;a&#41;"), (0, ""))
        + line(2, (0, "&#160;&#160;"))                      # a blank line
        + line(3, (1, "&#40;if&#160;"), (9, "x"), (2, "&#160;&#40;b&#41;"))
        + line(4, (2, "&#40;never&#41;"), (0, "&#160;"))
        + line(5, (15, "&#35;+nil&#160;&#40;gone&#41;")))


def test_the_index_gives_each_files_numbers():
    assert coverage.read_index(INDEX) == [
        coverage.FileCoverage("0a1b.html", (6, 8), (1, 2)),
        coverage.FileCoverage("2c3d.html", (3, 3), (0, 0))]
    assert coverage.source_of(PAGE) == "src/a.lisp"


def test_each_lines_states_are_those_of_what_is_written_on_it():
    assert coverage.line_states(PAGE) == {1: {1}, 2: set(), 3: {1, 9, 2}, 4: {2}, 5: {15}}


def test_an_lcov_record_hits_a_line_where_anything_ran():
    assert coverage.lcov_record("src/a.lisp", PAGE) == (
        "SF:src/a.lisp\nDA:1,1\nDA:3,1\nDA:4,0\n"
        "BRDA:3,0,0,1\nBRDA:3,0,1,0\n"           # state 9: only the first way taken
        "BRF:2\nBRH:1\nLF:3\nLH:2\nend_of_record\n")


def test_the_table_has_a_row_a_file_and_the_whole():
    files = coverage.read_index(INDEX)
    assert coverage.table([("src/a.lisp", files[0]), ("src/b.lisp", files[1])]) == (
        "file        expressions           branches\n"
        "src/a.lisp   75.0%     6/8       50.0%     1/2\n"
        "src/b.lisp  100.0%     3/3          -     0/0\n"
        "all          81.8%     9/11      50.0%     1/2\n")
