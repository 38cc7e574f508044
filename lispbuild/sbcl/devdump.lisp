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

(in-package #:lispbuild-driver)

(defvar *relocations* nil
  "The relative jumps found when this image was saved, for every code
object: a simple-vector of CODE, COUNT, then COUNT triples OFFSET TARGET K.
The jump's 32-bit displacement is at OFFSET from CODE's start, TARGET is
the object it lands in (or 0), and K = displacement + address of CODE -
address of TARGET (modulo 2^32), which moving either object leaves as it is.")

(defun skip (function)
  (sb-int:encapsulate function 'lispbuild-driver
                      (lambda (real &rest arguments)
                        (declare (ignore real arguments))
                        nil)))

(defun object-address (object)
  (if (eql object 0) 0 (sb-kernel:get-lisp-obj-address object)))

(defun displacement-at (code offset)
  (sb-sys:sap-ref-32 (sb-sys:int-sap (logandc2 (sb-kernel:get-lisp-obj-address code)
                                                 sb-vm:lowtag-mask))
                     offset))

(defun jump-invariant (code offset target)
  (ldb (byte 32 0) (+ (displacement-at code offset)
                      (sb-kernel:get-lisp-obj-address code)
                      (- (object-address target)))))

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
                                    (sb-kernel:%make-lisp-obj target-address))
                   do (push offset records)
                      (push target records)
                      (push (jump-invariant code offset target) records))))
      (loop for i from 0 by 2
            for address = (aref index i)
            until (zerop address)
            do (let ((code (sb-kernel:%make-lisp-obj address)))
                 (unless (eq code sb-fasl:*assembler-routines*)
                   (record code (aref index (1+ i)) (aref index (+ i 3))))))
      (sb-vm:map-allocated-objects
       (lambda (code type size)
         (declare (ignore size))
         (when (and (= type sb-vm:code-header-widetag)
                    (plusp (sb-kernel:code-n-entries code))
                    (not (gethash code seen)))
           (record code 0 0)))
       :immobile))
    (coerce (nreverse records) 'simple-vector)))

(defun scan-code (code start length extra-offset predicate relocs)
  "The relative jumps of LENGTH bytes of CODE's instructions at START,
pushed onto RELOCS as SB-VM::COLLECT-IMMOBILE-CODE-RELOCS does."
  (sb-x86-64-asm::scan-relative-operands
   code (sb-sys:sap-int start) length (sb-disassem:make-dstate nil)
   (sb-disassem::%make-segment :sap-maker (lambda () (error "no sap")) :virtual-location 0)
   (lambda (offset operand inst)
     (declare (ignore inst))
     (let ((object (if (sb-vm::immobile-space-addr-p operand)
                       (sb-vm::find-called-object operand)
                       0)))
       (vector-push-extend (+ offset extra-offset) relocs)
       (vector-push-extend (sb-kernel:get-lisp-obj-address object) relocs)))
   predicate))

(defun scan-component (code index relocs)
  (let ((first (fill-pointer relocs)))
    (dotimes (i (sb-kernel:code-n-entries code))
      (let* ((fun (sb-kernel:%code-entry-point code i))
             (sap (sb-vm:simple-fun-entry-sap fun)))
        (scan-code code sap (sb-kernel:%simple-fun-text-len fun i)
                   (+ (ash (sb-kernel:code-header-words code) sb-vm:word-shift)
                      (sb-sys:sap- sap (sb-kernel:code-instructions code)))
                   #'sb-impl::constantly-t relocs)))
    (end-component code first index relocs)))

(defun end-component (code first index relocs)
  (when (> (fill-pointer relocs) first)
    (vector-push-extend (sb-kernel:get-lisp-obj-address code) index)
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
    (sb-sys:without-gcing
      ;; The assembler routines, as the full scan does them.
      (let ((code sb-fasl:*assembler-routines*)
            (first (fill-pointer relocs)))
        (multiple-value-bind (start end) (sb-fasl::calc-asm-routine-bounds)
          (scan-code code (sb-sys:sap+ (sb-kernel:code-instructions code) start) (- end start)
                     (+ (ash (sb-kernel:code-header-words code) sb-vm:word-shift) start)
                     #'sb-vm::immobile-space-addr-p relocs))
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
      (sb-vm:map-allocated-objects
       (lambda (code type size)
         (declare (ignore size))
         (when (and (= type sb-vm:code-header-widetag)
                    (plusp (sb-kernel:code-n-entries code))
                    (not (gethash code recorded)))
           (scan-component code index relocs)))
       :immobile))
    (vector-push-extend 0 index)
    (vector-push-extend (fill-pointer relocs) index)
    (values index relocs)))

(defun prepare-fast-dump ()
  "Before a development dump in a worker's child."
  (skip 'sb-vm::statically-link-core)
  (skip 'sb-impl::tune-image-for-dump)
  (skip 'sb-impl::coalesce-ctypes)
  (sb-int:encapsulate 'sb-vm::collect-immobile-code-relocs 'lispbuild-driver
                      (lambda (full-scan) (reuse-relocations full-scan))))

(defun prepare-image-dump ()
  "Before saving a worker's image: record what the full scan finds."
  (skip 'sb-vm::statically-link-core)
  (sb-int:encapsulate 'sb-vm::collect-immobile-code-relocs 'lispbuild-driver
                      (lambda (full-scan)
                        (multiple-value-bind (index relocs) (funcall full-scan)
                          (sb-sys:without-gcing
                            (setf *relocations* (record-relocations index relocs)))
                          (values index relocs)))))
