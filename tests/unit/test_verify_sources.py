"""`doit verify`'s check of the sources a manifest names: an ASDF library
found outside the project is named once, with where it was found."""
from lispbuild import release
from lispbuild.commands.verify import source_problems
from lispbuild.digest import hash_file


def test_a_library_missing_or_different_is_named_with_where_it_was_found(tmp_path):
    own = tmp_path / "main.lisp"
    own.write_text("(main)")
    dist = tmp_path / "quicklisp/dists/quicklisp/software/greet-1.0"
    gone = tmp_path / "quicklisp/local-projects/shout"
    dist.mkdir(parents=True)
    for name in ("greet.lisp", "more.lisp"):
        (dist / name).write_text(name)
    sources = [{"path": "main.lisp", "sha256": hash_file(own)},
               {"path": f"{dist}/greet.lisp", "sha256": hash_file(dist / "greet.lisp")},
               {"path": f"{dist}/more.lisp", "sha256": "0" * 64},
               {"path": f"{gone}/shout.lisp", "sha256": "0" * 64},
               {"path": "lost.lisp", "sha256": "0" * 64}]
    libraries = [{"library": "greet", "system": "greet", "version": "1.0",
                  "directory": str(dist), "found_in": "Quicklisp's dist quicklisp"},
                 {"library": "shout", "system": "shout", "version": None,
                  "directory": str(gone), "found_in": "Quicklisp's local-projects"}]
    manifest = release.Manifest(
        name="app", version="1.0", mode="fastbuild", platform=release.PLATFORM,
        source_date_epoch=0, revision=None, smoke_args=None, lispbuild={},
        dump_directory="/r", toolchain={}, sources=sources, libraries=libraries, stages=[],
        executable={})
    assert source_problems(manifest, tmp_path) == [
        "missing source: lost.lisp",
        f"library greet (ASDF system greet 1.0, found in Quicklisp's dist quicklisp at "
        f"{dist}): 1 of its files differ here: more.lisp",
        f"library shout (ASDF system shout, found in Quicklisp's local-projects at {gone}): "
        f"missing here"]
