;;;; The last part of lispbuild.fasl: run what the command line asks
;;;; (`sbcl --script lispbuild.fasl COMMAND FILE`, see worker.lisp).

(lispbuild-driver::main (rest sb-ext:*posix-argv*))
