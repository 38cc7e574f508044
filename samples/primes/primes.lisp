(defpackage #:primes
  (:use #:cl)
  (:export #:main))
(in-package #:primes)

(defun primes-below (limit)
  "The primes below LIMIT, by the sieve of Eratosthenes."
  (let ((composite (make-array limit :element-type 'bit :initial-element 0)))
    (loop for n from 2 below limit
          when (zerop (bit composite n))
            collect n
            and do (loop for m from (* n n) below limit by n
                         do (setf (bit composite m) 1)))))

(defun main (args)
  "Print how many primes lie below the limit given (default 100), and the last."
  (let* ((limit (if args (parse-integer (first args)) 100))
         (primes (primes-below limit)))
    (format t "~D primes below ~D, the largest ~D~%"
            (length primes) limit (car (last primes)))
    0))
