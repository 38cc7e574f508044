;;;; Dumping the image of a binary (the dump job): its entry, the record of
;;;; its foreign symbols, what the program must not inherit from the build.

(defpackage #:lispbuild/dump
  (:use #:cl #:lispbuild/driver)
  (:local-nicknames (#:sbcl #:lispbuild/sbcl))
  (:import-from #:lispbuild/entry #:find-entry #:named-function)
  (:import-from #:lispbuild/syscalls #:stop-finalizer-thread #:os-threads)
  (:import-from #:lispbuild/perfmap #:write-perf-map-if-asked)
  (:import-from #:lispbuild/kept-paths #:note-machine-paths)
  (:import-from #:lispbuild/foreign-record #:write-linkage #:write-shared-objects)
  (:export #:dump-job #:*before-save* #:*around-entry* #:*load-payload*
           #:run-finalizers-in-main-thread
           #:fix-os-random-seed))
(in-package #:lispbuild/dump)

(defun exit-on-sigterm (signal code context)
  "SBCL's own SIGTERM handler exits with code 0, so a stopped program (a
test killed for taking too long) looks successful; and its unwinding exit
hung in 3 of 40 tries with the signal arriving in SLEEP. Flush the output
and leave at once with 128 + 15."
  (declare (ignore signal code context))
  (ignore-errors (finish-output *standard-output*))
  (ignore-errors (finish-output *error-output*))
  (sb-ext:exit :code 143 :abort t))

(defun restore-uiop ()
  "What UIOP's RESTORE-IMAGE does before an entry point when the program
starts (UIOP:DUMP-IMAGE saves an image that calls it): run the hooks
registered with UIOP:REGISTER-IMAGE-RESTORE-HOOK, among them the one that
sets UIOP:*COMMAND-LINE-ARGUMENTS* to this program's arguments (without it,
they are those of the process that dumped the image)."
  (let ((package (find-package "UIOP/IMAGE")))
    (when package
      (funcall (find-symbol "CALL-IMAGE-RESTORE-HOOK" package))
      (setf (symbol-value (find-symbol "*IMAGE-RESTORED-P*" package)) t))))

(defun toplevel-for (function convention test around)
  "Call FUNCTION as CONVENTION says (ENTRY-CONVENTION); exit with the
integer it returns (0 otherwise), 130 on an interrupt, 143 on SIGTERM. A
TEST function is called with no arguments, and the program exits 0 if it
returns true, 1 if false. AROUND (or NIL), a development executable's, is
called with the function that calls FUNCTION and returns the exit code."
  (lambda ()
    (sbcl:enable-interrupt sbcl:sigterm #'exit-on-sigterm)
    (write-perf-map-if-asked)
    (restore-uiop)
    (let* ((argv sb-ext:*posix-argv*)
           (call (lambda ()
                   (cond (test (if (funcall function) 0 1))
                         (t (ecase convention
                              (:none (funcall function))
                              (:spread (apply function (rest argv)))
                              (:posix-argv (funcall function argv))
                              (:command-line-arguments (funcall function (rest argv))))))))
           (code (handler-case (if around (funcall around call) (funcall call))
                   (sbcl:interactive-interrupt () 130))))
      (sb-ext:exit :code (if (typep code '(integer 0 255)) code 0)))))

(defun reset-gc-counters ()
  "The CPU time this process spent collecting garbage, and the bytes it
freed: the saved image sets both to 0 when it starts (SBCL's GC-REINIT),
but the values in the file would be this build's timing."
  (setf sb-ext:*gc-run-time* 0
        sbcl:*n-bytes-freed-or-purified* 0))

(defun forget-build-state ()
  "What the dumping process knew of this build and of this machine, none of
which the program needs: lispbuild's own paths and diagnostics, ASDF's
configuration (UIOP's image-dump hook clears it, as UIOP:DUMP-IMAGE does;
the program computes it again if it uses ASDF), and its GC counters."
  (stop-recording-files-read)
  (setf *asdf* nil
        *asdf-support* nil
        *asdf-cache* nil
        *asd-files* '()
        *diagnostics* nil)
  (clrhash *source-texts*)
  (when (find-package "UIOP")
    ;; As UIOP:DUMP-IMAGE of an executable: UIOP:ARGV0 is then the program's.
    (setf (symbol-value (find-symbol "*IMAGE-DUMPED-P*" "UIOP")) :executable)
    (funcall (find-symbol "CALL-IMAGE-DUMP-HOOK" "UIOP")))
  ;; After the last collection SAVE-LISP-AND-DIE makes in Lisp (in
  ;; TUNE-IMAGE-FOR-DUMP; the one in C after it counts nothing).
  (sbcl:encapsulate 'sbcl:tune-image-for-dump 'reset-gc-counters
                      (lambda (real)
                        (funcall real)
                        (reset-gc-counters))))

(defvar *before-save* nil
  "Called just before SAVE-LISP-AND-DIE: a worker's faster dump (worker.lisp).")

(defvar *around-entry* nil
  "What development.fasl sets when it is loaded (develop.lisp): its
function of the entry's call and the program's reload hook, which runs the
entry as the environment asks.")

(defvar *load-payload* nil
  "What development.fasl sets when it is loaded (payload.lisp): its
function that loads the executable's payload, the project's FASLs.")

(defun load-development (development)
  "Load DEVELOPMENT (development.fasl); what runs around the entry: a
function of the entry's call and the reload hook's symbol."
  (load development)
  *around-entry*)

(defun development-toplevel (development hook)
  "For a development executable: load DEVELOPMENT (development.fasl) and
return what runs around its entry, with the program's reload HOOK
(\"package:name\" or NIL); :FAILED if there is no such function."
  (let ((symbol (and hook (named-function hook "reload_hook"))))
    (if (and hook (null symbol))
        :failed
        (let ((around (load-development development)))
          (lambda (call) (funcall around call symbol))))))

(defun payload-toplevel (entry test arguments development hook)
  "The toplevel of an image that its executable's payload completes
(base:NAME, payload.lisp): load the payload when the program starts, then
find the entry and the reload HOOK as a dump does (the dump of the whole
image found them at build time) and call the entry."
  (let ((around (load-development development))
        (load-payload *load-payload*)
        ;; Where the build loads the steps from, as they name them.
        (root *default-pathname-defaults*))
    (lambda ()
      (funcall load-payload root)
      (multiple-value-bind (function convention) (find-entry entry test arguments)
        (let ((symbol (and hook (named-function hook "reload_hook"))))
          (unless (and function (or symbol (null hook)))
            (format *error-output* "~&lispbuild: the program could not start:~%~{~A~%~}"
                    (reverse *diagnostics*))
            (sb-ext:exit :code 70 :abort t))
          (funcall (toplevel-for function convention test
                                 (lambda (call) (funcall around call symbol)))))))))

(defun load-time-dependencies (steps)
  "Perform STEPS, the payload's; :FAILED if one failed (noted), else why
loading them when the program starts may not do what loading them here
does: the files they read (the dump holds what they read here), the
environment variables they asked for, the threads they left running (no
image can be saved with them). NIL if none."
  (let ((variables '()))
    (sbcl:encapsulate 'sb-ext:posix-getenv 'payload
                      (lambda (real name)
                        (pushnew name variables :test #'equal)
                        (funcall real name)))
    (unwind-protect
         (multiple-value-bind (performed files)
             (call-noting-files-read (lambda () (perform-steps steps)))
           (if performed
               (append (mapcar (lambda (file) (format nil "read ~A" file)) files)
                       (mapcar (lambda (name)
                                 (format nil "asked for the environment variable ~A" name))
                               variables)
                       (mapcar (lambda (thread) (format nil "left the thread ~S running"
                                                        (sb-thread:thread-name thread)))
                               (remove-if #'sbcl:thread-ephemeral-p
                                          (remove sb-thread:*current-thread*
                                                  (sb-thread:list-all-threads)))))
               :failed))
      (sbcl:unencapsulate 'sb-ext:posix-getenv 'payload))))

(defun dump-job (&key steps features entry entry-arguments core linkage shared-objects
                   reads compression test test-op development reload-hook diagnostics
                   project-directory library-directories payload base
                 &allow-other-keys)
  "Dump the image of a binary. BASE: the image its payload completes, whose
entry is found when the program starts. PAYLOAD (the steps that complete
it): load them, check the entry and write the records as a dump of the
whole image would, then write the marker \"lispbuild payload\" as CORE
(the executable is the base's image and the payload) or, when loading them
at start-up cannot be trusted to do the same, dump after all, saying why."
  (push-features features)
  (setf *test-op* test-op)
  (when base
    (return-from dump-job
      (dump-image steps (payload-toplevel entry test entry-arguments development reload-hook)
                  core nil nil reads compression diagnostics)))
  (let ((unsure (and payload (load-time-dependencies payload))))
    (when (eq unsure :failed)
      (return-from dump-job nil))
    (note-machine-paths project-directory library-directories)
    (multiple-value-bind (function convention) (find-entry entry test entry-arguments)
      (unless function
        (return-from dump-job nil))
      ;; Loaded as the whole image's dump loads it: its foreign symbols
      ;; are in the record either way.
      (let ((around (and development (development-toplevel development reload-hook))))
        (when (eq around :failed)
          (return-from dump-job nil))
        (cond ((and payload (null unsure))
               (write-records linkage shared-objects reads diagnostics)
               (with-open-file (out core :direction :output :if-exists :supersede)
                 (write-line "lispbuild payload" out)))
              (t
               (when unsure
                 (note "payload" nil "note"
                       (format nil "the image is dumped whole, as loading the project's ~
                                    FASLs ~{~A~^, ~}: loaded again when the program ~
                                    starts, they might not do the same" unsure)))
               (dump-image steps (toplevel-for function convention test around) core linkage
                           shared-objects reads compression diagnostics)))))))

(defun write-records (linkage shared-objects reads diagnostics)
  "What a dump records beside its core: the foreign symbols and the shared
objects (not a base image's: core:NAME records the whole image's), the
files read, the diagnostics."
  (when linkage
    (write-linkage linkage)
    (write-shared-objects shared-objects))
  (write-diagnostics diagnostics)
  (write-files-read reads))

(defun dump-image (steps toplevel core linkage shared-objects reads compression diagnostics)
  "Save the image that calls TOPLEVEL."
  (when (find-package "ASDF")
    (register-loaded-systems
     (loop for (kind name) in steps when (eq kind :asdf) collect name)))
  (restore-os-random-seed)
  (write-records linkage shared-objects reads diagnostics)
  (forget-build-state)
  (sb-ext:disable-debugger)
  (when *before-save* (funcall *before-save*))
  (run-finalizers-due)
  (sb-ext:save-lisp-and-die core :toplevel toplevel
                                 :save-runtime-options t
                                 :compression (and compression t)))

(defun run-finalizers-in-main-thread ()
  "SBCL runs finalizers in a thread of its own, started with the process
and woken after each garbage collection: when it runs depends on timing,
and what it allocates moves what the main thread allocates next, and with
it the hash codes SBCL derives from allocation addresses (of types, of
generic functions): two dumps of the same image would differ. A canonical
process stops it first thing, waits for its OS thread to be gone (that
thread gives back its allocation region as it ends, after JOIN-THREAD has
returned), clears the stack below this frame (what the wait left there
depends on timing, and the collector takes any word on the stack that
looks like a pointer as one, pinning its page) and collects all garbage,
so that the heap it goes on from does not depend on how far the thread
had got. The finalizers due run in the main thread just before saving
(RUN-FINALIZERS-DUE)."
  (stop-finalizer-thread)
  (loop repeat 10000
        until (= (os-threads) 1)
        do (sleep 0.001))
  (sbcl:scrub-control-stack)
  (sb-ext:gc :full t))

(defun run-finalizers-due ()
  "Where the finalizer thread was stopped (RUN-FINALIZERS-IN-MAIN-THREAD):
SAVE-LISP-AND-DIE stops it first thing, and that call finds it stopped,
once; the saved image starts its own."
  (unless sbcl:*finalizer-thread*
    (sbcl:run-pending-finalizers)
    (sbcl:encapsulate 'sbcl:finalizer-thread-stop 'stopped
                        (lambda (real)
                          (declare (ignore real))
                          (sbcl:unencapsulate 'sbcl:finalizer-thread-stop 'stopped)
                          nil))))

(defvar *seeded-while-loading* '()
  "In a canonical process, the files whose loading asked the operating
system for a random seed, newest first.")

(defun loading-file ()
  (let ((file (or *load-pathname* *compile-file-pathname*)))
    (if file
        (enough-namestring file *default-pathname-defaults*)
        "the dump")))

(defun fix-os-random-seed (seed)
  "(MAKE-RANDOM-STATE T) takes its seed from /dev/urandom: a library that
calls it while it loads (cl-fad's temporary file names, hunchentoot's
session secrets) saves this build's randomness into the image. A canonical
process gives it seeds drawn from SEED (64 hex digits, the release's own
identity) instead, a new one each call, and notes who called. The saved
image asks /dev/urandom again (RESTORE-OS-RANDOM-SEED)."
  (let ((words (loop for i below 64 by 8
                     collect (parse-integer seed :start i :end (+ i 8) :radix 16)))
        (calls 0))
    (sbcl:encapsulate 'sbcl:os-random-seed 'build-seed
                        (lambda (real)
                          (declare (ignore real))
                          (pushnew (loading-file) *seeded-while-loading* :test #'equal)
                          (coerce (append words (list (incf calls)))
                                  '(simple-array (unsigned-byte 32) (*)))))))

(defun restore-os-random-seed ()
  "Before saving: the program's own (MAKE-RANDOM-STATE T) reads
/dev/urandom; the random states seeded while loading are the same in
every copy of the release, as in every run of any saved image."
  (when (sbcl:encapsulated-p 'sbcl:os-random-seed 'build-seed)
    (sbcl:unencapsulate 'sbcl:os-random-seed 'build-seed)
    (when *seeded-while-loading*
      (note "release" nil "note"
            (format nil "~{~A~^, ~} made a random state from the operating system's ~
                         randomness while loading; a release seeds it from its own ~
                         identity instead, so every copy of the executable starts with ~
                         that state (make a new one when the program starts where that ~
                         matters)"
                    (reverse *seeded-while-loading*))))))

