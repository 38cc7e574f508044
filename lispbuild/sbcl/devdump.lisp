;;;; Faster dumps for development builds, made in a worker's child
;;;; (worker.lisp). Release builds use neither: they dump with the plain
;;;; SAVE-LISP-AND-DIE in a fresh SBCL.
;;;;
;;;; SAVE-LISP-AND-DIE spends most of its Lisp time disassembling all code
;;;; in immobile space, twice, and tidying the heap:
;;;; - SB-VM::STATICALLY-LINK-CORE turns calls through a function's name
;;;;   (its fdefn) into direct calls. Skipped here: the calls of the
;;;;   libraries' code go through the name, as they did before saving, one
;;;;   indirect jump each. Redefinition works the same either way.
;;;; - SB-VM::COLLECT-IMMOBILE-CODE-RELOCS finds the relative jumps that
;;;;   must be fixed when the saved image's code is compacted. A worker's
;;;;   image records them per code object when it is saved; a dump from a
;;;;   worker started from it reuses every record whose jumps still point
;;;;   where they did (checked, jump by jump), and disassembles only the code
;;;;   loaded since. The answer is the one the full scan gives, so the core
;;;;   is laid out the same.
;;;; - SB-IMPL::TUNE-IMAGE-FOR-DUMP (a full collection, then sharing equal
;;;;   compiler metadata and resizing package tables) and
;;;;   SB-IMPL::COALESCE-CTYPES (one instance of each equal internal type
;;;;   object, which SBCL does "not about space saving, but reducing
;;;;   non-determinism"). Skipped: the core keeps some duplicate metadata;
;;;;   the collections of the save itself still run.

(defpackage #:lispbuild/devdump
  (:use #:cl)
  (:local-nicknames (#:sbcl #:lispbuild/sbcl))
  (:export #:prepare-fast-dump #:prepare-image-dump #:relocations-recorded-p
           #:record-relocations-now))
(in-package #:lispbuild/devdump)

;;; Immobile space is x86-64's alone: elsewhere (arm64, targets.py) a
;;; worker never runs, and every dump is SAVE-LISP-AND-DIE's own.
#+x86-64
(progn

(defvar *relocations* nil
  "The relative jumps found when this image was saved, for every code
object: a simple-vector of CODE, COUNT, then COUNT triples OFFSET TARGET K.
The jump's 32-bit displacement is at OFFSET from CODE's start, TARGET is
the object it lands in (or 0), and K = displacement + address of CODE -
address of TARGET (modulo 2^32), which moving either object leaves as it is.")

(defun skip (function)
  (sbcl:encapsulate function 'skipped
                      (lambda (real &rest arguments)
                        (declare (ignore real arguments))
                        nil)))

(defun object-address (object)
  (if (eql object 0) 0 (sbcl:get-lisp-obj-address object)))

(defun displacement-at (code offset)
  (sbcl:sap-ref-32 (sbcl:int-sap (logandc2 (sbcl:get-lisp-obj-address code)
                                                 sbcl:lowtag-mask))
                     offset))

(defun jump-invariant (code offset target)
  (ldb (byte 32 0) (+ (displacement-at code offset)
                      (sbcl:get-lisp-obj-address code)
                      (- (object-address target)))))

(defun map-immobile-code (function)
  "Call FUNCTION on each code object in immobile space that has functions."
  (sbcl:map-allocated-objects
   (lambda (code type size)
     (declare (ignore size))
     (when (and (= type sbcl:code-header-widetag)
                (plusp (sbcl:code-n-entries code)))
       (funcall function code)))
   :immobile))

(defun record-relocations (index relocs)
  "Keep the answer of the full scan, per code object; code without jumps
is recorded too, with none. The assembler routines are not: they are
scanned again at every dump, as the full scan does."
  (let ((records '())
        (seen (make-hash-table :test 'eq)))
    (flet ((record (code start end)
             (setf (gethash code seen) t)
             (push code records)
             (push (floor (- end start) 2) records)
             (loop for j from start below end by 2
                   for offset = (aref relocs j)
                   for target-address = (aref relocs (1+ j))
                   for target = (if (zerop target-address)
                                    0
                                    (sbcl:%make-lisp-obj target-address))
                   do (push offset records)
                      (push target records)
                      (push (jump-invariant code offset target) records))))
      (loop for i from 0 by 2
            for address = (aref index i)
            until (zerop address)
            do (let ((code (sbcl:%make-lisp-obj address)))
                 (unless (eq code sbcl:*assembler-routines*)
                   (record code (aref index (1+ i)) (aref index (+ i 3))))))
      (map-immobile-code (lambda (code)
                           (unless (gethash code seen)
                             (record code 0 0)))))
    (coerce (nreverse records) 'simple-vector)))

(defun scan-code (code start length extra-offset predicate relocs)
  "The relative jumps of LENGTH bytes of CODE's instructions at START,
pushed onto RELOCS as SB-VM::COLLECT-IMMOBILE-CODE-RELOCS does."
  (sbcl:scan-relative-operands
   code (sbcl:sap-int start) length (sbcl:make-dstate nil)
   (sbcl:%make-segment :sap-maker (lambda () (error "no sap")) :virtual-location 0)
   (lambda (offset operand inst)
     (declare (ignore inst))
     (let ((object (if (sbcl:immobile-space-addr-p operand)
                       (sbcl:find-called-object operand)
                       0)))
       (vector-push-extend (+ offset extra-offset) relocs)
       (vector-push-extend (sbcl:get-lisp-obj-address object) relocs)))
   predicate))

(defun scan-component (code index relocs)
  (let ((first (fill-pointer relocs)))
    (dotimes (i (sbcl:code-n-entries code))
      (let* ((fun (sbcl:%code-entry-point code i))
             (sap (sbcl:simple-fun-entry-sap fun)))
        (scan-code code sap (sbcl:%simple-fun-text-len fun i)
                   (+ (ash (sbcl:code-header-words code) sbcl:word-shift)
                      (sbcl:sap- sap (sbcl:code-instructions code)))
                   #'sbcl:constantly-t relocs)))
    (end-component code first index relocs)))

(defun end-component (code first index relocs)
  (when (> (fill-pointer relocs) first)
    (vector-push-extend (sbcl:get-lisp-obj-address code) index)
    (vector-push-extend first index)))

(defun reuse-relocations (full-scan)
  "SB-VM::COLLECT-IMMOBILE-CODE-RELOCS, from the records where they hold."
  (let ((records *relocations*)
        (index (make-array 20000 :element-type '(unsigned-byte 32) :fill-pointer 0
                                 :adjustable t))
        (relocs (make-array 100000 :element-type '(unsigned-byte 32) :fill-pointer 0
                                   :adjustable t))
        (recorded (make-hash-table :test 'eq)))
    (setf *relocations* nil)
    (unless records
      (return-from reuse-relocations (funcall full-scan)))
    (sbcl:without-gcing
      ;; The assembler routines, as the full scan does them.
      (let ((code sbcl:*assembler-routines*)
            (first (fill-pointer relocs)))
        (multiple-value-bind (start end) (sbcl:calc-asm-routine-bounds)
          (scan-code code (sbcl:sap+ (sbcl:code-instructions code) start) (- end start)
                     (+ (ash (sbcl:code-header-words code) sbcl:word-shift) start)
                     #'sbcl:immobile-space-addr-p relocs))
        (end-component code first index relocs))
      ;; Recorded code: its records, if every jump still checks.
      (let ((i 0))
        (loop while (< i (length records))
              do (let* ((code (svref records i))
                        (count (svref records (1+ i)))
                        (end (+ i 2 (* 3 count))))
                   (setf (gethash code recorded) t)
                   (if (loop for j from (+ i 2) below end by 3
                             always (= (svref records (+ j 2))
                                       (jump-invariant code (svref records j)
                                                       (svref records (1+ j)))))
                       (let ((first (fill-pointer relocs)))
                         (loop for j from (+ i 2) below end by 3
                               do (vector-push-extend (svref records j) relocs)
                                  (vector-push-extend (object-address (svref records (1+ j)))
                                                      relocs))
                         (end-component code first index relocs))
                       (scan-component code index relocs))
                   (setf i end))))
      ;; Code loaded since the image was saved.
      (map-immobile-code (lambda (code)
                           (unless (gethash code recorded)
                             (scan-component code index relocs)))))
    (vector-push-extend 0 index)
    (vector-push-extend (fill-pointer relocs) index)
    (values index relocs)))

(defun keep-relocations (index relocs)
  "Record the answer of a full scan, INDEX and RELOCS, returned as given."
  (sbcl:without-gcing
    (setf *relocations* (record-relocations index relocs)))
  (values index relocs))

(defun relocations-recorded-p ()
  (not (null *relocations*)))

(defun record-relocations-now ()
  "Find the relative jumps of all this image's code, for the next dumps."
  (multiple-value-call #'keep-relocations (sbcl:collect-immobile-code-relocs)))

(defun prepare-fast-dump ()
  "Before a development dump in a worker's child."
  (skip 'sbcl:statically-link-core)
  (skip 'sbcl:tune-image-for-dump)
  (skip 'sbcl:coalesce-ctypes)
  (sbcl:encapsulate 'sbcl:collect-immobile-code-relocs 'reuse
                    (lambda (full-scan) (reuse-relocations full-scan))))

(defun prepare-image-dump ()
  "Before saving a worker's image: record what the full scan finds."
  (skip 'sbcl:statically-link-core)
  (sbcl:encapsulate 'sbcl:collect-immobile-code-relocs 'record
                    (lambda (full-scan)
                      (multiple-value-call #'keep-relocations (funcall full-scan))))))
