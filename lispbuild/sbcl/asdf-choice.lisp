;;;; Which ASDF every lispbuild SBCL loads (driver.py, asdf_action):
;;;;   sbcl --script asdf-choice.lisp version           prints SBCL's own ASDF's version
;;;;   sbcl --script asdf-choice.lisp compile SRC OUT    compiles a newer asdf.lisp
;;;; ASDF upgrades itself to the newest asdf.asd its source registry finds
;;;; (Debian's cl-asdf), compiling asdf.lisp into each build's cache; lispbuild
;;;; makes that choice once, compiles the newer one once per machine, and
;;;; loads it in place of SBCL's.

(load (merge-pathnames "internals.lisp" *load-truename*))  ; checks this SBCL first

(destructuring-bind (mode &optional source output) (rest sb-ext:*posix-argv*)
  (cond ((string= mode "version")
         (require "ASDF")
         (write-line (funcall (find-symbol "ASDF-VERSION" "ASDF"))))
        (t
         ;; The same bytes on every machine: no runtime path in the FASL's
         ;; first line, and the source's write date (which the FASL keeps)
         ;; taken as 0, as for lispbuild's own FASLs (bootstrap.lisp).
         (setf sb-ext:*runtime-pathname* nil)
         (lispbuild/sbcl:encapsulate 'file-write-date 'asdf-choice
                                     (lambda (real file) (declare (ignore real file)) 0))
         (multiple-value-bind (fasl warnings-p failure-p)
             (compile-file source :output-file output :verbose nil :print nil)
           (declare (ignore warnings-p))
           (unless (and fasl (not failure-p))
             (format *error-output* "~&compiling ~A failed~%" source)
             (sb-ext:exit :code 1 :abort t))))))
