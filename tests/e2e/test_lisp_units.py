"""lispbuild's pure Lisp functions, checked in one SBCL (tests/lisp/units.lisp)."""
import subprocess

from conftest import REPO


def test_the_pure_lisp_functions_pass_their_checks(tmp_path):
    run = subprocess.run(["sbcl", "--script", str(REPO / "tests/lisp/units.lisp"),
                          f"{REPO / 'lispbuild' / 'sbcl'}/", f"{tmp_path}/"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.endswith(" checks, 0 failed\n"), \
        run.stdout + run.stderr


def test_an_sbcl_without_an_internal_lispbuild_uses_is_named_with_its_version(tmp_path):
    """internals.lisp stops the compile of lispbuild's Lisp with one message
    naming what is missing and the SBCL's version (here: a name no SBCL
    defines, added to a copy)."""
    text = (REPO / "lispbuild/sbcl/internals.lisp").read_text()
    assert '("SB-FASL" "*ASSEMBLER-ROUTINES*"' in text
    (tmp_path / "internals.lisp").write_text(text.replace(
        '("SB-FASL" "*ASSEMBLER-ROUTINES*"', '("SB-FASL" "NO-SUCH-INTERNAL" "*ASSEMBLER-ROUTINES*"'))
    run = subprocess.run(["sbcl", "--script", str(tmp_path / "internals.lisp")],
                         capture_output=True, text=True, timeout=60)
    version = subprocess.run(["sbcl", "--version"], capture_output=True, text=True).stdout
    assert run.returncode == 1
    assert run.stderr.startswith("lispbuild's Lisp uses SB-FASL::NO-SUCH-INTERNAL, which this "
                                 f"SBCL ({version.split()[1]}) does not define"), run.stderr
