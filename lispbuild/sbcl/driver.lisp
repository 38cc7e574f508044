;;;; The Lisp side of lispbuild: what SBCL does for one job, compiled once
;;;; (with worker.lisp) into the FASL that every lispbuild SBCL loads.
;;;;
;;;; A job is a plist:
;;;;   (:compile :steps STEPS :source S :output O :undefined U :external-format E
;;;;    :features (X...) :policy ((Q . N)...) :fail-on-warning B [:asdf-system NAME]
;;;;    :reads R :diagnostics D)
;;;;   (:check-undefined :steps STEPS :references (U...) :output O
;;;;    :fail-on-warning B :diagnostics D)
;;;;   (:grovel :steps STEPS :source S :output O :cc CC :cc-flags (F...) :features (X...)
;;;;    :diagnostics D)
;;;;   (:wrapper :steps STEPS :source S :output O :c-output C :features (X...) :diagnostics D)
;;;;   (:dump :steps STEPS :features (X...) :entry "pkg:fn" :entry-arguments A :core C :linkage L
;;;;    :shared-objects SO :reads R :compression B :test B :diagnostics D)
;;;; R: where the files the process opened for reading are written, one a line.
;;;;   (:asdf-graph :systems (S...) :registry (DIR...) :output O :reads R :diagnostics D)
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

(defpackage #:lispbuild-driver
  (:use #:cl))
(in-package #:lispbuild-driver)

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
  (let ((context (ignore-errors (sb-c::find-error-context nil))))
    (when context
      (let ((position (sb-c::compiler-error-context-file-position context)))
        (when position (line-at file position))))))

(defun read-error-place (input-error)
  "The line and text of the reader error inside INPUT-ERROR."
  (let* ((reader-error (sb-int:encapsulated-condition input-error))
         (stream (and (typep reader-error 'stream-error)
                      (stream-error-stream reader-error)))
         (where (and stream (ignore-errors (sb-impl::stream-error-position-info stream))))
         (form-line (car (sb-c::input-error-in-compile-file-line/col input-error)))
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
  (unless (sb-int:encapsulated-p 'open 'files-read)
    (sb-int:encapsulate 'open 'files-read #'note-file-read)))

(defun stop-recording-files-read ()
  "Before a dump: the program opens files as it likes."
  (sb-int:unencapsulate 'open 'files-read)
  (clrhash *files-read*))

(defun write-files-read (path)
  (with-open-file (out path :direction :output :if-exists :supersede
                            :external-format :utf-8)
    (dolist (name (sort (loop for name being the hash-keys of *files-read* collect name)
                        #'string<))
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

(defun call-asdf-support (name &rest arguments)
  (apply (find-symbol name :lispbuild-driver) arguments))

(defun ensure-asdf ()
  (unless (fboundp (find-symbol "FIND-DEFINED-SYSTEM" :lispbuild-driver))
    (unless (find-package "ASDF")
      (load *asdf*))
    (load *asdf-support*)))

(defun define-system (system asd)
  "Give the image the definition of SYSTEM, as LOAD-SYSTEM's plan would
have it: ASDF itself, then the system found through the directories of
the .asd files defined so far."
  (ensure-asdf)
  (setf *asd-files* (append *asd-files* (list asd)))
  (call-asdf-support "FIND-DEFINED-SYSTEM" system *asd-files* *asdf-cache*))

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
            (:load (if asd-or-system
                       (call-asdf-support "LOAD-AS-ASDF-WOULD" name asd-or-system source)
                       (load name)))
            (:loaded (call-asdf-support "LOADED-AS-ASDF-WOULD" name))
            ;; Found by the library's code on LD_LIBRARY_PATH (driver.py).
            (:foreign nil))
          t)
      (error (condition)
        (note (case kind (:asdf asd-or-system) (:loaded (format nil "system ~A" name)) (t name)) nil
              (if (eq kind :load) "ERROR while loading" "ERROR")
              condition)
        nil))))

(defun perform-steps (steps)
  (every #'perform-step steps))

;;; Compiling one file.

(defun push-features (names)
  (dolist (name names)
    (pushnew (intern name :keyword) *features*)))

(defun proclaim-policy (policy)
  (proclaim `(optimize ,@(loop for (quality . level) in policy
                               collect (list (find-symbol (string-upcase quality) :cl)
                                             level)))))

(defun fixed-write-date (source)
  "Make FILE-WRITE-DATE of SOURCE constant: SBCL writes it into the FASL,
and a FASL must depend on the source's contents, not on when it was saved."
  (let ((truename (truename source)))
    (sb-int:encapsulate 'file-write-date 'lispbuild-driver
                        (lambda (real file)
                          (if (equal (ignore-errors (truename file)) truename)
                              0
                              (funcall real file))))))

(defun clear-pathname-table ()
  "SBCL interns pathnames, and how one is written into a FASL depends on
which pathnames the process met before: start every compile from none."
  (setf sb-impl::*pathnames* (sb-impl::make-pathname-intern-table)))

(defun forget-runtime-path ()
  "COMPILE-FILE starts a FASL with \"#!RUNTIME --script\", RUNTIME being
the SBCL program that compiles it (a worker's is not Debian's): with none,
it writes no such line, and the FASL is the same whoever compiles it."
  (setf sb-ext:*runtime-pathname* nil))

(defvar *errors* 0)
(defvar *warnings* 0
  "Full WARNINGs seen. Counted here because inside WITH-COMPILATION-UNIT,
COMPILE-FILE's own FAILURE-P misses the warnings deferred to the unit's end.")

(defun compile-checked (source output external-format &key compile-check
                        &allow-other-keys)
  "COMPILE-FILE, then COMPILE-CHECK as UIOP:COMPILE-FILE* calls it (an
:around-compile hook may pass one): NIL if it refuses the FASL."
  (let ((fasl (compile-file source :output-file (merge-pathnames output)
                                   :external-format external-format
                                   :verbose nil :print nil)))
    (and fasl
         (or (null compile-check) (funcall compile-check source :output-file fasl))
         fasl)))

(defun compile-reporting (source output undefined external-format system)
  "COMPILE-FILE SOURCE to OUTPUT, noting every problem with its line, but
for references to what is undefined, written to UNDEFINED (see below);
as ASDF's COMPILE-OP when SOURCE is a file of the ASDF SYSTEM (inside its
hooks and methods). Returns the FASL's pathname, or NIL."
  (handler-case
      (handler-bind
          ((sb-c:compiler-error
             (lambda (c)
               (incf *errors*)
               (let ((inner (sb-int:encapsulated-condition c)))
                 (if (typep inner 'sb-c::input-error-in-compile-file)
                     (multiple-value-bind (line text) (read-error-place inner)
                       (note source line "read error" text))
                     (note source (compiler-context-line source) "ERROR" inner)))))
           (warning
             (lambda (c)
               (let ((line (compiler-context-line source)))
                 (cond ((typep c 'style-warning)
                        (note source line "STYLE-WARNING" c))
                       (t (incf *warnings*)
                          (note source line "WARNING" c)))))))
        ;; A file without IN-PACKAGE is read in CL-USER, as a fresh
        ;; COMPILE-FILE reads it; the relative name keeps the project's
        ;; location out of the FASL.
        (let ((*package* (find-package "CL-USER")))
          (flet ((compile-it (&rest flags)
                   (with-compilation-unit (:source-namestring source)
                     (multiple-value-prog1
                         (apply #'compile-checked source output external-format flags)
                       (write-deferred source undefined)))))
            (if system
                (call-asdf-support "COMPILE-AS-ASDF-WOULD" system source #'compile-it)
                (compile-it)))))
    ;; An error the compiler does not handle, e.g. in EVAL-WHEN or IN-PACKAGE.
    ((and error (not sb-c:compiler-error)) (c)
      (incf *errors*)
      (note source (compiler-context-line source) "ERROR" c)
      nil)))

(defun compile-job (&key source output undefined external-format features policy
                      fail-on-warning asdf-system reads &allow-other-keys)
  (push-features features)
  (proclaim-policy policy)
  (fixed-write-date source)
  (forget-runtime-path)
  (clear-pathname-table)
  (let ((fasl (compile-reporting source output undefined
                                 (intern (string-upcase external-format) :keyword)
                                 asdf-system)))
    (write-files-read reads)
    (cond ((or (null fasl) (plusp *errors*))
           (unless *diagnostics*
             (note source nil "ERROR" "compilation failed"))
           nil)
          ((and fail-on-warning (plusp *warnings*)) nil)
          (t t))))

;;; Undefined functions, variables and types. Compiled alone, a file
;;; refers to functions that later files of its library define; ASDF,
;;; compiling a system in one compilation unit, does not warn of those.
;;; So the references still undefined at a file's end are written down
;;; (its .undefined file, stored with its FASL) instead of reported, and
;;; the library's check, with every FASL of the library loaded, reports
;;; those still undefined there, as UIOP's deferred warnings do.

(defun readable-string (string)
  "STRING as a string of characters: printed readably, a base string
would be written #A((1) BASE-CHAR . \"G\")."
  (coerce string '(simple-array character (*))))

(defun name-record (name)
  "NAME as data that reads back in any image: (\"PKG\" \"NAME\") or
(:setf \"PKG\" \"NAME\"); NIL for a name no other file can define (an
uninterned symbol, a compound type)."
  (flet ((of-symbol (symbol)
           (and (symbolp symbol) (symbol-package symbol)
                (list (readable-string (package-name (symbol-package symbol)))
                      (readable-string (symbol-name symbol))))))
    (cond ((symbolp name) (of-symbol name))
          ((and (consp name) (eq (first name) 'setf) (consp (rest name))
                (null (cddr name)) (of-symbol (second name)))
           (cons :setf (of-symbol (second name)))))))

(defun deferred-records (source undef)
  "The records of one undefined name: one per use SBCL kept (it keeps a
few), each the diagnostic it would have printed."
  (let* ((kind (sb-c::undefined-warning-kind undef))
         (name (sb-c::undefined-warning-name undef))
         (severity (if (eq kind :variable) "WARNING" "STYLE-WARNING"))
         (uses (sb-c::undefined-warning-warnings undef))
         (more (- (sb-c::undefined-warning-count undef) (length uses)))
         (*package* (find-package "CL-USER")))
    (append
     (loop for context in uses
           for position = (sb-c::compiler-error-context-file-position context)
           collect (format nil "~A:~@[~D:~] ~A: undefined ~(~A~): ~
                                ~/sb-ext:print-symbol-with-prefix/"
                           source (and position (line-at source position)) severity kind name))
     (when (plusp more)
       (list (format nil "~A: ~A: ~D more use~:P of undefined ~(~A~) ~
                          ~/sb-ext:print-symbol-with-prefix/"
                     source severity more kind name))))))

(defun deferrable-p (undef)
  "Whether another file may define UNDEF's name: not a name reserved by
ANSI CL, which no portable file defines (SBCL reports those at once)."
  (let ((kind (sb-c::undefined-warning-kind undef))
        (name (sb-c::undefined-warning-name undef)))
    (and (name-record name)
         (not (and (member kind '(:function :type))
                   (sb-c::name-reserved-by-ansi-p name kind))))))

(defun write-deferred (source path)
  "Write the undefined references another file may define to PATH, in
SBCL's order (by name), and leave SBCL only the others to report at the
compilation unit's end."
  (let ((deferred (sort (remove-if-not #'deferrable-p sb-c::*undefined-warnings*)
                        #'string< :key (lambda (undef)
                                         (prin1-to-string (sb-c::undefined-warning-name undef))))))
    (setf sb-c::*undefined-warnings*
          (remove-if #'deferrable-p sb-c::*undefined-warnings*))
    (let ((records (loop for undef in deferred
                         for kind = (sb-c::undefined-warning-kind undef)
                         for record = (name-record (sb-c::undefined-warning-name undef))
                         append (loop for text in (deferred-records source undef)
                                      collect (list kind record (readable-string text))))))
      (with-open-file (out path :direction :output :if-exists :supersede
                                :external-format :utf-8)
        (with-standard-io-syntax
          (dolist (record records)
            (prin1 record out)
            (terpri out)))))))

(defun named (record)
  "The name RECORD stands for in this image, or NIL if it has none."
  (destructuring-bind (first &rest rest) record
    (let* ((setf (eq first :setf))
           (package (find-package (if setf (first rest) first)))
           (symbol (and package (find-symbol (if setf (second rest) (first rest)) package))))
      (and symbol (if setf (list 'setf symbol) symbol)))))

(defun defined-p (kind name)
  (ecase kind
    (:function (fboundp name))
    (:variable (or (boundp name) (not (eq (sb-int:info :variable :kind name) :unknown))))
    (:type (or (find-class name nil) (sb-int:info :type :kind name)))))

(defun check-undefined-job (&key references output fail-on-warning &allow-other-keys)
  "Report the references of the library's files (their .undefined files)
that are still undefined with the whole library loaded; they are written
to OUTPUT too. Fails on an undefined variable if FAIL-ON-WARNING."
  (let ((warned nil))
    (with-open-file (out output :direction :output :if-exists :supersede
                                :external-format :utf-8)
      (dolist (file references)
        (with-open-file (in file :external-format :utf-8)
          (loop for (kind record text) = (with-standard-io-syntax
                                           (let ((*read-eval* nil))
                                             (read in nil nil)))
                while kind
                do (let ((name (named record)))
                     (unless (and name (defined-p kind name))
                       (when (eq kind :variable)
                         (setf warned t))
                       (push text *diagnostics*)
                       (write-line text out)))))))
    (not (and fail-on-warning warned))))

;;; CFFI grovel files: a specification of C types and constants that
;;; CFFI-GROVEL turns into a C program, whose output is the Lisp to
;;; compile. The program is built with CC (musl-gcc): the sizes and
;;; constants are those of the C library the executable links.

(defun grovel-job (&key source output cc cc-flags features &allow-other-keys)
  "Run SOURCE's groveller, built with CC and CC-FLAGS after CFFI's own, and
write the Lisp it writes to OUTPUT."
  (push-features features)
  (let ((process (and (find-package "CFFI-GROVEL")
                      (find-symbol "PROCESS-GROVEL-FILE" "CFFI-GROVEL"))))
    (unless process
      (note source nil "ERROR" "CFFI-GROVEL is not loaded: a system with a grovel file ~
                                names it in :defsystem-depends-on")
      (return-from grovel-job nil))
    (handler-case
        (progv (list (find-symbol "*CC*" "CFFI-TOOLCHAIN") (find-symbol "*LD*" "CFFI-TOOLCHAIN")
                     (find-symbol "*CC-FLAGS*" "CFFI-TOOLCHAIN"))
            (list cc cc (append (symbol-value (find-symbol "*CC-FLAGS*" "CFFI-TOOLCHAIN"))
                                cc-flags))
          (let* ((output (merge-pathnames output))
                 (written (funcall process source
                                   (make-pathname :name (pathname-name source) :type "lisp"
                                                  :defaults output))))
            (rename-file written output)
            t))
      (error (c)
        ;; A C compiler or program that failed: CFFI's message is mostly
        ;; the command line; the compiler's own words follow in the job's
        ;; output, which the message includes.
        (note source nil "ERROR"
              (if (search "Subprocess" (princ-to-string c))
                  "the grovel file's C program failed to build or run (output below)"
                  c))
        nil))))

;;; CFFI wrapper files: C functions written in Lisp forms, which
;;; CFFI-GROVEL turns into a C library and the bindings that call it. The
;;; library is built by the tasks that build C files (a shared library for
;;; the SBCLs that load the bindings, an object for the static link), and
;;; the bindings load it by its file's name.

(defun write-wrapper-bindings (output library forms)
  "The Lisp that loads LIBRARY (a file name without directory, found on
LD_LIBRARY_PATH, or linked into the static executable), then FORMS."
  (let ((name (intern (string-upcase (pathname-name library)) "KEYWORD")))
    (with-open-file (out output :direction :output :if-exists :supersede)
      (with-standard-io-syntax
        (let ((*package* (find-package "CL"))
              (*print-readably* nil))
          (format out ";;;; Written by lispbuild with CFFI-GROVEL: do not edit.~%")
          (pprint `(progn (,(find-symbol "DEFINE-FOREIGN-LIBRARY" "CFFI")
                           (,name :type :grovel-wrapper)
                           (t ,library))
                          (,(find-symbol "USE-FOREIGN-LIBRARY" "CFFI") ,name))
                  out)
          (fresh-line out)
          (dolist (form forms)
            (print form out))
          (terpri out))))))

(defun wrapper-job (&key source output c-output features &allow-other-keys)
  "Process SOURCE, a wrapper file: the C library it specifies to C-OUTPUT,
its bindings to OUTPUT."
  (push-features features)
  (let ((generate (and (find-package "CFFI-GROVEL")
                       (find-symbol "GENERATE-C-LIB-FILE" "CFFI-GROVEL"))))
    (unless generate
      (note source nil "ERROR" "CFFI-GROVEL is not loaded: a system with a wrapper file ~
                                names it in :defsystem-depends-on")
      (return-from wrapper-job nil))
    (handler-case
        (let* ((flags (find-symbol "*CC-FLAGS*" "CFFI-TOOLCHAIN"))
               (before (symbol-value flags))
               (c-output (merge-pathnames c-output)))
          (progv (list flags) (list before)
            (multiple-value-bind (written forms)
                (with-standard-io-syntax
                  (funcall generate source (make-pathname :type "lisp" :defaults c-output)))
              (unless (equal (symbol-value flags) before)
                (note source nil "ERROR"
                      (format nil "a FLAG form asks for C compiler flags ~S: lispbuild builds ~
                                   a wrapper's C file with the flags of every C file"
                              (ldiff (symbol-value flags) before)))
                (return-from wrapper-job nil))
              (rename-file written c-output)
              (write-wrapper-bindings output (format nil "~A.so" (pathname-name c-output))
                                      forms)
              t)))
      (error (c)
        (note source nil "ERROR" c)
        nil))))

;;; Dumping the image of a binary.

(defun entry-lambda-list (function)
  "The lambda list SBCL kept for FUNCTION; :UNKNOWN when it kept none
(code compiled with (debug 0))."
  (let ((lambda-list (if (typep function 'generic-function)
                         (sb-mop:generic-function-lambda-list function)
                         (sb-kernel:%fun-lambda-list function))))
    (if (listp lambda-list) lambda-list :unknown)))

(defparameter *entry-arguments-advice*
  "say which list it is called with: entry_arguments=\"posix-argv\" (the ~
   program's name first, as sb-ext:*posix-argv*) or ~
   entry_arguments=\"command-line-arguments\" (without it, as ~
   uiop:command-line-arguments)")

(defun entry-convention (symbol lambda-list arguments)
  "How the entry SYMBOL is called (:NONE, :SPREAD, :POSIX-ARGV or
:COMMAND-LINE-ARGUMENTS), or a string saying why it cannot be, from its
LAMBDA-LIST and the binary's entry_arguments (ARGUMENTS, or NIL)."
  (let* ((known (listp lambda-list))
         (required (and known (or (position-if (lambda (x) (member x lambda-list-keywords))
                                               lambda-list)
                                  (length lambda-list))))
         (takes-one (or (not known) (eql required 1)
                        (and (eql required 0) (intersection '(&optional &rest) lambda-list)))))
    (cond ((and known (> required 1))
           (format nil "~S requires ~D arguments; an entry takes none (it can read ~
                        uiop:command-line-arguments), the arguments spread (&rest), or one ~
                        list of them" symbol required))
          (arguments
           (if takes-one
               (intern (string-upcase arguments) :keyword)
               (format nil "~S takes no argument, but entry_arguments=~S was given"
                       symbol arguments)))
          ((not known)
           (format nil "SBCL kept no lambda list of ~S (compiled with (debug 0)): ~?"
                   symbol *entry-arguments-advice* '()))
          ((eql required 1)
           (format nil "~S takes one argument: ~?" symbol *entry-arguments-advice* '()))
          ((equal (first lambda-list) '&rest) :spread)
          (t :none))))

(defun find-entry (entry test arguments)
  "The function named by ENTRY, \"package:name\" (or package::name), and
how it is called (ENTRY-CONVENTION; a TEST function with no arguments)."
  (let* ((colon (position #\: entry))
         (package-name (string-upcase (subseq entry 0 colon)))
         (name (string-upcase (string-left-trim ":" (subseq entry colon))))
         (package (find-package package-name))
         (symbol (and package (find-symbol name package))))
    (flet ((fail (text &rest arguments)
             (note (format nil "entry ~A" entry) nil "ERROR" (apply #'format nil text arguments))
             (return-from find-entry nil)))
      (cond ((null package) (fail "there is no package ~A" package-name))
            ((null symbol) (fail "there is no symbol ~A in package ~A" name package-name))
            ((special-operator-p symbol) (fail "~S is a special operator, not a function" symbol))
            ((macro-function symbol) (fail "~S is a macro, not a function" symbol))
            ((not (fboundp symbol)) (fail "~S is not a function" symbol)))
      (let ((lambda-list (entry-lambda-list (fdefinition symbol))))
        (if test
            (let ((required (and (listp lambda-list)
                                 (or (position-if (lambda (x) (member x lambda-list-keywords))
                                                  lambda-list)
                                     (length lambda-list)))))
              (if (and required (plusp required))
                  (fail "the test function ~S requires ~D argument~:P; it is called with none"
                        symbol required)
                  (values symbol :none)))
            (let ((convention (entry-convention symbol lambda-list arguments)))
              (if (stringp convention)
                  (fail "~A" convention)
                  (values symbol convention))))))))

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

(defun toplevel-for (function convention test)
  "Call FUNCTION as CONVENTION says (ENTRY-CONVENTION); exit with the
integer it returns (0 otherwise), 130 on an interrupt, 143 on SIGTERM. A
TEST function is called with no arguments, and the program exits 0 if it
returns true, 1 if false."
  (lambda ()
    (sb-sys:enable-interrupt sb-unix:sigterm #'exit-on-sigterm)
    (restore-uiop)
    (let* ((argv sb-ext:*posix-argv*)
           (code (handler-case
                     (cond (test (if (funcall function) 0 1))
                           (t (ecase convention
                                (:none (funcall function))
                                (:spread (apply function (rest argv)))
                                (:posix-argv (funcall function argv))
                                (:command-line-arguments (funcall function (rest argv))))))
                   (sb-sys:interactive-interrupt () 130))))
      (sb-ext:exit :code (if (typep code '(integer 0 255)) code 0)))))

(defun c-name-p (string)
  "True for a string that reads as a C identifier with a lower-case letter
in it (Lisp's own symbol names have none)."
  (flet ((letter-p (c) (or (char<= #\a c #\z) (char<= #\A c #\Z) (char= c #\_))))
    (and (< 1 (length string) 128)
         (letter-p (char string 0))
         (every (lambda (c) (or (letter-p c) (char<= #\0 c #\9))) string)
         (some #'lower-case-p string))))

(defun strings-naming-c-symbols ()
  "Every string in the heap that could name a C symbol: a foreign function
the program looks up only when it runs (a FOREIGN-FUNCALL compiled at run
time, libffi's ffi_type_double through FOREIGN-SYMBOL-POINTER)."
  ;; The live ones only: what garbage the heap still holds depends on the
  ;; dumping process's history (a worker's, a fresh SBCL's).
  (sb-ext:gc :full t)
  (let ((names (make-hash-table :test 'equal)))
    (sb-vm:map-allocated-objects
     (lambda (object type size)
       (declare (ignore type size))
       (when (and (stringp object) (c-name-p object))
         (setf (gethash object names) t)))
     :all)
    (loop for name being the hash-keys of names collect (coerce name 'simple-base-string))))

(defun write-linkage (path)
  "One line per linkage-table entry: \"function NAME\" or \"data NAME\",
followed by \" undefined\" when this (dynamic) image could not find it
either, though the shared objects it loaded were there to provide it; then
\"named NAME\" for each other string that could name a C symbol."
  (let* ((undefined (cdr sb-sys:*linkage-info*))
         (keys (loop for key being the hash-keys of (car sb-sys:*linkage-info*) collect key))
         (entries (loop for key in keys
                        collect (format nil "~:[function~;data~] ~A~:[~; undefined~]"
                                        (consp key) (if (consp key) (car key) key)
                                        (and sb-sys:*shared-objects*
                                             (member key undefined :test #'equal)))))
         (linked (mapcar (lambda (key) (if (consp key) (car key) key)) keys))
         (named (set-difference (strings-naming-c-symbols) linked :test #'string=)))
    (with-open-file (out path :direction :output :if-exists :supersede)
      (dolist (line (sort entries #'string<))
        (write-line line out))
      (dolist (name (sort named #'string<))
        (format out "named ~A~%" name)))))

(defun write-shared-objects (path)
  "The shared objects the image loaded (CFFI's foreign libraries among
them): the static executable must have an archive for each."
  (with-open-file (out path :direction :output :if-exists :supersede)
    (dolist (object sb-sys:*shared-objects*)
      (write-line (sb-alien::shared-object-namestring object) out))))

(defun reset-gc-counters ()
  "The CPU time this process spent collecting garbage, and the bytes it
freed: the saved image sets both to 0 when it starts (SBCL's GC-REINIT),
but the values in the file would be this build's timing."
  (setf sb-ext:*gc-run-time* 0
        sb-kernel::*n-bytes-freed-or-purified* 0))

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
  (sb-int:encapsulate 'sb-impl::tune-image-for-dump 'reset-gc-counters
                      (lambda (real)
                        (funcall real)
                        (reset-gc-counters))))

(defvar *before-save* nil
  "Called just before SAVE-LISP-AND-DIE: a worker's faster dump (worker.lisp).")

(defun dump-job (&key steps features entry entry-arguments core linkage shared-objects
                   reads compression test diagnostics &allow-other-keys)
  (push-features features)
  (multiple-value-bind (function convention) (find-entry entry test entry-arguments)
    (unless function
      (return-from dump-job nil))
    (when (find-package "ASDF")
      (call-asdf-support "REGISTER-LOADED-SYSTEMS"
                         (loop for (kind name) in steps when (eq kind :asdf) collect name)))
    (restore-os-random-seed)
    (write-linkage linkage)
    (write-shared-objects shared-objects)
    (write-diagnostics diagnostics)
    (write-files-read reads)
    (forget-build-state)
    (sb-ext:disable-debugger)
    (when *before-save* (funcall *before-save*))
    (run-finalizers-due)
    (sb-ext:save-lisp-and-die core :toplevel (toplevel-for function convention test)
                                   :save-runtime-options t
                                   :compression (and compression t))))

(defun run-job (job)
  "Perform JOB, whose steps have been performed; true on success."
  (ecase (first job)
    (:compile (apply #'compile-job (rest job)))
    (:dump (apply #'dump-job (rest job)))
    (:check-undefined (apply #'check-undefined-job (rest job)))
    (:grovel (apply #'grovel-job (rest job)))
    (:wrapper (apply #'wrapper-job (rest job)))
    (:asdf-graph
     (ensure-asdf)
     (prog1 (apply #'call-asdf-support "ASDF-GRAPH" (rest job))
       (write-files-read (getf (rest job) :reads))))))

(defun read-request (file)
  (with-open-file (in file :external-format :utf-8)
    (with-standard-io-syntax
      (let ((*read-eval* nil))
        (read in)))))

(defun threads-running ()
  "The process's OS threads: Linux counts them into the link count of
/proc/self/task (two more). Asked without allocating anything that
depends on this process (its pid, say)."
  (- (nth-value 4 (sb-unix:unix-stat "/proc/self/task")) 2))

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
  (sb-thread::with-system-mutex (sb-thread::*make-thread-lock*)
    (sb-impl::finalizer-thread-stop))
  (loop repeat 10000
        until (= (threads-running) 1)
        do (sleep 0.001))
  (sb-kernel::scrub-control-stack)
  (sb-ext:gc :full t))

(defun run-finalizers-due ()
  "Where the finalizer thread was stopped (RUN-FINALIZERS-IN-MAIN-THREAD):
SAVE-LISP-AND-DIE stops it first thing, and that call finds it stopped,
once; the saved image starts its own."
  (unless sb-impl::*finalizer-thread*
    (sb-impl::run-pending-finalizers)
    (sb-int:encapsulate 'sb-impl::finalizer-thread-stop 'stopped
                        (lambda (real)
                          (declare (ignore real))
                          (sb-int:unencapsulate 'sb-impl::finalizer-thread-stop 'stopped)
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
    (sb-int:encapsulate 'sb-kernel::os-random-seed 'build-seed
                        (lambda (real)
                          (declare (ignore real))
                          (pushnew (loading-file) *seeded-while-loading* :test #'equal)
                          (coerce (append words (list (incf calls)))
                                  '(simple-array (unsigned-byte 32) (*)))))))

(defun restore-os-random-seed ()
  "Before saving: the program's own (MAKE-RANDOM-STATE T) reads
/dev/urandom; the random states seeded while loading are the same in
every copy of the release, as in every run of any saved image."
  (when (sb-int:encapsulated-p 'sb-kernel::os-random-seed 'build-seed)
    (sb-int:unencapsulate 'sb-kernel::os-random-seed 'build-seed)
    (when *seeded-while-loading*
      (note "release" nil "note"
            (format nil "~{~A~^, ~} made a random state from the operating system's ~
                         randomness while loading; a release seeds it from its own ~
                         identity instead, so every copy of the executable starts with ~
                         that state (make a new one when the program starts where that ~
                         matters)"
                    (reverse *seeded-while-loading*))))))

(defun run-request (file)
  "A fresh SBCL's whole life: the steps, then the job; exits. A canonical
request (a release dump) first stops what would make its allocation depend
on timing or on the operating system's randomness."
  (destructuring-bind (job &key asdf asdf-support asdf-cache canonical build-seed)
      (read-request file)
    (when canonical
      (run-finalizers-in-main-thread)
      (fix-os-random-seed build-seed))
    (record-files-read)
    (setf *asdf* asdf
          *asdf-support* asdf-support
          *asdf-cache* asdf-cache)
    (let ((ok (and (perform-steps (getf (rest job) :steps))
                   (run-job job))))
      (write-diagnostics (getf (rest job) :diagnostics))
      (sb-ext:exit :code (if ok 0 1) :abort t))))
