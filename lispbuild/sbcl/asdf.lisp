;;;; The ASDF side of the driver: loaded by driver.lisp's ENSURE-ASDF, after
;;;; ASDF, when a request involves ASDF systems (with asdf-plan.lisp,
;;;; compiled after it into asdf-support.fasl); it defines the functions
;;;; driver.lisp declares for it.
;;;;
;;;; FIND-DEFINED-SYSTEM gives a compiling or dumping image what LOAD-SYSTEM
;;;; would have: ASDF and the systems' definitions (code such as
;;;; #.(asdf:component-version (asdf:find-system :usocket)) needs them),
;;;; one system at a time, in load order.

(defpackage #:lispbuild/asdf
  (:use #:cl #:lispbuild/driver)
  (:local-nicknames (#:sbcl #:lispbuild/sbcl)))
(in-package #:lispbuild/asdf)

;;; The build chose its ASDF (driver.py): it is not to upgrade itself to an
;;; asdf.asd its registry finds, which would compile asdf.lisp in every
;;; build directory and load it in every process.
(asdf:register-immutable-system "asdf")
(asdf:register-immutable-system "uiop")

(defun keep-asdf-output (cache)
  "Systems loaded while reading .asd files (:defsystem-depends-on) are
compiled by ASDF itself: keep its FASLs out of the user's cache."
  (asdf:initialize-output-translations
   `(:output-translations (t (,cache :**/ :*.*.*)) :ignore-inherited-configuration)))

(defun find-defined-system (system asd-files cache)
  "Find SYSTEM through exactly the directories of ASD-FILES, the .asd
files of the systems defined so far (its own last)."
  (asdf:initialize-source-registry
   `(:source-registry
     ,@(loop for asd in (remove-duplicates
                         (mapcar (lambda (f) (directory-namestring (merge-pathnames f)))
                                 asd-files)
                         :test #'string= :from-end t)
             collect `(:directory ,asd))
     :ignore-inherited-configuration))
  (keep-asdf-output cache)
  ;; A system defined in an .asd named after another (cxml-xml in
  ;; cxml.asd) is found by loading that file, which ASDF's search by
  ;; name cannot do.
  (let ((found (or (asdf:find-system system nil)
                   (progn (asdf:load-asd (merge-pathnames (car (last asd-files))))
                          (asdf:find-system system)))))
    ;; Defined once for the job: ASDF is not to load its definition again
    ;; (it would, in the middle of a file's LOAD-OP, for a system whose
    ;; .asd its search does not find by name).
    (asdf:register-immutable-system system)
    found))

(defun defined-system (name)
  (or (asdf:registered-system name) (asdf:find-system name)))

(defun file-component (system source)
  "The component of SYSTEM (a name) whose file is SOURCE, or NIL. Where
SOURCE is not on this machine (a development executable loading its
payload as it starts, payload.lisp), the one whose pathname, as ASDF
computed it when the build defined the system, is SOURCE."
  (let* ((file (probe-file source))
         (wanted (or file (merge-pathnames source))))
    (labels ((walk (c)
               (if (typep c 'asdf:parent-component)
                   (some #'walk (asdf:component-children c))
                   (let ((path (asdf:component-pathname c)))
                     (and path (equal (pathname-name path) (pathname-name wanted))
                          (if file
                              (equal (probe-file path) file)
                              (equal (namestring path) (namestring wanted)))
                          c)))))
      (walk (defined-system system)))))

(define-condition replaced-perform (error)
  ((component :initarg :component)
   (operation :initarg :operation)
   (function :initarg :function))
  (:report (lambda (c stream)
             (with-slots (component operation function) c
               (format stream "component ~A of system ~A is a ~(~A~) whose ~(~A~) does ~
                               not call ~S: a PERFORM method replaces ASDF's, and ~
                               lispbuild compiles and loads each file itself through ~
                               that function"
                       (asdf:component-name component)
                       (asdf:component-name (asdf:component-system component))
                       (type-of component) operation function)))))

(defun perform-as-asdf-would (operation component function replacement)
  "ASDF's PERFORM of OPERATION on COMPONENT, with every method and hook
the system wraps it in (an :around-compile hook, PERFORM methods of its
component classes or of the component itself, such as ironclad's binding
of *INLINE-EXPANSION-LIMIT* around compiling, or rt's feature pushed
after loading), where ASDF's own call of FUNCTION (UIOP:COMPILE-FILE*,
UIOP:LOAD*) calls REPLACEMENT with the same arguments instead: lispbuild
compiles and loads its own files. True if REPLACEMENT was called. ASDF's
bookkeeping of done actions is left out: lispbuild keeps its own."
  (let* ((operation (asdf:make-operation operation))
         (input (first (asdf:input-files operation component)))
         (called nil))
    ;; Only the call for this component's file: ASDF may load an .asd too.
    (sbcl:encapsulate function 'lispbuild
                        (lambda (real file &rest arguments)
                          (cond ((and input (equal (pathname file) input))
                                 (setf called t)
                                 (apply replacement file arguments))
                                (t (apply real file arguments)))))
    (sbcl:encapsulate 'asdf::mark-operation-done 'lispbuild
                        (lambda (real o c)
                          (unless (and (eq o operation) (eq c component))
                            (funcall real o c))))
    (unwind-protect (asdf:perform operation component)
      (sbcl:unencapsulate function 'lispbuild)
      (sbcl:unencapsulate 'asdf::mark-operation-done 'lispbuild))
    called))

(defun perform-file-as-asdf-would (operation component function replacement)
  (unless (perform-as-asdf-would operation component function replacement)
    (error 'replaced-perform :component component :operation operation
                             :function function)))

(defun compile-as-asdf-would (system source compile)
  "Compile SOURCE, a file of SYSTEM, as ASDF's COMPILE-OP would, where
COMPILE, a function of &key COMPILE-CHECK that returns the FASL or NIL,
is ASDF's COMPILE-FILE*: it compiles SOURCE as given (a relative name
keeps the project's place out of the FASL) to lispbuild's output.
Returns the FASL, or NIL."
  (let ((component (file-component system source))
        (fasl nil))
    (when (and component (asdf::around-compile-hook component))
      (lispbuild/trace:incomplete "its system has an :around-compile hook"))
    (if (null component)
        (funcall compile)
        (catch 'compile-failed
          (perform-file-as-asdf-would
           'asdf:compile-op component 'uiop:compile-file*
           (lambda (input &key compile-check &allow-other-keys)
             (declare (ignore input))
             (setf fasl (funcall compile :compile-check compile-check))
             (if fasl
                 (values fasl nil nil)
                 (throw 'compile-failed nil))))
          fasl))))

(defun load-as-asdf-would (fasl system source)
  "Load FASL, the compiled SOURCE of SYSTEM, as ASDF's LOAD-OP would."
  (let ((component (file-component system source)))
    (if (null component)
        (load fasl)
        (perform-file-as-asdf-would 'asdf:load-op component 'uiop:load*
                                    (lambda (file &rest keys)
                                      (declare (ignore file))
                                      (apply #'load fasl keys))))))

(defun loaded-as-asdf-would (system)
  "What ASDF does when every file of SYSTEM is loaded: its LOAD-OP on the
system itself, which runs nothing but the methods systems add (rt pushes
:RT onto *FEATURES*, ironclad PROVIDEs itself)."
  (perform-as-asdf-would 'asdf:load-op (defined-system system) 'uiop:load* #'load))

(defun register-loaded-systems (systems)
  "The image holds these systems' code: ASDF must not look for them on disk
(the static executable runs where their sources are not)."
  (dolist (name systems)
    (asdf:register-immutable-system name)))

(defun muffle-bookkeeping (warning)
  "ASDF's record of a PERFORM called outside a plan finds the load of the
system not done by ASDF (lispbuild loaded its files): not the suite's word."
  (when (search "Computing just-done stamp" (princ-to-string warning))
    (muffle-warning warning)))

(defun run-test-op ()
  "The entry of a suite that a system's test-op runs (*TEST-OP*): ASDF's
PERFORM of TEST-OP on the system, that is the .asd's own method, defined
in this image; its value is the runner's, which ASDF's OPERATE would drop:
true when the suite passed. Parachute's is a report, passed or not;
lisp-unit2's a database of results, which passed when it holds no failed
or erring assertion, no missing test, and at least one passed assertion."
  (destructuring-bind (system framework) *test-op*
    (let ((value (handler-bind ((warning #'muffle-bookkeeping))
                   (asdf:perform (asdf:make-operation 'asdf:test-op)
                                 (asdf:find-system system)))))
      (flet ((count-of (name)
               (length (funcall (find-symbol name "LISP-UNIT2") value))))
        (cond ((string= framework "parachute")
               (eq (funcall (find-symbol "STATUS" "PARACHUTE") value) :passed))
              ((string= framework "lisp-unit2")
               (and (zerop (count-of "FAILED")) (zerop (count-of "ERRORS"))
                    (zerop (count-of "MISSING")) (plusp (count-of "PASSED"))))
              (t (and value t)))))))
