;;;; A request: its job read, performed, and the process's end.

(defpackage #:lispbuild/request
  (:use #:cl #:lispbuild/driver)
  (:import-from #:lispbuild/compile #:compile-job #:check-undefined-job)
  (:import-from #:lispbuild/grovel #:grovel-job #:wrapper-job)
  (:import-from #:lispbuild/coverage #:coverage-job)
  (:import-from #:lispbuild/dump #:dump-job #:run-finalizers-in-main-thread
                #:fix-os-random-seed)
  (:export #:run-job #:run-request))
(in-package #:lispbuild/request)

(defun run-job (job)
  "Perform JOB, whose steps have been performed; true on success."
  (ecase (first job)
    (:compile (apply #'compile-job (rest job)))
    (:dump (apply #'dump-job (rest job)))
    (:check-undefined (apply #'check-undefined-job (rest job)))
    (:grovel (apply #'grovel-job (rest job)))
    (:wrapper (apply #'wrapper-job (rest job)))
    (:coverage (apply #'coverage-job (rest job)))
    (:asdf-graph
     (ensure-asdf)
     (prog1 (apply #'asdf-graph (rest job))
       (write-files-read (getf (rest job) :reads))))))

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
