#!/bin/sh
# Installs what lispbuild needs on Debian 12 and the package into .venv/.
set -eu
cd "$(dirname "$0")"

# sbcl: the compiler and Debian's sbcl.o; musl-tools/musl-dev: musl-gcc and
# libc.a; libzstd-dev: compressed cores; zlib1g-dev: the ffi sample's libz.a;
# cl-*: the Lisp libraries the ASDF samples use (hunchentoot brings cl+ssl,
# cffi, usocket, ...); libssl-dev: OpenSSL's static archives for cl+ssl;
# strace: the test that proves a restore from the store starts no compiler;
# nginx-light, openssl: the remote store's tests (a real server, real keys);
# cl-rt: trivial-features' test suite (cl-cffi only suggests it);
# diffoscope-minimal: what `doit verify` shows of a differing file;
# cl-cxml, cl-puri: an .asd defining several systems (cxml needs puri, which
# Debian's package does not depend on); cl-asdf: an ASDF newer than SBCL's,
# which the build then uses; cl-qmynd: a system compiled inside an
# :around-compile hook (cl-asdf-finalizers', which its .asd needs and its
# package does not depend on); libffi-dev: cffi-tests'
# structures by value;
# python3: Debian's own, which the test of an ordinary user runs lispbuild
# with (this machine's may be in a directory only root can read);
# linux-perf: the test that perf names the Lisp functions of an executable.
# qemu-user-static, gcc-aarch64-linux-gnu, libc6-dev-arm64-cross: aarch64
# executables (docs/targets.md): the arm64 SBCL runs under qemu, the cross
# gcc links with musl's arm64 libc.a and builds a release dump's preload;
# the arm64 packages themselves are downloaded by the build (sysroot.py),
# from the arm64 architecture added here.
packages="sbcl musl-tools musl-dev libzstd-dev zlib1g-dev gcc
  cl-ppcre cl-alexandria cl-fiveam cl-hunchentoot cl-plus-ssl cl-cffi libssl-dev
  strace nginx-light openssl cl-rt diffoscope-minimal python3
  cl-cxml cl-puri cl-asdf cl-qmynd cl-asdf-finalizers libffi-dev linux-perf
  qemu-user-static gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
python3 -c "import ensurepip" 2>/dev/null || packages="$packages python3-venv"
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $sudo dpkg --add-architecture arm64
  missing="$missing "  # apt's lists must be read again
fi
if [ -n "$missing" ]; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
