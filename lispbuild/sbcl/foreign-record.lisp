;;;; The record of an image's foreign symbols, written as it is dumped:
;;;; its linkage-table entries, the strings that could name a C symbol the
;;;; program looks up only when it runs, and the shared objects it loaded.
;;;; linkage.py resolves them against the static archives.

(defpackage #:lispbuild/foreign-record
  (:use #:cl)
  (:local-nicknames (#:sbcl #:lispbuild/sbcl))
  (:export #:write-linkage #:write-shared-objects
           ;; For lispbuild's Lisp unit checks (tests/lisp/units.lisp).
           #:c-name-p))
(in-package #:lispbuild/foreign-record)

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
    (sbcl:map-allocated-objects
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
  (let* ((undefined (cdr sbcl:*linkage-info*))
         (keys (loop for key being the hash-keys of (car sbcl:*linkage-info*) collect key))
         (entries (loop for key in keys
                        collect (format nil "~:[function~;data~] ~A~:[~; undefined~]"
                                        (consp key) (if (consp key) (car key) key)
                                        (and sbcl:*shared-objects*
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
    (dolist (object sbcl:*shared-objects*)
      (write-line (sb-alien::shared-object-namestring object) out))))
