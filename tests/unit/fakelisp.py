"""The rebuilder's test bench: a fake Lisp runner and doit run in this
process, as ninja's build_test.cc drives its builder with a fake command
runner. Nothing here starts SBCL."""
import contextlib
import hashlib
import http.server
import importlib
import io
import os
import re
import runpy
import threading
from pathlib import Path

from doit.cmd_base import ModuleTaskLoader
from doit.doit_cmd import DoitMain

from lispbuild import buildlock
from lispbuild.errors import LispFailure
from lispbuild.steps import step_files


WORD = re.compile(r"[a-z][a-z0-9-]*")
MACRO = re.compile(r"\(defmacro ([a-z][a-z0-9-]*)")
FUNCTION = re.compile(r"\(defun ([a-z][a-z0-9-]*)")


def fake_trace(source: str) -> str:
    """A compile's trace (reuse.py, trace.lisp) as the fake's compile sees
    it: every word mentioned, the macros and functions defined; a #. makes
    it incomplete."""
    lines = [f"m\tFAKE\t{w}" for w in sorted(set(WORD.findall(source)))]
    lines += [f"d\tM\tFAKE\t{m}\t@" for m in MACRO.findall(source)]
    lines += [f"d\tF\tFAKE\t{f}\t@" for f in FUNCTION.findall(source)]
    if "#." in source:
        lines.insert(0, "incomplete\tit uses #.")
    return "".join(line + "\n" for line in lines)


class FakeLisp:
    """The Lisp strategy's interface (run a job, shut down). A job's bytes
    depend on what a real job's result depends on: a compile's on the
    source's text and on the files that define the macros it mentions (its
    load state's other files only if its source has a #., as its trace
    then says nothing), other jobs' on the bytes of every file their load
    state loads; so an edit changes what a real job would change, and the
    same job gives the same bytes. `consult_all` makes every compile
    depend on its whole load state, which its trace does not say: a
    compiler that consults what it does not trace."""

    def __init__(self, root: Path):
        self.root = root
        self.ran: list[str] = []                # the tasks whose jobs ran, in order
        self.failing: dict[str, str] = {}       # task -> what its job prints and fails with
        self.during: dict[str, callable] = {}   # task -> called while its job runs
        self.reads: dict[str, list[Path]] = {}  # task -> files its job reads undeclared
        self.hints: dict[str, dict] = {}        # task -> the hints its job came with
        self.consult_all = False
        # Whether a compile goes on to its followers (compile.lisp), and
        # whether what they give then differs from a compile alone.
        self.chain = False
        self.chain_differs = False
        self.followed: list[str] = []           # the followers' sources, in order
        self.failing_followers: set[str] = set()  # sources that do not compile as followers

    def run(self, job) -> str:
        self.ran.append(job.task)
        self.hints[job.task] = job.hints
        if job.task in self.during:
            self.during[job.task]()
        if job.task in self.failing:
            raise LispFailure(f"{job.task}: {self.failing[job.task]}")
        args = job.arguments
        source = (self.root / args["source"]).read_text() if "source" in args else ""
        h = self._loaded(job.command, job.state.steps(), source, {})
        if job.command == "compile":
            self._compile(h, args, source, self.reads.get(job.task, ()))
            if self.chain:
                self._followers(args, job.state.steps())
        elif job.command == "check-undefined":
            Path(args["output"]).write_bytes(b"")
        else:
            raise AssertionError(f"the fake runner has no {job.command} job")
        return ""

    def _loaded(self, command: str, steps: list, source: str, traces: dict):
        """A hash of what the job's result depends on of its load state:
        every FASL, or for a compile those that define a macro it mentions
        (each FASL's trace says; `traces` names those not in place yet)."""
        h = hashlib.sha256(command.encode())
        words = set(WORD.findall(source))
        for step in steps:
            for path in step_files(step):
                trace = traces.get(path, self.root / (path.removesuffix(".fasl") + ".trace"))
                defined = {line.split("\t")[3] for line in trace.read_text().splitlines()
                           if line.startswith("d\tM\t")} if trace.exists() else set()
                if (command != "compile" or self.consult_all or "#." in source
                        or defined & words):
                    h.update(b"\0" + (self.root / path).read_bytes())
        return h

    def _compile(self, h, args: dict, source: str, reads):
        h.update(b"\0" + source.encode())
        for path in reads:
            h.update(b"\0" + path.read_bytes())
        Path(args["output"]).write_text(f"fake fasl {h.hexdigest()}\n")
        Path(args["trace"]).write_text(fake_trace(source))
        Path(args["undefined"]).write_bytes(b"")
        Path(args["reads"]).write_text("".join(f"{p}\n" for p in reads))

    def _followers(self, args: dict, steps: list):
        """As compile.lisp: the FASL put in place, loaded, and each
        follower compiled with the files before it loaded."""
        traces = {}  # the FASLs placed here, to their traces (not in place yet)
        for follower in args.get("then", ()):
            place = self.root / args["load_as"][1]
            place.parent.mkdir(parents=True, exist_ok=True)
            place.write_bytes(Path(args["output"]).read_bytes())
            traces[args["load_as"][1]] = Path(args["trace"])
            steps = steps + [tuple(args["load_as"])]
            if follower["source"] in self.failing_followers:
                Path(follower["diagnostics"]).write_text(f"{follower['source']}:1: ERROR\n")
                return
            source = (self.root / follower["source"]).read_text()
            h = self._loaded("compile", steps, source, traces)
            if self.chain_differs:
                h.update(b"compiled after another")
            self._compile(h, follower, source, ())
            Path(follower["diagnostics"]).write_text("")
            Path(follower["log"]).write_text("")
            Path(follower["done"]).write_text("compiled\n")
            self.followed.append(follower["source"])
            args = follower

    def runner_of(self, task: str) -> str:
        return "fake"

    def shutdown(self):
        pass


def doit_here(project: Path, fake: FakeLisp, *args: str) -> tuple[int, str]:
    """Run doit on the project's dodo.py in this process, its Lisp jobs
    given to `fake`: doit's exit code, and what it wrote (its reporter's
    lines for a build, a command's output for another command: `list`)."""
    report = project.parent / f"{project.name}-doit.txt"
    build = not args or args[0] not in ("list", "info")
    os.chdir(project.parent)  # where the tests before left it may be gone
    with contextlib.chdir(project):
        module = runpy.run_path("dodo.py")
        tasks = importlib.import_module("lispbuild.tasks")
        original = tasks.lisp_strategy
        tasks.lisp_strategy = lambda ctx: fake
        written = io.StringIO()
        try:
            with contextlib.redirect_stdout(written):
                code = DoitMain(ModuleTaskLoader(module)).run(
                    ["run", "--output-file", str(report), *args] if build else list(args))
        finally:
            tasks.lisp_strategy = original
            buildlock.release_build_lock()
    return code, report.read_text() if build else written.getvalue()


class _Store(http.server.BaseHTTPRequestHandler):
    """GET, HEAD and PUT of files under the server's directory, as nginx's
    WebDAV module serves a remote store (contrib/nginx-remote-cache.conf)."""

    def _path(self) -> Path:
        return self.server.directory / self.path.lstrip("/")

    def do_GET(self, body=True):
        path = self._path()
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_HEAD(self):
        self.do_GET(body=False)

    def do_PUT(self):
        data = self.rfile.read(int(self.headers["Content-Length"]))
        path = self._path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def http_store(directory: Path):
    """A remote store's URL, served from `directory` by a thread."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Store)
    server.directory = directory
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/store"
    finally:
        server.shutdown()
        server.server_close()


def write(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    # The rebuilder trusts a file whose size and time did not change: an
    # edit in the same clock tick must still be seen, as an editor's is.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
