"""The Lisp driver: runs driver.lisp in a fresh SBCL to compile one file or
to dump an image, and turns what it reports into errors."""
import os
import subprocess
import tempfile
from pathlib import Path

from .errors import LispFailure
from .toolchain import find_sbcl

DRIVER = Path(__file__).with_name("driver.lisp")


def lisp_literal(value) -> str:
    """Python data as a Lisp form read under standard syntax."""
    if value is None or value is False:
        return "nil"
    if value is True:
        return "t"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (str, Path)):
        text = str(value).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{text}"'
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):
        return f"({lisp_literal(value[0])} . {value[1]})"
    if isinstance(value, (list, tuple)):
        return "(" + " ".join(lisp_literal(v) for v in value) + ")"
    raise TypeError(f"no Lisp literal for {value!r}")


def run_driver(command: str, root: Path, what: str, image: Path | None = None,
               **arguments) -> str:
    """Run one driver command from the project root, in SBCL's own core or
    in `image`; returns the style warnings and notes it reported, or raises
    LispFailure naming `what`."""
    sbcl = find_sbcl()
    with tempfile.TemporaryDirectory(prefix="lispbuild-") as tmp:
        request = Path(tmp) / "request.lisp"
        diagnostics = Path(tmp) / "diagnostics.txt"
        plist = " ".join(f":{k.replace('_', '-')} {lisp_literal(v)}"
                         for k, v in {**arguments, "diagnostics": diagnostics}.items())
        request.write_text(f"(:{command} {plist})\n", encoding="utf-8")
        start = ["--core", str(image)] if image else []
        proc = subprocess.run([str(sbcl.program), *start, "--script", str(DRIVER), str(request)],
                              cwd=root, capture_output=True, text=True,
                              errors="replace", env=_environment(sbcl))
        reported = diagnostics.read_text(encoding="utf-8") if diagnostics.exists() else ""
    if proc.returncode != 0:
        detail = reported.strip() or (proc.stderr + proc.stdout).strip()[-4000:]
        raise LispFailure(f"{what} failed:\n{detail}")
    return reported


def _environment(sbcl) -> dict:
    env = dict(os.environ)
    env["SBCL_HOME"] = str(sbcl.core.parent)
    return env
