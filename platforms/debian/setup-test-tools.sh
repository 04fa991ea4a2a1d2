#!/usr/bin/env bash
# Reference implementations and tools the test suite needs (idempotent, root): Debian's PyTorch with OpenMP
# OpenBLAS, used through /usr/bin/python3; clang with libFuzzer for the fuzz harnesses; clang-format for the format
# check (without it the `format` test would not be registered at all).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_root
apt_install python3-torch python3-numpy libopenblas0-openmp clang libclang-rt-14-dev clang-format
log "test tools ready (python3-torch $(dpkg-query -W -f='${Version}' python3-torch))"
