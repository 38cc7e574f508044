"""Names the build shares with the commands that drive or report on it
(lispbuild/commands/): environment variables, DOIT_CONFIG's keys, the
files a watch reads."""

OWNER_VARIABLE = "LISPBUILD_OWNER"       # the process a watch's builds belong to
WATCH_VARIABLE = "LISPBUILD_WATCH"       # set by a watch for the builds it runs
SHOW_ALL_VARIABLE = "LISPBUILD_WARNINGS"  # "all": every warning of code outside the project
STORE_CONFIG = "lispbuild_store"         # the key doit_config() puts in DOIT_CONFIG
REPORTER = "lispbuild"                   # the progress reporter's name (doit.REPORTER)
WATCH_FILE = "build/.lispbuild/watch.json"  # what a watch needs of a build (tasks.py)
RUN_EXE_TASK = "_run-exe"                # run-exe:NAME builds the binary of run:NAME
STOP_GRACE_SECONDS = 3.0                 # a stopped program's time to end before SIGKILL
