(defpackage #:ppcre-grep
  (:use #:cl)
  (:export #:main))
