;;;; Compiling one file (the compile job), and what it leaves undefined for
;;;; its library's check (the check-undefined job).

(defpackage #:lispbuild/compile
  (:use #:cl #:lispbuild/driver)
  (:import-from #:lispbuild/trace #:call-traced #:write-trace)
  (:import-from #:lispbuild/chain #:call-leaving-no-trace)
  (:local-nicknames (#:sbcl #:lispbuild/sbcl))
  (:export #:compile-job #:check-undefined-job #:name-record #:named))
(in-package #:lispbuild/compile)

;;; Compiling one file.

(defun quality-symbol (quality)
  "A policy quality by name: CL's (\"speed\"), or a contrib's as
\"package:name\" (SB-COVER:STORE-COVERAGE-DATA, for `doit coverage`)."
  (let ((colon (position #\: quality)))
    (if colon
        (find-symbol (string-upcase (subseq quality (1+ colon)))
                     (string-upcase (subseq quality 0 colon)))
        (find-symbol (string-upcase quality) :cl))))

(defun proclaim-policy (policy)
  (proclaim `(optimize ,@(loop for (quality . level) in policy
                               collect (list (quality-symbol quality) level)))))

(defun fixed-write-date (source)
  "Make FILE-WRITE-DATE of SOURCE constant: SBCL writes it into the FASL,
and a FASL must depend on the source's contents, not on when it was saved."
  (let ((truename (truename source)))
    (sbcl:encapsulate 'file-write-date 'fixed-write-date
                        (lambda (real file)
                          (if (equal (ignore-errors (truename file)) truename)
                              0
                              (funcall real file))))))

(defun clear-pathname-table ()
  "SBCL interns pathnames, and how one is written into a FASL depends on
which pathnames the process met before: start every compile from none."
  (setf sbcl:*pathnames* (sbcl:make-pathname-intern-table)))

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
          ((sbcl:compiler-error
             (lambda (c)
               (incf *errors*)
               (let ((inner (sbcl:encapsulated-condition c)))
                 (if (typep inner 'sbcl:input-error-in-compile-file)
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
                (compile-as-asdf-would system source #'compile-it)
                (compile-it)))))
    ;; An error the compiler does not handle, e.g. in EVAL-WHEN or IN-PACKAGE.
    ((and error (not sbcl:compiler-error)) (c)
      (incf *errors*)
      (note source (compiler-context-line source) "ERROR" c)
      nil)))

(defun name-coverage-records (source)
  "A FASL compiled for `doit coverage` names the file of its coverage
records as SBCL found it, absolute: the FASL would then depend on where
the project is, and its records would not be found under the name its
code has (SOURCE, from the project root). Name them SOURCE."
  (sbcl:encapsulate 'sbcl:dump-code-coverage-records 'as-named
                    (lambda (real namestring records fasl)
                      (declare (ignore namestring))
                      (funcall real source records fasl))))

(defun place-fasl (output step)
  "Put the FASL OUTPUT where STEP loads it from, under build/ (by a rename:
a reader sees a whole FASL), for the file that follows it in this process."
  (let* ((place (merge-pathnames (second step)))
         (tmp (format nil "~A.~D.tmp" (namestring place) (sbcl:unix-getpid))))
    (ensure-directories-exist place)
    (with-open-file (in output :element-type '(unsigned-byte 8))
      (with-open-file (out tmp :direction :output :element-type '(unsigned-byte 8)
                               :if-exists :supersede)
        (let ((buffer (make-array (file-length in) :element-type '(unsigned-byte 8))))
          (read-sequence buffer in)
          (write-sequence buffer out))))
    (rename-file tmp place)))

(defun step-loader (fasl step)
  "A function that loads FASL as STEP loads its own (as ASDF's LOAD-OP
would, for a file of an ASDF system), noting no file read for it."
  (destructuring-bind (&optional (kind :load) name system source) step
    (declare (ignore name))
    (lambda ()
      (load-step kind fasl system source)
      (forget-file-read fasl))))

(defun compile-one (&key source output undefined external-format features policy
                      fail-on-warning asdf-system reads trace load-as then &allow-other-keys)
  "Compile one file; true if it compiled. Its second value: whether its
FASL then loaded, as LOAD-AS, where a follower (THEN) compiles next: in
place, by the step's own name, so that this image is the one a worker
holding the follower's state would be."
  (let ((*errors* 0) (*warnings* 0) (read-before (files-read)))
    (push-features features)
    (proclaim-policy policy)
    (fixed-write-date source)
    (name-coverage-records source)
    (forget-runtime-path)
    (clear-pathname-table)
    ;; GENSYM's names are written into the FASL: counted from 0, they do not
    ;; depend on what ran in the image before.
    (let ((fasl (call-leaving-no-trace
                 (lambda ()
                   (let ((*gensym-counter* 0))
                     (call-traced (lambda ()
                                    (compile-reporting source output undefined
                                                       (intern (string-upcase external-format)
                                                               :keyword)
                                                       asdf-system))))))))
      (write-files-read reads)
      (cond ((or (null fasl) (plusp *errors*))
             (unless *diagnostics*
               (note source nil "ERROR" "compilation failed"))
             nil)
            ((and fail-on-warning (plusp *warnings*)) nil)
            ;; Last: loading the FASL to see what it defines runs its code.
            (then
             (forget-files-read-since read-before)
             (place-fasl fasl load-as)
             (values t (write-trace trace (step-loader (second load-as) load-as))))
            (t (values t (write-trace trace (step-loader fasl load-as))))))))

(defun compile-follower (follower more time-limit)
  "Compile FOLLOWER, within TIME-LIMIT seconds; true if it compiled, and
whether it then loaded. Whatever goes wrong is its own task's to say,
compiling it alone: here it only ends the chain."
  (handler-case
      (sb-ext:with-timeout time-limit
        (with-open-file (log (getf follower :log) :direction :output :if-exists :supersede)
          (let ((*standard-output* log) (*error-output* log))
            (apply #'compile-one :then more follower))))
    (serious-condition () nil)))

(defun compile-followers (followers time-limit)
  "Compile each of FOLLOWERS in turn in this image, each with its own
diagnostics (D), printed words (L) and mark of success (F, written last),
while each compiles and loads: the rest are compiled alone, by their tasks."
  (loop for (follower . more) on followers
        do (multiple-value-bind (ok loaded)
               (let ((*diagnostics* '()))
                 (multiple-value-prog1 (compile-follower follower more time-limit)
                   (write-diagnostics (getf follower :diagnostics))))
             (unless ok (return))
             (with-open-file (done (getf follower :done) :direction :output
                                                         :if-exists :supersede)
               (write-line "compiled" done))
             (unless loaded (return)))))

(defun compile-job (&rest job &key then time-limit &allow-other-keys)
  "Compile the job's file, then (a cold build's compile of a serial system,
rules/lisp.py) the files that follow it, as ASDF compiles a system's
files: one process, each file loaded before the next compiles."
  (multiple-value-bind (ok loaded) (apply #'compile-one job)
    (when (and ok loaded then)
      (compile-followers then time-limit))
    ok))

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
  (let* ((kind (sbcl:undefined-warning-kind undef))
         (name (sbcl:undefined-warning-name undef))
         (severity (if (eq kind :variable) "WARNING" "STYLE-WARNING"))
         (uses (sbcl:undefined-warning-warnings undef))
         (more (- (sbcl:undefined-warning-count undef) (length uses)))
         (*package* (find-package "CL-USER")))
    (append
     (loop for context in uses
           for position = (sbcl:compiler-error-context-file-position context)
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
  (let ((kind (sbcl:undefined-warning-kind undef))
        (name (sbcl:undefined-warning-name undef)))
    (and (name-record name)
         (not (and (member kind '(:function :type))
                   (sbcl:name-reserved-by-ansi-p name kind))))))

(defun write-deferred (source path)
  "Write the undefined references another file may define to PATH, in
SBCL's order (by name), and leave SBCL only the others to report at the
compilation unit's end."
  (let ((deferred (sort (remove-if-not #'deferrable-p sbcl:*undefined-warnings*)
                        #'string< :key (lambda (undef)
                                         (prin1-to-string (sbcl:undefined-warning-name undef))))))
    (setf sbcl:*undefined-warnings*
          (remove-if #'deferrable-p sbcl:*undefined-warnings*))
    (let ((records (loop for undef in deferred
                         for kind = (sbcl:undefined-warning-kind undef)
                         for record = (name-record (sbcl:undefined-warning-name undef))
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
    (:variable (or (boundp name) (not (eq (sbcl:info :variable :kind name) :unknown))))
    (:type (or (find-class name nil) (sbcl:info :type :kind name)))))

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

