"""perf sees Lisp names: LISPBUILD_PERF_MAP=1 makes an executable write
perf's map of its functions (and move its code into anonymous memory,
where perf reads such maps), compressed core or not."""
import os
import shutil
import subprocess
from pathlib import Path

from conftest import REPO, built, write_project
from dodo_text import dodo_py

PLAIN = dodo_py("""\
project.library("primes", ["primes.lisp"], directory="primes", policy={"speed": 3, "safety": 1})
project.binary("primes", libraries=["primes"], entry="primes:main",
               entry_arguments="command-line-arguments")
""")


def perf_report(exe: Path, tmp: Path, *args) -> str:
    data = tmp / f"{exe.name}.data"
    recorded = subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-g", "-o", data,
                               exe, *args], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "LISPBUILD_PERF_MAP": "1"})
    assert recorded.returncode == 0, recorded
    pid = next(line.split()[1] for line in subprocess.run(
        ["perf", "script", "-i", data, "-F", "pid,comm"], capture_output=True, text=True,
        check=True).stdout.splitlines()[:1])
    perf_map = Path(f"/tmp/perf-{pid}.map")
    try:
        assert "PRIMES::PRIMES-BELOW" in perf_map.read_text()
        return subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children"],
                              capture_output=True, text=True, check=True, timeout=300).stdout
    finally:
        perf_map.unlink(missing_ok=True)


def hottest(report: str) -> str:
    """The symbol of the first sample line: "  58.78%  primes  [JIT] tid 1  [.] NAME"."""
    line = next(line for line in report.splitlines() if "%" in line and "[.]" in line)
    return line.split("[.]", 1)[1].strip()


def test_perf_names_the_lisp_functions_of_a_compressed_core(samples, tmp_path):
    report = perf_report(samples / "build/bin/primes", tmp_path, "30000000")
    assert hottest(report) == "PRIMES::PRIMES-BELOW", report[:3000]
    assert "PRIMES:MAIN" in report, report[:3000]


def test_perf_names_the_lisp_functions_of_an_uncompressed_core(tmp_path, store_env):
    project = write_project(tmp_path / "plain", PLAIN, {})
    shutil.copytree(REPO / "samples/primes", project / "primes", dirs_exist_ok=True)
    built(project, "-n", "2", env=store_env)
    exe = project / "build/bin/primes"
    report = perf_report(exe, tmp_path, "30000000")
    assert hottest(report) == "PRIMES::PRIMES-BELOW", report[:3000]
    # Without the variable, the same program writes no map, and runs as before.
    result = subprocess.run([exe, "1000"], capture_output=True, text=True, check=True)
    assert result.stdout == "168 primes below 1000, the largest 997\n"
