;;;; The Lisp side of lispbuild: run as `sbcl --script driver.lisp REQUEST`
;;;; from the project root. REQUEST is a file holding one plist:
;;;;   (:compile :source S :output O :external-format E :requires (M...)
;;;;    :loads (F...) :features (X...) :policy ((Q . N)...) :fail-on-warning B
;;;;    :asdf-systems (S...) :asd-files (A...) :asdf-cache DIR :diagnostics D)
;;;;   (:dump :requires (M...) :loads (F...) :features (X...) :entry "pkg:fn"
;;;;    :core C :linkage L :shared-objects SO :compression B :test B
;;;;    :asdf-systems (S...) :asd-files (A...) :asdf-cache DIR :diagnostics D)
;;;;   (:image :requires (M...) :loads (F...) :asdf-systems (S...)
;;;;    :asd-files (A...) :asdf-cache DIR :core C :diagnostics D)
;;;;   (:asdf-graph :systems (S...) :registry (DIR...) :cache DIR :output O
;;;;    :diagnostics D)
;;;; A compile may run in an image dumped by :image (sbcl --core C), which
;;;; holds this driver too: it is loaded again over itself.
;;;; Problems are written to D as "FILE:LINE: KIND: text" blocks; the exit
;;;; code is 0 on success and 1 on failure.

(defpackage #:lispbuild-driver
  (:use #:cl))
(in-package #:lispbuild-driver)

(defvar *diagnostics* nil
  "Reported problems, newest first.")

(defun note (file line kind condition)
  (push (format nil "~A:~@[~D:~] ~A: ~A" file line kind
                (remove #\Return (princ-to-string condition)))
        *diagnostics*))

(defun line-at (file position)
  "The 1-based line of the first form at or after character POSITION in
FILE: SBCL's top-level form positions point just past the previous form."
  (with-open-file (in file :external-format :utf-8)
    (let ((line (1+ (loop repeat position
                          for char = (read-char in nil)
                          while char
                          count (char= char #\Newline)))))
      (loop for char = (read-char in nil)
            while char
            do (case char
                 (#\Newline (incf line))
                 (#\; (read-line in nil) (incf line))
                 ((#\Space #\Tab #\Return #\Page))
                 (t (return))))
      line)))

(defun compiler-context-line (file)
  "The line of the top-level form the compiler is working on, if any."
  (let ((context (ignore-errors (sb-c::find-error-context nil))))
    (when context
      (let ((position (sb-c::compiler-error-context-file-position context)))
        (when position (line-at file position))))))

(defun read-error-place (input-error)
  "The line and text of the reader error inside INPUT-ERROR."
  (let* ((reader-error (sb-int:encapsulated-condition input-error))
         (stream (and (typep reader-error 'stream-error)
                      (stream-error-stream reader-error)))
         (where (and stream (ignore-errors (sb-impl::stream-error-position-info stream))))
         (form-line (car (sb-c::input-error-in-compile-file-line/col input-error)))
         (line (if (typep reader-error 'end-of-file)
                   form-line
                   (or (second (assoc :line where)) form-line))))
    (values line
            (typecase reader-error
              (end-of-file
               (format nil "end of file inside the form that starts on line ~D ~
                            (a parenthesis or string is not closed)" line))
              (simple-condition
               (apply #'format nil (simple-condition-format-control reader-error)
                      (simple-condition-format-arguments reader-error)))
              (t (princ-to-string reader-error))))))

(defun write-diagnostics (path)
  (with-open-file (out path :direction :output :if-exists :supersede
                            :external-format :utf-8)
    (dolist (d (reverse *diagnostics*))
      (write-line d out))))

(defun push-features (names)
  (dolist (name names)
    (pushnew (intern name :keyword) *features*)))

(defun require-modules (modules)
  (dolist (module modules)
    (require (string-upcase module))))

(defun load-asdf-support ()
  (require "ASDF")
  ;; Loaded only when needed: an image without ASDF systems must not get ASDF.
  (load (merge-pathnames "asdf.lisp" *load-truename*)))

(defun call-asdf-support (name &rest arguments)
  (apply (find-symbol name :lispbuild-driver) arguments))

(defun prepare-asdf (systems asd-files cache)
  "Give the image ASDF and the definitions of SYSTEMS, if there are any."
  (when systems
    (load-asdf-support)
    (call-asdf-support "PREPARE-SYSTEMS" systems asd-files cache)))

(defun load-fasls (fasls)
  "Load FASLS in order; a failure is reported against the FASL's source."
  (dolist (fasl fasls t)
    (handler-case (load fasl)
      (error (condition)
        (note fasl nil "ERROR while loading" condition)
        (return nil)))))

(defun fixed-write-date (source)
  "Make FILE-WRITE-DATE of SOURCE constant: SBCL writes it into the FASL,
and a FASL must depend on the source's contents, not on when it was saved."
  (let ((truename (truename source)))
    (sb-int:encapsulate 'file-write-date 'lispbuild-driver
                        (lambda (real file)
                          (if (equal (ignore-errors (truename file)) truename)
                              0
                              (funcall real file))))))

(defvar *errors* 0)
(defvar *warnings* 0
  "Full WARNINGs seen. Counted here because inside WITH-COMPILATION-UNIT,
COMPILE-FILE's own FAILURE-P misses the warnings deferred to the unit's end.")

(defun compile-reporting (source output external-format)
  "COMPILE-FILE SOURCE to OUTPUT, noting every problem with its line.
Returns the FASL's pathname, or NIL."
  (handler-case
      (handler-bind
          ((sb-c:compiler-error
             (lambda (c)
               (incf *errors*)
               (let ((inner (sb-int:encapsulated-condition c)))
                 (if (typep inner 'sb-c::input-error-in-compile-file)
                     (multiple-value-bind (line text) (read-error-place inner)
                       (note source line "read error" text))
                     (note source (compiler-context-line source) "ERROR" inner)))))
           (warning
             (lambda (c)
               (let ((line (compiler-context-line source)))
                 (cond ((typep c 'style-warning)
                        (note source line "STYLE-WARNING" c))
                       (t (incf *warnings*)
                          (note source line "WARNING" c)))))))
        ;; The relative name keeps the project's location out of the FASL.
        (with-compilation-unit (:source-namestring source)
          (compile-file source :output-file (merge-pathnames output)
                               :external-format external-format
                               :verbose nil :print nil)))
    ;; An error the compiler does not handle, e.g. in EVAL-WHEN or IN-PACKAGE.
    ((and error (not sb-c:compiler-error)) (c)
      (incf *errors*)
      (note source (compiler-context-line source) "ERROR" c)
      nil)))

(defun compile-source (&key source output requires loads features policy fail-on-warning
                         external-format asdf-systems asd-files asdf-cache
                       &allow-other-keys)
  (require-modules requires)
  (prepare-asdf asdf-systems asd-files asdf-cache)
  (unless (load-fasls loads)
    (return-from compile-source nil))
  (push-features features)
  (proclaim `(optimize ,@(loop for (quality . level) in policy
                               collect (list (find-symbol (string-upcase quality) :cl)
                                             level))))
  (fixed-write-date source)
  (let ((fasl (compile-reporting source output
                                 (intern (string-upcase external-format) :keyword))))
    (cond ((or (null fasl) (plusp *errors*))
           (unless *diagnostics*
             (note source nil "ERROR" "compilation failed"))
           nil)
          ((and fail-on-warning (plusp *warnings*)) nil)
          (t t))))

(defun find-entry (entry)
  "The function named by ENTRY, \"package:name\" (or package::name)."
  (let* ((colon (position #\: entry))
         (package-name (string-upcase (subseq entry 0 colon)))
         (name (string-upcase (string-left-trim ":" (subseq entry colon))))
         (package (find-package package-name))
         (symbol (and package (find-symbol name package))))
    (flet ((fail (text)
             (note (format nil "entry ~A" entry) nil "ERROR" text)
             (return-from find-entry nil)))
      (cond ((null package)
             (fail (format nil "there is no package ~A" package-name)))
            ((null symbol)
             (fail (format nil "there is no symbol ~A in package ~A" name package-name)))
            ((not (fboundp symbol))
             (fail (format nil "~S is not a function" symbol)))
            (t symbol)))))

(defun toplevel-for (function test)
  "Call FUNCTION with the command-line arguments; exit with the integer it
returns (0 otherwise), 130 on an interrupt. A TEST function is called with
no arguments, and the program exits 0 if it returns true, 1 if false."
  (lambda ()
    (let ((code (handler-case (if test
                                  (if (funcall function) 0 1)
                                  (funcall function (rest sb-ext:*posix-argv*)))
                  (sb-sys:interactive-interrupt () 130))))
      (sb-ext:exit :code (if (typep code '(integer 0 255)) code 0)))))

(defun write-linkage (path)
  "One line per linkage-table entry: \"function NAME\" or \"data NAME\",
followed by \" undefined\" when this (dynamic) image could not find it
either, though the shared objects it loaded were there to provide it."
  (let* ((undefined (cdr sb-sys:*linkage-info*))
         (entries (loop for key being the hash-keys of (car sb-sys:*linkage-info*)
                        collect (format nil "~:[function~;data~] ~A~:[~; undefined~]"
                                        (consp key) (if (consp key) (car key) key)
                                        (and sb-sys:*shared-objects*
                                             (member key undefined :test #'equal))))))
    (with-open-file (out path :direction :output :if-exists :supersede)
      (dolist (line (sort entries #'string<))
        (write-line line out)))))

(defun write-shared-objects (path)
  "The shared objects the image loaded (CFFI's foreign libraries among
them): the static executable must have an archive for each."
  (with-open-file (out path :direction :output :if-exists :supersede)
    (dolist (object sb-sys:*shared-objects*)
      (write-line (sb-alien::shared-object-namestring object) out))))

(defun dump (&key requires loads features entry core linkage shared-objects compression
               test asdf-systems asd-files asdf-cache diagnostics &allow-other-keys)
  (push-features features)
  (require-modules requires)
  (prepare-asdf asdf-systems asd-files asdf-cache)
  (let ((function (and (load-fasls loads) (find-entry entry))))
    (unless function
      (return-from dump nil))
    (when asdf-systems
      (call-asdf-support "REGISTER-LOADED-SYSTEMS" asdf-systems))
    (write-linkage linkage)
    (write-shared-objects shared-objects)
    (write-diagnostics diagnostics)
    (sb-ext:disable-debugger)
    (sb-ext:save-lisp-and-die core :toplevel (toplevel-for function test)
                                   :save-runtime-options t
                                   :compression (and compression t))))

(defun dump-image (&key requires loads asdf-systems asd-files asdf-cache core diagnostics
                   &allow-other-keys)
  "Dump an image with the dependencies of a library loaded, for its compiles
to start from; they then load only their own library's files."
  (require-modules requires)
  (prepare-asdf asdf-systems asd-files asdf-cache)
  (unless (load-fasls loads)
    (return-from dump-image nil))
  (write-diagnostics diagnostics)
  (sb-ext:save-lisp-and-die core))

(defun main (request-file)
  (let* ((request (with-open-file (in request-file :external-format :utf-8)
                    (with-standard-io-syntax
                      (let ((*read-eval* nil)) (read in)))))
         (ok (ecase (first request)
               (:compile (apply #'compile-source (rest request)))
               (:dump (apply #'dump (rest request)))
               (:image (apply #'dump-image (rest request)))
               (:asdf-graph
                (load-asdf-support)
                (apply #'call-asdf-support "ASDF-GRAPH" (rest request))))))
    (write-diagnostics (getf (rest request) :diagnostics))
    (sb-ext:exit :code (if ok 0 1) :abort t)))

(main (second sb-ext:*posix-argv*))
