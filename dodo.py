"""Builds every sample under samples/: `doit` (or `doit -n 2`)."""
import lispbuild

project = lispbuild.Project()

# samples/hello: two libraries, one depending on the other.
project.library("hello-util", ["package.lisp", "text.lisp"], directory="samples/hello/util")
project.library("hello", ["package.lisp", "main.lisp"], directory="samples/hello/app",
                depends_on=["hello-util"])
project.binary("hello", libraries=["hello"], entry="hello:main")
project.run("hello", binary="hello", args=["static", "lisp"])

# samples/ffi: its own C code, and zlib from Debian's libz.a.
project.library("ffi", ["package.lisp", "zlib.lisp", "main.lisp"], directory="samples/ffi/lisp")
project.binary("ffi", libraries=["ffi"], entry="ffi-demo:main",
               c_sources=["samples/ffi/c/fnv.c"],
               archives=["/usr/lib/x86_64-linux-gnu/libz.a"])
project.run("ffi", binary="ffi", args=["round", "trip"])

# samples/primes: a zstd-compressed core.
project.library("primes", ["primes.lisp"], directory="samples/primes",
                policy={"speed": 3, "safety": 1})
project.binary("primes", libraries=["primes"], entry="primes:main", compression=True)
project.run("primes", binary="primes", args=["1000000"])

# samples/ppcre-grep: an ASDF system on cl-ppcre and alexandria.
project.asdf_system("ppcre-grep", registry=["samples/ppcre-grep"])
project.binary("ppcre-grep", libraries=["ppcre-grep"], entry="ppcre-grep:main")
project.run("ppcre-grep", binary="ppcre-grep", args=["-i", "^\\(defsystem", "samples/ppcre-grep/ppcre-grep.asd"])
# Its FiveAM tests, and cl-ppcre's own test suite, each in a static executable.
project.asdf_system("ppcre-grep/test", registry=["samples/ppcre-grep"])
project.test("ppcre-grep-tests", libraries=["ppcre-grep--test"], function="ppcre-grep-test:run-tests")
project.asdf_system("cl-ppcre/test")
project.test("cl-ppcre-tests", libraries=["cl-ppcre--test"], function="cl-ppcre-test:run-all-tests")

# samples/webserver: hunchentoot, with cl+ssl and OpenSSL linked statically.
project.asdf_system("webserver", registry=["samples/webserver"])
project.binary("webserver", libraries=["webserver"], entry="webserver:main",
               foreign_libraries={"libssl": ["/usr/lib/x86_64-linux-gnu/libssl.a"],
                                  "libcrypto": ["/usr/lib/x86_64-linux-gnu/libcrypto.a"]})
project.run("webserver", binary="webserver", args=["8080"])

DOIT_CONFIG = lispbuild.doit_config(project)


def task_lispbuild():
    yield from lispbuild.tasks(project)
