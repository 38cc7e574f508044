;;;; `doit coverage`'s report (the coverage job), made in an image that has
;;;; loaded every instrumented FASL of the test suites: the runs' records,
;;;; merged, then sb-cover's own HTML report. sb-cover is in the image (a
;;;; step of the instrumented libraries), not in lispbuild's: its functions
;;;; are found by name.

(defpackage #:lispbuild/coverage
  (:use #:cl)
  (:export #:coverage-job))
(in-package #:lispbuild/coverage)

(defun sb-cover (name)
  (fdefinition (find-symbol name "SB-COVER")))

(defun read-run (file)
  "What SB-COVER:SAVE-COVERAGE-IN-FILE wrote: ((SOURCE (PATH . STATE)...)...)."
  (with-open-file (in file)
    (with-standard-io-syntax
      (let ((*package* (find-package "SB-COVER")))
        (read in)))))

(defun merged (runs)
  "One record of RUNS, as SAVE-COVERAGE gives it: a form is covered (its
state T) if any run covered it. (Restoring each run in turn would keep
the last one's: RESTORE-COVERAGE sets every state it is given.)"
  (let ((sources (make-hash-table :test 'equal))
        (order '()))
    (dolist (run runs)
      (loop for (source . states) in (read-run run)
            do (let ((paths (gethash source sources)))
                 (unless paths
                   (setf paths (setf (gethash source sources) (make-hash-table :test 'equal)))
                   (push source order))
                 (loop for (path . state) in states
                       do (when (or (eq state t) (not (nth-value 1 (gethash path paths))))
                            (setf (gethash path paths) state))))))
    (loop for source in (reverse order)
          collect (cons source (loop for path being the hash-keys of (gethash source sources)
                                       using (hash-value state)
                                     collect (cons path state))))))

(defun coverage-job (&key runs directory &allow-other-keys)
  "Merge RUNS and write sb-cover's report into DIRECTORY (cover-index.html
and a page a source file). Forms that ran while the image was built (a
DEFPACKAGE, a DEFUN's own form) ran in this image too, as it loaded the
same FASLs, and count as covered."
  (funcall (sb-cover "RESTORE-COVERAGE") (merged runs))
  (handler-bind ((warning #'muffle-warning))
    (funcall (sb-cover "REPORT") directory))
  t)
