"""Debian's nginx serving a remote store with the configuration lispbuild
ships (contrib/nginx-remote-cache.conf), for the tests and the benchmark."""
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Test-only places on the same server: one that always fails, one that
# serves the cache at one byte a second.
EXTRA_LOCATIONS = """
        location /broken/ { return 500; }
        location /slow/ { alias data/; limit_rate 1; }
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    """nginx on 127.0.0.1 and a free port, its cache in a new directory
    (where its workers, running as nobody, can write: not under pytest's
    directories, which are root's alone)."""

    def __init__(self):
        self.prefix, self.port = Path(tempfile.mkdtemp(prefix="lispbuild-nginx-")), free_port()
        self.prefix.chmod(0o755)
        for d in ("data", "logs", "tmp"):
            (self.prefix / d).mkdir()
        shutil.chown(self.prefix / "data", "nobody")
        shutil.chown(self.prefix / "tmp", "nobody")
        conf = (REPO / "contrib/nginx-remote-cache.conf").read_text()
        conf = conf.replace("127.0.0.1:8080", f"127.0.0.1:{self.port}")
        conf = conf.replace("        # (more locations)\n", EXTRA_LOCATIONS)
        (self.prefix / "nginx.conf").write_text(conf)
        self.process = subprocess.Popen(["nginx", "-p", str(self.prefix), "-c",
                                         str(self.prefix / "nginx.conf"), "-g", "daemon off;"])
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=1)
            except urllib.error.HTTPError:
                break  # it answers (403 or 404 for /)
            except OSError:
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def clear(self):
        for d in ("ac", "cas"):
            shutil.rmtree(self.prefix / "data" / d, ignore_errors=True)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.prefix)
