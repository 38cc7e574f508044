"""A remote store on a real server: Debian's nginx, with the configuration
lispbuild ships (contrib/nginx-remote-cache.conf). A second checkout with
an empty store restores instead of compiling; a server that is down,
failing, slow or serving wrong bytes costs one warning, never a wrong
byte; with trusted keys only signed records count."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import built, copy_samples, write_project
from lispbuild.store import Store
from nginx import Nginx, free_port
from test_bad_input import GOOD, PACKAGE, dodo
from test_faults import consistent, records


@pytest.fixture(scope="module")
def nginx():
    if shutil.which("nginx") is None:
        pytest.fail("nginx is not installed: run ./setup.sh")
    server = Nginx()
    yield server
    server.stop()


def env(remote: str | None, store: Path | None = None, **extra) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith("LISPBUILD_")}
    if remote:
        e["LISPBUILD_REMOTE"] = remote
    if store:
        e["LISPBUILD_STORE"] = str(store)
    return {**e, **{k: str(v) for k, v in extra.items()}}


def doit_traced(project: Path, environment: dict, trace: Path):
    proc = subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace),
                           sys.executable, "-m", "doit", "-n", "2", "-v", "2"],
                          cwd=project, capture_output=True, text=True, env=environment)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    programs = {os.path.basename(line.split('"')[1]) for line in trace.read_text().splitlines()
                if "execve(" in line and "= 0" in line}
    return proc.stdout + proc.stderr, programs


COMPILERS = {"sbcl", "sbcl-dev", "gcc", "x86_64-linux-gnu-gcc", "musl-gcc", "cc1", "as", "ld",
             "collect2"}


def test_a_second_checkout_restores_every_sample_from_the_remote(samples, nginx, tmp_path):
    nginx.clear()
    # The first machine: its store has everything; it uploads.
    writer = copy_samples(tmp_path / "first")
    built(writer, "-n", "2", env=env(nginx.url, samples / "cache", LISPBUILD_REMOTE_UPLOAD=1))
    assert list((nginx.prefix / "data/ac").iterdir())
    # The second: another path, an empty store, read-only access.
    reader = copy_samples(tmp_path / "second")
    output, programs = doit_traced(reader, env(nginx.url), tmp_path / "exec.log")
    assert not programs & COMPILERS, (programs, output)
    assert "restored from the remote store" in output and "warning" not in output, output
    for exe in (writer / "build/bin").iterdir():
        assert (reader / "build/bin" / exe.name).read_bytes() == exe.read_bytes(), exe.name
    run = subprocess.run([reader / "build/bin/hello", "a", "b"], capture_output=True, text=True)
    assert run.stdout == "hello from a static SBCL: 2 arguments\n1: a\n2: b\n", run.stdout
    assert Store(reader / "cache").check(lambda line: None)["removed"] == 0


@pytest.fixture(scope="module")
def demo_on_server(nginx, tmp_path_factory) -> Path:
    """The demo project built by a machine that uploads to the server."""
    nginx.clear()
    project = write_project(tmp_path_factory.mktemp("writer") / "demo", dodo(),
                            {"src/package.lisp": PACKAGE, "src/code.lisp": GOOD})
    built(project, env=env(nginx.url, LISPBUILD_REMOTE_UPLOAD=1))
    return project


def reader_copy(writer: Path, dest: Path) -> Path:
    """The writer's sources in another directory, with nothing built."""
    return write_project(dest, (writer / "dodo.py").read_text(),
                         {f"src/{p.name}": p.read_text() for p in (writer / "src").iterdir()})


def warnings(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("warning: ")]


@pytest.mark.parametrize("where", ["down", "broken", "slow"])
def test_a_server_that_cannot_serve_costs_one_warning(demo_on_server, nginx, tmp_path, where):
    url = {"down": f"http://127.0.0.1:{free_port()}", "broken": f"{nginx.url}/broken",
           "slow": f"{nginx.url}/slow"}[where]
    project = reader_copy(demo_on_server, tmp_path / "demo")
    started = time.monotonic()
    result = built(project, "-n", "2", env=env(url, LISPBUILD_REMOTE_TIMEOUT=2))
    assert time.monotonic() - started < 120
    assert len(warnings(result.output)) == 1, result.output
    assert "cannot be used" in warnings(result.output)[0]
    assert "fasl:demo/code.lisp" in result.executed  # built here
    consistent(project)


def test_wrong_bytes_from_the_server_never_reach_the_store(demo_on_server, nginx, tmp_path):
    exe_sha = records(demo_on_server)["exe:demo"][1]["exe"]["sha256"]
    served = nginx.prefix / "data/cas" / exe_sha
    good = served.read_bytes()
    try:
        served.write_bytes(good[:1000] + bytes([good[1000] ^ 1]) + good[1001:])
        project = reader_copy(demo_on_server, tmp_path / "demo")
        result = built(project, "-n", "2", "-v", "2", env=env(nginx.url))
        assert len(warnings(result.output)) == 1, result.output
        assert "did not match its digest" in result.output
        assert "exe:demo" in result.executed and "restored from the remote store" in result.output
        # The runtime and core came from the server; embedding them again
        # gives the writer's executable.
        assert (project / "build/bin/demo").read_bytes() == good
        consistent(project)
    finally:
        served.write_bytes(good)


def test_a_record_naming_a_missing_object_is_a_miss(demo_on_server, nginx, tmp_path):
    exe_sha = records(demo_on_server)["exe:demo"][1]["exe"]["sha256"]
    served = nginx.prefix / "data/cas" / exe_sha
    hidden = served.with_name("hidden")
    served.rename(hidden)
    try:
        project = reader_copy(demo_on_server, tmp_path / "demo")
        result = built(project, env=env(nginx.url))
        said = warnings(result.output)
        assert len(said) == 1 and "but not its object" in said[0], result.output
        assert "exe:demo" in result.executed
        consistent(project)
    finally:
        hidden.rename(served)


def keypair(directory: Path, name: str) -> tuple[Path, Path]:
    private, public = directory / f"{name}.key", directory / f"{name}.pub"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", private], check=True)
    subprocess.run(["openssl", "pkey", "-in", private, "-pubout", "-out", public], check=True)
    return private, public


def test_only_records_signed_by_a_trusted_key_count(nginx, tmp_path):
    nginx.clear()
    ci_key, ci_pub = keypair(tmp_path, "ci")
    _, other_pub = keypair(tmp_path, "other")
    writer = write_project(tmp_path / "writer", dodo(),
                           {"src/package.lisp": PACKAGE, "src/code.lisp": GOOD})
    built(writer, env=env(nginx.url, LISPBUILD_REMOTE_UPLOAD=1, LISPBUILD_SIGNING_KEY=ci_key))

    trusting_ci = reader_copy(writer, tmp_path / "trusting-ci")
    result = built(trusting_ci, "-v", "2", env=env(nginx.url, LISPBUILD_TRUSTED_KEYS=ci_pub))
    for task in ("fasl:demo/code.lisp", "core:demo", "exe:demo"):
        assert f"{task}: restored from the remote store" in result.output, result.output
    assert not warnings(result.output)

    trusting_other = reader_copy(writer, tmp_path / "trusting-other")
    result = built(trusting_other, "-v", "2",
                   env=env(nginx.url, LISPBUILD_TRUSTED_KEYS=other_pub))
    assert "restored from the remote store" not in result.output
    assert len(warnings(result.output)) == 1
    assert "not signed by a trusted key" in result.output, result.output

    # A writable cache cannot swap what a signed record names: the exe's
    # record pointed at the core's bytes is refused.
    exe_key = records(writer)["exe:demo"][0]
    core_sha = records(writer)["core:demo"][1]["core"]["sha256"]
    record = nginx.prefix / "data/ac" / exe_key
    record.write_text(record.read_text().replace(
        records(writer)["exe:demo"][1]["exe"]["sha256"], core_sha))
    swapped = reader_copy(writer, tmp_path / "swapped")
    result = built(swapped, env=env(nginx.url, LISPBUILD_TRUSTED_KEYS=ci_pub))
    assert "not signed by a trusted key" in result.output, result.output
    assert "exe:demo" in result.executed
    assert (swapped / "build/bin/demo").read_bytes() == (writer / "build/bin/demo").read_bytes()
    consistent(swapped)
