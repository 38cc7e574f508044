;;;; Paths of the build machine an image keeps: before a dump, every global
;;;; variable and constant of the program's packages (not SBCL's, ASDF's,
;;;; UIOP's or lispbuild's) is looked into, a few levels deep through
;;;; lists, vectors and hash tables, for a pathname or an absolute name
;;;; under a directory that exists only where it was built (the project,
;;;; its libraries' directories, the dump's directory). Code that opens
;;;; such a file after start (asdf:system-relative-pathname kept in a
;;;; DEFVAR, a library's data directory) fails on another machine; the dump
;;;; says so, naming the variable, and resources= is the way out.

(defpackage #:lispbuild/kept-paths
  (:use #:cl)
  (:import-from #:lispbuild/driver #:note)
  (:export #:note-machine-paths
           ;; For lispbuild's Lisp unit checks (tests/lisp/units.lisp).
           #:path-in #:the-programs-package-p))
(in-package #:lispbuild/kept-paths)

(defparameter *not-the-program* '("SB-" "LISPBUILD/" "ASDF" "UIOP")
  "Prefixes of the names of packages that are not the program's code
(with COMMON-LISP and KEYWORD; COMMON-LISP-USER is the program's).")
(defparameter *depth* 4 "How deep into a variable's value to look.")
(defparameter *limit* 20000 "How many objects of one value to look at, at most.")
(defparameter *shown* 10 "How many variables to name.")

(defun the-programs-package-p (package)
  (let ((name (package-name package)))
    (not (or (member name '("COMMON-LISP" "KEYWORD") :test #'string=)
             (some (lambda (prefix) (eql 0 (search prefix name))) *not-the-program*)))))

(defun under (name directories)
  (and (plusp (length name)) (char= (char name 0) #\/)
       (some (lambda (directory)
               (and (>= (length name) (length directory))
                    (string= directory name :end2 (length directory))))
             directories)))

(defun machine-path (object directories)
  "The name OBJECT gives of a path under DIRECTORIES, or NIL."
  (let ((name (typecase object
                (pathname (ignore-errors (namestring object)))
                (string object))))
    (and name (under name directories) name)))

(defun path-in (value directories)
  "The first path under DIRECTORIES that VALUE holds, or NIL."
  (let ((seen (make-hash-table :test 'eq))
        (budget *limit*))
    (labels ((walk (object depth)
               (when (or (minusp depth) (minusp (decf budget))
                         (and (typep object '(or cons vector hash-table))
                              (shiftf (gethash object seen) t)))
                 (return-from walk nil))
               (or (machine-path object directories)
                   (typecase object
                     (cons (or (walk (car object) (1- depth)) (walk (cdr object) depth)))
                     (string nil)
                     ((and vector (not bit-vector))
                      (some (lambda (element) (walk element (1- depth))) object))
                     (hash-table
                      (loop for key being the hash-keys of object using (hash-value element)
                            thereis (or (walk key (1- depth)) (walk element (1- depth)))))))))
      (walk value *depth*))))

(defun kept-paths (directories)
  "(SYMBOL . PATH) of each variable of the program that holds a path under
DIRECTORIES, by name."
  (let ((found '()))
    (dolist (package (list-all-packages))
      (when (the-programs-package-p package)
        (do-symbols (symbol package)
          (when (and (eq (symbol-package symbol) package) (boundp symbol))
            (let ((path (path-in (symbol-value symbol) directories)))
              (when path
                (push (cons symbol path) found)))))))
    (sort found #'string< :key (lambda (entry) (prin1-to-string (car entry))))))

(defun note-machine-paths (project libraries)
  "Note, as warnings of the dump, each variable of the program that holds a
path under PROJECT (the project's directory, or NIL) or this process's
directory, and in one line those that hold one under LIBRARIES (the
directories of its libraries outside the project: a library may read
its data as it loads, and keep the path unused). Each directory is
absolute and ends in /."
  (let* ((own (cons (namestring (truename *default-pathname-defaults*))
                    (and project (list project))))
         (found (kept-paths (append own libraries)))
         (own-found (remove-if-not (lambda (entry) (under (cdr entry) own)) found))
         (theirs (remove-if (lambda (entry) (under (cdr entry) own)) found)))
    (loop for (symbol . path) in own-found
          repeat *shown*
          do (note "dump" nil "warning"
                   (format nil "~S holds ~S, a path of the machine it was built on: if ~
                                the program opens it when it runs, a copy of the ~
                                executable elsewhere will not find it; give the binary ~
                                the files it opens as resources= and open them with ~
                                lispbuild/resources:resource-pathname"
                           symbol path)))
    (when (> (length own-found) *shown*)
      (note "dump" nil "warning"
            (format nil "and ~D more variables that hold such paths"
                    (- (length own-found) *shown*))))
    (when theirs
      (note "dump" nil "note"
            (format nil "~D variable~:P of libraries hold~:[s~;~] paths of this machine, ~
                         which a copy of the executable elsewhere lacks if the program ~
                         opens them when it runs (resources= embeds files): ~
                         ~{~S~^, ~}"
                    (length theirs) (cdr theirs) (mapcar #'car theirs))))))
