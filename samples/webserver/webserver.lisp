(defpackage #:webserver
  (:use #:cl)
  (:export #:main))
(in-package #:webserver)

(hunchentoot:define-easy-handler (front-page :uri "/") ()
  (setf (hunchentoot:content-type*) "text/plain; charset=utf-8")
  ;; The version number comes from libcrypto, linked in statically.
  (format nil "hello from a static hunchentoot~%OpenSSL #x~X~%"
          (cl+ssl::compat-openssl-version)))

(defun main (args)
  "webserver [PORT]: serve / on 127.0.0.1:PORT (default 8080) until killed."
  (let* ((port (parse-integer (or (first args) "8080")))
         (acceptor (make-instance 'hunchentoot:easy-acceptor
                                  :address "127.0.0.1" :port port
                                  :access-log-destination nil)))
    (hunchentoot:start acceptor)
    (format t "listening on http://127.0.0.1:~D/~%" port)
    (finish-output)
    (loop (sleep 60))))
