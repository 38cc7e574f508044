;;;; An application-sized project assembled from Debian's libraries, for
;;;; bench/asdf_compare.py: an HTTP client, a PostgreSQL client's SQL
;;;; compiler, HTML, JSON, XML, dates, parsing, hashing and compression.
(defsystem "application"
  :version "1.0"
  :depends-on ("drakma" "postmodern" "cl-who" "ironclad" "cxml" "local-time" "yason"
               "parse-number" "esrap" "salza2" "chipz" "cl-ppcre" "alexandria")
  :serial t
  :components ((:file "package")
               (:file "report")
               (:file "main")))
