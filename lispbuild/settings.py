"""What the environment says to a build, read in one place into a frozen
`Settings` (once for each environment a process sees: a watch sets two
variables for its builds), and the names the build shares with the
commands that drive or report on it (lispbuild/commands/). Each variable
is explained in docs/environment.md."""
import functools
import os
from dataclasses import dataclass

STORE_VARIABLE = "LISPBUILD_STORE"
REMOTE_VARIABLE = "LISPBUILD_REMOTE"
UPLOAD_VARIABLE = "LISPBUILD_REMOTE_UPLOAD"
TIMEOUT_VARIABLE = "LISPBUILD_REMOTE_TIMEOUT"
SIGNING_KEY_VARIABLE = "LISPBUILD_SIGNING_KEY"
TRUSTED_KEYS_VARIABLE = "LISPBUILD_TRUSTED_KEYS"
FRESH_VARIABLE = "LISPBUILD_FRESH"
TIME_LIMIT_VARIABLE = "LISPBUILD_TIME_LIMIT"
SHOW_ALL_VARIABLE = "LISPBUILD_WARNINGS"   # "all": every warning of code outside the project
RELEASE_DIR_VARIABLE = "LISPBUILD_RELEASE_DIR"
ALLOW_DIRTY_VARIABLE = "LISPBUILD_ALLOW_DIRTY"
REVISION_VARIABLE = "LISPBUILD_SOURCE_REVISION"
EPOCH_VARIABLE = "SOURCE_DATE_EPOCH"
OWNER_VARIABLE = "LISPBUILD_OWNER"         # the process a watch's builds belong to
WATCH_VARIABLE = "LISPBUILD_WATCH"         # set by a watch for the builds it runs
MODE_VARIABLE = "LISPBUILD_MODE"           # the compilation mode (modes.py)
COVERAGE_VARIABLE = "LISPBUILD_COVERAGE"   # set by `doit coverage` for its build
COVERAGE_FILE_VARIABLE = "LISPBUILD_COVERAGE_FILE"  # where a suite saves its coverage (develop.lisp)
RELOAD_SOCKET_VARIABLE = "LISPBUILD_RELOAD_SOCKET"  # set by a watch for its programs (reload.lisp)
CHECK_REUSE_VARIABLE = "LISPBUILD_CHECK_REUSE"  # compile what a trace reuses, and compare (reuse.py)
HERMETIC_VARIABLE = "LISPBUILD_HERMETIC"   # ASDF without the user's configuration (asdf_registry.py)

STORE_CONFIG = "lispbuild_store"           # the key doit_config() puts in DOIT_CONFIG
REPORTER = "lispbuild"                     # the progress reporter's name (doit.REPORTER)
RUN_EXE_TASK = "_run-exe"                  # run-exe:NAME builds the binary of run:NAME
STOP_GRACE_SECONDS = 3.0                   # a stopped program's time to end before SIGKILL


def _on(value: str | None) -> bool:
    return value not in (None, "", "0")


@dataclass(frozen=True)
class Settings:
    """The environment's word on a build. Values that need checking (a
    number of seconds, an absolute directory) are checked where they are
    used, so that the message names what they are for."""
    store: str | None
    remote: str | None
    remote_upload: bool
    remote_timeout: str | None
    signing_key: str | None
    trusted_keys: tuple[str, ...]
    fresh: bool
    time_limit: str | None
    show_all_warnings: bool
    release_dir: str | None
    allow_dirty: bool
    source_revision: str | None
    source_date_epoch: str | None
    owner: str | None
    watch: bool
    mode: str | None
    coverage: bool
    check_reuse: bool
    hermetic: bool


VARIABLES = (STORE_VARIABLE, REMOTE_VARIABLE, UPLOAD_VARIABLE, TIMEOUT_VARIABLE,
             SIGNING_KEY_VARIABLE, TRUSTED_KEYS_VARIABLE, FRESH_VARIABLE, TIME_LIMIT_VARIABLE,
             SHOW_ALL_VARIABLE, RELEASE_DIR_VARIABLE, ALLOW_DIRTY_VARIABLE, REVISION_VARIABLE,
             EPOCH_VARIABLE, OWNER_VARIABLE, WATCH_VARIABLE, MODE_VARIABLE, COVERAGE_VARIABLE,
             CHECK_REUSE_VARIABLE, HERMETIC_VARIABLE)


@functools.lru_cache(maxsize=4)
def _read(values: tuple) -> Settings:
    env = dict(zip(VARIABLES, values))
    return Settings(
        store=env[STORE_VARIABLE] or None, remote=env[REMOTE_VARIABLE] or None,
        remote_upload=_on(env[UPLOAD_VARIABLE]), remote_timeout=env[TIMEOUT_VARIABLE] or None,
        signing_key=env[SIGNING_KEY_VARIABLE] or None,
        trusted_keys=tuple(k for k in (env[TRUSTED_KEYS_VARIABLE] or "").split(":") if k),
        fresh=_on(env[FRESH_VARIABLE]), time_limit=env[TIME_LIMIT_VARIABLE] or None,
        show_all_warnings=env[SHOW_ALL_VARIABLE] == "all",
        release_dir=env[RELEASE_DIR_VARIABLE] or None,
        allow_dirty=_on(env[ALLOW_DIRTY_VARIABLE]),
        source_revision=env[REVISION_VARIABLE] or None,
        source_date_epoch=env[EPOCH_VARIABLE] or None,
        owner=env[OWNER_VARIABLE] or None, watch=_on(env[WATCH_VARIABLE]),
        mode=env[MODE_VARIABLE] or None, coverage=_on(env[COVERAGE_VARIABLE]),
        check_reuse=_on(env[CHECK_REUSE_VARIABLE]), hermetic=_on(env[HERMETIC_VARIABLE]))


# What ASDF reads of the environment to find its configuration
# (CL_SOURCE_REGISTRY, and uiop's XDG directories).
ASDF_VARIABLES = ("CL_SOURCE_REGISTRY", "HOME", "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS",
                  "XDG_DATA_HOME", "XDG_DATA_DIRS")


def asdf_environment() -> dict[str, str | None]:
    """The variables ASDF reads to find its configuration, as they are now
    (asdf_registry.py)."""
    return {name: os.environ.get(name) for name in ASDF_VARIABLES}


def settings() -> Settings:
    """The settings of the environment as it is now."""
    return _read(tuple(os.environ.get(name) for name in VARIABLES))
