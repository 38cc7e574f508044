;;;; Files a program opens by name at run time, embedded in its executable
;;;; (a binary's resources=, written by embed.py): a static executable
;;;; copied to another machine must not look for them in the build
;;;; machine's directories.
;;;;
;;;; The executable is the runtime, the resources, zero padding, the core
;;;; and the core's 16-byte trailer (its offset, then the magic "SBCL").
;;;; The 16 bytes before the core are the resources' start and the magic
;;;; "LBRES001". At the start: their count, then for each one its name's
;;;; length, its offset in the file and its length (8 bytes each,
;;;; little-endian), then its name (UTF-8). The table is read from the
;;;; executable (the file SBCL's runtime found its core in) the first time
;;;; a resource is asked for. A development executable's payload
;;;; (payload.lisp) is a table of the same form, found by the 16 bytes
;;;; before those, with the magic "LBPAY001".

(defpackage #:lispbuild/resources
  (:use #:cl)
  (:export #:resource-names #:resource-octets #:resource-string #:resource-pathname
           #:missing-resource
           ;; For a development executable's payload (payload.lisp).
           #:embedded-entries #:embedded-octets))
(in-package #:lispbuild/resources)

(defconstant +core-magic+ #x5342434C)
(defconstant +resources-magic+ #x313030534552424C) ; "LBRES001"

(define-condition missing-resource (error)
  ((name :initarg :name)
   (names :initarg :names))
  (:report (lambda (c stream)
             (with-slots (name names) c
               (if names
                   (format stream "no resource ~S in this executable; it has ~{~S~^, ~}"
                           name names)
                   (format stream "no resource ~S: this process is not an executable ~
                                   lispbuild built with resources= (a REPL or a compile ~
                                   has none)" name))))))

(defvar *lock* (sb-thread:make-mutex :name "lispbuild resources"))
(defvar *table* nil
  "Each resource's name -> (offset . length), once read.")
(defvar *pathnames* (make-hash-table :test 'equal)
  "The file made for each resource RESOURCE-PATHNAME gave.")

(defun u64 (octets start)
  (loop for i below 8 sum (ash (aref octets (+ start i)) (* 8 i))))

(defun read-octets (stream position count)
  (file-position stream position)
  (let ((octets (make-array count :element-type '(unsigned-byte 8))))
    (unless (= (read-sequence octets stream) count)
      (error "~A ends before the resources it says it holds" (pathname stream)))
    octets))

(defun executable ()
  (or sb-ext:*runtime-pathname* "/proc/self/exe"))

(defun embedded-entries (magic back)
  "The entries of the table whose 16-byte mark ends BACK bytes before the
core and holds MAGIC, in the order they were written: (NAME START
LENGTH) each; NIL if there is no such mark."
  (with-open-file (exe (executable) :element-type '(unsigned-byte 8))
    (let* ((size (file-length exe))
           (trailer (and (>= size 32) (read-octets exe (- size 16) 16)))
           (core (and trailer (= (u64 trailer 8) +core-magic+) (u64 trailer 0)))
           (mark (and core (>= core back) (read-octets exe (- core back) 16))))
      (when (and mark (= (u64 mark 8) magic))
        (let ((position (u64 mark 0)))
          (loop for i below (u64 (read-octets exe position 8) 0)
                collect (let* ((entry (read-octets exe (+ position 8 (* i 24)) 24))
                               (name-start (u64 entry 8)))
                          (list (sb-ext:octets-to-string
                                 (read-octets exe name-start (u64 entry 0))
                                 :external-format :utf-8)
                                (+ name-start (u64 entry 0))
                                (u64 entry 16)))))))))

(defun embedded-octets (start length)
  "LENGTH bytes of the executable from START, a fresh vector."
  (with-open-file (exe (executable) :element-type '(unsigned-byte 8))
    (read-octets exe start length)))

(defun read-table ()
  (let ((table (make-hash-table :test 'equal)))
    (loop for (name start length) in (embedded-entries +resources-magic+ 16)
          do (setf (gethash name table) (cons start length)))
    table))

(defun table ()
  (sb-thread:with-mutex (*lock*)
    (or *table* (setf *table* (read-table)))))

(defun resource-names ()
  "The names of the resources this executable holds, sorted."
  (sort (loop for name being the hash-keys of (table) collect name) #'string<))

(defun resource-octets (name)
  "The bytes of resource NAME, a fresh (unsigned-byte 8) vector."
  (let ((entry (gethash name (table))))
    (unless entry
      (error 'missing-resource :name name :names (resource-names)))
    (embedded-octets (car entry) (cdr entry))))

(defun resource-string (name &key (external-format :utf-8))
  "Resource NAME as text."
  (sb-ext:octets-to-string (resource-octets name) :external-format external-format))

(defun memory-file (name octets)
  "A file in memory holding OCTETS (memfd_create), named as /proc/self/fd/N."
  (let ((fd (sb-alien:alien-funcall
             (sb-alien:extern-alien "memfd_create"
                                    (function sb-alien:int sb-alien:c-string sb-alien:unsigned-int))
             (subseq name 0 (min (length name) 200)) 0)))
    (when (minusp fd)
      (error "resource ~S: memfd_create failed (errno ~D)" name (sb-alien:get-errno)))
    (let ((path (format nil "/proc/self/fd/~D" fd)))
      (with-open-file (out path :direction :output :if-exists :overwrite
                                :element-type '(unsigned-byte 8))
        (write-sequence octets out))
      (pathname path))))

(defun resource-pathname (name)
  "A pathname that opens as resource NAME, for code that must be given a
file: a file in memory, made once a process, that lives as long as the
process (its name is under /proc/self/fd/)."
  (or (sb-thread:with-mutex (*lock*) (gethash name *pathnames*))
      (let ((octets (resource-octets name)))
        (sb-thread:with-mutex (*lock*)
          (or (gethash name *pathnames*)
              (setf (gethash name *pathnames*) (memory-file name octets)))))))
