"""The first edit after a cold build against the edits after it:

    .venv/bin/python bench/first_edit.py [--project webserver] [--rounds 3] [--edits 4]

Each round builds the project cold (`doit -n 2`, empty build/ and store),
then makes `--edits` one-line edits of its own file (bench/asdf_compare.py's
projects and edits), each followed by a build. Prints a Markdown table of
medians over the rounds, wall and CPU (user+sys) seconds.
"""
import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from asdf_compare import PROJECTS, Setup  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", default="webserver", choices=list(PROJECTS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--edits", type=int, default=4)
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="lispbuild-first-edit-") as tmp:
        setup = Setup(PROJECTS[args.project](1000), Path(tmp))
        for _ in range(args.rounds):
            setup.clean()
            rows.setdefault("cold", []).append(setup.lispbuild())
            for i in range(args.edits):
                setup.edit(setup.project.own, i)
                name = "first edit" if i == 0 else "edits after it"
                rows.setdefault(name, []).append(setup.lispbuild())
            path, old, new = setup.project.own  # back as it was, for the next round
            for root in (setup.asdf_root, setup.ours / "project"):
                edited = root / path
                edited.write_text(edited.read_text().replace(new.format(i=args.edits - 1),
                                                             old, 1))
    print(f"| {args.project} | median wall | median CPU | runs |")
    print("|---|---|---|---|")
    for name, runs in rows.items():
        print(f"| {name} | {statistics.median(w for w, _ in runs):.2f} s "
              f"| {statistics.median(c for _, c in runs):.2f} s | {len(runs)} |")


if __name__ == "__main__":
    main()
