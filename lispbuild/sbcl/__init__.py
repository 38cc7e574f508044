"""SBCL's side of the build: a job for SBCL (driver.py and the Lisp it
runs: driver.lisp, asdf.lisp, devdump.lisp, worker.lisp), and the runners
that run jobs (runners.py: a fresh SBCL, warm workers (worker.py), the
canonical process of a release (canonical.py))."""
