;;;; Compiles lispbuild's own Lisp, once per SBCL build (driver.py):
;;;;   sbcl --script bootstrap.lisp OUT.fasl DEV-OUT.fasl ASDF-OUT.fasl ASDF.fasl MAIN.lisp
;;;;        SOURCE... -- DEV-SOURCE... -- ASDF-SOURCE...
;;;; Each SOURCE is compiled and loaded in turn (the later ones use the
;;;; earlier ones' package and macros), then MAIN.lisp is compiled (not
;;;; run); OUT.fasl is their FASLs, one after the other, as SBCL loads
;;;; concatenated FASLs. The DEV-SOURCEs (what only development executables
;;;; hold) are compiled the same way after them, into DEV-OUT.fasl; the
;;;; ASDF-SOURCEs with ASDF.fasl loaded (the ASDF the build uses,
;;;; driver.py), into ASDF-OUT.fasl.

;;; lispbuild.fasl is loaded into every image lispbuild dumps, so it must be
;;; the same bytes wherever lispbuild is installed and whenever its files
;;; were written: each source is named lispbuild/sbcl/NAME (driver.py runs
;;; this from the directory that holds lispbuild/), its write date is 0, and the FASL starts
;;; without the "#!RUNTIME --script" line.
(load (merge-pathnames "internals.lisp" *load-truename*))  ; checks this SBCL first
(setf sb-ext:*runtime-pathname* nil)
(lispbuild/sbcl:encapsulate 'file-write-date 'bootstrap
                            (lambda (real file) (declare (ignore real file)) 0))

(defun compile-quietly (source output)
  (multiple-value-bind (fasl warnings-p failure-p)
      (with-compilation-unit (:source-namestring source)
        (compile-file source :output-file output :verbose nil :print nil))
    (declare (ignore warnings-p))
    (when (or (null fasl) failure-p)
      (format *error-output* "~&compiling ~A failed~%" source)
      (sb-ext:exit :code 1 :abort t))
    fasl))

(defun concatenate-fasls (fasls output)
  (with-open-file (out output :direction :output :element-type '(unsigned-byte 8)
                              :if-exists :supersede)
    (dolist (fasl fasls)
      (with-open-file (in fasl :element-type '(unsigned-byte 8))
        (let ((buffer (make-array (file-length in) :element-type '(unsigned-byte 8))))
          (read-sequence buffer in)
          (write-sequence buffer out)))
      (delete-file fasl))))

(defun compile-and-load (sources output)
  "The FASL of each of SOURCES, compiled after loading the ones before."
  (loop for source in sources
        for i from 0
        collect (let ((fasl (compile-quietly source (format nil "~A.~D.part" output i))))
                  (load fasl)
                  fasl)))

(defun split-at-dashes (arguments)
  (let ((dashes (position "--" arguments :test #'string=)))
    (if dashes
        (cons (subseq arguments 0 dashes) (split-at-dashes (subseq arguments (1+ dashes))))
        (list arguments))))

(destructuring-bind (output dev-output asdf-output asdf-fasl main &rest arguments)
    (rest sb-ext:*posix-argv*)
  (destructuring-bind (sources dev-sources asdf-sources) (split-at-dashes arguments)
    (concatenate-fasls (append (compile-and-load sources output)
                               (list (compile-quietly main (format nil "~A.main.part" output))))
                       output)
    (concatenate-fasls (compile-and-load dev-sources dev-output) dev-output)
    (load asdf-fasl)
    (concatenate-fasls (compile-and-load asdf-sources asdf-output) asdf-output)))
