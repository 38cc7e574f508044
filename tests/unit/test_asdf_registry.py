"""Where ASDF looks, as the build reads it without SBCL: the places'
.asd files (asdf.py), Quicklisp's layout, where a system was found and
which other places hold it (asdf_registry.py)."""
import os

from lispbuild.asdf import _asd_files
from lispbuild.asdf_registry import Registry, config_files, find_quicklisp


def write(path, text=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_places_asd_files_through_links_each_directory_once(tmp_path):
    write(tmp_path / "tree/a/a.asd")
    write(tmp_path / "tree/.git/hidden.asd")
    write(tmp_path / "tree/a/deep/d.asd")
    write(tmp_path / "elsewhere/linked/l.asd")
    os.symlink(tmp_path / "elsewhere", tmp_path / "tree/link")
    os.symlink(tmp_path / "tree", tmp_path / "tree/a/loop")   # a cycle
    write(tmp_path / "flat/f.asd")
    write(tmp_path / "flat/sub/not-searched.asd")
    os.symlink(tmp_path / "nowhere.asd", tmp_path / "flat/dangling.asd")  # as Debian's has
    files, directories = _asd_files(
        [(f"{tmp_path}/tree/", True), (f"{tmp_path}/flat/", False),
         (f"{tmp_path}/missing/", True)], {".git"})
    assert [os.path.relpath(f, tmp_path) for f in files] == [
        "flat/f.asd", "tree/a/a.asd", "tree/a/deep/d.asd", "tree/link/linked/l.asd"]
    assert directories[f"{tmp_path}/missing/"] is None


def test_quicklisp_is_read_as_its_client_reads_it(tmp_path, monkeypatch):
    ql = tmp_path / "quicklisp"
    write(ql / "setup.lisp")
    for dist, preference in (("quicklisp", None), ("ultralisp", "9")):
        write(ql / f"dists/{dist}/enabled.txt", "1")
        if preference:
            write(ql / f"dists/{dist}/preference.txt", preference)
        write(ql / f"dists/{dist}/installed/systems/greet.txt",
              f"dists/{dist}/software/greet-1/greet.asd\n")
    write(ql / "dists/disabled/installed/systems/greet.txt", "x\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    found = find_quicklisp()
    assert [d.name for d in found.dists] == ["ultralisp", "quicklisp"]
    assert found.installed("greet") == [
        (f"{ql}/dists/ultralisp/software/greet-1/greet.asd", "ultralisp"),
        (f"{ql}/dists/quicklisp/software/greet-1/greet.asd", "quicklisp")]
    registry = Registry((f"{tmp_path}/project/",), True, found)
    used = f"{ql}/local-projects/greet/greet.asd"
    assert registry.origin(used) == "Quicklisp's local-projects"
    assert registry.origin(f"{tmp_path}/project/x/x.asd") == "the project's registry"
    said = registry.shadowed("greet", used, [used])
    assert said.startswith(f"asdf: system greet: using {used} (Quicklisp's local-projects); "
                           f"also found: {ql}/dists/quicklisp/software/greet-1/greet.asd "
                           f"(Quicklisp's dist quicklisp); {ql}/dists/ultralisp/")
    assert registry.shadowed("other", used, [used]) is None


def test_asdf_configuration_files_as_uiop_names_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("XDG_CONFIG_DIRS", f"{tmp_path}/xdg")
    write(tmp_path / ".config/common-lisp/source-registry.conf.d/50-mine.conf", "(:tree \"x\")")
    files = [str(f) for f in config_files()]
    assert files[:2] == [f"{tmp_path}/.config/common-lisp/source-registry.conf",
                         f"{tmp_path}/.config/common-lisp/source-registry.conf.d/50-mine.conf"]
    assert f"{tmp_path}/xdg/common-lisp/source-registry.conf" in files
    assert "/etc/common-lisp/source-registry.conf" in files
