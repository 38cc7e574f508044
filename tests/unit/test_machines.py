"""Pure parts of running on every machine, without SBCL: output shown
bounded, a copy across file systems, the release directory claimed where
no namespace can be made, messages for a full disk, the watch's one line
for a broken dodo.py."""
import errno
import os
import stat
from pathlib import Path

import pytest

from lispbuild import output, space, store
from lispbuild.sbcl import isolation
from lispbuild.errors import LispFailure
from lispbuild.commands.watch import _dodo_error


def lines_file(path: Path, count: int, width: int = 20) -> Path:
    with open(path, "w") as f:
        for i in range(count):
            f.write(f"line {i} ".ljust(width, "x") + "\n")
    return path


def test_short_output_is_shown_whole(tmp_path):
    text = output.excerpt(lines_file(tmp_path / "o", 40), "o")
    assert text.splitlines() == [f"line {i} ".ljust(20, "x") for i in range(40)]


def test_long_output_is_shown_as_its_first_and_last_lines(tmp_path):
    text = output.excerpt(lines_file(tmp_path / "o", 100_000), "build/x.txt").splitlines()
    assert len(text) == output.HEAD_LINES + output.TAIL_LINES + 1
    assert text[0].startswith("line 0 ") and text[-1].startswith("line 99999 ")
    assert text[output.HEAD_LINES] == ("[... 99,960 lines left out; all 100,000 lines "
                                       "(2,100,000 bytes) are in build/x.txt]")
    assert text[output.HEAD_LINES + 1].startswith("line 99975 ")


def test_a_line_without_end_is_cut(tmp_path):
    path = tmp_path / "o"
    path.write_bytes(b"a" * 5_000_000 + b"\nlast")
    text = output.excerpt(path, "o").splitlines()
    assert text == ["a" * output.LINE_CHARS + " [...]", "last"]


def test_output_is_kept_by_task_and_an_empty_one_is_not(tmp_path):
    build = tmp_path / "build"
    printed = lines_file(tmp_path / "p", 3)
    kept = output.keep(printed, build, "fasl:lib/src/a.lisp")
    assert kept == build / ".lispbuild/output/fasl/lib/src/a.lisp.txt" and kept.exists()
    assert not printed.exists()
    (tmp_path / "empty").write_bytes(b"")
    assert output.keep(tmp_path / "empty", build, "fasl:lib/src/a.lisp") is None
    assert not kept.exists() and not (tmp_path / "empty").exists()
    other = output.kept_path(build, "asking ASDF for app, app/test")
    assert other.parent == build / ".lispbuild/output" and " " not in other.name


def test_a_copy_the_kernel_refuses_is_made_by_hand(tmp_path, monkeypatch):
    """copy_file_range across file systems raises EXDEV (ENOSYS, EOPNOTSUPP,
    EINVAL elsewhere); the copy goes on from where it stopped."""
    source = tmp_path / "source"
    source.write_bytes(os.urandom(3 << 20))
    calls = []

    def refusing(src, dst, count, *rest):
        calls.append(count)
        if len(calls) == 1:  # a first part copied, then the refusal
            os.write(dst, os.pread(src, 1 << 20, 0))
            os.lseek(src, 1 << 20, os.SEEK_SET)
            return 1 << 20
        raise OSError(errno.EXDEV, "Invalid cross-device link")
    monkeypatch.setattr(os, "copy_file_range", refusing)
    dest = tmp_path / "dest"
    store.copy_atomically(source, dest)
    assert dest.read_bytes() == source.read_bytes() and len(calls) == 2

    monkeypatch.setattr(os, "copy_file_range", lambda *a: (_ for _ in ()).throw(
        OSError(errno.EIO, "Input/output error")))
    with pytest.raises(OSError, match="Input/output error"):  # a real fault is not hidden
        store.copy_atomically(source, tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_no_space_names_the_file_and_its_file_system(tmp_path):
    error = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))
    text = space.no_space(error, "core:app", "build/core/app.core", [tmp_path])
    assert text.startswith(f"core:app: no space left on device writing {tmp_path / 'x'}: "
                           f"the file system at {space.mount_point(tmp_path)} is full (")
    assert text.endswith("Nothing half-written was kept: free some space and build again")
    assert space.no_space(OSError(errno.EIO, "x"), "core:app", "", [tmp_path]) is None


def test_the_watch_says_a_broken_dodo_in_one_line(tmp_path):
    said = (f'Traceback (most recent call last):\n  File "/x/doit/loader.py", line 96, in g\n'
            f'    return importlib.import_module(name)\n'
            f'  File "{tmp_path}/dodo.py", line 9\n    x = (\n        ^\n'
            f"SyntaxError: '(' was never closed")
    assert _dodo_error(said, tmp_path) == "dodo.py:9: SyntaxError: '(' was never closed"
    assert _dodo_error("ERROR: something else", tmp_path) is None


# --- the release directory where no namespace can be made ----------------------

def test_a_claimed_release_directory_is_ours_alone_and_gone_after(tmp_path):
    visible = tmp_path / "release" / "0123456789abcdef"
    with isolation.claimed_directory(visible):
        info = os.lstat(visible)
        assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
        (visible / "file").write_text("x")
    assert not visible.exists() and not visible.parent.exists()


def test_a_link_planted_at_the_release_directory_is_refused(tmp_path):
    (tmp_path / "release").mkdir(mode=0o1777)
    (tmp_path / "theirs").mkdir()
    visible = tmp_path / "release" / "0123456789abcdef"
    visible.symlink_to(tmp_path / "theirs")
    with pytest.raises(LispFailure, match=f"{visible}: it is not a directory"):
        with isolation.claimed_directory(visible):
            pass
    assert visible.is_symlink() and list((tmp_path / "theirs").iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="gives files to another user (chown)")
def test_what_another_user_made_there_is_refused(tmp_path):
    nobody = 65534
    release = tmp_path / "release"
    release.mkdir(mode=0o1777)
    release.chmod(0o1777)
    visible = release / "0123456789abcdef"
    visible.mkdir()
    os.chown(visible, nobody, nobody)
    with pytest.raises(LispFailure, match="made by another user \\(uid 65534\\)"):
        with isolation.claimed_directory(visible):
            pass
    assert visible.is_dir()
    os.rmdir(visible)
    os.chown(release, nobody, nobody)
    release.chmod(0o755)
    with pytest.raises(LispFailure, match="belongs to another user"):
        with isolation.claimed_directory(visible):
            pass


def test_undefined_references_are_read_by_what_needs_them(tmp_path):
    from lispbuild.link import undefined_references
    log = tmp_path / "ld.txt"
    log.write_text(
        "/usr/bin/ld: /usr/lib/x86_64-linux-gnu/libsybdb.a(dblib.o): in function `dbconvert':\n"
        "(.text+0x1f3): undefined reference to `__memmove_chk'\n"
        "/usr/bin/ld: (.text+0x2a0): undefined reference to `__strcpy_chk'\n"
        "/usr/bin/ld: (.text+0x2b0): undefined reference to `__memmove_chk'\n"
        "/usr/bin/ld: build/obj/app.o:(.data.rel+0x8): undefined reference to `missing_table'\n"
        "/usr/bin/ld: /usr/lib/x86_64-linux-gnu/libsybdb.a(net.o): in function `tds_open':\n"
        "net.c:(.text+0x10): undefined reference to `__asprintf_chk'\n"
        "collect2: error: ld returned 1 exit status\n")
    assert undefined_references(log) == {
        "/usr/lib/x86_64-linux-gnu/libsybdb.a(dblib.o)": ["__memmove_chk", "__strcpy_chk"],
        "build/obj/app.o": ["missing_table"],
        "/usr/lib/x86_64-linux-gnu/libsybdb.a(net.o)": ["__asprintf_chk"]}
