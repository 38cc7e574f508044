"""lispbuild's pure Lisp functions, checked in one SBCL (tests/lisp/units.lisp)."""
import subprocess

from conftest import REPO


def test_the_pure_lisp_functions_pass_their_checks(tmp_path):
    run = subprocess.run(["sbcl", "--script", str(REPO / "tests/lisp/units.lisp"),
                          f"{REPO / 'lispbuild' / 'sbcl'}/", f"{tmp_path}/"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.endswith(" checks, 0 failed\n"), \
        run.stdout + run.stderr
