;;;; What a traced compile consulted (trace.lisp noted what it met), and
;;;; the trace written from it: the functions that may have run while it
;;;; compiled, found from its expanders through their code's constants,
;;;; and what loading the FASL then defines.

(in-package #:lispbuild/trace)

;;; The functions that may run while the file compiles: its expanders and
;;; what they call, found in their code's constants. The global variables
;;; that code reads are consulted by value (whichever file set them); a
;;; hash table the code holds itself may hold what another file put there
;;; through a function, in a way no name says: the trace is then incomplete.

(defun data-p (object)
  "Whether OBJECT may be filled after it was made: a hash table, an
adjustable array (simple arrays in code are its literal tables)."
  (or (hash-table-p object)
      (and (arrayp object) (not (typep object 'simple-array)))))

(defun walk-callees (roots)
  "The names of what ROOTS (functions) call, transitively; their code's
global variables and hash tables make the trace incomplete."
  (let ((codes (make-hash-table :test 'eq)) (names '()) (work roots))
    ;; CODES: the functions and code objects walked.
    (labels ((name (name)
               (when (and (symbolp (if (consp name) (second name) name))
                          (not (frozen-p (if (consp name) (second name) name))))
                 (push name names)
                 (when (and (fboundp name) (not (and (symbolp name) (macro-function name))))
                   (push (fdefinition name) work))))
             (constant (object holder)
               (cond ((sbcl:fdefn-p object) (name (sbcl:fdefn-name object)))
                     ((functionp object) (push object work))
                     ((and (symbolp object) object (not (frozen-p object)))
                      (if (and (member (info :variable :kind object) '(:special :global))
                               (not (constantp object)))
                          (push object *variables*)
                          (name object)))
                     ((and (data-p object) (constant-holding object))
                      ;; a constant's value (a table DEFCONSTANT made): its definition
                      (push (constant-holding object) names))
                     ((data-p object)
                      (incomplete
                       (let ((*package* (find-package "KEYWORD")))
                         (format nil "code that runs while it compiles (~S) holds a hash ~
                                      table or an adjustable array of its own"
                                 (nth-value 2 (function-lambda-expression holder))))))))
             (fun (f)
               (cond ((typep f 'generic-function)
                      (dolist (method (sb-mop:generic-function-methods f))
                        (push (sb-mop:method-function method) work)))
                     ((sbcl:closurep f)
                      (push (sbcl:%closure-fun f) work)
                      (dotimes (i (1- (sbcl:get-closure-length f)))
                        (constant (sbcl:%closure-index-ref f i) f)))
                     ((typep f 'sbcl:simple-fun)
                      (let ((code (sbcl:fun-code-header f)))
                        (unless (gethash code codes)
                          (setf (gethash code codes) t)
                          (loop for i from sbcl:code-constants-offset
                                  below (sbcl:code-header-words code)
                                do (constant (sbcl:code-header-ref code i) f))))))))
      (loop while work
            do (let ((f (pop work)))
                 (unless (gethash f codes)
                   (setf (gethash f codes) t)
                   (fun f)))))
    names))

(defvar *constants* nil "The values of the constants no lock guards, to their names.")

(defun constant-holding (object)
  "The constant whose value OBJECT is (code holds it inline), or NIL."
  (unless *constants*
    (setf *constants* (make-hash-table :test 'eq))
    (dolist (package (list-all-packages))
      (unless (sb-ext:package-locked-p package)
        (with-package-iterator (next package :internal :external)
          (loop (multiple-value-bind (more symbol) (next)
                  (unless more (return))
                  (when (and (constantp symbol) (boundp symbol) (not (keywordp symbol)))
                    (setf (gethash (symbol-value symbol) *constants*) symbol))))))))
  (gethash object *constants*))

(defun expanders (symbol)
  (remove-if-not #'functionp
                 (list (macro-function symbol) (compiler-macro-function symbol)
                       (info :setf :expander symbol) (info :type :expander symbol))))

(defun note-operators (form)
  "Meet the symbols FORM (code run while compiling) calls: those in
operator position and in (FUNCTION NAME), not quoted data."
  (when (consp form)
    (let ((head (car form)))
      (cond ((eq head 'quote))
            ((eq head 'function) (note (second form)))
            (t (when (symbolp head) (note head))
               (loop for rest on form while (consp rest)
                     do (note-operators (car rest))))))))

(defun called-names ()
  "Names of functions that may have run while the file compiled."
  (let ((roots '()) (names '()))
    (loop for symbol being the hash-keys of *seen*
          do (setf roots (append (expanders symbol) roots)))
    (let ((*seen* (make-hash-table :test 'eq)) (*conses* (make-hash-table :test 'eq)))
      (note-operators *called*)
      (note-operators *read-time*)
      (loop for symbol being the hash-keys of *seen*
            do (push symbol names)
               (when (and (fboundp symbol) (not (macro-function symbol)))
                 (push (fdefinition symbol) roots))))
    (append names (walk-callees roots))))

(defun read-time-symbols ()
  "The symbols in the forms #. evaluated."
  (let ((*seen* (make-hash-table :test 'eq)) (*conses* (make-hash-table :test 'eq))
        (*packages* nil))
    (note *read-time*)
    (loop for symbol being the hash-keys of *seen* collect symbol)))

;;; Writing the trace.

(defun field (string)
  "STRING as one field of a line: no tab or newline."
  (with-output-to-string (out)
    (loop for char across string
          do (case char
               (#\% (write-string "%25" out))
               (#\Tab (write-string "%09" out))
               (#\Newline (write-string "%0A" out))
               (t (write-char char out))))))

(defun name-field (name)
  (flet ((of (symbol)
           (tabbed (field (package-name (symbol-package symbol)))
                   (field (symbol-name symbol)))))
    (if (consp name) (format nil "(setf)~A" (of (second name))) (of name))))

(defun package-fingerprint (package)
  (list (package-name package) (package-nicknames package) (package-use-list package)
        (length (package-shadowing-symbols package))
        (let ((n 0)) (do-external-symbols (s package) (declare (ignore s)) (incf n)) n)
        (sb-ext:package-local-nicknames package)))

(defun function-type (symbol)
  "What a caller's compile sees of SYMBOL's function: where its type comes
from, and the type; of a function merely defined (SBCL trusts no derived
type of a function of another file), only what it takes."
  (multiple-value-bind (where-from where-from-p) (info :function :where-from symbol)
    (let ((stored (multiple-value-list (info :function :type symbol)))
          (type (ignore-errors (sbcl:type-specifier (sbcl:global-ftype symbol)))))
      ;; GLOBAL-FTYPE computes a generic function's type and keeps it: the
      ;; image must stay as loading the FASL left it (chain.lisp).
      (if where-from-p
          (setf (sbcl:info :function :where-from symbol) where-from)
          (sbcl:clear-info :function :where-from symbol))
      (if (second stored)
          (setf (sbcl:info :function :type symbol) (first stored))
          (sbcl:clear-info :function :type symbol))
      (list where-from
            (if (and (eq where-from :defined) (consp type) (eq (first type) 'function))
                (subseq type 0 2)
                type)))))

(defun value-field (kind symbol)
  "=TEXT when TEXT says all there is of SYMBOL's KIND, else @."
  (let ((text (ignore-errors
               (with-standard-io-syntax
                 (let ((*print-readably* nil) (*print-length* 20) (*print-level* 4)
                       (*package* (find-package "KEYWORD")))
                   (prin1-to-string
                    (case kind
                      (#\V (list (info :variable :kind symbol)
                                 (sbcl:type-specifier (info :variable :type symbol))
                                 (info :variable :macro-expansion symbol)
                                 (and (eq (info :variable :kind symbol) :constant)
                                      (symbol-value symbol))))
                      (#\S (function-type symbol)))))))))
    (if (and text (< (length text) 300) (not (search "#<" text)))
        (concatenate 'string "=" (field text))
        "@")))

(defun globals-field (loaded)
  "What the file changed of what every later compile sees: NIL if nothing;
=TEXT when it only added or removed features (a library's PUSHNEW of its
own); @ when it changed more, or could not be loaded to see."
  (destructuring-bind (features &rest others) *globals*
    (let ((now (globals)))
      (cond ((not loaded) "@")
            ((notevery #'equal others (rest now)) "@")
            ((equal features (first now)) nil)
            (t (flet ((names (list) (sort (mapcar #'prin1-to-string list) #'string<)))
                 (concatenate 'string "="
                              (field (format nil "~S"
                                             (list (names (set-difference (first now) features))
                                                   (names (set-difference features
                                                                          (first now)))))))))))))

(defun load-guarded (load)
  "Call LOAD; T if it returned. A file that exits the process as it loads
(a script's last form) signals instead: the job must still write its
outputs, and the dump will say what the file does. What it prints is not
the compile's words (the program says it when it runs)."
  (sbcl:encapsulate 'sb-ext:exit 'trace
                    (lambda (real &rest arguments)
                      (declare (ignore real arguments))
                      (error "the file exits SBCL as it loads")))
  (unwind-protect (let ((*standard-output* (make-broadcast-stream))
                        (*error-output* (make-broadcast-stream)))
                    (ignore-errors (funcall load) t))
    (sbcl:unencapsulate 'sb-ext:exit 'trace)))

(defun write-trace (path load)
  "Write the trace of the compile CALL-TRACED ran to PATH, calling LOAD
(a function of no arguments that loads its FASL) to see what the file
defines once loaded. True if the FASL loaded."
  (let ((packages *package-fingerprints*)
        (called (called-names))
        (loaded (load-guarded load)))
    (with-open-file (out path :direction :output :if-exists :supersede
                              :external-format :utf-8)
      (when *incomplete*
        (write-line (tabbed "incomplete" (field *incomplete*)) out))
        (let ((lines '()))
          (loop for symbol being the hash-keys of *seen* using (hash-value before)
                do (push (tabbed "m" (name-field symbol)) lines)
                   (loop with after = (fingerprint symbol)
                         for kind across *kinds*
                         for i from 0
                         unless (same (elt before i) (elt after i))
                           do (push (tabbed "d" kind (name-field symbol)
                                        (if (find kind "VS") (value-field kind symbol) "@"))
                                lines)))
          (dolist (name called)
            (push (tabbed "c" (name-field name)) lines))
          (dolist (symbol (append *variables* (read-time-symbols)))
            (push (tabbed "v" (name-field symbol)) lines))
          (let ((after (variable-values)))
            (loop for symbol being the hash-keys of after using (hash-value value)
                  for before = (gethash symbol *values*)
                  unless (and before (eq (car before) (car value))
                              (same (cdr before) (cdr value)))
                    do (push (tabbed "d" "X" (name-field symbol) "@") lines)))
          (dolist (package (remove-duplicates *packages*))
            (push (tabbed "p" (field (package-name package))) lines))
          (dolist (package (remove (find-package "KEYWORD") (list-all-packages)))
            (let ((before (cdr (assoc package packages))))
              (unless (equal before (package-fingerprint package))
                (push (tabbed "d" "K" (field (package-name package)) "@") lines))))
          (let ((value (globals-field loaded)))
            (when value
              (push (tabbed "d" "G" "-" value) lines)))
          (dolist (line (sort (remove-duplicates lines :test #'string=) #'string<))
            (write-line line out))))
    loaded))
