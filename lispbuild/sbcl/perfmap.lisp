;;;; Lisp names for Linux perf, in any executable lispbuild makes:
;;;; LISPBUILD_PERF_MAP=1 makes the program write perf's map of its
;;;; functions, /tmp/perf-PID.map (perf's own convention: "START SIZE NAME",
;;;; hexadecimal), before its entry runs.
;;;;
;;;; perf reads such a map only for samples in anonymous memory. A
;;;; compressed core is decompressed into anonymous memory; an uncompressed
;;;; one is mapped from the executable, where perf looks for ELF symbols
;;;; and finds none. So the program first moves its executable Lisp spaces
;;;; that are mapped from the file into anonymous memory, with the same
;;;; contents and protection: a copy, then mremap over the original, while
;;;; nothing else runs. Code in immobile space never moves; code in the
;;;; dynamic space moves when the collector compacts it, after which its
;;;; entries in the map are stale (most of a program's code is in
;;;; immobile space on x86-64).

(defpackage #:lispbuild/perfmap
  (:use #:cl)
  (:local-nicknames (#:sbcl #:lispbuild/sbcl))
  (:import-from #:lispbuild/syscalls #:stop-finalizer-thread)
  (:export #:write-perf-map-if-asked))
(in-package #:lispbuild/perfmap)

(defparameter *variable* "LISPBUILD_PERF_MAP")
(defconstant +prot-read+ 1)
(defconstant +prot-write+ 2)
(defconstant +prot-exec+ 4)
(defconstant +map-private-anonymous+ #x22)
(defconstant +mremap-maymove-fixed+ 3)

(defun file-mapped-code ()
  "(START END PROTECTION) of each private, executable mapping of this
program's own file above the runtime's ELF image, from /proc/self/maps."
  (let ((exe (namestring (truename "/proc/self/exe")))
        (regions '()))
    (with-open-file (maps "/proc/self/maps")
      (loop for line = (read-line maps nil)
            while line
            do (let* ((dash (position #\- line))
                      (space (position #\Space line))
                      (perms (subseq line (1+ space) (+ space 5)))
                      (start (parse-integer line :end dash :radix 16))
                      (end (parse-integer line :start (1+ dash) :end space :radix 16))
                      (path (string-left-trim " " (subseq line (min (length line)
                                                                     (+ space 5)))))
                      (path (subseq path (or (position #\/ path) (length path)))))
                 (when (and (string= path exe) (char= (char perms 3) #\p)
                            (char= (char perms 2) #\x) (>= start sbcl:static-space-start))
                   (push (list start end (logior (if (char= (char perms 0) #\r) +prot-read+ 0)
                                                 (if (char= (char perms 1) #\w) +prot-write+ 0)
                                                 +prot-exec+))
                         regions)))))
    regions))

(defun move-to-anonymous-memory (start end protection)
  "Replace the mapping START..END by an anonymous one with its contents
and PROTECTION. The copy is executable before it takes the place of the
code running now; nothing between the copy and the mremap allocates.
perf learns of a mapping from mmap and mprotect, not from mremap: the
protection is changed twice after the move, so that the last word perf
has of these addresses is an anonymous, executable mapping."
  (let* ((length (- end start))
         (all (logior +prot-read+ +prot-write+ +prot-exec+))
         (copy (sb-alien:alien-funcall
                (sb-alien:extern-alien "mmap" (function sb-alien:unsigned-long sb-alien:unsigned-long
                                                        sb-alien:unsigned-long sb-alien:int
                                                        sb-alien:int sb-alien:int sb-alien:long))
                0 length all +map-private-anonymous+ -1 0)))
    (when (= copy (ldb (byte 64 0) -1))
      (return-from move-to-anonymous-memory nil))
    (sb-alien:alien-funcall
     (sb-alien:extern-alien "memcpy" (function sb-alien:unsigned-long sb-alien:unsigned-long
                                               sb-alien:unsigned-long sb-alien:unsigned-long))
     copy start length)
    (sb-alien:alien-funcall
     (sb-alien:extern-alien "mremap" (function sb-alien:unsigned-long sb-alien:unsigned-long
                                               sb-alien:unsigned-long sb-alien:unsigned-long
                                               sb-alien:int sb-alien:unsigned-long))
     copy length length +mremap-maymove-fixed+ start)
    (dolist (step (list (logxor protection +prot-write+) protection))
      (sb-alien:alien-funcall
       (sb-alien:extern-alien "mprotect" (function sb-alien:int sb-alien:unsigned-long
                                                   sb-alien:unsigned-long sb-alien:int))
       start length step))))

(defun function-name (fun)
  (let ((*package* (find-package "COMMON-LISP-USER"))
        (*print-pretty* nil)
        (*print-readably* nil))
    (substitute #\Space #\Newline (prin1-to-string (sbcl:%simple-fun-name fun)))))

(defun write-perf-map (path)
  (let ((functions '()))
    (sbcl:without-gcing
      (sbcl:map-allocated-objects
       (lambda (code type size)
         (declare (ignore size))
         (when (= type sbcl:code-header-widetag)
           (dotimes (i (sbcl:code-n-entries code))
             (let ((fun (sbcl:%code-entry-point code i)))
               (push (list (sbcl:sap-int (sbcl:simple-fun-entry-sap fun))
                           (sbcl:%simple-fun-text-len fun i)
                           fun)
                     functions)))))
       :all))
    (with-open-file (out path :direction :output :if-exists :supersede)
      (loop for (start length fun) in functions
            do (format out "~(~X ~X~) ~A~%" start length (function-name fun))))))

(defun write-perf-map-if-asked ()
  "As LISPBUILD_PERF_MAP=1 asks: this program's code in anonymous memory,
and /tmp/perf-PID.map naming it."
  (when (equal (sb-ext:posix-getenv *variable*) "1")
    (let ((regions (file-mapped-code)))
      (stop-finalizer-thread)
      (unwind-protect
           (sbcl:without-gcing
             (dolist (region regions)
               (apply #'move-to-anonymous-memory region)))
        (sbcl:finalizer-thread-start)))
    (write-perf-map (format nil "/tmp/perf-~D.map" (sbcl:unix-getpid)))))
