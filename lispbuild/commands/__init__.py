"""doit's plug-ins that lispbuild installs (entry points in pyproject.toml):
the commands `watch`, `why`, `verify` and `store-check`, and the progress
reporter. They use the build; nothing of the build imports them, and their
code is not part of any key (keys.package_digest)."""
