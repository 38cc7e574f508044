(in-package #:application)

(defun html (title)
  (cl-who:with-html-output-to-string (s)
    (:p :class "title" (cl-who:str title))))

(defun json (alist)
  (with-output-to-string (s)
    (yason:encode (alexandria:alist-hash-table alist :test 'equal) s)))

(defun xml-root (text)
  (dom:tag-name (dom:document-element (cxml:parse text (cxml-dom:make-dom-builder)))))

(defun sha256 (text)
  (ironclad:byte-array-to-hex-string
   (ironclad:digest-sequence :sha256 (babel:string-to-octets text))))

(defun round-trip (text)
  "TEXT deflated with salza2 and inflated with chipz."
  (babel:octets-to-string
   (chipz:decompress nil 'chipz:zlib (salza2:compress-data (babel:string-to-octets text)
                                                            'salza2:zlib-compressor))))

(esrap:defrule digits (+ (digit-char-p character))
  (:lambda (list) (parse-integer (coerce list 'string))))

(defun query ()
  (s-sql:sql (:select 'name :from 'users :where (:= 'id 42))))

(defun day (universal-time)
  (local-time:format-timestring nil (local-time:universal-to-timestamp universal-time)
                                :format '(:year "-" (:month 2) "-" (:day 2)) :timezone local-time:+utc-zone+))
