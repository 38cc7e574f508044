(defpackage #:ppcre-grep-test
  (:use #:cl #:fiveam)
  (:export #:run-tests))
(in-package #:ppcre-grep-test)

(def-suite ppcre-grep)
(in-suite ppcre-grep)

(defun lines-matching (pattern text &key insensitive)
  (with-input-from-string (in text)
    (ppcre-grep::matching-lines
     (cl-ppcre:create-scanner pattern :case-insensitive-mode insensitive) in)))

(test numbers-the-matching-lines
  (is (equal '((2 . "beta") (3 . "alphabet"))
             (lines-matching "bet" (format nil "alpha~%beta~%alphabet~%")))))

(test case-insensitive
  (is (equal '((1 . "Hello")) (lines-matching "^hello" "Hello" :insensitive t)))
  (is (null (lines-matching "^hello" "Hello"))))

(test no-match
  (is (null (lines-matching "z+" (format nil "a~%b~%")))))

(defun run-tests ()
  "Run the suite; true if every test passed."
  (run! 'ppcre-grep))
