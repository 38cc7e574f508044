;;;; Unit checks of lispbuild's pure Lisp functions, run in one SBCL:
;;;; sbcl --script tests/lisp/units.lisp lispbuild/sbcl/ SCRATCH-DIRECTORY/
;;;; Prints one line per failed check and "N checks, M failed"; exits 1 if any failed.

(dolist (file '("internals.lisp" "driver.lisp" "syscalls.lisp" "trace.lisp" "consulted.lisp"
                "chain.lisp" "compile.lisp" "perfmap.lisp" "resources.lisp" "kept-paths.lisp"
                "foreign-record.lisp" "entry.lisp" "dump.lisp"))
  (load (merge-pathnames file (second sb-ext:*posix-argv*))))

(defpackage #:lispbuild-units
  (:use #:cl #:lispbuild/driver #:lispbuild/compile #:lispbuild/entry)
  (:import-from #:lispbuild/foreign-record #:c-name-p)
  (:import-from #:lispbuild/kept-paths #:path-in #:the-programs-package-p))
(in-package #:lispbuild-units)

(defvar *checks* 0)
(defvar *failed* 0)

(defmacro check (form expected)
  "FORM evaluates to something EQUAL to EXPECTED."
  `(let ((got (handler-case ,form (error (e) (list :error (princ-to-string e))))))
     (incf *checks*)
     (unless (equal got ,expected)
       (incf *failed*)
       (format t "FAIL: ~S~%  got      ~S~%  expected ~S~%" ',form got ,expected))))

(defun scratch-file (text)
  (let ((path (merge-pathnames "units-scratch.lisp" (third sb-ext:*posix-argv*))))
    (with-open-file (out path :direction :output :if-exists :supersede)
      (write-string text out))
    (clrhash *source-texts*)
    path))

;;; call-leaving-no-trace: what a compile notes of functions and specials
;;; is put back; what it defines to last (a function) stays.
(defvar *unit-special* nil)
(lispbuild/chain:call-leaving-no-trace
 (lambda ()
   (compile nil '(lambda () (lispbuild-units-not-yet-defined 1 2)))
   (compile nil '(lambda () (let ((*unit-special* 1)) (declare (special *unit-special*))
                               (lispbuild-units-reader))))
   (setf (fdefinition 'lispbuild-units-kept) (lambda () :kept))
   (proclaim '(ftype (function (fixnum) fixnum) lispbuild-units-typed))))
(check (multiple-value-list (sb-int:info :function :where-from 'lispbuild-units-not-yet-defined))
       '(:assumed nil))
(check (sb-int:info :function :assumed-type 'lispbuild-units-not-yet-defined) nil)
(check (sb-int:info :variable :wired-tls '*unit-special*) nil)
(check (nth-value 1 (sb-int:info :function :type 'lispbuild-units-typed)) nil)
(check (funcall 'lispbuild-units-kept) :kept)
;;; and GENSYM counts apart while a generic function computes its dispatch.
(defgeneric lispbuild-units-gf (x))
(defmethod lispbuild-units-gf ((x integer)) x)
(check (let ((*gensym-counter* 0))
         (lispbuild/chain:call-leaving-no-trace
          (lambda () (lispbuild-units-gf 1) *gensym-counter*)))
       0)

;;; line-at: the line of the first form at or after a position, skipping
;;; blanks and comments (SBCL's form positions point past the last form).
(let ((file (scratch-file (format nil "(a)~%~%; a comment~%  (b)~%(c)"))))
  (check (line-at file 0) 1)
  (check (line-at file 3) 4)
  (check (line-at file (search "(c)" (car (source-text file)))) 5)
  (check (line-at file 10000) 5)
  (delete-file file))

;;; name-record and named: a name as data that reads back in any image.
(check (name-record 'car) '("COMMON-LISP" "CAR"))
(check (name-record '(setf car)) '(:setf "COMMON-LISP" "CAR"))
(check (name-record (make-symbol "GONE")) nil)
(check (name-record '(setf car cdr)) nil)
(check (name-record '(integer 0 1)) nil)
(check (named '("COMMON-LISP" "CAR")) 'car)
(check (named '(:setf "COMMON-LISP" "CAR")) '(setf car))
(check (named '("NO-SUCH-PACKAGE-HERE" "X")) nil)
(check (type-of (second (name-record 'car))) '(simple-array character (3)))

;;; entry-convention: how an entry is called, or why it cannot be.
(check (entry-convention 'main '() nil) :none)
(check (entry-convention 'main '(&optional x) nil) :none)
(check (entry-convention 'main '(&rest args) nil) :spread)
(check (entry-convention 'main '(argv) "posix-argv") :posix-argv)
(check (entry-convention 'main '(args) "command-line-arguments") :command-line-arguments)
(check (entry-convention 'main '(&rest args) "posix-argv") :posix-argv)
(defun opening (text) (subseq text 0 (min 28 (length text))))
(check (opening (entry-convention 'main '(argv) nil)) "MAIN takes one argument: say")
(check (opening (entry-convention 'main '(a b) nil)) "MAIN requires 2 arguments; a")
(check (opening (entry-convention 'main '() "posix-argv")) "MAIN takes no argument, but ")
(check (opening (entry-convention 'main :unknown nil)) "SBCL kept no lambda list of ")

;;; find-entry: the function and its convention, or a note naming the problem.
(defun lispbuild-units-main (argv) argv)
(check (multiple-value-list (find-entry "lispbuild-units::lispbuild-units-main" nil
                                        "posix-argv"))
       '(lispbuild-units-main :posix-argv))
(check (find-entry "no-such-package-here:main" nil nil) nil)
(check (find-entry "cl:when" nil nil) nil)

;;; path-in: the first path under the build machine's directories a value holds.
(let ((table (make-hash-table :test 'equal)))
  (setf (gethash "words" table) (list 1 #p"/src/lib/words.txt"))
  (check (list (path-in "/src/lib/data/" '("/src/lib/"))
               (path-in (vector 1 (list 2 table)) '("/src/lib/"))
               (path-in (list "/srcx/lib/" #p"lib/relative.txt" "/elsewhere/") '("/src/lib/"))
               (path-in (list (list (list (list (list "/src/lib/deep"))))) '("/src/lib/")))
         ;; In strings, pathnames, lists, vectors and hash tables, four levels deep.
         '("/src/lib/data/" "/src/lib/words.txt" nil nil)))

;;; Whose variables the dump looks into: the program's, CL-USER's among them.
(check (mapcar (lambda (name) (and (the-programs-package-p (find-package name)) t))
               '("COMMON-LISP-USER" "COMMON-LISP" "KEYWORD" "SB-IMPL" "LISPBUILD/DRIVER"))
       '(t nil nil nil nil))

;;; c-name-p: which strings of an image could name a C symbol.
(check (mapcar #'c-name-p '("sprintf" "ffi_type_double" "_start" "CAR" "x" "a-b" "two words"
                            "9lives" "SSL_new"))
       '(t t t nil nil nil nil nil t))

;;; A compile's trace (trace.lisp, consulted.lisp).
(check (lispbuild/trace::standard-readtable-p (copy-readtable nil)) t)
(check (let ((changed (copy-readtable nil)))
         (set-dispatch-macro-character #\# #\! (lambda (s c n) (declare (ignore s c n)) 1)
                                       changed)
         (lispbuild/trace::standard-readtable-p changed))
       nil)
(check (lispbuild/trace::field (format nil "a~Cb~%c%" #\Tab)) "a%09b%0Ac%25")
;; A merely defined function's type is what it takes, not what it returns.
(defun lispbuild-units-twice (x) (* 2 x))
(check (lispbuild/trace::function-type 'lispbuild-units-twice) '(:defined (function (t))))
;; NOTE meets each symbol once, through shared and circular structure.
(check (let ((lispbuild/trace::*seen* (make-hash-table :test 'eq))
             (lispbuild/trace::*conses* (make-hash-table :test 'eq))
             (lispbuild/trace::*packages* nil)
             (form (list 'lispbuild-units-twice 'lispbuild-units-main)))
         (setf (cdr (last form)) form)
         (lispbuild/trace::note (vector form form))
         (sort (loop for s being the hash-keys of lispbuild/trace::*seen* collect (symbol-name s))
               #'string<))
       '("LISPBUILD-UNITS-MAIN" "LISPBUILD-UNITS-TWICE"))
;; What compile-time code calls is found through its code's constants.
(defun lispbuild-units-helper (x) (list x))
(defmacro lispbuild-units-macro (x) (lispbuild-units-helper x))
(check (let ((lispbuild/trace::*variables* nil) (lispbuild/trace::*incomplete* nil))
         (and (member 'lispbuild-units-helper
                      (lispbuild/trace::walk-callees
                       (list (macro-function 'lispbuild-units-macro))))
              t))
       t)

(format t "~D checks, ~D failed~%" *checks* *failed*)
(sb-ext:exit :code (if (zerop *failed*) 0 1))
