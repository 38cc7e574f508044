(in-package #:hello)

(defun greeting ()
  ;; Built with the feature :hello-shout, the program shouts.
  #+hello-shout "HELLO FROM A STATIC SBCL"
  #-hello-shout "hello from a static SBCL")

(defun main (args)
  "Print the command-line arguments; exit with the code after --exit."
  (format t "~A: ~D argument~:P~%" (greeting) (length args))
  (write-string (numbered args))
  (or (requested-exit-code args) 0))
