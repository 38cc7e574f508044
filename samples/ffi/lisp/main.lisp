(in-package #:ffi-demo)

;;; The project's own C function, from c/fnv.c.
(sb-alien:define-alien-routine ("ffi_fnv1a" fnv1a) (sb-alien:unsigned 32)
  (data sb-sys:system-area-pointer)
  (length sb-alien:unsigned-long))

(defun checksum (octets)
  (sb-sys:with-pinned-objects (octets)
    (fnv1a (sb-sys:vector-sap octets) (length octets))))

(defun main (args)
  "Round-trip the text of ARGS (repeated 100 times) through zlib."
  (let* ((text (format nil "~{~A~^ ~}" (or args '("static lisp"))))
         (octets (map '(vector (unsigned-byte 8)) #'char-code
                      (with-output-to-string (out)
                        (dotimes (i 100) (write-string text out)))))
         (packed (deflate octets))
         (restored (inflate packed (length octets))))
    (format t "original ~D bytes, compressed ~D bytes, restored ~D bytes~%"
            (length octets) (length packed) (length restored))
    (format t "fnv1a original #x~8,'0X restored #x~8,'0X~%"
            (checksum octets) (checksum restored))
    (if (equalp octets restored) 0 1)))
