;;;; A warm worker: a long-lived SBCL that holds a state (the steps of
;;;; driver.lisp performed in order) and forks a child for each job, so
;;;; that a compile or a dump pays neither SBCL's start nor the loading of
;;;; what it needs. lispbuild/sbcl/worker.py starts, finds and stops workers.
;;;;
;;;; A worker reads requests from its FIFO: each line names a request file
;;;; holding one of
;;;;   (:job :job JOB :advance K :expect (N HASH) :state (N HASH) :reply R :log L)
;;;;       JOB's steps are those after this worker's N: perform the first K
;;;;       in the worker itself (a runner moving along its library's files;
;;;;       it then holds :state), then fork a child that performs the rest
;;;;       and JOB, its output going to L; reply "started PID", then "exit N"
;;;;       or "signal N" when the child ends.
;;;;   (:spawn :config CONFIG :expect (N HASH) :reply R)
;;;;       fork a child that becomes a worker of its own (CONFIG, below),
;;;;       holding more steps; it replies "ready" once it serves.
;;;;   (:image :path P :expect (N HASH) :reply R)
;;;;       fork a child that saves this state as an image: a worker started
;;;;       from it (sbcl --core P) serves at once. Replies "started".
;;;; A request whose :expect is not this worker's state is answered
;;;; "mismatch"; one the worker cannot fork for (a thread is running)
;;;; "cannot-fork: why"; one that fails otherwise "error: why".
;;;;
;;;; CONFIG: (:id ID :fifo F :registry DIR :owner PID :library L :mode M
;;;;          :steps STEPS :state (N HASH) :asdf A :asdf-support S :asdf-cache C
;;;;          :long-lived B)   (B: the owner is a watch, which keeps workers)
;;;; A worker writes DIR/ID.json, saying who it is and what it holds, and
;;;; exits when its owner (the build's main process) is gone.
;;;; Every worker of a build is in one process group (the first calls
;;;; setsid), so the build can stop them all, and their children, at once.

(defpackage #:lispbuild/worker
  (:use #:cl #:lispbuild/driver #:lispbuild/syscalls)
  (:local-nicknames (#:sbcl #:lispbuild/sbcl))
  (:import-from #:lispbuild/request #:run-job)
  (:import-from #:lispbuild/dump #:*before-save*)
  (:import-from #:lispbuild/devdump #:prepare-fast-dump #:prepare-image-dump
                #:relocations-recorded-p #:record-relocations-now)
  (:export #:serve-from-config))
(in-package #:lispbuild/worker)

;;; The worker's own state.

(defvar *config* nil)
(defvar *state* nil "(N HASH): how many steps this worker holds, and their digest.")
(defvar *request-fd* nil)
(defvar *jobs* (make-hash-table) "child pid -> reply fd, for jobs under way")
(defvar *dumped* nil "Whether a dump was forked from this worker.")
(defvar *images* (make-hash-table) "child pid -> (temporary path . path)")

(defun config (key) (getf *config* key))

(defun write-registry ()
  "DIR/ID.json, written whole and renamed into place: who this worker is,
what it holds, and which images it is saving."
  (let* ((path (format nil "~A/~A.json" (config :registry) (config :id)))
         (tmp (format nil "~A.~D.tmp" path (sbcl:unix-getpid))))
    (with-open-file (out tmp :direction :output :if-exists :supersede)
      (format out "{\"version\": 1, \"id\": ~S, \"pid\": ~D, \"pgid\": ~D, \"owner\": ~D, \"fifo\": ~S, ~
                   \"library\": ~S, \"mode\": ~S, \"n\": ~D, \"hash\": ~S, \"images\": [~{~D~^, ~}]}~%"
              (config :id) (sbcl:unix-getpid) (config :pgid) (config :owner)
              (config :fifo) (config :library) (config :mode)
              (first *state*) (second *state*)
              (loop for pid being the hash-keys of *images* collect pid)))
    (rename-file tmp path)))

(defun close-inherited ()
  "In a child: let go of what belongs to the worker it was forked from."
  (sbcl:unix-close *request-fd*)
  (loop for fd being the hash-values of *jobs* do (sbcl:unix-close fd))
  (clrhash *jobs*)
  (clrhash *images*))

(defun redirect-output (log)
  "Send the child's standard output and error to LOG (fds 1 and 2)."
  (sbcl:unix-close 1)
  (sbcl:unix-open log (logior sbcl:o_wronly sbcl:o_creat sbcl:o_trunc) #o644)
  (sbcl:unix-close 2)
  (sbcl:unix-dup 1))

(defun exit-now (code)
  (finish-output *standard-output*)
  (finish-output *error-output*)
  (sb-ext:exit :code code :abort t))

;;; Requests.

(defun reply-fd (path)
  "The write end of the client's reply FIFO; NIL if the client is gone."
  (sbcl:unix-open path (logior sbcl:o_wronly +o-nonblock+) 0))

(defun answer (path text)
  (let ((fd (reply-fd path)))
    (when fd
      (write-line-to-fd fd text)
      (sbcl:unix-close fd))))

(defconstant +child-failed+ 3
  "The exit code of a child in which lispbuild's own code failed (not the
job's: a compile that fails exits 1); the client runs the job elsewhere.")

(defmacro as-a-child (&body body)
  "The life of a forked child: BODY, then exit. Whatever BODY signals, the
child never returns to the loop of the worker it was forked from (it would
poll that worker's FIFO, closed here, and spin): it says what happened,
on its standard error (the job's log), and exits with +CHILD-FAILED+."
  `(unwind-protect
        (handler-case (progn ,@body)
          (serious-condition (condition)
            (ignore-errors
             (format *error-output* "~&lispbuild: a worker's child (pid ~D) failed: ~A~%"
                     (sbcl:unix-getpid) condition))
            (exit-now +child-failed+)))
     (exit-now +child-failed+)))

(defun run-job-in-child (job log)
  "The life of a job's child: the rest of the steps, then the job."
  (redirect-output log)
  (let ((ok (and (perform-steps (getf (rest job) :steps))
                 (run-job job))))
    (write-diagnostics (getf (rest job) :diagnostics))
    (exit-now (if ok 0 1))))

(defun handle-job (request)
  "JOB's steps are those after this worker's state: the first ADVANCE of
them are performed here, the rest in the child."
  (destructuring-bind (&key job (advance 0) state reply log &allow-other-keys) (rest request)
    (let ((steps (getf (rest job) :steps)))
      (when (plusp advance)
        (unless (perform-steps (subseq steps 0 advance))
          ;; Half a step loaded: this worker's state is no longer known.
          (write-diagnostics (getf (rest job) :diagnostics))
          (answer reply "exit 1")
          (stop-serving))
        (setf *state* state)
        (write-registry))
      (let ((pid (fork-process)))
        (when (zerop pid)
          (as-a-child
            (close-inherited)
            (setf (getf (rest job) :steps) (nthcdr advance steps))
            (setf *before-save* #'prepare-fast-dump)
            (run-job-in-child job log)))
        (let ((fd (reply-fd reply)))
          (cond (fd (write-line-to-fd fd (format nil "started ~D" pid))
                    (setf (gethash pid *jobs*) fd
                          *dumped* (or *dumped* (eq (first job) :dump))))
                (t (sbcl:unix-kill pid +sigkill+))))))))  ; the client is gone

(defun handle-spawn (request)
  "The child inherits the reply FIFO open: until it answers, or dies, the
client sees a writer."
  (destructuring-bind (&key config reply &allow-other-keys) (rest request)
    (let* ((fd (reply-fd reply))
           (pid (and fd (handler-case (fork-process)
                          (cannot-fork (c)
                            (write-line-to-fd fd (format nil "cannot-fork: ~A" c))
                            (sbcl:unix-close fd)
                            nil)))))
      (cond ((null pid))
            ((zerop pid)
             (as-a-child
               (close-inherited)
               (let ((pgid (getf *config* :pgid)))
                 (setf *config* (list* :pgid pgid config)))
               (start-serving fd)))
            (t (write-line-to-fd fd (format nil "spawned ~D" pid))
               (sbcl:unix-close fd))))))

(defun handle-image (request)
  (destructuring-bind (&key path reply &allow-other-keys) (rest request)
    (let* ((tmp (format nil "~A.~D.tmp" path (sbcl:unix-getpid)))
           (pid (fork-process)))
      (cond ((zerop pid)
             (as-a-child
               (close-inherited)
               (redirect-output (format nil "~A.log" path))
               (save-image tmp)))
            (t (setf (gethash pid *images*) (cons tmp path))
               (write-registry)
               (answer reply "started"))))))

(defun handle-request (file)
  (let* ((request (read-request file))
         (args (rest request)))
    (setf *diagnostics* '())
    (handler-case
        (cond ((not (equal (getf args :expect) *state*))
               (answer (getf args :reply) "mismatch"))
              ((and (plusp (getf args :advance 0)) (not (equal (config :mode) "runner")))
               (answer (getf args :reply) "mismatch"))
              (t (ecase (first request)
                   (:job (handle-job request))
                   (:spawn (handle-spawn request))
                   (:image (handle-image request)))))
      (cannot-fork (c)
        (answer (getf args :reply) (format nil "cannot-fork: ~A" c)))
      (error (c)
        (answer (getf args :reply) (format nil "error: ~A" c))))))

;;; The loop.

(defvar *pending* "" "Bytes read from the FIFO that do not end a line yet.")

(defun read-requests ()
  "The request files named by the complete lines waiting in the FIFO."
  (let* ((buffer (make-array 4096 :element-type '(unsigned-byte 8)))
         (count (sbcl:unix-read *request-fd* (sbcl:vector-sap buffer) 4096)))
    (when (and count (plusp count))
      (setf *pending* (concatenate 'string *pending*
                                   (sb-ext:octets-to-string buffer :end count
                                                                   :external-format :utf-8))))
    (loop for newline = (position #\Newline *pending*)
          while newline
          collect (subseq *pending* 0 newline)
          do (setf *pending* (subseq *pending* (1+ newline))))))

(defun reap-children ()
  (loop
    (multiple-value-bind (pid status) (reap-child)
      (unless pid (return))
      (let ((fd (gethash pid *jobs*))
            (image (gethash pid *images*)))
        (when fd
          (write-line-to-fd fd status)
          (sbcl:unix-close fd)
          (remhash pid *jobs*))
        (when image
          (cond ((string= status "exit 0")
                 (rename-file (car image) (cdr image))
                 (ignore-errors (delete-file (format nil "~A.log" (cdr image)))))
                (t (ignore-errors (delete-file (car image)))))
          (remhash pid *images*)
          (write-registry))))))

(defun record-own-relocations ()
  "In a worker that lives long (a watch's) and dumps: find the relative
jumps of all its code once, so that the next dumps reuse them
(devdump.lisp) instead of disassembling everything each time."
  (when (and *dumped* (config :long-lived) (not (relocations-recorded-p))
             (zerop (hash-table-count *jobs*)))
    (record-relocations-now)))

(defun stop-abandoned-jobs (events)
  "A client that went away (Ctrl-C, a time limit) closed its reply FIFO:
its job is stopped."
  (loop for (fd . revents) in events
        when (logtest revents (logior +pollerr+ +pollhup+))
          do (loop for pid being the hash-keys of *jobs* using (hash-value job-fd)
                   when (eql fd job-fd)
                     do (sbcl:unix-kill pid +sigkill+))))

(defun serve ()
  (let ((last-check 0))
    (loop
      (let ((events (poll-fds (cons (cons *request-fd* +pollin+)
                                    (loop for fd being the hash-values of *jobs*
                                          collect (cons fd 0)))
                              (if (plusp (hash-table-count *jobs*)) 2 250))))
        (reap-children)
        (record-own-relocations)
        (stop-abandoned-jobs events)
        (when (assoc *request-fd* events)
          (dolist (file (read-requests))
            (handle-request file)))
        (let ((now (get-internal-real-time)))
          (when (> (- now last-check) (floor internal-time-units-per-second 2))
            (setf last-check now)
            (unless (owner-alive-p (config :owner))
              ;; The build is gone (killed): take the whole group along.
              (sbcl:unix-killpg (config :pgid) +sigkill+)
              (exit-now 1))))))))

(defun stop-serving ()
  (ignore-errors (delete-file (format nil "~A/~A.json" (config :registry) (config :id))))
  (exit-now 1))

(defun start-serving (reply-fd)
  "Perform this worker's steps, then serve; REPLY-FD hears \"ready\", or
how performing the steps failed."
  (flet ((fail (text)
           (write-line-to-fd reply-fd text)
           (exit-now 1)))
    (record-files-read)
    (setf *asdf* (config :asdf)
          *asdf-support* (config :asdf-support)
          *asdf-cache* (config :asdf-cache)
          *request-fd* (open-fd (config :fifo) sbcl:o_rdwr))
    (sb-ext:disable-debugger)
    (unless (perform-steps (config :steps))
      (fail (format nil "failed: ~{~A~^ ~}" (reverse *diagnostics*))))
    (when (threads-running-p)
      (fail (format nil "cannot-fork: ~A" *threads-running*)))
    (setf (getf *config* :steps) nil
          *state* (config :state))
    (write-registry)
    (write-line-to-fd reply-fd "ready")
    (sbcl:unix-close reply-fd)
    (serve)))

(defun serve-from-config (file)
  "A worker started by lispbuild in a session of its own: its process
group is the one every worker forked from it joins."
  (setf *config* (read-request file))
  (when (eql (config :pgid) 0)
    (setf (getf *config* :pgid) (sbcl:unix-getpid)))
  (start-serving (reply-fd (config :reply))))

;;; Images.

(defun image-toplevel ()
  "The toplevel of a saved worker image: serve, as configured by the file
named on the command line."
  (serve-from-config (car (last sb-ext:*posix-argv*))))

(defun save-image (path)
  (setf *state* nil *config* nil *request-fd* nil *diagnostics* '())
  (prepare-image-dump)
  (sb-ext:save-lisp-and-die path :toplevel #'image-toplevel))
