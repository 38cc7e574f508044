(in-package #:ppcre-grep)

(defun matching-lines (scanner stream)
  "The (number . line) pairs of STREAM's lines that SCANNER matches."
  (loop for line = (read-line stream nil)
        for number from 1
        while line
        when (cl-ppcre:scan scanner line)
          collect (cons number line)))

(defun main (args)
  "ppcre-grep [-i] PATTERN FILE: print the matching lines, numbered.
Exit 0 if a line matched, 1 if none did, 2 on an error, as grep does."
  (let* ((insensitive (string= (first args) "-i"))
         (args (if insensitive (rest args) args)))
    (unless (= (length args) 2)
      (format *error-output* "usage: ppcre-grep [-i] PATTERN FILE~%")
      (return-from main 2))
    (destructuring-bind (pattern file) args
      (handler-case
          (let* ((scanner (cl-ppcre:create-scanner pattern :case-insensitive-mode insensitive))
                 (matches (with-open-file (in file :external-format :utf-8)
                            (matching-lines scanner in))))
            (loop for (number . line) in matches
                  do (format t "~D:~A~%" number line))
            (format t "~D matching line~:P, longest ~D characters~%" (length matches)
                    (reduce #'max (mapcar (alexandria:compose #'length #'cdr) matches)
                            :initial-value 0))
            (if matches 0 1))
        (cl-ppcre:ppcre-syntax-error (e)
          (format *error-output* "ppcre-grep: bad pattern: ~A~%" e)
          2)
        (file-error (e)
          (format *error-output* "ppcre-grep: ~A~%" e)
          2)))))
