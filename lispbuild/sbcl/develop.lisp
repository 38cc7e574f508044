;;;; What a development executable does besides its entry, asked for by
;;;; its environment (development.fasl, which release dumps never load):
;;;;   LISPBUILD_MAIN=repl          SBCL's REPL, with the program loaded,
;;;;                                instead of the entry
;;;;   LISPBUILD_PROFILE=cpu|alloc  the entry under sb-sprof, its flat report
;;;;                                on standard error when the entry ends
;;;;   LISPBUILD_COVERAGE_FILE=F    in a test suite `doit coverage` built with
;;;;                                sb-cover: its coverage saved into F at the end
;;;; and the reload listener a watch asks for (reload.lisp).

(eval-when (:compile-toplevel :load-toplevel :execute)
  (require :sb-sprof))

(defpackage #:lispbuild/develop
  (:use #:cl)
  (:local-nicknames (#:sbcl #:lispbuild/sbcl))
  (:export #:around-entry))
(in-package #:lispbuild/develop)

(defparameter *main-variable* "LISPBUILD_MAIN")
(defparameter *profile-variable* "LISPBUILD_PROFILE")
(defparameter *profile-modes* '(("cpu" . :cpu) ("alloc" . :alloc)))
(defparameter *coverage-variable* "LISPBUILD_COVERAGE_FILE")
(defconstant +report-rows+ 30)

(defun environment-value (name)
  (let ((value (sb-ext:posix-getenv name)))
    (and value (plusp (length value)) value)))

(defun refuse (format &rest arguments)
  (format *error-output* "~&~?~%" format arguments)
  (finish-output *error-output*)
  (sb-ext:exit :code 2 :abort t))

(defun repl ()
  "SBCL's own REPL, its debugger on: the program is loaded, its entry not
called. Ends with 0 at the end of input, as sbcl does."
  (sb-ext:enable-debugger)
  (sbcl:toplevel-repl nil)
  0)

(defun profiled (call mode)
  "CALL's value, sampled in MODE; the flat report is printed however the
entry ends (a return, EXIT, Ctrl-C)."
  (unwind-protect
       (sb-sprof:with-profiling (:mode mode :threads :all :sample-interval 0.001
                                  :max-samples 1000000)
         (funcall call))
    (let ((*standard-output* *error-output*))
      (format t "~&;;; LISPBUILD_PROFILE=~(~A~): sb-sprof's flat report~%" mode)
      (sb-sprof:report :type :flat :max +report-rows+)
      (finish-output))))

(defun saving-coverage (call file)
  "CALL, then the image's coverage saved into FILE however it ended."
  (lambda ()
    (unwind-protect (funcall call)
      (funcall (find-symbol "SAVE-COVERAGE-IN-FILE" "SB-COVER") file))))

(defun around-entry (call hook)
  "Run the program's entry, CALL (a function of no arguments that returns
the exit code), as the environment asks; listen for reloads first
(HOOK: the binary's reload hook, or NIL)."
  (lispbuild/reload:start-listener hook)
  (let ((main (environment-value *main-variable*))
        (profile (environment-value *profile-variable*))
        (coverage (environment-value *coverage-variable*)))
    (when (and coverage (find-package "SB-COVER"))
      (setf call (saving-coverage call coverage)))
    (cond ((and main (string-equal main "repl")) (repl))
          (main (refuse "~A=~A: the only value it takes is repl" *main-variable* main))
          ((null profile) (funcall call))
          ((assoc profile *profile-modes* :test #'string-equal)
           (profiled call (cdr (assoc profile *profile-modes* :test #'string-equal))))
          (t (refuse "~A=~A: it takes cpu or alloc" *profile-variable* profile)))))

(setf lispbuild/dump:*around-entry* #'around-entry)
