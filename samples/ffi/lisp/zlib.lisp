(in-package #:ffi-demo)

;;; zlib, linked statically from Debian's libz.a.
(sb-alien:define-alien-routine ("compressBound" compress-bound) sb-alien:unsigned-long
  (source-length sb-alien:unsigned-long))

(sb-alien:define-alien-routine ("compress" %compress) sb-alien:int
  (dest sb-sys:system-area-pointer)
  (dest-length (* sb-alien:unsigned-long))
  (source sb-sys:system-area-pointer)
  (source-length sb-alien:unsigned-long))

(sb-alien:define-alien-routine ("uncompress" %uncompress) sb-alien:int
  (dest sb-sys:system-area-pointer)
  (dest-length (* sb-alien:unsigned-long))
  (source sb-sys:system-area-pointer)
  (source-length sb-alien:unsigned-long))

(defun call-zlib (function octets capacity)
  "Run compress or uncompress from OCTETS into a buffer of CAPACITY bytes."
  (let ((out (make-array capacity :element-type '(unsigned-byte 8))))
    (sb-alien:with-alien ((length sb-alien:unsigned-long capacity))
      (sb-sys:with-pinned-objects (out octets)
        (let ((status (funcall function (sb-sys:vector-sap out) (sb-alien:addr length)
                               (sb-sys:vector-sap octets) (length octets))))
          (unless (zerop status)
            (error "zlib returned ~D" status))))
      (subseq out 0 length))))

(defun deflate (octets)
  (call-zlib #'%compress octets (compress-bound (length octets))))

(defun inflate (octets original-length)
  (call-zlib #'%uncompress octets original-length))
