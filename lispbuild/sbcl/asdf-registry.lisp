;;;; Where ASDF-GRAPH finds systems (lispbuild/asdf_registry.py reads the
;;;; same places for its keys and messages): the project's registry trees first; then, unless the build is
;;;; hermetic, the user's own source registry as ASDF reads it
;;;; (CL_SOURCE_REGISTRY, source-registry.conf and .conf.d/, its defaults,
;;;; Debian's /usr/share/common-lisp/source/ among them), and Quicklisp's
;;;; local-projects/ and installed dists, searched after it as Quicklisp's
;;;; own search functions are; a hermetic build has the trees and Debian's
;;;; sources only. REGISTRY-ENTRIES writes what was searched, so that the
;;;; build notices an .asd file added to any of it.

(in-package #:lispbuild/asdf)

(defparameter *not-sources* '("build" "cache" "dist" ".venv")
  "Directories of a project's registry tree that hold what lispbuild and
Python make, not sources.")

(defun configure-source-registry (trees inherit)
  "ASDF's source registry: TREES, then the user's configuration if INHERIT."
  (asdf:initialize-source-registry
   `(:source-registry (:also-exclude ,@*not-sources*)
                      ,@(loop for dir in trees collect `(:tree ,dir))
                      ,(if inherit :inherit-configuration :ignore-inherited-configuration))))

;;; Quicklisp, read as its client reads it (without loading the client):
;;; local-projects/ holds trees, the .asd file with the shortest name
;;; winning; an installed dist's installed/systems/NAME.txt gives the .asd
;;; file of system NAME, relative to Quicklisp's directory. Python gives the
;;; dists in Quicklisp's order (most preferred first).

(defun local-projects-searcher (directory)
  (let ((files :unread))
    (lambda (name)
      (when (eq files :unread)
        (setf files (sort (directory (merge-pathnames "**/*.asd" directory))
                          #'< :key (lambda (file) (length (namestring file))))))
      (let ((primary (asdf:primary-system-name name)))
        (find-if (lambda (file) (equal (pathname-name file) primary)) files)))))

(defun dist-searcher (home indexes)
  (lambda (name)
    (loop with primary = (asdf:primary-system-name name)
          for index in indexes
          for entry = (probe-file (merge-pathnames (make-pathname :name primary :type "txt")
                                                   index))
          when entry
            return (let ((asd (merge-pathnames
                               (string-trim '(#\Space #\Tab #\Newline #\Return)
                                            (uiop:read-file-string entry))
                               home)))
                     (and (probe-file asd) asd)))))

(defvar *quicklisp* nil
  "Whether Quicklisp's directories are searched.")

(defun add-quicklisp-searchers (quicklisp)
  "QUICKLISP: (HOME LOCAL-PROJECTS INDEX...), directories, or NIL."
  (destructuring-bind (&optional home local-projects &rest indexes) quicklisp
    (when home
      (setf *quicklisp* t)
      (setf asdf:*system-definition-search-functions*
            (append asdf:*system-definition-search-functions*
                    (list (local-projects-searcher local-projects)
                          (dist-searcher home indexes)))))))

(defun registry-entries (out quicklisp)
  "Write a \"registry DIRECTORY tree|directory\" record for each place
searched, in ASDF's order."
  (loop for (directory . options) in (asdf/source-registry:flatten-source-registry)
        do (tsv out "registry" (namestring directory)
                (if (getf options :recurse) "tree" "directory")))
  (when quicklisp
    (tsv out "registry" (second quicklisp) "tree")))

(defun defines-system-p (text name)
  "Whether TEXT, an .asd file, has a DEFSYSTEM form for NAME (written
name, :name, #:name or \"name\", in any case)."
  (loop for start = (search "defsystem" text :test #'char-equal)
          then (search "defsystem" text :test #'char-equal :start2 (1+ start))
        while start
        thereis (let* ((from (position-if-not (lambda (c) (member c '(#\Space #\Tab #\Newline #\Return)))
                                              text :start (+ start (length "defsystem"))))
                       (to (and from (position-if (lambda (c) (member c '(#\Space #\Tab #\Newline #\Return #\( #\))))
                                                  text :start from))))
                  (and from to (> start 0) (member (char text (1- start)) '(#\( #\:))
                       (string-equal name (string-trim "#:\"" (subseq text from to)))))))

(defun load-asd-defining (name trees)
  "Load the .asd file under TREES that defines system NAME, when its file
is not named after it (flexi-streams-test is in flexi-streams.asd): ASDF
looks a system up by its primary name only. True if one was found."
  (dolist (directory trees)
    (dolist (asd (sort (mapcar #'namestring
                               (directory (merge-pathnames "**/*.asd" directory)))
                       #'string<))
      (unless (some (lambda (part) (search (format nil "/~A/" part) asd)) *not-sources*)
        (let ((text (uiop:read-file-string asd :external-format :utf-8)))
          (when (defines-system-p text name)
            (asdf:load-asd asd)
            (return-from load-asd-defining t)))))))

(defun searched-trees (quicklisp)
  "The trees of the source registry, and Quicklisp's local-projects."
  (append (loop for (directory . options) in (asdf/source-registry:flatten-source-registry)
                when (getf options :recurse) collect directory)
          (and quicklisp (list (second quicklisp)))))

(defun find-asked-system (name quicklisp)
  (or (asdf:find-system name nil)
      (and (load-asd-defining name (searched-trees quicklisp))
           (asdf:find-system name nil))
      (asdf:find-system name)))

(defun searched ()
  "The places searched, for a message."
  (append (mapcar (lambda (entry) (namestring (first entry)))
                  (asdf/source-registry:flatten-source-registry))
          (and *quicklisp* (list "Quicklisp's local-projects and dists"))))

(defun failure-message (condition)
  "What to tell the user when ASDF cannot give a system."
  (typecase condition
    (asdf:missing-dependency
     (let ((by (asdf::missing-required-by condition)))
       (format nil "system ~A depends on ~A, which ASDF cannot find~%searched: ~{~A~^, ~}"
               (if (typep by 'asdf:component) (asdf:component-name by) by)
               (asdf::missing-requires condition) (searched))))
    (asdf:missing-component
     (format nil "ASDF cannot find system ~A~%searched: ~{~A~^, ~}"
             (asdf::missing-requires condition) (searched)))
    (t (remove #\Return (princ-to-string condition)))))
