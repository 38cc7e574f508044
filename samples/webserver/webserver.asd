(defsystem "webserver"
  :version "1.0.0"
  :description "A hunchentoot server, with cl+ssl and OpenSSL linked statically."
  :depends-on ("hunchentoot")
  :components ((:file "webserver")))
