;;;; A request: its job read, performed, and the process's end.

(in-package #:lispbuild-driver)

(defun run-job (job)
  "Perform JOB, whose steps have been performed; true on success."
  (ecase (first job)
    (:compile (apply #'compile-job (rest job)))
    (:dump (apply #'dump-job (rest job)))
    (:check-undefined (apply #'check-undefined-job (rest job)))
    (:grovel (apply #'grovel-job (rest job)))
    (:wrapper (apply #'wrapper-job (rest job)))
    (:asdf-graph
     (ensure-asdf)
     (prog1 (apply #'call-asdf-support "ASDF-GRAPH" (rest job))
       (write-files-read (getf (rest job) :reads))))))

(defun read-request (file)
  (with-open-file (in file :external-format :utf-8)
    (with-standard-io-syntax
      (let ((*read-eval* nil))
        (read in)))))

(defun run-request (file)
  "A fresh SBCL's whole life: the steps, then the job; exits. A canonical
request (a release dump) first stops what would make its allocation depend
on timing or on the operating system's randomness."
  (destructuring-bind (job &key asdf asdf-support asdf-cache canonical build-seed)
      (read-request file)
    (when canonical
      (run-finalizers-in-main-thread)
      (fix-os-random-seed build-seed))
    (record-files-read)
    (setf *asdf* asdf
          *asdf-support* asdf-support
          *asdf-cache* asdf-cache)
    (let ((ok (and (perform-steps (getf (rest job) :steps))
                   (run-job job))))
      (write-diagnostics (getf (rest job) :diagnostics))
      (sb-ext:exit :code (if ok 0 1) :abort t))))
