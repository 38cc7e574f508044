(defpackage #:application
  (:use #:cl)
  (:export #:main))
