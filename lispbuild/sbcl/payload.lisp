;;;; A development executable's payload: the project's own FASLs, embedded
;;;; in the executable beside the image of everything they load onto, and
;;;; loaded when the program starts (development.fasl only; docs/watch.md).
;;;; An edit of the project's Lisp then costs a compile and a copy, not a
;;;; dump: the image (base:NAME) stays as it was.
;;;;
;;;; The payload is a table of the resources' form (resources.lisp) whose
;;;; mark ends 16 bytes before the resources' own. Each entry is a load
;;;; step, as the build performed it: its name the step printed readably,
;;;; (:LOAD FASL) or (:LOAD FASL SYSTEM SOURCE) with the FASL's bytes, or
;;;; (:LOADED SYSTEM) with none, its paths relative to the directory the
;;;; base image was dumped in. A FASL loads from a file in memory whose
;;;; pathname is the one the build loaded it from, so *LOAD-PATHNAME* says
;;;; what it said when the build loaded it.

(defpackage #:lispbuild/payload
  (:use #:cl)
  (:local-nicknames (#:sbcl #:lispbuild/sbcl))
  (:import-from #:lispbuild/resources #:embedded-entries #:embedded-octets)
  (:import-from #:lispbuild/driver #:load-step)
  (:export #:load-payload))
(in-package #:lispbuild/payload)

(defconstant +payload-magic+ #x313030594150424C) ; "LBPAY001"

(defun memory-fasl (pathname octets)
  "An input stream of OCTETS from a file in memory, named PATHNAME."
  (let ((fd (sb-alien:alien-funcall
             (sb-alien:extern-alien "memfd_create"
                                    (function sb-alien:int sb-alien:c-string sb-alien:unsigned-int))
             "lispbuild-payload" 0)))
    (when (minusp fd)
      (error "memfd_create failed (errno ~D)" (sb-alien:get-errno)))
    (sbcl:with-pinned-objects (octets)
      (loop with start = 0
            while (< start (length octets))
            do (let ((written (sbcl:unix-write fd octets start (- (length octets) start))))
                 (unless (and written (plusp written))
                   (error "writing ~A into memory failed" pathname))
                 (incf start written))))
    (sbcl:unix-lseek fd 0 sbcl:l_set)
    (sbcl:make-fd-stream fd :input t :element-type '(unsigned-byte 8)
                              :pathname pathname :file (namestring pathname)
                              :auto-close t)))

(defun perform (step octets root)
  "STEP as the build performed it, its FASL read from OCTETS, its paths
merged with ROOT."
  (destructuring-bind (kind name &optional system source) step
    (if (eq kind :load)
        (with-open-stream (fasl (memory-fasl (merge-pathnames name root) octets))
          (load-step kind fasl system (and source (namestring (merge-pathnames source root)))))
        (load-step kind name))))

(defun load-payload (root)
  "Perform the payload's steps in order, their paths merged with ROOT,
their output going nowhere, as the build's did; a failure ends the
program, saying which step failed."
  (let ((*standard-output* (make-broadcast-stream))
        (*error-output* (make-broadcast-stream))
        (error-output *error-output*))
    (dolist (entry (embedded-entries +payload-magic+ 32))
      (destructuring-bind (name start length) entry
        (let ((step (with-standard-io-syntax
                      (let ((*read-eval* nil))
                        (read-from-string name)))))
          (handler-case (perform step (embedded-octets start length) root)
            (error (condition)
              (format error-output "~&lispbuild: the program could not start: ~A: ~A~%"
                      (second step) condition)
              (finish-output error-output)
              (sb-ext:exit :code 70 :abort t))))))))

(setf lispbuild/dump:*load-payload* #'load-payload)
