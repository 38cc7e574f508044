(defpackage #:ffi-demo
  (:use #:cl)
  (:export #:main))
