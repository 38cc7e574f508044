;;;; Every symbol of SBCL's own implementation that lispbuild's Lisp uses,
;;;; in one place: the package LISPBUILD/SBCL exports them, and the other
;;;; files refer to them as sbcl:NAME (a local nickname). SBCL's supported
;;;; interfaces (SB-EXT, SB-ALIEN, SB-MOP) are used where they are.
;;;;
;;;; These are no interface: another SBCL may rename or remove any of them.
;;;; Compiling lispbuild's Lisp (driver.py, bootstrap.lisp) checks that this
;;;; SBCL defines each, and stops with one message that names the missing
;;;; ones and this SBCL's version.

;;; Made, not DEFPACKAGEd: its exports are computed below, and a DEFPACKAGE
;;; that names none would be at variance with them when the FASL loads.
(eval-when (:compile-toplevel :load-toplevel :execute)
  (unless (find-package "LISPBUILD/SBCL")
    (make-package "LISPBUILD/SBCL" :use '("COMMON-LISP"))))

(in-package #:lispbuild/sbcl)

(eval-when (:compile-toplevel :load-toplevel :execute)
  (defparameter *internals*
    '(;; Compiling: where the compiler is, what a reader error says, and
      ;; the undefined names it defers to the end of a compilation unit
      ;; (compile.lisp, driver.lisp).
      ("SB-C" "FIND-ERROR-CONTEXT" "COMPILER-ERROR-CONTEXT-FILE-POSITION" "COMPILER-ERROR"
       "INPUT-ERROR-IN-COMPILE-FILE" "INPUT-ERROR-IN-COMPILE-FILE-LINE/COL"
       "*UNDEFINED-WARNINGS*" "UNDEFINED-WARNING-KIND" "UNDEFINED-WARNING-NAME"
       "UNDEFINED-WARNING-WARNINGS" "UNDEFINED-WARNING-COUNT" "NAME-RESERVED-BY-ANSI-P"
       ;; Where a compile meets each toplevel form and what it evaluates
       ;; at compile time; what all compiles see (trace.lisp).
       "FIND-SOURCE-PATHS" "EVAL-COMPILE-TOPLEVEL" "*POLICY*" "*HANDLED-CONDITIONS*")
      ;; Where a generic function computes its dispatch or an effective
      ;; method, the first time it is called so (chain.lisp).
      ("SB-PCL" "CACHE-MISS-VALUES" "GET-SECONDARY-DISPATCH-FUNCTION1" "GET-DFUN-CONSTRUCTOR"
       "UPDATE-DFUN")
      ("SB-IMPL" "STREAM-ERROR-POSITION-INFO" "*PATHNAMES*" "MAKE-PATHNAME-INTERN-TABLE"
       ;; Dumping: the finalizer thread, the steps of SAVE-LISP-AND-DIE a
       ;; development dump skips (devdump.lisp).
       "*FINALIZER-THREAD*" "FINALIZER-THREAD-START" "FINALIZER-THREAD-STOP"
       "RUN-PENDING-FINALIZERS" "TUNE-IMAGE-FOR-DUMP" "COALESCE-CTYPES" "CONSTANTLY-T"
       ;; A development executable's REPL (develop.lisp).
       "TOPLEVEL-REPL"
       ;; What #. binds as it reads (trace.lisp).
       "*BACKQUOTE-DEPTH*")
      ;; Wrapping a function of SBCL's or a library's (what a build must
      ;; not let vary: write dates, random seeds; what it watches: OPEN).
      ("SB-INT" "ENCAPSULATE" "UNENCAPSULATE" "ENCAPSULATED-P" "ENCAPSULATED-CONDITION"
       "INFO" "WITH-SYSTEM-MUTEX" "GLOBAL-FTYPE"
       ;; A symbol's entry in the global database, replaced whole (chain.lisp).
       "CLEAR-INFO" "UPDATE-SYMBOL-INFO" "+NIL-PACKED-INFOS+")
      ("SB-KERNEL" "%FUN-LAMBDA-LIST" "*N-BYTES-FREED-OR-PURIFIED*" "OS-RANDOM-SEED"
       "SCRUB-CONTROL-STACK" "GET-LISP-OBJ-ADDRESS" "%MAKE-LISP-OBJ" "CODE-N-ENTRIES"
       "CODE-HEADER-WORDS" "CODE-INSTRUCTIONS" "%CODE-ENTRY-POINT" "%SIMPLE-FUN-TEXT-LEN"
       "%SIMPLE-FUN-NAME"
       ;; What a function calls: its code's constants, its closure's values;
       ;; a function's or variable's type (trace.lisp).
       "SIMPLE-FUN" "FUN-CODE-HEADER" "CODE-HEADER-REF" "FDEFN-P" "FDEFN-NAME" "CLOSUREP"
       "%CLOSURE-FUN" "GET-CLOSURE-LENGTH" "%CLOSURE-INDEX-REF" "TYPE-SPECIFIER"
       "SYMBOL-DBINFO")
      ;; The heap and code in immobile space (dump.lisp, devdump.lisp).
      ("SB-VM" "MAP-ALLOCATED-OBJECTS" "CODE-HEADER-WIDETAG" "LOWTAG-MASK" "WORD-SHIFT"
       "SIMPLE-FUN-ENTRY-SAP"
       ;; The lowest Lisp space, above the runtime's own ELF image (perfmap.lisp).
       "STATIC-SPACE-START" "CODE-CONSTANTS-OFFSET")
      ("SB-FASL" "*ASSEMBLER-ROUTINES*"
       ;; Where a FASL names the file of its coverage records (compile.lisp).
       "DUMP-CODE-COVERAGE-RECORDS")
      ;; Immobile space, which only x86-64 has (devdump.lisp).
      #+x86-64 ("SB-VM" "COLLECT-IMMOBILE-CODE-RELOCS" "STATICALLY-LINK-CORE"
                "IMMOBILE-SPACE-ADDR-P" "FIND-CALLED-OBJECT")
      #+x86-64 ("SB-FASL" "CALC-ASM-ROUTINE-BOUNDS")
      #+x86-64 ("SB-DISASSEM" "MAKE-DSTATE" "%MAKE-SEGMENT")
      #+x86-64 ("SB-X86-64-ASM" "SCAN-RELATIVE-OPERANDS")
      ;; Foreign memory, the linkage table, signals.
      ("SB-SYS" "*LINKAGE-INFO*" "*SHARED-OBJECTS*" "ENABLE-INTERRUPT" "INTERACTIVE-INTERRUPT"
       "INT-SAP" "SAP+" "SAP-" "SAP-INT" "SAP-REF-32" "SYSTEM-AREA-POINTER" "VECTOR-SAP"
       "WITH-PINNED-OBJECTS" "WITHOUT-GCING" "MAKE-FD-STREAM")
      ("SB-THREAD" "%DISPOSE-THREAD-STRUCTS" "*ALL-THREADS*" "*MAKE-THREAD-LOCK*"
       "AVLTREE-LIST"
       ;; A thread the program's exit does not wait for (reload.lisp);
       ;; which threads are such (dump.lisp).
       "MAKE-SYSTEM-THREAD" "THREAD-EPHEMERAL-P")
      ;; System calls a warm worker makes (syscalls.lisp, worker.lisp).
      ("SB-UNIX" "O_CREAT" "O_RDWR" "O_TRUNC" "O_WRONLY" "SIGTERM" "UNIX-CLOSE" "UNIX-DUP"
       "UNIX-GETPID" "UNIX-KILL" "UNIX-KILLPG" "UNIX-OPEN" "UNIX-READ" "UNIX-STAT"
       "UNIX-WRITE"
       ;; A FASL of a development executable's payload (payload.lisp).
       "UNIX-LSEEK" "L_SET"))
    "By package, the names lispbuild uses.")

  (defun defined-p (symbol)
    "Whether SYMBOL names something in this SBCL: a function, macro,
variable, constant, class or type."
    (or (fboundp symbol) (boundp symbol) (find-class symbol nil)
        (sb-int:info :type :kind symbol)
        (not (eq (sb-int:info :variable :kind symbol) :unknown))))

  (let ((missing (loop for (package . names) in *internals*
                       append (loop for name in names
                                    for symbol = (and (find-package package)
                                                      (find-symbol name package))
                                    unless (and symbol (defined-p symbol))
                                      collect (format nil "~A::~A" package name)))))
    (when missing
      (format *error-output* "~&lispbuild's Lisp uses ~{~A~^, ~}, which this SBCL (~A) does ~
                              not define: lispbuild supports the SBCL of Debian 12 (2.2.9) ~
                              and later versions that keep these~%"
              missing (lisp-implementation-version))
      (sb-ext:exit :code 1 :abort t)))

  (loop for (package . names) in *internals*
        do (loop for name in names
                 for symbol = (find-symbol name package)
                 do (import symbol)
                    (export symbol))))
