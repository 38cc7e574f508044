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

;;; Hunchentoot seeds its random state (session secrets) from /dev/urandom
;;; when it is loaded, which would put build-time randomness into the
;;; executable: every copy would share it, and no two builds would be the
;;; same bytes. The saved image holds a fixed state; each process seeds
;;; its own when it starts.
(push (lambda () (setf hunchentoot::*the-random-state* (sb-ext:seed-random-state 0)))
      sb-ext:*save-hooks*)

(defun main (args)
  "webserver [PORT]: serve / on 127.0.0.1:PORT (default 8080) until killed.
webserver --check: print the front page's text and exit."
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
