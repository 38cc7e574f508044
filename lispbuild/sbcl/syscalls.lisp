;;;; What a warm worker (worker.lisp) asks of the kernel: fork, wait,
;;;; poll, open and write on file descriptors, whether a process runs; and
;;;; SBCL's finalizer thread, stopped to fork and for a canonical dump
;;;; (dump.lisp).

(defpackage #:lispbuild/syscalls
  (:use #:cl)
  (:local-nicknames (#:sbcl #:lispbuild/sbcl))
  (:export #:+o-nonblock+ #:+pollin+ #:+pollerr+ #:+pollhup+ #:+sigkill+
           #:cannot-fork #:*threads-running* #:stop-finalizer-thread #:threads-running-p
           #:os-threads #:fork-process #:reap-child #:poll-fds #:open-fd #:write-line-to-fd
           #:owner-alive-p))
(in-package #:lispbuild/syscalls)

;;; System calls. All but fork are in SBCL's runtime already, so this file
;;; adds a single entry, "fork", to the linkage table.

(defconstant +o-nonblock+ #o4000)
(defconstant +wnohang+ 1)
(defconstant +pollin+ 1)
(defconstant +pollerr+ 8)
(defconstant +pollhup+ 16)
(defconstant +sigkill+ 9)

(define-condition cannot-fork (error)
  ((why :initarg :why :reader why))
  (:report (lambda (c stream) (write-string (why c) stream))))

(defparameter *threads-running* "a thread is running (started while loading a library)")

(defun stop-finalizer-thread ()
  "Stop SBCL's finalizer thread, as SB-POSIX:FORK does; true if other
threads run nonetheless (as Lisp sees them: see OS-THREADS)."
  (cdr (sbcl:with-system-mutex (sbcl:*make-thread-lock*)
         (sbcl:finalizer-thread-stop)
         (sbcl:%dispose-thread-structs)
         (sbcl:avltree-list sbcl:*all-threads*))))

(defun os-threads ()
  "The process's OS threads: Linux counts them into the link count of
/proc/self/task (two more). Asked without allocating anything that
depends on this process (its pid, say)."
  (- (nth-value 4 (sbcl:unix-stat "/proc/self/task")) 2))

(defun threads-running-p ()
  (prog1 (stop-finalizer-thread)
    (sbcl:finalizer-thread-start)))

(defun fork-process ()
  "fork(2), as SB-POSIX:FORK does it: SBCL's finalizer thread is stopped
around it, and a process with threads of its own cannot fork."
  (when (stop-finalizer-thread)
    (sbcl:finalizer-thread-start)
    (error 'cannot-fork :why *threads-running*))
  (let ((pid (sb-alien:alien-funcall (sb-alien:extern-alien "fork" (function sb-alien:int)))))
    (sbcl:finalizer-thread-start)
    (when (minusp pid)
      (error 'cannot-fork :why "fork() failed"))
    pid))

(defun reap-child ()
  "A child that ended, as (values PID STATUS-TEXT), or NIL if none did."
  (sb-alien:with-alien ((status sb-alien:int))
    (let ((pid (sb-alien:alien-funcall
                (sb-alien:extern-alien "waitpid" (function sb-alien:int sb-alien:int
                                                           (* sb-alien:int) sb-alien:int))
                -1 (sb-alien:addr status) +wnohang+)))
      (when (plusp pid)
        (values pid (if (zerop (logand status #x7f))
                        (format nil "exit ~D" (ldb (byte 8 8) status))
                        (format nil "signal ~D" (logand status #x7f))))))))

(defun poll-fds (fds timeout-ms)
  "poll(2) on FDS, a list of (FD . EVENTS); returns the list of
(FD . REVENTS) that have something to report."
  (let ((v (make-array (* 2 (length fds)) :element-type '(unsigned-byte 32))))
    (loop for (fd . events) in fds
          for i from 0 by 2
          do (setf (aref v i) (ldb (byte 32 0) fd)
                   (aref v (1+ i)) events))
    (sbcl:with-pinned-objects (v)
      (sb-alien:alien-funcall
       (sb-alien:extern-alien "poll" (function sb-alien:int sbcl:system-area-pointer
                                               sb-alien:unsigned-long sb-alien:int))
       (sbcl:vector-sap v) (length fds) timeout-ms))
    (loop for (fd) in fds
          for i from 1 by 2
          for revents = (ash (aref v i) -16)
          unless (zerop revents) collect (cons fd revents))))

(defun open-fd (path flags)
  (or (sbcl:unix-open path flags 0) (error "cannot open ~A" path)))

(defun write-line-to-fd (fd text)
  (let ((octets (sb-ext:string-to-octets (format nil "~A~%" text) :external-format :utf-8)))
    (sbcl:unix-write fd octets 0 (length octets))))

(defun owner-alive-p (pid)
  "Whether PID runs: not gone, and not a zombie its parent has yet to reap."
  (and (not (eql -1 (sbcl:unix-kill pid 0)))
       (let ((stat (ignore-errors
                    (with-open-file (in (format nil "/proc/~D/stat" pid)) (read-line in)))))
         (not (and stat (char= #\Z (char stat (+ 2 (position #\) stat :from-end t)))))))))
