(defpackage #:hello-util
  (:use #:cl)
  (:export #:numbered #:requested-exit-code))
