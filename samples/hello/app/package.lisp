(defpackage #:hello
  (:use #:cl #:hello-util)
  (:export #:main))
