"""Builds every sample under samples/: `doit` (or `doit -n 2`)."""
import lispbuild

project = lispbuild.Project()
# Each sample but ffi and the cl-ppcre suite is built for both machines:
# exe:NAME@aarch64-linux, build/aarch64-linux/bin/NAME (docs/targets.md).
TARGETS = ["x86_64-linux", "aarch64-linux"]

# samples/hello: two libraries, one depending on the other.
project.library("hello-util", ["package.lisp", "text.lisp"], directory="samples/hello/util")
project.library("hello", ["package.lisp", "main.lisp"], directory="samples/hello/app",
                depends_on=["hello-util"])
project.binary("hello", libraries=["hello"], entry="hello:main", entry_arguments="command-line-arguments",
               version="1.0.0", smoke_args=["static", "lisp"], targets=TARGETS)
project.run("hello", binary="hello", args=["static", "lisp"])

# samples/ffi: its own C code, and zlib from Debian's libz.a.
project.library("ffi", ["package.lisp", "zlib.lisp", "main.lisp"], directory="samples/ffi/lisp")
project.binary("ffi", libraries=["ffi"], entry="ffi-demo:main", entry_arguments="command-line-arguments",
               c_sources=["samples/ffi/c/fnv.c"],
               archives=["/usr/lib/x86_64-linux-gnu/libz.a"],
               version="1.0.0", smoke_args=["round", "trip"])
project.run("ffi", binary="ffi", args=["round", "trip"])

# samples/primes: a zstd-compressed core.
project.library("primes", ["primes.lisp"], directory="samples/primes",
                policy={"speed": 3, "safety": 1})
project.binary("primes", libraries=["primes"], entry="primes:main",
               entry_arguments="command-line-arguments", compression=True,
               version="1.0.0", smoke_args=["1000"], targets=TARGETS)
project.run("primes", binary="primes", args=["1000000"])

# samples/ppcre-grep: an ASDF system on cl-ppcre and alexandria.
project.asdf_system("ppcre-grep", registry=["samples/ppcre-grep"])
# Its version (for `doit release`) is the :version in ppcre-grep.asd.
project.binary("ppcre-grep", libraries=["ppcre-grep"], entry="ppcre-grep:main",
               entry_arguments="command-line-arguments",
               smoke_args=["defsystem", "samples/ppcre-grep/ppcre-grep.asd"], targets=TARGETS)
project.run("ppcre-grep", binary="ppcre-grep", args=["-i", "^\\(defsystem", "samples/ppcre-grep/ppcre-grep.asd"])
# Its FiveAM tests, and cl-ppcre's own test suite, each in a static executable.
project.asdf_system("ppcre-grep/test", registry=["samples/ppcre-grep"])
project.test("ppcre-grep-tests", libraries=["ppcre-grep--test"], function="ppcre-grep-test:run-tests",
             version="1.0.0", targets=TARGETS)
project.asdf_system("cl-ppcre/test")
project.test("cl-ppcre-tests", libraries=["cl-ppcre--test"], function="cl-ppcre-test:run-all-tests",
             version="2.1.1")

# samples/webserver: hunchentoot, with cl+ssl and OpenSSL linked statically.
project.asdf_system("webserver", registry=["samples/webserver"])
project.binary("webserver", libraries=["webserver"], entry="webserver:main",
               entry_arguments="command-line-arguments",
               foreign_libraries={"libssl": ["/usr/lib/x86_64-linux-gnu/libssl.a"],
                                  "libcrypto": ["/usr/lib/x86_64-linux-gnu/libcrypto.a"]},
               smoke_args=["--check"], targets=TARGETS)
project.run("webserver", binary="webserver", args=["8080"])

DOIT_CONFIG = lispbuild.doit_config(project)


def task_lispbuild():
    yield from lispbuild.tasks(project)
