;;;; The last part of lispbuild.fasl: run what the command line asks,
;;;;   sbcl --script lispbuild.fasl run REQUEST    a fresh SBCL's job (request.lisp)
;;;;   sbcl --script lispbuild.fasl serve CONFIG   a warm worker (worker.lisp)

(destructuring-bind (command file) (rest sb-ext:*posix-argv*)
  (cond ((string= command "run") (lispbuild/request:run-request file))
        ((string= command "serve") (lispbuild/worker:serve-from-config file))
        (t (error "unknown command ~A" command))))
