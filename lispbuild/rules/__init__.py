"""What each kind of task is: its Action (inputs, parameters, outputs,
toolchain, load state) and the function that runs it, as plain data the
rebuilder keys and doit schedules (tasks.py). Task names are stable:

    grovel:LIB/FILE run a CFFI grovel or wrapper file's processor: the Lisp its fasl: compiles
    fasl:LIB/FILE   compile one Lisp file
    lib:LIB         report what the library's files refer to that it leaves undefined
    clib:PATH       a library's C file as a shared library, for the SBCLs that load it
    c:PATH          compile one C source with musl-gcc
    core:NAME       load the FASLs and dump the image, with its linkage record
    linkage:NAME    resolve the image's foreign symbols; write the symbol table
    runtime:NAME    link the static runtime
    exe:NAME        embed the core: build/bin/NAME
    run:NAME        run a built executable (declared with Project.run); test:NAME a test
    release-core:NAME, release-linkage:NAME, release-runtime:NAME,
    release-exe:NAME  the same in release mode (a canonical dump), under build/release/NAME/
    release:NAME    smoke-run the release executable; write dist/NAME-VERSION-TARGET.tar.gz
    reload:NAME     in a watch: load the new FASLs into the program run:NAME runs (reload.py)
    coverage-run:NAME, coverage-report   `doit coverage`'s: a suite instrumented, run; the report

lisp.py, binary.py, release.py, run.py and coverage.py say what each does.
"""
