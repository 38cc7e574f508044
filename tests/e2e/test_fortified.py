"""Static archives built against glibc with _FORTIFY_SOURCE call glibc's
__*_chk functions: compat.c provides every one glibc exports, with its
checks, and a real fortified archive linked into a static executable runs
each of them (tests/c/fortified.c)."""
import subprocess
from pathlib import Path

import pytest

from conftest import built, write_project
from lispbuild import link
from dodo_text import dodo_py

FORTIFIED_C = Path(__file__).parent / "c" / "fortified.c"
DODO = dodo_py("""\
project.library("fortified", ["fortified.lisp"], directory="src")
project.binary("fortified", libraries=["fortified"], entry="fortified:main",
               entry_arguments="command-line-arguments",
               archives=["{archive}"])
""")
# Exit code: how many checks gave a wrong answer (their names go to stderr;
# the checks point stdout elsewhere); with an argument N, N bytes are copied
# into a buffer of 8.
LISP = """\
(defpackage #:fortified (:use #:cl) (:export #:main))
(in-package #:fortified)
(defun main (args)
  (if args
      (sb-alien:alien-funcall (sb-alien:extern-alien "fortified_overflow"
                                                     (function sb-alien:int sb-alien:int))
                              (parse-integer (first args)))
      (sb-alien:alien-funcall (sb-alien:extern-alien "fortified_failures"
                                                     (function sb-alien:int)))))
"""


def glibc_fortified_functions() -> set[str]:
    """Every __*_chk function glibc's C library exports, from its own symbol table."""
    libc = subprocess.run(["gcc", "-print-file-name=libc.so.6"], capture_output=True,
                          text=True, check=True).stdout.strip()
    symbols = subprocess.run(["nm", "-D", "--defined-only", libc], capture_output=True,
                             text=True, check=True).stdout.split()
    return {s.split("@")[0] for s in symbols if s.split("@")[0].endswith("_chk")
            and s.startswith("__") and s.split("@")[0] != "__stack_chk"}


def test_compat_defines_every_fortified_function_glibc_exports(tmp_path):
    wanted = glibc_fortified_functions()
    assert len(wanted) >= 70, sorted(wanted)  # glibc 2.36 exports 79
    compat = tmp_path / "compat.o"
    link.compile_c(link.COMPAT_SOURCE, compat, tmp_path, "c:lispbuild/compat.c")
    defined = {line.split()[2] for line in subprocess.run(
        ["nm", "--defined-only", compat], capture_output=True, text=True,
        check=True).stdout.splitlines() if line.split()[1] == "T"}
    assert not wanted - defined, sorted(wanted - defined)


@pytest.fixture(scope="module")
def fortified(tmp_path_factory) -> Path:
    """A fortified archive (glibc's gcc -O2 -D_FORTIFY_SOURCE=2) that calls
    every __*_chk, in a static executable."""
    base = tmp_path_factory.mktemp("fortified")
    obj, archive = base / "fortified.o", base / "libfortified.a"
    subprocess.run(["gcc", "-O2", "-D_FORTIFY_SOURCE=2", "-c", FORTIFIED_C, "-o", obj],
                   check=True, capture_output=True)
    called = {line.split()[-1] for line in subprocess.run(
        ["nm", "-u", obj], capture_output=True, text=True, check=True).stdout.splitlines()}
    missing = glibc_fortified_functions() - called
    assert not missing, f"fortified.c calls not every __*_chk: {sorted(missing)}"
    subprocess.run(["ar", "rcs", archive, obj], check=True)
    project = write_project(base / "project", DODO.format(archive=archive),
                            {"src/fortified.lisp": LISP})
    built(project)
    return project / "build/bin/fortified"


def test_every_fortified_function_works_in_a_static_executable(fortified):
    run = subprocess.run([fortified], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "wrong answer" not in run.stderr


def test_a_fortified_overflow_ends_the_program_as_glibc_would(fortified):
    fits = subprocess.run([fortified, "8"], capture_output=True, text=True, timeout=60)
    assert fits.returncode == ord("o"), fits.stderr
    overflow = subprocess.run([fortified, "9"], capture_output=True, text=True, timeout=60)
    # abort()'s SIGABRT, which SBCL's runtime reports and exits 1 on.
    assert overflow.returncode != 0, overflow.stderr
    assert overflow.stderr.startswith("*** buffer overflow detected ***: terminated\n"), \
        overflow.stderr
