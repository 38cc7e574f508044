"""The README's example dodo.py, taken from the README itself, builds and
runs as written in a project of its own."""
import re
import shutil
import subprocess

from conftest import REPO, built


def test_readme_example_works_as_written(tmp_path, store_env):
    readme = (REPO / "README.md").read_text()
    dodo = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    project = tmp_path / "hello"
    shutil.copytree(REPO / "samples/hello", project)
    (project / "dodo.py").write_text(dodo)
    built(project, "-n", "2", env=store_env)
    run = subprocess.run([project / "build/bin/hello", "a", "b", "--exit", "3"],
                         capture_output=True, text=True)
    assert run.returncode == 3
    expected = re.search(r"\$ build/bin/hello a b --exit 3; echo \$\?\n(.*?)\n    \$ doit run",
                         readme, re.S).group(1)
    assert run.stdout + "3\n" == "\n".join(line[4:] for line in expected.splitlines()) + "\n"
    shown = built(project, "run:hello", env=store_env)
    assert "1: static\n2: lisp" in shown.output
