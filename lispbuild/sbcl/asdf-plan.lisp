;;;; ASDF-GRAPH writes what ASDF itself says of the systems asked for, one
;;;; tab-separated record a line:
;;;;   system NAME DIRECTORY      asd NAME FILE      depends NAME SYSTEM
;;;;   version NAME VERSION       (when the system declares one)
;;;;   module NAME MODULE         (a system that is an SBCL module to REQUIRE)
;;;;   file NAME PATH EXTERNAL-FORMAT NEEDED-PATH...
;;;;   cfile NAME PATH            (a C source file of the system)
;;;;   program NAME ENTRY BUILD-PATHNAME BUILD-OPERATION
;;;;                              (a system with an :entry-point, as program-op reads it)
;;;; PATHs are relative to the system's directory; a file's NEEDED-PATHs are
;;;; the files of the same system loaded before it compiles, in ASDF's plan
;;;; order. Systems are written dependencies first.

(in-package #:lispbuild/asdf)

(defun tsv (out &rest fields)
  (format out "~{~A~^	~}~%" fields))

(defun preloaded-module (system)
  "The module to REQUIRE for a system that has no sources of its own here:
an SBCL contrib, or ASDF and UIOP, which come with SBCL."
  (let ((name (asdf:component-name system)))
    (cond ((typep system 'asdf:require-system) name)
          ((member name '("asdf" "uiop") :test #'string=) "asdf"))))

(defun action-key (operation component)
  "An action by names, not objects: ASDF may load an .asd file again while
it plans (a system defined in another system's .asd, such as
flexi-streams-test), and the components it then makes are new objects
for the same files."
  (cons (type-of operation) (asdf:component-find-path component)))

(defun same-system-p (component system)
  (equal (asdf:component-name (asdf:component-system component))
         (asdf:component-name system)))

(defun system-actions (system)
  "The (operation . component) pairs that ACTION needs, transitively,
without walking into other systems: those are dependencies as a whole."
  (lambda (operation component)
    (let ((seen (make-hash-table :test 'equal))
          (found '()))
      (labels ((visit (op c)
                 (let ((key (action-key op c)))
                   (unless (gethash key seen)
                     (setf (gethash key seen) t)
                     (push (cons op c) found)
                     (when (same-system-p c system)
                       (loop for (dop . dc) in (asdf::direct-dependencies op c)
                             do (visit dop dc)))))))
        (visit operation component))
      found)))

(define-condition dependency-cycle (error)
  ((names :initarg :names :reader cycle-names))
  (:report (lambda (c stream)
             (format stream "circular dependency: ~{~A~^ -> ~}" (cycle-names c)))))

(defun action-order (system)
  "Every action LOAD-OP of SYSTEM needs, dependencies first, in the order
ASDF's sequential plan performs them when nothing is loaded yet. (The plan
itself leaves out what this image already loaded: the systems that
reading .asd files loaded, for :defsystem-depends-on.)"
  (let ((state (make-hash-table :test 'equal))
        (order '()))
    (labels ((visit (op c path)
               (let ((key (action-key op c))
                     (path (cons c path)))
                 (case (gethash key state)
                   (:done)
                   (:visiting
                    ;; Several actions per component: name each one once.
                    (let ((cycle (remove-duplicates
                                  (mapcar #'asdf:component-name
                                          (reverse (subseq path 0 (1+ (position (asdf:component-find-path c) path
                                                                                :start 1 :test #'equal
                                                                                :key #'asdf:component-find-path)))))
                                  :test #'equal :from-end t)))
                      (error 'dependency-cycle
                             :names (append cycle (list (first cycle))))))
                   (t
                    (setf (gethash key state) :visiting)
                    (loop for (dop . dc) in (asdf::direct-dependencies op c)
                          do (visit dop dc path))
                    (setf (gethash key state) :done)
                    (push (cons op c) order))))))
      (visit (asdf:make-operation 'asdf:load-op) system '()))
    (nreverse order)))

(defun cffi-class-p (component name)
  "Whether COMPONENT is of CFFI-GROVEL's class NAME (when CFFI-GROVEL is loaded)."
  (let* ((package (find-package "CFFI-GROVEL"))
         (class (and package (find-class (find-symbol name package) nil))))
    (and class (typep component class))))

(defun grovel-file-p (component)
  "A :cffi-grovel-file: lispbuild runs its groveller, then compiles the Lisp it writes."
  (cffi-class-p component "GROVEL-FILE"))

(defun wrapper-file-p (component)
  "A :cffi-wrapper-file: lispbuild processes it into a C library and the
Lisp bindings it compiles."
  (cffi-class-p component "WRAPPER-FILE"))

(defun check-component (component)
  (when (or (and (typep component 'asdf:source-file)
                 (not (typep component 'asdf:cl-source-file))
                 (not (typep component 'asdf:c-source-file))
                 (not (typep component 'asdf:static-file)))
            ;; Another file CFFI-GROVEL processes into Lisp.
            (and (cffi-class-p component "PROCESS-OP-INPUT")
                 (not (grovel-file-p component))
                 (not (wrapper-file-p component))))
    (error "component ~A of system ~A is a ~(~A~); lispbuild compiles Lisp ~
            source files, CFFI grovel and wrapper files and C source files only"
           (asdf:component-name component)
           (asdf:component-name (asdf:component-system component))
           (type-of component))))

(defun describe-system (system order out)
  "Write SYSTEM's directory, dependencies and files with what each needs."
  (let* ((name (asdf:component-name system))
         (closure (system-actions system))
         (prepare-op (asdf:make-operation 'asdf:prepare-op)))
    (tsv out "system" name (namestring (asdf:component-pathname system)))
    (tsv out "asd" name (namestring (asdf:system-source-file system)))
    (when (asdf:component-version system)
      (tsv out "version" name (asdf:component-version system)))
    (let ((entry (asdf::component-entry-point system)))
      (when entry
        (tsv out "program" name entry (or (asdf::component-build-pathname system) "")
             (let ((operation (asdf::component-build-operation system)))
               (if operation (string-downcase (princ-to-string operation)) "")))))
    ;; What its plan loads first, and what its .asd needs loaded to be
    ;; read (:defsystem-depends-on, which ASDF 3.3 loads outside the plan).
    (dolist (dependency (remove-duplicates
                         (append (loop for (op . c) in (funcall closure prepare-op system)
                                       when (and (typep op 'asdf:load-op)
                                                 (typep c 'asdf:system)
                                                 (not (equal (asdf:component-name c) name)))
                                         collect (asdf:component-name c))
                                 (loop for spec in (asdf:system-defsystem-depends-on system)
                                       for c = (asdf/find-component:resolve-dependency-spec
                                                system spec)
                                       when c collect (asdf:component-name c)))
                         :test #'equal :from-end t))
      (tsv out "depends" name dependency))
    ;; A file needs every file of its system that ASDF's plan loads before
    ;; it, as LOAD-SYSTEM does in one image: systems rely on that order
    ;; beyond what they declare (alexandria-2 uses alexandria-1's package).
    (let ((earlier '()))
      (loop for (op . c) in order
            when (and (typep op 'asdf:compile-op) (same-system-p c system))
              do (check-component c)
            ;; A C library of the system (cffi-tests' c-test-lib): lispbuild
            ;; builds it, for the static link and for the SBCL that loads it.
            when (and (typep op 'asdf:compile-op) (typep c 'asdf:c-source-file)
                      (same-system-p c system))
              do (tsv out "cfile" name (relative-name c system))
            when (and (typep op 'asdf:compile-op) (typep c 'asdf:cl-source-file)
                      (same-system-p c system))
              do (apply #'tsv out (cond ((grovel-file-p c) "grovel")
                                        ((wrapper-file-p c) "wrapper")
                                        (t "file"))
                        name
                        (relative-name c system)
                        (let ((format (asdf:component-external-format c)))
                          (if (keywordp format) format :utf-8))
                        (mapcar (lambda (n) (relative-name n system)) (reverse earlier)))
                 (push c earlier)))))

(defun relative-name (component system)
  (enough-namestring (asdf:component-pathname component)
                     (asdf:component-pathname system)))

(defun asdf-graph (&key systems registry inherit quicklisp output &allow-other-keys)
  "Write the records of SYSTEMS, found as asdf-registry.lisp says. A system
ASDF cannot give gets one record instead, \"error NAME LINE...\", and
spoils only what needs it: each asked system's records are written whole
or not at all. The first record, \"exclude NAME...\", names the
directories the registry trees skip; the \"registry\" records name the
places searched."
  (configure-source-registry registry inherit)
  (add-quicklisp-searchers quicklisp)
  (keep-asdf-output *asdf-cache*)
  (with-open-file (out output :direction :output :if-exists :supersede
                              :external-format :utf-8)
    (apply #'tsv out "exclude" (append asdf::*default-source-registry-exclusions* *not-sources*))
    (registry-entries out quicklisp)
    (let ((seen '()))
      (dolist (name systems t)
        (let ((seen-before seen))
          (handler-case
              (write-string
               (with-output-to-string (records)
                 (let ((order (action-order (find-asked-system name quicklisp))))
                   (loop for (op . c) in order
                         when (and (typep op 'asdf:load-op) (typep c 'asdf:system)
                                   (not (member (asdf:component-name c) seen :test #'equal)))
                           do (push (asdf:component-name c) seen)
                              (let ((module (preloaded-module c)))
                                (if module
                                    (tsv records "module" (asdf:component-name c) module)
                                    (describe-system c order records))))))
               out)
            (error (c)
              (setf seen seen-before)
              (apply #'tsv out "error" name
                     (uiop:split-string (substitute #\Space #\Tab (failure-message c))
                                        :separator (string #\Newline))))))))))
