;;;; A binary's entry: the function its entry= names, and how it is called
;;;; (with no arguments, the arguments spread, or one list of them), found
;;;; when its image is dumped, or, for a development executable whose
;;;; project code loads at start-up, when the program starts.

(defpackage #:lispbuild/entry
  (:use #:cl #:lispbuild/driver)
  (:local-nicknames (#:sbcl #:lispbuild/sbcl))
  (:export #:find-entry #:named-function
           ;; For lispbuild's Lisp unit checks (tests/lisp/units.lisp).
           #:entry-convention))
(in-package #:lispbuild/entry)

(defun entry-lambda-list (function)
  "The lambda list SBCL kept for FUNCTION; :UNKNOWN when it kept none
(code compiled with (debug 0))."
  (let ((lambda-list (if (typep function 'generic-function)
                         (sb-mop:generic-function-lambda-list function)
                         (sbcl:%fun-lambda-list function))))
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

(defun named-function (text what)
  "The symbol of the function named by TEXT, \"package:name\" (or
package::name), or NIL after a note that names WHAT it was to be (\"entry\")."
  (let* ((colon (position #\: text))
         (package-name (string-upcase (subseq text 0 colon)))
         (name (string-upcase (string-left-trim ":" (subseq text colon))))
         (package (find-package package-name))
         (symbol (and package (find-symbol name package))))
    (flet ((fail (format &rest arguments)
             (note (format nil "~A ~A" what text) nil "ERROR" (apply #'format nil format arguments))
             (return-from named-function nil)))
      (cond ((null package) (fail "there is no package ~A" package-name))
            ((null symbol) (fail "there is no symbol ~A in package ~A" name package-name))
            ((special-operator-p symbol) (fail "~S is a special operator, not a function" symbol))
            ((macro-function symbol) (fail "~S is a macro, not a function" symbol))
            ((not (fboundp symbol)) (fail "~S is not a function" symbol)))
      symbol)))

(defun find-entry (entry test arguments)
  "The function named by ENTRY, \"package:name\" (or package::name), and
how it is called (ENTRY-CONVENTION; a TEST function with no arguments)."
  (let ((symbol (or (named-function entry "entry") (return-from find-entry nil))))
    (flet ((fail (text &rest arguments)
             (note (format nil "entry ~A" entry) nil "ERROR" (apply #'format nil text arguments))
             (return-from find-entry nil)))
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
