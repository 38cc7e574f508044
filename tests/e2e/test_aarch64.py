"""aarch64 executables built on this machine (targets.py): the samples the
repository's dodo.py declares for both machines run from an empty root
under qemu-aarch64-static; an arm64 suite passes or fails by its own exit
code; a pure-Lisp edit does not relink the arm64 runtime; an arm64 release
is the same bytes from two checkouts, users' caches and environments, and
from a user who is not root, and `doit verify` rebuilds it identically."""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from conftest import REPO, built, built_at_once, doit, write_project
from test_campaign import ordinary_user, user_doit  # noqa: F401 (a fixture)
from dodo_text import dodo_py
from lispbuild.embed import check_static

ARM = "aarch64-linux"
QEMU = shutil.which("qemu-aarch64-static")


def under_qemu_in_empty_root(exe: Path, tmp: Path, *args, files=()) -> subprocess.CompletedProcess:
    """Run an arm64 executable as `chroot DIR /qemu-aarch64-static /prog`:
    DIR holds the static qemu, the program and `files`, nothing else."""
    root = tmp / f"root-{exe.name}"
    root.mkdir()
    shutil.copy(QEMU, root / "qemu-aarch64-static")
    shutil.copy(exe, root / "prog")
    for f in files:
        shutil.copy(f, root / Path(f).name)
    chroot = ["chroot", str(root), "/qemu-aarch64-static", "/prog", *args]
    return subprocess.run(chroot if os.geteuid() == 0 else ["unshare", "-r", *chroot],
                          capture_output=True, text=True, timeout=300)


def test_every_arm64_sample_is_a_static_aarch64_executable_that_runs_in_an_empty_root(
        samples, tmp_path):
    arm = samples / "build" / ARM / "bin"
    assert sorted(p.name for p in arm.iterdir()) == [
        "hello", "ppcre-grep", "ppcre-grep-tests", "primes", "webserver"]
    for exe in arm.iterdir():
        with open(exe, "rb") as f:
            assert ELFFile(f).header.e_machine == "EM_AARCH64", exe.name
        check_static(exe)
    run = under_qemu_in_empty_root(arm / "hello", tmp_path, "one", "two words")
    assert (run.returncode, run.stdout) == (
        0, "hello from a static SBCL: 2 arguments\n1: one\n2: two words\n"), run.stderr
    # A zstd-compressed core, decompressed by the arm64 runtime.
    run = under_qemu_in_empty_root(arm / "primes", tmp_path, "1000000")
    assert run.stdout.endswith("78498 primes below 1000000, the largest 999983\n"), run
    assert (arm / "primes").stat().st_size < (arm / "hello").stat().st_size / 2
    run = under_qemu_in_empty_root(arm / "ppcre-grep", tmp_path, "-i", "^\\(defsystem",
                                   "/ppcre-grep.asd",
                                   files=[samples / "samples/ppcre-grep/ppcre-grep.asd"])
    assert run.returncode == 0 and "1:(defsystem \"ppcre-grep\"" in run.stdout, run
    # OpenSSL's arm64 archives, linked statically: the version it reports.
    run = under_qemu_in_empty_root(arm / "webserver", tmp_path, "--check")
    assert run.returncode == 0 and "OpenSSL #x3" in run.stdout, run


def test_an_arm64_suite_passes_or_fails_by_its_own_exit_code(samples, tmp_path, store_env):
    passed = doit(samples, f"test:ppcre-grep-tests@{ARM}")
    assert passed.returncode == 0 and "Pass: 4 (100%)" in passed.output, passed.output
    project = write_project(tmp_path / "suite", dodo_py(f"""
project.library("suite", ["suite.lisp"])
project.test("suite", libraries=["suite"], function="suite:run", targets=["{ARM}"])
"""), {"suite.lisp": "(defpackage #:suite (:use #:cl) (:export #:run))\n"
                     "(in-package #:suite)\n"
                     "(defun run () (format t \"checking on ~A~%\" (machine-type)) nil)\n"})
    failed = doit(project, f"test:suite@{ARM}", env=store_env)
    assert failed.returncode != 0, failed.output
    assert "checking on ARM64" in failed.output, failed.output
    assert f"build/{ARM}/bin/suite exited with 1, expected 0" in failed.output, failed.output
    # Declared for aarch64 alone: no task of this machine's.
    assert "exe:suite " not in doit(project, "list", "--all", env=store_env).output


def test_a_pure_lisp_edit_recompiles_and_redumps_but_does_not_relink_arm64(
        samples, tmp_path, store_env):
    project = tmp_path / "hello"
    shutil.copytree(samples / "samples", project / "samples")
    shutil.copy(samples / "dodo.py", project / "dodo.py")
    built(project, f"exe:hello@{ARM}", env={**store_env,
                                          "LISPBUILD_STORE": str(samples / "cache")})
    main = project / "samples/hello/app/main.lisp"
    main.write_text(main.read_text().replace("hello from a static SBCL", "hello from arm64"))
    again = built(project, f"exe:hello@{ARM}", env={**store_env,
                                                  "LISPBUILD_STORE": str(samples / "cache")})
    assert {f"fasl:hello@{ARM}/main.lisp", f"core:hello@{ARM}", f"exe:hello@{ARM}"} \
        <= again.executed, again.output
    assert f"runtime:hello@{ARM}" not in again.executed
    assert not any(t.startswith(("fasl:", "core:")) and "@" not in t for t in again.executed)
    run = subprocess.run([QEMU, project / f"build/{ARM}/bin/hello", "x"], capture_output=True,
                         text=True)
    assert run.stdout.startswith("hello from arm64: 1 argument"), run


def _git(where, *args, **env):
    subprocess.run(["git", *args], cwd=where, check=True, capture_output=True,
                   env={**os.environ, **env})


HELLO = dodo_py(f"""
project.library("hello-util", ["package.lisp", "text.lisp"], directory="samples/hello/util")
project.library("hello", ["package.lisp", "main.lisp"], directory="samples/hello/app",
                depends_on=["hello-util"])
project.binary("hello", libraries=["hello"], entry="hello:main",
               entry_arguments="command-line-arguments", version="1.0.0",
               smoke_args=["static", "lisp"], targets=["{ARM}"])
""")


@pytest.fixture(scope="module")
def arm_releases(tmp_path_factory):
    """hello's arm64 release from two clones at different paths, with
    different HOMEs (so sysroots and tool stores in different places),
    time zones and umasks, both at once."""
    base = tmp_path_factory.mktemp("arm-release")
    origin = base / "origin"
    (origin / "samples").mkdir(parents=True)
    shutil.copytree(REPO / "samples/hello", origin / "samples/hello")
    (origin / "dodo.py").write_text(HELLO)
    _git(origin, "init", "-q")
    _git(origin, "add", ".")
    _git(origin, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q",
         "-m", "sources", GIT_COMMITTER_DATE="2026-01-02T03:04:05+00:00")
    first, second = base / "a", base / "another and longer path" / "b"
    for where in (first, second):
        where.parent.mkdir(exist_ok=True)
        _git(base, "clone", "-q", str(origin), str(where))
    other_home = base / "home"
    other_home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("LISPBUILD_STORE",
                                                             "SOURCE_DATE_EPOCH")}
    return first, second, built_at_once(
        f"release:hello@{ARM}", first, {**env, "TZ": "UTC"},
        second, {**env, "TZ": "Asia/Tokyo", "HOME": str(other_home)})


ARCHIVE = f"dist/hello-1.0.0-{ARM}.tar.gz"


def test_an_arm64_release_is_the_same_bytes_from_two_checkouts(arm_releases, tmp_path):
    first, second, output = arm_releases
    assert "smoke run `hello static lisp`: exit 0" in output
    assert (first / ARCHIVE).read_bytes() == (second / ARCHIVE).read_bytes()
    shutil.unpack_archive(first / ARCHIVE, tmp_path)
    manifest = (tmp_path / "hello-1.0.0/manifest.json").read_text()
    assert f'"platform": "{ARM}"' in manifest and "sbcl:arm64" in manifest
    assert f"sysroot:{ARM}/usr/lib/sbcl/sbcl.core" in manifest
    assert "/.cache/" not in manifest  # where the user's cache is is no part of it


def test_doit_verify_rebuilds_an_arm64_release_identically(arm_releases):
    first, _, _ = arm_releases
    result = doit(first, "verify", ARCHIVE)
    assert result.returncode == 0, result.output
    assert "identical: every stage, the executable and the archive" in result.output


def test_an_ordinary_user_releases_the_arm64_executable_root_releases(ordinary_user, arm_releases,
                                                                     tmp_path):
    """Not root: apt-get download into a sysroot of the user's own, qemu,
    the canonical dump in a user namespace; the same executable as root's."""
    user, shared = ordinary_user
    first, _, _ = arm_releases
    project = Path(tempfile.mkdtemp(prefix="lispbuild-arm-user-"))
    try:
        shutil.copytree(REPO / "samples/hello", project / "samples/hello")
        (project / "dodo.py").write_text(HELLO)
        project.chmod(0o755)
        subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(project)], check=True)
        release = user_doit(user, shared, project, "-n", "2", f"release:hello@{ARM}")
        assert release.returncode == 0, release.output
        assert list(Path(user.pw_dir, ".cache/lispbuild/sysroots").glob(f"{ARM}-*"))
        exe = f"build/{ARM}/release/hello/hello"
        assert (project / exe).stat().st_uid == user.pw_uid
        assert (project / exe).read_bytes() == (first / exe).read_bytes()
    finally:
        shutil.rmtree(project, ignore_errors=True)
