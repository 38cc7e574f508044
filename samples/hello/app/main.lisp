(in-package #:hello)

(defun main (args)
  "Print the command-line arguments; exit with the code after --exit."
  (format t "hello from a static SBCL: ~D argument~:P~%" (length args))
  (write-string (numbered args))
  (or (requested-exit-code args) 0))
