"""Release archives: bit for bit across directories, environments, times
and the machine's load; `doit verify` passes on a good archive and names
what differs."""
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from conftest import REPO, built_at_once, doit
from lispbuild import link, release
from lispbuild.sbcl import isolation
from lispbuild.settings import RELEASE_DIR_VARIABLE
from lispbuild.digest import hash_file

RELEASE_DODO = """\
import lispbuild

project = lispbuild.Project()
project.library("hello-util", ["package.lisp", "text.lisp"], directory="samples/hello/util")
project.library("hello", ["package.lisp", "main.lisp"], directory="samples/hello/app",
                depends_on=["hello-util"])
project.binary("hello", libraries=["hello"], entry="hello:main",
               entry_arguments="command-line-arguments",
               version="1.0.0", smoke_args=["static", "lisp"])
project.library("ffi", ["package.lisp", "zlib.lisp", "main.lisp"], directory="samples/ffi/lisp")
project.binary("ffi", libraries=["ffi"], entry="ffi-demo:main",
               entry_arguments="command-line-arguments",
               c_sources=["samples/ffi/c/fnv.c"],
               archives=["/usr/lib/x86_64-linux-gnu/libz.a"],
               version="1.0.0", smoke_args=["round", "trip"])
project.asdf_system("webserver", registry=["samples/webserver"])
project.binary("webserver", libraries=["webserver"], entry="webserver:main",
               entry_arguments="command-line-arguments",
               foreign_libraries={"libssl": ["/usr/lib/x86_64-linux-gnu/libssl.a"],
                                  "libcrypto": ["/usr/lib/x86_64-linux-gnu/libcrypto.a"]},
               smoke_args=["--check"])
project.library("seeded", ["seeded.lisp"], directory="seeded")
project.binary("seeded", libraries=["seeded"], entry="seeded:main", version="1.0.0")

DOIT_CONFIG = lispbuild.doit_config(project)


def task_lispbuild():
    yield from lispbuild.tasks(project)
"""
# A library that draws on the operating system's randomness while it loads.
SEEDED = """\
(defpackage #:seeded (:use #:cl) (:export #:main))
(in-package #:seeded)
(defvar *drawn-when-loaded* (random (expt 2 62) (make-random-state t)))
(defun main ()
  (format t "loaded ~D~%run ~D~%" *drawn-when-loaded*
          (random (expt 2 62) (make-random-state t)))
  0)
"""
HELLO = "dist/hello-1.0.0-x86_64-linux.tar.gz"
FFI = "dist/ffi-1.0.0-x86_64-linux.tar.gz"
WEBSERVER = "dist/webserver-1.0.0-x86_64-linux.tar.gz"
SEEDED_ARCHIVE = "dist/seeded-1.0.0-x86_64-linux.tar.gz"


def _git(where, *args, **env):
    subprocess.run(["git", *args], cwd=where, check=True, capture_output=True,
                   env={**os.environ, **env})


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """One project in git, cloned twice at different paths, each released
    with an empty store in another environment, both at once (each build's
    processes compete with the other's for the two cores)."""
    base = tmp_path_factory.mktemp("release")
    origin = base / "origin"
    origin.mkdir()
    (origin / "dodo.py").write_text(RELEASE_DODO)
    for sample in ("hello", "ffi", "webserver"):
        shutil.copytree(REPO / "samples" / sample, origin / "samples" / sample)
    (origin / "seeded").mkdir()
    (origin / "seeded" / "seeded.lisp").write_text(SEEDED)
    _git(origin, "init", "-q")
    _git(origin, "add", ".")
    date = "2026-01-02T03:04:05+00:00"
    _git(origin, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q",
         "-m", "sources", GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    first = base / "a"
    second = base / "a much longer directory name" / "checkout"
    _git(base, "clone", "-q", str(origin), str(first))
    second.parent.mkdir()
    _git(base, "clone", "-q", str(origin), str(second))
    env_first = {**os.environ, "TZ": "UTC", "LANG": "C.UTF-8"}
    other_home = base / "other-home"
    other_home.mkdir()
    env_second = {**os.environ, "TZ": "Asia/Tokyo", "LANG": "fr_FR.UTF-8",
                  "HOME": str(other_home), "SOME_EXTRA_VARIABLE": "x" * 300}
    for name in ("LISPBUILD_STORE", "SOURCE_DATE_EPOCH"):
        env_first.pop(name, None)
        env_second.pop(name, None)
    return first, second, built_at_once("release", first, env_first, second, env_second)


def test_two_release_builds_are_byte_identical(releases):
    first, second, output = releases
    for archive in (HELLO, FFI, WEBSERVER, SEEDED_ARCHIVE):
        assert (first / archive).read_bytes() == (second / archive).read_bytes(), archive
    assert "smoke run `hello static lisp`: exit 0" in output
    assert "smoke run `ffi round trip`: exit 0" in output
    assert "smoke run `webserver --check`: exit 0" in output


def test_randomness_drawn_while_loading_is_the_releases_own(releases):
    """The release seeds the random state made while loading from its own
    identity, says so, and leaves the program's own draws random."""
    first, _, output = releases
    assert ("release: note: build/fasl/seeded/seeded.fasl made a random state from the "
            "operating system's randomness while loading") in output
    exe = first / "build/release/seeded/seeded"
    runs = [subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
            for _ in range(2)]
    loaded, run = zip(*(out.splitlines() for out in runs))
    assert loaded[0] == loaded[1] and loaded[0].startswith("loaded ")
    assert run[0] != run[1]


def test_the_archive_holds_the_static_executable_its_sums_and_manifest(releases):
    first, _, _ = releases
    with tarfile.open(first / HELLO) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [
            "hello-1.0.0", "hello-1.0.0/SHA256SUMS", "hello-1.0.0/hello",
            "hello-1.0.0/manifest.json"]
        assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
        commit_time = 1767323045  # 2026-01-02T03:04:05Z, the commit's date
        assert {m.mtime for m in members} == {commit_time}
        assert not any(m.pax_headers for m in members)
        manifest = json.loads(tar.extractfile("hello-1.0.0/manifest.json").read())
        exe = tar.extractfile("hello-1.0.0/hello").read()
    assert manifest["source_date_epoch"] == commit_time
    assert manifest["dump_directory"] == isolation.DEFAULT_RELEASE_DIR
    sources = {s["path"]: s["sha256"] for s in manifest["sources"]}
    assert sources["samples/hello/app/main.lisp"] == hash_file(
        first / "samples/hello/app/main.lisp")
    assert "dodo.py" in sources
    assert manifest["toolchain"]["sbcl"]["package"].startswith("sbcl ")
    assert manifest["toolchain"]["musl libc.a"]["package"].startswith("musl-dev ")
    tasks = [s["task"] for s in manifest["stages"]]
    assert tasks[-4:] == ["release-core:hello", "release-linkage:hello",
                          "release-runtime:hello", "release-exe:hello"]
    assert "fasl:hello/main.lisp" in tasks
    assert all(len(s["key"]) == 64 for s in manifest["stages"])
    assert manifest["executable"]["sha256"] == hashlib.sha256(exe).hexdigest()
    # No PT_INTERP or PT_DYNAMIC: the check the release-exe task made.
    out = subprocess.run(["readelf", "-l", str(first / "build/release/hello/hello")],
                         capture_output=True, text=True).stdout
    assert "INTERP" not in out and "DYNAMIC" not in out


@pytest.mark.parametrize("archive", [HELLO, WEBSERVER])
def test_verify_rebuilds_a_good_archive_identically(releases, archive):
    first, _, _ = releases
    result = doit(first, "verify", archive)
    assert result.returncode == 0, result.output
    assert "identical: every stage, the executable and the archive" in result.output


def _rewritten(archive: Path, out: Path, exe=None, manifest=None, forged=False) -> Path:
    """A copy of the archive with its executable's bytes exe(bytes) and its
    manifest edited by manifest(dict); `forged`: the manifest's digest of
    the executable and SHA256SUMS made to agree, as a forger would. (One
    pass, compressed fast: the executable is 40 MB.)"""
    with tarfile.open(archive) as tar:
        entries = [(m, tar.extractfile(m).read() if m.isfile() else None)
                   for m in tar.getmembers()]
    files = {m.name.rsplit("/", 1)[-1]: data for m, data in entries if data is not None}
    name = next(n for n in files if n not in ("manifest.json", "SHA256SUMS"))
    if exe:
        files[name] = exe(files[name])
    record = json.loads(files["manifest.json"])
    if manifest:
        manifest(record)
    if forged:
        record["executable"]["sha256"] = hashlib.sha256(files[name]).hexdigest()
    if manifest or forged:
        files["manifest.json"] = release.Manifest(**record).to_bytes()
    if forged:
        files["SHA256SUMS"] = "".join(
            f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n"
            for n in sorted((name, "manifest.json"))).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for member, data in entries:
            if data is not None:
                data = files[member.name.rsplit("/", 1)[-1]]
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    out.write_bytes(gzip.compress(buffer.getvalue(), compresslevel=1))
    return out


def _one_byte_flipped(data: bytes) -> bytes:
    data = bytearray(data)
    data[len(data) // 2] ^= 0x01
    return bytes(data)


def test_verify_reports_another_toolchain_before_building(releases, tmp_path):
    """An archive whose manifest says it was built with another SBCL."""
    first, _, _ = releases
    def other_sbcl(manifest):
        manifest["toolchain"]["sbcl"]["package"] = "sbcl 2:2.4.0-1"
    other = _rewritten(first / HELLO, tmp_path / Path(HELLO).name, manifest=other_sbcl,
                       forged=True)
    result = doit(first, "verify", str(other))
    assert result.returncode == 1, result.output
    assert "toolchain sbcl: built with sbcl 2:2.4.0-1, here sbcl 2:2.2.9" in result.output
    assert "rebuilding" not in result.output


def test_verify_refuses_an_archive_changed_after_it_was_made(releases, tmp_path):
    first, _, _ = releases
    changed = _rewritten(first / HELLO, tmp_path / Path(HELLO).name, exe=_one_byte_flipped)
    result = doit(first, "verify", str(changed))
    assert result.returncode == 1, result.output
    assert "is not whole as it was made" in result.output
    assert "hello in the archive does not match SHA256SUMS" in result.output
    assert "the manifest gives the executable sha256" in result.output
    assert "rebuilding" not in result.output


def test_verify_names_the_stage_of_a_changed_executable(releases, tmp_path):
    """An executable replaced with its sums and manifest made to agree:
    the rebuild finds it."""
    first, _, _ = releases
    changed = _rewritten(first / HELLO, tmp_path / Path(HELLO).name, exe=_one_byte_flipped,
                         forged=True)
    result = doit(first, "verify", str(changed))
    assert result.returncode == 1, result.output
    assert "not whole" not in result.output
    assert "first difference: stage executable" in result.output
    # diffoscope's report (setup.sh installs it): the byte, in a hex dump.
    assert "diffoscope " in result.output and "falling back to a binary diff" in result.output
    changed_lines = [line for line in result.output.splitlines()
                     if line[:1] in "-+" and line[1:9].isalnum() and line[9:10] == ":"]
    assert len(changed_lines) == 2, result.output


def test_a_release_directory_that_is_not_absolute_is_refused(releases):
    first, _, _ = releases
    env = {**os.environ, RELEASE_DIR_VARIABLE: "relative/dir"}
    result = doit(first, "release-core:hello", env=env)
    assert result.returncode != 0, result.output
    assert ("LISPBUILD_RELEASE_DIR='relative/dir': give an absolute path without * ? or ["
            in result.output)
    assert (first / HELLO).exists()


def test_verify_reports_a_missing_source_before_building(releases, tmp_path):
    first, second, _ = releases
    (second / "samples/hello/app/main.lisp").rename(tmp_path / "main.lisp")
    try:
        result = doit(second, "verify", str(first / HELLO))
    finally:
        (tmp_path / "main.lisp").rename(second / "samples/hello/app/main.lisp")
    assert result.returncode == 1, result.output
    assert "missing source: samples/hello/app/main.lisp" in result.output
    assert "rebuilding" not in result.output


def test_a_release_records_its_commit_and_refuses_a_dirty_tree(releases, tmp_path):
    """A clean tree's release names its commit; with a source changed and
    not committed, release:NAME fails naming it, unless asked; the
    archive made then says dirty, and `doit verify` rebuilds it as it was."""
    first, second, _ = releases
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=first, capture_output=True,
                            text=True, check=True).stdout.strip()
    with tarfile.open(first / HELLO) as tar:
        manifest = json.loads(tar.extractfile("hello-1.0.0/manifest.json").read())
    assert manifest["revision"] == {"git": commit, "dirty": []}
    dodo = second / "dodo.py"
    clean = dodo.read_text()
    dodo.write_text(clean + "# a comment, not committed\n")
    try:
        refused = doit(second, "release:hello")
        assert refused.returncode != 0, refused.output
        assert (f"release:hello: 1 of its sources differ from git commit {commit[:12]} "
                f"(uncommitted or untracked): dodo.py; commit them, or set "
                f"LISPBUILD_ALLOW_DIRTY=1") in refused.output, refused.output
        allowed = doit(second, "release:hello", env={**os.environ, "LISPBUILD_ALLOW_DIRTY": "1"})
        assert allowed.returncode == 0, allowed.output
        with tarfile.open(second / HELLO) as tar:
            dirty = json.loads(tar.extractfile("hello-1.0.0/manifest.json").read())
        assert dirty["revision"] == {"git": commit, "dirty": ["dodo.py"]}
        verified = doit(second, "verify", HELLO)
        assert verified.returncode == 0, verified.output
        assert "identical: every stage, the executable and the archive" in verified.output
    finally:
        dodo.write_text(clean)
        doit(second, "release:hello")


def test_verify_names_a_source_the_manifest_lacks_before_building(releases, tmp_path):
    first, _, _ = releases
    def without_text_lisp(manifest):
        manifest["sources"] = [s for s in manifest["sources"]
                               if s["path"] != "samples/hello/util/text.lisp"]
    lacking = _rewritten(first / HELLO, tmp_path / Path(HELLO).name, manifest=without_text_lisp,
                         forged=True)
    result = doit(first, "verify", str(lacking))
    assert result.returncode == 1, result.output
    assert ("the manifest lacks source: samples/hello/util/text.lisp (release:hello reads it "
            "here)") in result.output
    assert "rebuilding" not in result.output


def _listing_seen_by_sbcl(directory: Path, preload: Path | None) -> list[str]:
    form = (f'(sb-impl::map-directory (lambda (p) (write-line (file-namestring p))) '
            f'"{directory}/")')
    env = {**os.environ, **({"LD_PRELOAD": str(preload)} if preload else {})}
    proc = subprocess.run(["sbcl", "--noinform", "--non-interactive", "--no-userinit",
                           "--eval", form], capture_output=True, text=True, env=env, check=True)
    return proc.stdout.split()


def test_a_release_dump_sees_directories_in_name_order(tmp_path):
    """sorteddir.c, preloaded into SBCL, lists a directory whose file
    system keeps another order (ext4's hash order, here) sorted by name."""
    library = tmp_path / "sorteddir.so"
    link.build_sorted_listings(library, tmp_path, "lisp:sorteddir")
    names = [f"file-{i:03}.lisp" for i in range(200)]
    folder = tmp_path / "listing"
    folder.mkdir()
    for name in reversed(names):
        (folder / name).write_text("")
    assert _listing_seen_by_sbcl(folder, None) != names, "the file system sorts already"
    assert _listing_seen_by_sbcl(folder, library) == names


def _copy_listing_in_reverse(source: Path, dest: Path):
    """A copy whose directories were filled in reverse name order: on
    tmpfs they list in another order than the original's file system."""
    dest.mkdir()
    for entry in sorted(source.iterdir(), reverse=True):
        if entry.is_symlink():
            (dest / entry.name).symlink_to(os.readlink(entry))
        elif entry.is_dir():
            _copy_listing_in_reverse(entry, dest / entry.name)
        else:
            shutil.copy2(entry, dest / entry.name)
    shutil.copystat(source, dest)


@pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts in a mount namespace need root")
def test_a_release_where_directories_list_in_another_order_is_identical(releases):
    """Debian's Lisp sources and SBCL's own directory seen through bind
    mounts of tmpfs copies (other listing order, inode numbers and sizes,
    as on another machine): the webserver release is the same bytes."""
    first, _, _ = releases
    third = first.parent / "third"
    _git(first.parent, "clone", "-q", str(first.parent / "origin"), str(third))
    shm = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="lispbuild-test-"))
    try:
        _copy_listing_in_reverse(Path("/usr/share/common-lisp/source"), shm / "source")
        _copy_listing_in_reverse(Path("/usr/lib/sbcl"), shm / "sbcl")
        script = (f"mount --bind {shm}/source /usr/share/common-lisp/source && "
                  f"mount --bind {shm}/sbcl /usr/lib/sbcl && "
                  f"ls -f /usr/lib/sbcl/contrib > {shm}/listing && "
                  f"exec {sys.executable} -m doit -n 2 release:webserver")
        env = {k: v for k, v in os.environ.items()
               if k not in ("LISPBUILD_STORE", "SOURCE_DATE_EPOCH")}
        proc = subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=third, env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        original = subprocess.run(["ls", "-f", "/usr/lib/sbcl/contrib"], capture_output=True,
                                  text=True, check=True).stdout.split()
        copied = (shm / "listing").read_text().split()
        assert sorted(copied) == sorted(original)
        assert copied != original, "the copy lists in the same order: this would prove nothing"
    finally:
        shutil.rmtree(shm)
    assert (third / WEBSERVER).read_bytes() == (first / WEBSERVER).read_bytes()


def test_a_release_executable_holds_no_development_aids(releases, samples, tmp_path):
    """Hot reload, the REPL and the profiler are for development executables
    only: asked for each (as `doit watch run:NAME` asks to listen), the
    development hello listens, and the release hello runs its entry and
    neither listens nor holds the code that would."""
    for exe, development in ((samples / "build/bin/hello", True),
                             (releases[0] / "build/release/hello/hello", False)):
        where = tmp_path / ("development" if development else "release")
        where.mkdir()
        result = subprocess.run([exe, "static"], cwd=where, capture_output=True, text=True,
                                env={**os.environ, "LISPBUILD_RELOAD_SOCKET": "reload.sock"})
        assert result.returncode == 0 and "static" in result.stdout, result
        assert (where / "reload.sock").is_socket() == development, exe
        assert (b"LISPBUILD/RELOAD" in exe.read_bytes()) == development, exe
        assert (b"LISPBUILD/DEVELOP" in exe.read_bytes()) == development, exe
        # Nor the loader of a development executable's payload.
        assert (b"LISPBUILD/PAYLOAD" in exe.read_bytes()) == development, exe
    release = releases[0] / "build/release/hello/hello"
    result = subprocess.run([release, "static"], capture_output=True, text=True, input="",
                            env={**os.environ, "LISPBUILD_MAIN": "repl",
                                 "LISPBUILD_PROFILE": "cpu"})
    assert result.returncode == 0, result
    assert result.stdout.startswith("hello from a static SBCL: 1 argument"), result
    assert result.stderr == "", result
