;;;; What a compile consulted and what its file defines: the compile job's
;;;; trace, from which the rebuilder (reuse.py) decides whether a later
;;;; file must be compiled again when an earlier one changed, as make
;;;; decides from the headers `gcc -MD` lists.
;;;;
;;;; A file's compile depends on the image it runs in only through what
;;;; it consults: macros, compiler macros, inline expansions, setf and
;;;; type expanders, constants and variables, types, classes and
;;;; structures, symbol plists, the packages its reader interns in, and
;;;; the functions that run while it compiles. Each is named by a symbol
;;;; the file mentions (read or produced by a macro), or one a function
;;;; that runs at compile time calls. So the trace lists
;;;;   m NAME   a symbol the file mentions
;;;;   c NAME   a function's name that may run while it compiles
;;;;   v NAME   a variable compile-time code reads, or a symbol in a form #.
;;;;            evaluated: its value is consulted too
;;;;   p NAME   a package it read symbols of
;;;; and, having loaded the FASL, what loading and compiling it changed:
;;;;   d KIND NAME VALUE   KIND is M (an expander of any sort), T (a type,
;;;;                       class or structure), V (a variable's kind and
;;;;                       type), S (a function's type), F (a function),
;;;;                       P (a plist), K (a package); VALUE is =TEXT
;;;;                       when TEXT says all of it, else @ (the file's
;;;;                       FASL stands for it)
;;;;   d G - @   something every later compile sees (*FEATURES*, policy)
;;;;   d X NAME @          a global variable whose value loading it changed
;;;; What the trace cannot see makes it say `incomplete REASON`, and the
;;;; file keeps its full key: a changed readtable, or code run at compile
;;;; time that holds a hash table of its own (which other files may fill
;;;; by calling a function, with no name of the trace to say so).

(defpackage #:lispbuild/trace
  (:use #:cl)
  (:local-nicknames (#:sbcl #:lispbuild/sbcl))
  (:export #:call-traced #:incomplete #:write-trace))
(in-package #:lispbuild/trace)

(defvar *seen* nil "Each symbol met, to what it was when first met.")
(defvar *conses* nil)
(defvar *packages* nil "Packages read in or of.")
(defvar *called* nil "Functions that may run while the file compiles.")
(defvar *incomplete* nil "Why the trace cannot be complete, or NIL.")
(defvar *globals* nil)
(defvar *values* nil "VARIABLE-VALUES before the compile.")
(defvar *variables* nil "Variables code run at compile time reads.")
(defvar *package-fingerprints* nil)

(defun tabbed (&rest fields)
  "FIELDS as one line's text, separated by tabs."
  (format nil "~{~A~^~C~}" (loop for (field . more) on fields
                                 collect field when more collect #\Tab)))

(defun incomplete (reason)
  (unless *incomplete*
    (setf *incomplete* reason)))

(defun frozen-p (symbol)
  "Whether no file of a build can define SYMBOL: SBCL's own and keywords
(SBCL's packages are locked)."
  (let ((package (symbol-package symbol)))
    (or (null package) (eq package (load-time-value (find-package "KEYWORD")))
        (sb-ext:package-locked-p package))))

(defun info (kind what symbol)
  (sbcl:info kind what symbol))

(defun type-fingerprint (symbol)
  "What of the type SYMBOL names a compile may consult. A standard class's
layout is replaced when the class is finalized, which compiling a file
that uses the class may do, and loading it does not: its definition (its
direct slots and superclasses) says what it is, whenever that happened."
  (let ((class (find-class symbol nil)))
    (list* (info :type :kind symbol) (info :type :expander symbol) class
           (if (typep class '(or standard-class sb-mop:funcallable-standard-class))
               (list (sb-mop:class-direct-slots class) (sb-mop:class-direct-superclasses class))
               (list (info :type :compiler-layout symbol) nil)))))

(defun fingerprint (symbol)
  "What of SYMBOL a compile may consult, by kind, to be compared with EQ."
  (flet ((fun (name) (and (fboundp name) (not (and (symbolp name) (macro-function name)))
                          (fdefinition name))))
    (vector
     ;; M
     (list (macro-function symbol) (compiler-macro-function symbol)
           (info :function :source-transform symbol) (info :function :inlinep symbol)
           (info :function :inlining-data symbol) (info :setf :expander symbol))
     ;; T
     (type-fingerprint symbol)
     ;; V
     (list (info :variable :kind symbol) (info :variable :macro-expansion symbol)
           (info :variable :always-bound symbol)
           (and (eq (info :variable :kind symbol) :constant) (boundp symbol)
                (symbol-value symbol)))
     ;; S
     (list (info :function :where-from symbol) (fun symbol))
     ;; F
     (list (fun symbol) (fun `(setf ,symbol)))
     ;; P
     (copy-list (symbol-plist symbol)))))

(defparameter *kinds* "MTVSFP")

(defun same (before after)
  (and (= (length before) (length after)) (every #'eq before after)))

(defun note (x)
  "Meet every symbol in X (a form), once. (COND, not TYPECASE: SBCL 2.2.9
compiles this loop's TYPECASE into one that never returns.)"
  (loop
    (cond ((symbolp x)
           (when (and x (not (frozen-p x)) (not (gethash x *seen*)))
             (setf (gethash x *seen*) (fingerprint x))
             (pushnew (symbol-package x) *packages*))
           (return))
          ((consp x)
           (when (gethash x *conses*) (return))
           (setf (gethash x *conses*) t)
           (note (car x))
           (setf x (cdr x)))
          ((and (vectorp x) (not (stringp x))) (map nil #'note x) (return))
          (t (return)))))

(defun variable-values ()
  "X: the value of every global variable no package lock guards (but
lispbuild's), to be compared with EQ (a hash table's by its entries, or
its count when it has more than a few thousand): what compile-time code
and #. forms read of it, whichever file set it, by whatever function."
  (let ((values (make-hash-table :test 'eq)))
    (dolist (package (list-all-packages) values)
      (unless (or (sb-ext:package-locked-p package)
                  ;; lispbuild's own, which the job itself changes
                  (eql 0 (search "LISPBUILD/" (package-name package))))
        ;; Its own symbols only: DO-SYMBOLS would visit CL's in every package.
        (with-package-iterator (next package :internal :external)
          (loop
            (multiple-value-bind (more symbol) (next)
              (unless more (return))
              (when (and (eq (symbol-package symbol) package) (boundp symbol)
                         (not (constantp symbol)))
                (setf (gethash symbol values) (value-fingerprint (symbol-value symbol)))))))))))

(defun value-fingerprint (value)
  (cons value
        (when (hash-table-p value)
          (if (> (hash-table-count value) 4000)
              (list (hash-table-count value))
              (let ((entries '()))
                (maphash (lambda (k v) (push k entries) (push v entries)) value)
                entries)))))

(defun standard-readtable-p (readtable)
  "Whether READTABLE reads as the standard one. (# is a dispatching
character: its function differs between readtables, its sub-characters'
functions do not.)"
  (let ((standard (copy-readtable nil)))
    (loop for code below 256
          for char = (code-char code)
          always (or (eql char #\#)
                     (eq (get-macro-character char readtable)
                         (get-macro-character char standard))))
    (loop for code below 256
          for char = (code-char code)
          always (or (digit-char-p char)
                     (eq (get-dispatch-macro-character #\# char readtable)
                         (get-dispatch-macro-character #\# char standard))))))

(defun globals ()
  (list (copy-list *features*) sbcl:*policy* sbcl:*handled-conditions*
        *read-default-float-format*))

(defvar *read-time* nil "The forms #. evaluated.")

(defun traced-sharp-dot (stream char n)
  "#. as SBCL reads it, noting the form it evaluates: the values of the
variables it reads, and the functions it calls, are consulted."
  (if (or *read-suppress* (not *read-eval*))
      (funcall (get-dispatch-macro-character #\# #\. (copy-readtable nil)) stream char n)
      (let ((form (let ((sbcl:*backquote-depth* 0)) (read stream t nil t))))
        (push form *read-time*)
        (eval form))))

(defun call-traced (compile)
  "Call COMPILE (a function of no arguments that compiles the file) while
noting what the compile meets."
  (setf *seen* (make-hash-table :test 'eq) *conses* (make-hash-table :test 'eq)
        *packages* nil *called* nil *read-time* nil *globals* (globals)
        *variables* nil *values* (variable-values)
        *package-fingerprints* (mapcar (lambda (p) (cons p (package-fingerprint p)))
                                       (list-all-packages)))
  (sbcl:encapsulate 'sbcl:find-source-paths 'trace
                    (lambda (real form index)
                      (pushnew *package* *packages*)
                      (note form)
                      (funcall real form index)))
  (sbcl:encapsulate 'sbcl:eval-compile-toplevel 'trace
                    (lambda (real body path)
                      (note body)
                      (push body *called*)
                      (funcall real body path)))
  (let ((standard (standard-readtable-p *readtable*))
        (*readtable* (copy-readtable *readtable*))
        (hook *macroexpand-hook*))
    (if standard
        (set-dispatch-macro-character #\# #\. #'traced-sharp-dot)
        (incomplete "it is read with a changed readtable"))
    (let ((*macroexpand-hook*
            (lambda (expander form env)
              (let ((expansion (funcall hook expander form env)))
                (note expansion)
                expansion))))
      (funcall compile))))
