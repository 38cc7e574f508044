;;;; The Lisp side of lispbuild: what SBCL does for one job, compiled once
;;;; into the FASL that every lispbuild SBCL loads, from these files in this
;;;; order (driver.py), each with a package of its own:
;;;;   internals.lisp  LISPBUILD/SBCL      the SBCL internals it uses, checked
;;;;   driver.lisp     LISPBUILD/DRIVER    diagnostics, files read, steps
;;;;   syscalls.lisp   LISPBUILD/SYSCALLS  fork, poll, threads
;;;;   trace.lisp      LISPBUILD/TRACE     what a compile meets, noted as it runs
;;;;   consulted.lisp  LISPBUILD/TRACE     what it consulted and what its file defines
;;;;   chain.lisp      LISPBUILD/CHAIN     what a compile leaves that a load would not, undone
;;;;   compile.lisp    LISPBUILD/COMPILE   the compile and check-undefined jobs
;;;;   grovel.lisp     LISPBUILD/GROVEL    the grovel and wrapper jobs
;;;;   perfmap.lisp    LISPBUILD/PERFMAP   perf's map of a running executable
;;;;   resources.lisp  LISPBUILD/RESOURCES files embedded in an executable, opened by name
;;;;   kept-paths.lisp LISPBUILD/KEPT-PATHS the build machine's paths an image keeps
;;;;   foreign-record.lisp LISPBUILD/FOREIGN-RECORD an image's foreign symbols
;;;;   entry.lisp      LISPBUILD/ENTRY     a binary's entry and how it is called
;;;;   dump.lisp       LISPBUILD/DUMP      the dump job
;;;;   devdump.lisp    LISPBUILD/DEVDUMP   a worker's faster development dumps
;;;;   request.lisp    LISPBUILD/REQUEST   a fresh SBCL's request
;;;;   worker.lisp     LISPBUILD/WORKER    a warm worker
;;;;   main.lisp                           the command line
;;;; and, loaded with the first ASDF step, asdf.lisp, asdf-registry.lisp and
;;;; asdf-plan.lisp
;;;; (LISPBUILD/ASDF), which define the ASDF side this file declares.
;;;;
;;;; A job is a plist:
;;;;   (:compile :steps STEPS :source S :output O :undefined U :external-format E
;;;;    :features (X...) :policy ((Q . N)...) :fail-on-warning B [:asdf-system NAME]
;;;;    :reads R :trace T :load-as STEP [:then (FOLLOWER...)] :diagnostics D)
;;;;   (:check-undefined :steps STEPS :references (U...) :output O
;;;;    :fail-on-warning B :diagnostics D)
;;;;   (:grovel :steps STEPS :source S :output O :cc CC :cc-flags (F...) :features (X...)
;;;;    :diagnostics D)
;;;;   (:wrapper :steps STEPS :source S :output O :c-output C :features (X...) :diagnostics D)
;;;;   (:dump :steps STEPS :features (X...) :entry "pkg:fn" :entry-arguments A :core C :linkage L
;;;;    :shared-objects SO :reads R :compression B :test B :diagnostics D)
;;;;   (:coverage :steps STEPS :runs (FILE...) :directory D :diagnostics D)
;;;; R: where the files the process opened for reading are written, one a line.
;;;; T: where the compile's trace is written (trace.lisp). STEP: the step that
;;;;   loads the FASL, as later states hold it. Each FOLLOWER is the plist of
;;;;   the compile of a file whose state is this one's with STEP performed,
;;;;   with :log L :done F besides its :diagnostics D (compile.lisp).
;;;;   (:asdf-graph :systems (S...) :registry (DIR...) :inherit B :quicklisp Q :output O
;;;;    :reads R :diagnostics D)
;;;; STEPS are what the image must hold before the job, in order:
;;;;   (:require "MODULE")   (:asdf "system" "file.asd")   (:load "file.fasl")
;;;;   (:load "file.fasl" "system" "file.lisp")   a file of an ASDF system,
;;;;                                   loaded as ASDF's LOAD-OP would
;;;;   (:loaded "system")              ASDF's LOAD-OP of the system itself
;;;;   (:foreign "build/clib/lib.so")  a library's C code, loaded by its Lisp
;;;;
;;;; A fresh SBCL runs `sbcl --script lispbuild.fasl run REQUEST`, REQUEST
;;;; being a file that holds (JOB :asdf FASL :asdf-support FASL :asdf-cache DIR
;;;; [:canonical T :build-seed HEX]), T for a release dump (driver.py,
;;;; CanonicalSbcl), HEX its identity.
;;;; A warm worker (worker.lisp) performs the first steps once and forks a
;;;; child for the rest and the job. Both perform the same steps in the
;;;; same order after loading the same FASL, so the FASLs are the same bytes.
;;;; Problems are written to D as "FILE:LINE: KIND: text" lines; the exit
;;;; code is 0 on success and 1 on failure.

(defpackage #:lispbuild/driver
  (:use #:cl)
  (:local-nicknames (#:sbcl #:lispbuild/sbcl))
  (:export
   ;; Diagnostics.
   #:*diagnostics* #:note #:write-diagnostics #:*source-texts* #:source-text #:line-at
   #:compiler-context-line #:read-error-place
   ;; Files read.
   #:record-files-read #:stop-recording-files-read #:write-files-read
   #:call-noting-files-read #:files-read #:forget-files-read-since #:forget-file-read
   ;; Jobs and steps.
   #:read-request #:push-features #:*asdf* #:*asdf-support* #:*asdf-cache* #:*asd-files*
   #:ensure-asdf #:perform-steps #:load-step
   ;; The ASDF side, defined by asdf.lisp and asdf-plan.lisp (ENSURE-ASDF).
   #:find-defined-system #:compile-as-asdf-would #:load-as-asdf-would
   #:loaded-as-asdf-would #:register-loaded-systems #:asdf-graph
   ;; A suite that a system's test-op runs (dump.lisp sets it, asdf.lisp runs it).
   #:*test-op* #:run-test-op))
(in-package #:lispbuild/driver)

(defvar *diagnostics* nil
  "Reported problems, newest first.")

(defun note (file line kind condition)
  (push (format nil "~A:~@[~D:~] ~A: ~A" file line kind
                (remove #\Return (princ-to-string condition)))
        *diagnostics*))

(defun write-diagnostics (path)
  (with-open-file (out path :direction :output :if-exists :supersede
                            :external-format :utf-8)
    (dolist (d (reverse *diagnostics*))
      (write-line d out))))

;;; Lines of a source file, for diagnostics. The text is read once per
;;; file: a file with thousands of warnings must not be read once each.

(defvar *source-texts* (make-hash-table :test 'equal))

(defun source-text (file)
  (or (gethash file *source-texts*)
      (setf (gethash file *source-texts*)
            (with-open-file (in file :external-format :utf-8)
              (let* ((text (make-string (file-length in)))
                     (end (read-sequence text in)))
                (let ((text (subseq text 0 end)))
                  (cons text
                        (coerce (loop for i from 0 below (length text)
                                      when (char= (char text i) #\Newline) collect i)
                                'simple-vector))))))))

(defun line-at (file position)
  "The 1-based line of the first form at or after character POSITION in
FILE: SBCL's top-level form positions point just past the previous form."
  (destructuring-bind (text . newlines) (source-text file)
    (let ((i (min position (length text))))
      ;; Skip blanks and comments to the form itself.
      (loop while (< i (length text))
            do (case (char text i)
                 (#\; (setf i (or (position #\Newline text :start i) (length text))))
                 ((#\Space #\Tab #\Return #\Page #\Newline) (incf i))
                 (t (return))))
      ;; Lines before I: newlines below I, found by bisection.
      (let ((low 0) (high (length newlines)))
        (loop while (< low high)
              do (let ((middle (floor (+ low high) 2)))
                   (if (< (svref newlines middle) i)
                       (setf low (1+ middle))
                       (setf high middle))))
        (1+ low)))))

(defun compiler-context-line (file)
  "The line of the top-level form the compiler is working on, if any."
  (let ((context (ignore-errors (sbcl:find-error-context nil))))
    (when context
      (let ((position (sbcl:compiler-error-context-file-position context)))
        (when position (line-at file position))))))

(defun read-error-place (input-error)
  "The line and text of the reader error inside INPUT-ERROR."
  (let* ((reader-error (sbcl:encapsulated-condition input-error))
         (stream (and (typep reader-error 'stream-error)
                      (stream-error-stream reader-error)))
         (where (and stream (ignore-errors (sbcl:stream-error-position-info stream))))
         (form-line (car (sbcl:input-error-in-compile-file-line/col input-error)))
         (line (if (typep reader-error 'end-of-file)
                   form-line
                   (or (second (assoc :line where)) form-line))))
    (values line
            (typecase reader-error
              (end-of-file
               (format nil "end of file inside the form that starts on line ~D ~
                            (a parenthesis or string is not closed)" line))
              (simple-condition
               (apply #'format nil (simple-condition-format-control reader-error)
                      (simple-condition-format-arguments reader-error)))
              (t (princ-to-string reader-error))))))

;;; Files read: every file this process opens for reading from its start
;;; (its steps too: loading a FASL may read a data file), written with a
;;; compile's or a dump's outputs, so that what it read beyond what it
;;; declared is known and part of its record (observed.py).

(defvar *files-read* (make-hash-table :test 'equal))

(defun note-file-read (open file &rest keys &key (direction :input) &allow-other-keys)
  (let ((stream (apply open file keys)))
    (when (and (streamp stream) (member direction '(:input :io)))
      (let ((name (ignore-errors (namestring (truename stream)))))
        (when name
          (setf (gethash name *files-read*) t))))
    stream))

(defun record-files-read ()
  (unless (sbcl:encapsulated-p 'open 'files-read)
    (sbcl:encapsulate 'open 'files-read #'note-file-read)))

(defun stop-recording-files-read ()
  "Before a dump: the program opens files as it likes."
  (sbcl:unencapsulate 'open 'files-read)
  (clrhash *files-read*))

(defun forget-file-read (path)
  "A file a step declares (a FASL, an .asd) is in the job's key already:
not listed, so the list stays as short as what was read undeclared."
  (let ((name (ignore-errors (namestring (truename path)))))
    (when name
      (remhash name *files-read*))))

(defun files-read ()
  "The names of the files read so far."
  (loop for name being the hash-keys of *files-read* collect name))

(defun forget-files-read-since (names)
  "Forget every file read since FILES-READ gave NAMES."
  (clrhash *files-read*)
  (dolist (name names)
    (setf (gethash name *files-read*) t)))

(defun call-noting-files-read (function)
  "FUNCTION's value, and the files it read that no step declares (recorded
as all files read are)."
  (let ((earlier (files-read)))
    (clrhash *files-read*)
    (let* ((value (funcall function))
           (read (files-read)))
      (dolist (name earlier)
        (setf (gethash name *files-read*) t))
      (values value read))))

(defun write-files-read (path)
  (with-open-file (out path :direction :output :if-exists :supersede
                            :external-format :utf-8)
    (dolist (name (sort (files-read) #'string<))
      (write-line name out))))

;;; Steps: what an image holds before a job.

(defvar *asdf* nil
  "The ASDF the build uses (driver.py chooses it), loaded with the first
ASDF step, in place of SBCL's.")
(defvar *asdf-support* nil
  "The compiled asdf.lisp, loaded with the first ASDF step.")
(defvar *asdf-cache* nil
  "Where ASDF compiles what it loads itself (:defsystem-depends-on).")
(defvar *asd-files* '()
  "The .asd files of the systems defined so far, in order.")

(defvar *test-op* nil
  "In a suite's image: (SYSTEM FRAMEWORK), the system whose test-op runs
FRAMEWORK's runner (RUN-TEST-OP).")

(declaim (ftype function find-defined-system compile-as-asdf-would load-as-asdf-would
                loaded-as-asdf-would register-loaded-systems asdf-graph run-test-op))

(defun ensure-asdf ()
  "Load the build's ASDF and the ASDF side, which defines the functions
declared above."
  (unless (fboundp 'find-defined-system)
    (unless (find-package "ASDF")
      (load *asdf*))
    (load *asdf-support*)))

(defun define-system (system asd)
  "Give the image the definition of SYSTEM, as LOAD-SYSTEM's plan would
have it: ASDF itself, then the system found through the directories of
the .asd files defined so far."
  (ensure-asdf)
  (setf *asd-files* (append *asd-files* (list asd)))
  (find-defined-system system *asd-files* *asdf-cache*))

(defun load-step (kind name &optional system source)
  "Load a :LOAD step's FASL NAME (a file, or a stream of its bytes), as
ASDF's LOAD-OP would when it is SOURCE of SYSTEM; or do what ASDF does
when every file of the :LOADED system NAME is loaded."
  (ecase kind
    (:load (if system
               (load-as-asdf-would name system source)
               (load name)))
    (:loaded (loaded-as-asdf-would name))))

(defun perform-step (step)
  "Perform one step; a failure is noted against its file, and is NIL."
  (destructuring-bind (kind name &optional asd-or-system source) step
    (handler-case
        (progn
          (ecase kind
            ;; ASDF and UIOP: the build's ASDF, which holds UIOP.
            (:require (if (string-equal name "asdf")
                          (ensure-asdf)
                          (require (string-upcase name))))
            (:asdf (define-system name asd-or-system))
            ((:load :loaded) (load-step kind name asd-or-system source))
            ;; Found by the library's code on LD_LIBRARY_PATH (driver.py).
            (:foreign nil))
          (case kind
            (:asdf (forget-file-read asd-or-system))
            (:load (forget-file-read name)))
          t)
      (error (condition)
        (note (case kind (:asdf asd-or-system) (:loaded (format nil "system ~A" name)) (t name)) nil
              (if (eq kind :load) "ERROR while loading" "ERROR")
              condition)
        nil))))

(defun perform-steps (steps)
  "Perform STEPS. What they print is not the job's words (a worker's zygote
performs its steps where no job sees them), so it goes nowhere, whichever
process performs them; a step's failure is noted all the same."
  (let ((*standard-output* (make-broadcast-stream))
        (*error-output* (make-broadcast-stream)))
    (every #'perform-step steps)))

;;; Jobs.

(defun read-request (file)
  "The request or worker configuration FILE holds (one form, read safely)."
  (with-open-file (in file :external-format :utf-8)
    (with-standard-io-syntax
      (let ((*read-eval* nil))
        (read in)))))

(defun push-features (names)
  (dolist (name names)
    (pushnew (intern name :keyword) *features*)))
