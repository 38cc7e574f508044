(defsystem "ppcre-grep"
  :version "1.0.0"
  :description "Print the lines of a file that match a Perl regular expression."
  :depends-on ("cl-ppcre" "alexandria")
  :serial t
  :components ((:file "package")
               (:file "grep")))

(defsystem "ppcre-grep/test"
  :description "FiveAM tests of ppcre-grep."
  :depends-on ("ppcre-grep" "fiveam")
  :components ((:file "test")))
