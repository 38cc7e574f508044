(defpackage #:webserver
  (:use #:cl)
  (:export #:main))
(in-package #:webserver)

(defun front-page-text ()
  ;; The version number comes from libcrypto, linked in statically.
  (format nil "hello from a static hunchentoot~%OpenSSL #x~X~%"
          (cl+ssl::compat-openssl-version)))

(hunchentoot:define-easy-handler (front-page :uri "/") ()
  (setf (hunchentoot:content-type*) "text/plain; charset=utf-8")
  (front-page-text))

(defun main (args)
  "webserver [PORT]: serve / on 127.0.0.1:PORT (default 8080) until killed.
webserver --check: print the front page's text and exit."
  ;; Hunchentoot's session secrets come from a random state it seeds when
  ;; it is loaded, that is when the image is built: a release build seeds
  ;; it from the release's identity, so every copy would share it. Each
  ;; process seeds its own.
  (setf hunchentoot::*the-random-state* (make-random-state t))
  (when (equal (first args) "--check")
    (write-string (front-page-text))
    (return-from main 0))
  (let* ((port (parse-integer (or (first args) "8080")))
         (acceptor (make-instance 'hunchentoot:easy-acceptor
                                  :address "127.0.0.1" :port port
                                  :access-log-destination nil)))
    (hunchentoot:start acceptor)
    (format t "listening on http://127.0.0.1:~D/~%" port)
    (finish-output)
    (loop (sleep 60))))
