;;;; What compiling a file leaves in the image that loading its FASL does
;;;; not, undone: the next file then compiles as it would in a worker
;;;; that only loaded the FASLs before it, and gives the same bytes. A
;;;; cold build compiles a serial library's files one after the other in
;;;; one process (compile.lisp, rules/lisp.py); LISPBUILD_CHECK_REUSE=1
;;;; compiles each of them alone as well, and fails on a difference.
;;;;
;;;; Two things were found to differ, on Debian's libraries:
;;;; - the names GENSYM gives, which SBCL writes into FASLs and counts from
;;;;   0 at each toplevel form: a generic function called for the first
;;;;   time in an image (PCL's own, as DEFMETHOD expands) computes its
;;;;   dispatch then, with names of its own;
;;;; - what the compiler notes of functions and variables in SBCL's global
;;;;   database: a function called before it is defined (assumed to exist,
;;;;   and of the type its calls suggest), the type it derives for a
;;;;   function the file defines, a generic function's type, a special
;;;;   variable the file binds (later code would take its thread-local
;;;;   slot for granted). Loading the FASL notes what it defines; the rest
;;;;   would steer how later files compile.

(defpackage #:lispbuild/chain
  (:use #:cl)
  (:local-nicknames (#:sbcl #:lispbuild/sbcl))
  (:export #:call-leaving-no-trace))
(in-package #:lispbuild/chain)

(defun isolate-dispatch-misses ()
  "The names a generic function's dispatch is computed with count apart:
what computes it, not what then calls the method (a code walker expanding
a macro of the file makes the file's names)."
  (dolist (name '(sbcl:cache-miss-values sbcl:get-secondary-dispatch-function1
                  sbcl:get-dfun-constructor sbcl:update-dfun))
    (unless (sbcl:encapsulated-p name 'gensyms)
      (sbcl:encapsulate name 'gensyms
                        (lambda (real &rest arguments)
                          (let ((*gensym-counter* *gensym-counter*))
                            (apply real arguments)))))))

(defmacro do-present-symbols ((symbol) &body body)
  "BODY for each symbol present in some package: once a package that holds
it, not once for each package that inherits it (as DO-ALL-SYMBOLS does
CL's)."
  (let ((package (gensym)) (next (gensym)) (more (gensym)))
    `(dolist (,package (list-all-packages))
       (with-package-iterator (,next ,package :internal :external)
         (loop (multiple-value-bind (,more ,symbol) (,next)
                 (unless ,more (return))
                 ,@body))))))

(defvar *information* (make-hash-table :test 'eq :size 50000)
  "One table, filled again for each compile: a chain compiles hundreds.")

(defun information ()
  "Each symbol's entry in SBCL's global database, as it is now: a new
object replaces it whenever something of it changes."
  (let ((table (clrhash *information*)))
    (do-present-symbols (symbol)
      (setf (gethash symbol table) (sbcl:symbol-dbinfo symbol)))
    table))

(defun compiler-notes (name)
  "What the compiler notes of the function NAME, and of the variable if
NAME is a symbol: each as (VALUE FOUND)."
  (list (multiple-value-list (sbcl:info :function :kind name))
        (multiple-value-list (sbcl:info :function :where-from name))
        (multiple-value-list (sbcl:info :function :assumed-type name))
        (multiple-value-list (sbcl:info :function :type name))
        (if (symbolp name)
            (multiple-value-list (sbcl:info :variable :wired-tls name))
            (list nil nil))))

(defun set-compiler-notes (name notes)
  (destructuring-bind ((kind kind-p) (where where-p) (assumed assumed-p) (type type-p)
                       (tls tls-p))
      notes
    ;; A special the compile bound: later code would take its thread-local
    ;; slot for granted.
    (when (symbolp name)
      (if tls-p
          (setf (sbcl:info :variable :wired-tls name) tls)
          (sbcl:clear-info :variable :wired-tls name)))
    ;; What the compiler assumed of a name it met called: a macro's kind
    ;; is the macro's (its function stays).
    (unless (member (sbcl:info :function :kind name) '(:macro :special-form))
      (if kind-p
          (setf (sbcl:info :function :kind name) kind)
          (sbcl:clear-info :function :kind name)))
    (if where-p
        (setf (sbcl:info :function :where-from name) where)
        (sbcl:clear-info :function :where-from name))
    (if assumed-p
        (setf (sbcl:info :function :assumed-type name) assumed)
        (sbcl:clear-info :function :assumed-type name))
    (if type-p (setf (sbcl:info :function :type name) type) (sbcl:clear-info :function :type name))))

(defun restore-compiler-notes (before)
  "Put back what the compiler noted of functions (named by a symbol or by
(SETF symbol)) and of specials where it differs from BEFORE (INFORMATION).
The rest of a symbol's entry stays as the compile left it: types and
classes, which PCL's objects hold too, and what loading the FASL sets
again anyway."
  (do-present-symbols (symbol)
    (let ((then (gethash symbol before))
          (now (sbcl:symbol-dbinfo symbol)))
      (unless (eq then now)
        (dolist (name (list symbol `(setf ,symbol)))
          (let ((after (compiler-notes name))
                (earlier (progn (sbcl:update-symbol-info
                                 symbol (constantly (or then sbcl:+nil-packed-infos+)))
                                (prog1 (compiler-notes name)
                                  (sbcl:update-symbol-info symbol (constantly now))))))
            (unless (equal after earlier)
              (set-compiler-notes name earlier))
            (setf now (sbcl:symbol-dbinfo symbol))))))))

(defun call-leaving-no-trace (compile)
  "Call COMPILE, a function of no arguments, and return its value; then
undo what it left that the next file's compile could see and loading
the FASL would not set."
  (isolate-dispatch-misses)
  (let ((before (information)))
    (multiple-value-prog1 (funcall compile)
      (restore-compiler-notes before))))
