(in-package #:hello-util)

(defun numbered (items)
  "Each item on a line of its own, after its 1-based number."
  (with-output-to-string (out)
    (loop for item in items
          for n from 1
          do (format out "~D: ~A~%" n item))))

(defun requested-exit-code (args)
  "The integer that follows --exit in ARGS, if any."
  (let ((tail (member "--exit" args :test #'string=)))
    (when (second tail)
      (parse-integer (second tail) :junk-allowed t))))
