#!/usr/bin/env bash
# Reference implementations the test suite compares against (idempotent, root): Debian's PyTorch with
# OpenMP OpenBLAS, used through /usr/bin/python3; and clang with libFuzzer for the fuzz harnesses.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_root
apt_install -- python3-torch python3-numpy libopenblas0-openmp clang libclang-rt-14-dev
log "test tools ready (python3-torch $(dpkg-query -W -f='${Version}' python3-torch))"
