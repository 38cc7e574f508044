;;;; CFFI's grovel and wrapper files: the grovel and wrapper jobs.

(defpackage #:lispbuild/grovel
  (:use #:cl #:lispbuild/driver)
  (:export #:grovel-job #:wrapper-job))
(in-package #:lispbuild/grovel)

(defun cffi-grovel-function (name source kind)
  "CFFI-GROVEL's function NAME, or NIL after a note on SOURCE, a KIND file
of a system that did not load CFFI-GROVEL."
  (or (and (find-package "CFFI-GROVEL") (find-symbol name "CFFI-GROVEL"))
      (progn (note source nil "ERROR"
                   (format nil "CFFI-GROVEL is not loaded: a system with a ~A file names it ~
                                in :defsystem-depends-on" kind))
             nil)))

;;; CFFI grovel files: a specification of C types and constants that
;;; CFFI-GROVEL turns into a C program, whose output is the Lisp to
;;; compile. The program is built with CC (musl-gcc): the sizes and
;;; constants are those of the C library the executable links.

(defun grovel-job (&key source output cc cc-flags features &allow-other-keys)
  "Run SOURCE's groveller, built with CC and CC-FLAGS after CFFI's own, and
write the Lisp it writes to OUTPUT."
  (push-features features)
  (let ((process (cffi-grovel-function "PROCESS-GROVEL-FILE" source "grovel")))
    (unless process
      (return-from grovel-job nil))
    (handler-case
        (progv (list (find-symbol "*CC*" "CFFI-TOOLCHAIN") (find-symbol "*LD*" "CFFI-TOOLCHAIN")
                     (find-symbol "*CC-FLAGS*" "CFFI-TOOLCHAIN"))
            (list cc cc (append (symbol-value (find-symbol "*CC-FLAGS*" "CFFI-TOOLCHAIN"))
                                cc-flags))
          (let* ((output (merge-pathnames output))
                 (written (funcall process source
                                   (make-pathname :name (pathname-name source) :type "lisp"
                                                  :defaults output))))
            (rename-file written output)
            t))
      (error (c)
        ;; A C compiler or program that failed: CFFI's message is mostly
        ;; the command line; the compiler's own words follow in the job's
        ;; output, which the message includes.
        (note source nil "ERROR"
              (if (search "Subprocess" (princ-to-string c))
                  "the grovel file's C program failed to build or run (output below)"
                  c))
        nil))))

;;; CFFI wrapper files: C functions written in Lisp forms, which
;;; CFFI-GROVEL turns into a C library and the bindings that call it. The
;;; library is built by the tasks that build C files (a shared library for
;;; the SBCLs that load the bindings, an object for the static link), and
;;; the bindings load it by its file's name.

(defun write-wrapper-bindings (output library forms)
  "The Lisp that loads LIBRARY (a file name without directory, found on
LD_LIBRARY_PATH, or linked into the static executable), then FORMS."
  (let ((name (intern (string-upcase (pathname-name library)) "KEYWORD")))
    (with-open-file (out output :direction :output :if-exists :supersede)
      (with-standard-io-syntax
        (let ((*package* (find-package "CL"))
              (*print-readably* nil))
          (format out ";;;; Written by lispbuild with CFFI-GROVEL: do not edit.~%")
          (pprint `(progn (,(find-symbol "DEFINE-FOREIGN-LIBRARY" "CFFI")
                           (,name :type :grovel-wrapper)
                           (t ,library))
                          (,(find-symbol "USE-FOREIGN-LIBRARY" "CFFI") ,name))
                  out)
          (fresh-line out)
          (dolist (form forms)
            (print form out))
          (terpri out))))))

(defun wrapper-job (&key source output c-output features &allow-other-keys)
  "Process SOURCE, a wrapper file: the C library it specifies to C-OUTPUT,
its bindings to OUTPUT."
  (push-features features)
  (let ((generate (cffi-grovel-function "GENERATE-C-LIB-FILE" source "wrapper")))
    (unless generate
      (return-from wrapper-job nil))
    (handler-case
        (let* ((flags (find-symbol "*CC-FLAGS*" "CFFI-TOOLCHAIN"))
               (before (symbol-value flags))
               (c-output (merge-pathnames c-output)))
          (progv (list flags) (list before)
            (multiple-value-bind (written forms)
                (with-standard-io-syntax
                  (funcall generate source (make-pathname :type "lisp" :defaults c-output)))
              (unless (equal (symbol-value flags) before)
                (note source nil "ERROR"
                      (format nil "a FLAG form asks for C compiler flags ~S: lispbuild builds ~
                                   a wrapper's C file with the flags of every C file"
                              (ldiff (symbol-value flags) before)))
                (return-from wrapper-job nil))
              (rename-file written c-output)
              (write-wrapper-bindings output (format nil "~A.so" (pathname-name c-output))
                                      forms)
              t)))
      (error (c)
        (note source nil "ERROR" c)
        nil))))

