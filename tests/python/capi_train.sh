#!/usr/bin/env bash
# Runs tests/python/capi_train.py (a training run through the C API from Python ctypes) against libvktrain_c.so.
#   capi_train.sh LIBVKTRAIN_C_SO BUILD_DIR SOURCE_DIR
set -euo pipefail
lib=$1 build=$2 src=$3
work="$build/test-python-capi"
rm -rf "$work" && mkdir -p "$work"
exec python3 "$src/tests/python/capi_train.py" "$lib" "$work"
