"""A second machine with a warm remote store, next to building cold, in
one run:

    .venv/bin/python bench/remote_cache.py [--runs 3]

For samples/webserver and samples/ppcre-grep (with a project-local
alexandria, as in asdf_compare.py): ASDF's cold build (one SBCL,
asdf:load-system, save-lisp-and-die); lispbuild's cold build with an empty
store, uploading to Debian's nginx on 127.0.0.1 (tests/e2e/nginx.py, with the
configuration in contrib/); and `doit -n 2` in a fresh checkout at another
path with an empty local store, restoring from that server. Medians of
`--runs`, wall and CPU seconds (user+sys of every process), as Markdown.
"""
import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "e2e"))
from asdf_compare import PROJECTS, Setup, timed  # noqa: E402
from nginx import Nginx  # noqa: E402


def measure(setup: Setup, server: Nginx, tmp: Path, runs: int) -> dict:
    times = {"asdf": [], "cold": [], "remote": []}
    source = setup.ours / "project"
    for i in range(runs):
        setup.clean()
        server.clear()
        times["asdf"].append(setup.asdf())
        times["cold"].append(timed(setup.doit, source, {
            **setup.ours_env, "LISPBUILD_REMOTE": server.url, "LISPBUILD_REMOTE_UPLOAD": "1"}))
        checkout = tmp / f"checkout-{setup.project.name}-{i}"
        shutil.copytree(source, checkout, ignore=shutil.ignore_patterns("build"))
        times["remote"].append(timed(setup.doit, checkout, {
            **setup.ours_env, "LISPBUILD_STORE": str(tmp / f"empty-store-{i}"),
            "LISPBUILD_REMOTE": server.url}))
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
            for k, v in times.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    server = Nginx()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="lispbuild-remote-bench-") as tmp:
            for name in ("webserver", "ppcre-grep"):
                setup = Setup(PROJECTS[name](0), Path(tmp))
                r = measure(setup, server, Path(tmp), args.runs)
                (aw, ac), (cw, cc), (rw, rc) = r["asdf"], r["cold"], r["remote"]
                rows.append(f"| {name} | {aw:.2f} s ({ac:.2f} s CPU) | {cw:.2f} s ({cc:.2f} s CPU)"
                            f" | {rw:.2f} s ({rc:.2f} s CPU) | {aw / rw:.1f}x | {cw / rw:.1f}x |")
                print(f"{name} measured", file=sys.stderr, flush=True)
    finally:
        server.stop()
    print("| sample | ASDF cold | lispbuild cold, uploading | fresh checkout, warm remote "
          "| ASDF cold / remote | lispbuild cold / remote |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
