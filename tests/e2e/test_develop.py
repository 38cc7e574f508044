"""What only development executables do, asked for by their environment:
SBCL's REPL instead of the entry, the entry under sb-sprof."""
import os
import subprocess

MAIN, PROFILE = "LISPBUILD_MAIN", "LISPBUILD_PROFILE"


def run(exe, *args, stdin="", **variables):
    return subprocess.run([exe, *args], input=stdin, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **variables})


def test_a_repl_with_the_program_loaded(samples):
    result = run(samples / "build/bin/hello", stdin='(hello::greeting)\n(+ 40 2)\n',
                 **{MAIN: "repl"})
    assert result.returncode == 0, result
    assert '"hello from a static SBCL"' in result.stdout and "42" in result.stdout, result
    # The entry was not called: it would have printed its greeting line.
    assert "hello from a static SBCL:" not in result.stdout, result


def test_the_entry_under_the_profiler_in_either_mode(samples):
    for mode in ("cpu", "alloc"):
        result = run(samples / "build/bin/primes", "3000000", **{PROFILE: mode})
        assert result.returncode == 0, result
        assert "216816 primes below 3000000" in result.stdout, result
        assert f"LISPBUILD_PROFILE={mode}: sb-sprof's flat report" in result.stderr, result
        samples_line = next(line for line in result.stderr.splitlines()
                            if line.startswith("Number of samples:"))
        assert int(samples_line.split()[-1]) > 0, result.stderr
        assert "PRIMES::PRIMES-BELOW" in result.stderr, result.stderr


def test_a_value_neither_takes_is_refused_by_name(samples):
    for variable, value, says in ((MAIN, "gui", "LISPBUILD_MAIN=gui: the only value it takes is repl"),
                                  (PROFILE, "wall", "LISPBUILD_PROFILE=wall: it takes cpu or alloc")):
        result = run(samples / "build/bin/hello", **{variable: value})
        assert result.returncode == 2 and says in result.stderr, result
        assert result.stdout == "", result
