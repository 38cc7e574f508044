;;;; Hot reload, for development executables only: compiled into
;;;; development.fasl (with develop.lisp, which starts it), which a
;;;; development dump loads and a release dump never sees. A program started by `doit watch run:NAME` finds
;;;; LISPBUILD_RELOAD_SOCKET in its environment; it then listens there (a
;;;; Unix socket, mode 0600) in a thread of its own, and loads the FASLs
;;;; the watch names into itself, as C-c C-k does in an editor's REPL.
;;;;
;;;; One request per connection: the FASLs' paths, one a line, then an
;;;; empty line; one answer: "ok MILLISECONDS" or "error TEXT" (the first
;;;; failure; the FASLs after it are not loaded, and the watch restarts the
;;;; program). The program's RELOAD-HOOK, if the binary names one, is called
;;;; with a function of no arguments that does the loading: the program
;;;; calls it where its code may be replaced (holding the lock of its
;;;; requests, say), within +HOOK-SECONDS+.

(defpackage #:lispbuild/reload
  (:use #:cl)
  (:local-nicknames (#:sbcl #:lispbuild/sbcl))
  (:export #:start-listener))
(in-package #:lispbuild/reload)

(defparameter *socket-variable* "LISPBUILD_RELOAD_SOCKET")
(defconstant +hook-seconds+ 5)
(defconstant +af-unix+ 1)
(defconstant +sock-stream+ 1)
(defconstant +sock-cloexec+ #o2000000)
(defconstant +sockaddr-un-size+ 110)   ; sa_family_t, then 108 bytes of path

(defmacro c-call (name result &rest typed-arguments)
  "Call the C function NAME; TYPED-ARGUMENTS alternate alien types and values."
  (let ((types (loop for (type) on typed-arguments by #'cddr collect type))
        (values (loop for (nil value) on typed-arguments by #'cddr collect value)))
    `(sb-alien:alien-funcall
      (sb-alien:extern-alien ,name (function ,result ,@types)) ,@values)))

(defun listen-on (path)
  "A listening socket bound to PATH (mode 0600: umask while binding; no
other thread runs yet), or NIL after saying why on standard error."
  (let ((fd (c-call "socket" sb-alien:int sb-alien:int +af-unix+
                    sb-alien:int (logior +sock-stream+ +sock-cloexec+) sb-alien:int 0))
        (address (make-array +sockaddr-un-size+ :element-type '(unsigned-byte 8)
                                                :initial-element 0))
        (name (sb-ext:string-to-octets path :external-format :utf-8)))
    (flet ((fail (what)
             (format *error-output* "~&lispbuild: no hot reload: ~A ~A failed (errno ~D)~%"
                     what path (sb-alien:get-errno))
             (when (>= fd 0) (c-call "close" sb-alien:int sb-alien:int fd))
             (return-from listen-on nil)))
      (when (minusp fd) (fail "socket for"))
      (when (>= (length name) (- +sockaddr-un-size+ 2)) (fail "naming"))
      (setf (aref address 0) +af-unix+)  ; little-endian sa_family_t
      (replace address name :start1 2)
      (c-call "unlink" sb-alien:int sb-alien:c-string path)
      (let* ((mask (c-call "umask" sb-alien:unsigned-int sb-alien:unsigned-int #o177))
             (bound (sbcl:with-pinned-objects (address)
                      (c-call "bind" sb-alien:int sb-alien:int fd
                              sbcl:system-area-pointer (sbcl:vector-sap address)
                              sb-alien:unsigned-int +sockaddr-un-size+))))
        (c-call "umask" sb-alien:unsigned-int sb-alien:unsigned-int mask)
        (when (minusp bound) (fail "bind to")))
      (when (minusp (c-call "listen" sb-alien:int sb-alien:int fd sb-alien:int 4))
        (fail "listen on"))
      fd)))

(defun load-fasls (fasls)
  "Load FASLS in order: \"ok MILLISECONDS\", or \"error TEXT\" at the first
that fails. Redefinition warnings are what a reload is for: muffled."
  (let ((start (get-internal-real-time)))
    (dolist (fasl fasls)
      (handler-case (handler-bind ((warning #'muffle-warning))
                      (load fasl))
        (error (condition)
          (return-from load-fasls
            (substitute #\Space #\Newline
                        (format nil "error ~A failed to load: ~A" (file-namestring fasl)
                                (handler-case (princ-to-string condition)
                                  (error () (type-of condition)))))))))
    (format nil "ok ~D" (round (* 1000 (- (get-internal-real-time) start))
                               internal-time-units-per-second))))

(defun reload (fasls hook)
  "LOAD-FASLS, at once or where the program's HOOK calls it. The hook runs
in a thread of its own, so that the listener can give up waiting for it:
if it has not called its argument within +HOOK-SECONDS+, that argument
does nothing when it is called at last (the watch restarts the program)."
  (if (null hook)
      (load-fasls fasls)
      (let ((lock (sb-thread:make-mutex))
            (done (sb-thread:make-semaphore))
            (state :waiting)
            (answer nil))
        (sb-thread:make-thread
         (lambda ()
           (unwind-protect
                (handler-case
                    (funcall hook (lambda ()
                                    (when (sb-thread:with-mutex (lock)
                                            (when (eq state :waiting)
                                              (setf state :loading)))
                                      (setf answer (load-fasls fasls)))))
                  (error (condition)
                    (setf answer (substitute #\Space #\Newline
                                             (format nil "error in ~(~S~): ~A" hook condition)))))
             (sb-thread:signal-semaphore done)))
         :name "lispbuild reload hook")
        (unless (sb-thread:wait-on-semaphore done :timeout +hook-seconds+)
          (when (sb-thread:with-mutex (lock)
                  (when (eq state :waiting)
                    (setf state :given-up)))
            (return-from reload
              (format nil "error ~(~S~) did not call its argument within ~D s"
                      hook +hook-seconds+)))
          (sb-thread:wait-on-semaphore done))
        (or answer (format nil "error ~(~S~) returned without calling its argument" hook)))))

(defun serve-one (client hook)
  (let ((stream (sbcl:make-fd-stream client :input t :output t :buffering :full
                                              :external-format :utf-8 :auto-close t)))
    (unwind-protect
         (let ((fasls (loop for line = (read-line stream nil "")
                            until (string= line "")
                            collect line)))
           (write-line (reload fasls hook) stream)
           (finish-output stream))
      (close stream))))

(defun serve (fd hook)
  (loop (let ((client (c-call "accept" sb-alien:int sb-alien:int fd
                              sbcl:system-area-pointer (sbcl:int-sap 0)
                              sbcl:system-area-pointer (sbcl:int-sap 0))))
          (if (minusp client)
              (sleep 0.01)  ; EINTR; a failed accept must not spin
              (ignore-errors (serve-one client hook))))))

(defun start-listener (hook)
  "Listen for reloads if the watch asked for them (its variable is then
removed, so that programs this one starts do not listen in its place).
HOOK: a function designator, or NIL."
  (let ((path (sb-ext:posix-getenv *socket-variable*)))
    (when (and path (plusp (length path)))
      (c-call "unsetenv" sb-alien:int sb-alien:c-string *socket-variable*)
      (let ((fd (listen-on path)))
        (when fd
          ;; Ephemeral: the program's exit does not wait for it.
          (sbcl:make-system-thread "lispbuild reload" #'serve (list fd hook) nil))))))
