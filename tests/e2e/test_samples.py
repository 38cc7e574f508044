"""The samples, built by the repository's dodo.py with real SBCL and
musl-gcc, run from an empty root; and what a second build does."""
import os
import shutil
import subprocess
import sys

from elftools.elf.elffile import ELFFile

from conftest import built, run_in_empty_root


def fnv1a(data: bytes) -> int:
    h = 2166136261
    for byte in data:
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h


def test_hello_prints_its_arguments(samples, tmp_path):
    run = run_in_empty_root(samples / "build/bin/hello", tmp_path, "one", "two words")
    assert run.returncode == 0, run.stderr
    assert run.stdout == ("hello from a static SBCL: 2 arguments\n"
                          "1: one\n2: two words\n")


def test_hello_exits_with_the_code_asked_for(samples, tmp_path):
    run = run_in_empty_root(samples / "build/bin/hello", tmp_path, "--exit", "7")
    assert run.returncode == 7
    assert "1: --exit\n2: 7\n" in run.stdout


def test_ffi_round_trips_through_zlib_and_its_own_c(samples, tmp_path):
    run = run_in_empty_root(samples / "build/bin/ffi", tmp_path, "round", "trip")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("original 1000 bytes, compressed ")
    assert lines[0].endswith("restored 1000 bytes")
    assert int(lines[0].split()[4]) < 100  # 100 repetitions compress well
    expected = f"#x{fnv1a(b'round trip' * 100):08X}"
    assert lines[1] == f"fnv1a original {expected} restored {expected}"


def test_compressed_core_runs_and_is_smaller(samples, tmp_path):
    run = run_in_empty_root(samples / "build/bin/primes", tmp_path, "1000000")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "78498 primes below 1000000, the largest 999983\n"
    compressed = (samples / "build/bin/primes").stat().st_size
    plain = (samples / "build/bin/hello").stat().st_size
    assert compressed < plain / 2


def test_executables_are_truly_static(samples):
    for name in ("hello", "ffi", "primes"):
        path = samples / "build/bin" / name
        with open(path, "rb") as f:
            elf = ELFFile(f)
            kinds = {seg.header.p_type for seg in elf.iter_segments()}
            assert "PT_INTERP" not in kinds and "PT_DYNAMIC" not in kinds
            assert elf.get_section_by_name(".dynamic") is None
        ldd = subprocess.run(["ldd", str(path)], capture_output=True, text=True)
        assert "not a dynamic executable" in ldd.stdout + ldd.stderr


def test_second_build_executes_no_task(samples):
    again = built(samples, "-n", "2")
    assert again.executed == set()
    assert "-- exe:hello" in again.output


def test_hand_edited_or_truncated_outputs_are_rebuilt(samples, tmp_path):
    exe = samples / "build/bin/hello"
    fasl = samples / "build/fasl/hello-util/text.fasl"
    good_exe, good_fasl = exe.read_bytes(), fasl.read_bytes()
    with open(exe, "ab") as f:
        f.write(b"edited by hand")
    with open(fasl, "r+b") as f:
        f.truncate(100)
    again = built(samples)
    assert {"exe:hello", "fasl:hello-util/text.lisp"} <= again.executed
    # The restored FASL is the same, so nothing that loads it is redone.
    assert "core:hello" not in again.executed
    assert exe.read_bytes() == good_exe and fasl.read_bytes() == good_fasl
    assert run_in_empty_root(exe, tmp_path, "x").returncode == 0


def test_rm_build_restores_everything_without_compilers(samples, tmp_path):
    """After rm -rf build, every artifact comes back from cache/ and no
    SBCL, gcc or ld process is started (strace records every exec)."""
    before = {p.relative_to(samples / "build"): p.read_bytes()
              for p in (samples / "build/bin").iterdir()}
    shutil.rmtree(samples / "build")
    trace = tmp_path / "exec.log"
    env = {k: v for k, v in os.environ.items() if k != "LISPBUILD_STORE"}
    proc = subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace),
                           sys.executable, "-m", "doit"],
                          cwd=samples, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    programs = [line.split('"')[1] for line in trace.read_text().splitlines()
                if "execve(" in line and "= 0" in line]
    assert programs, "strace recorded no exec at all"
    started = {os.path.basename(p) for p in programs}
    assert not started & {"sbcl", "gcc", "x86_64-linux-gnu-gcc", "musl-gcc", "cc1",
                          "as", "ld", "collect2"}, started
    for name, data in before.items():
        assert (samples / "build" / name).read_bytes() == data
    assert built(samples).executed == set()
