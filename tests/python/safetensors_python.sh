#!/usr/bin/env bash
# Trains a tiny run with the `vktrain` command, then reads its checkpoint with Python's safetensors
# package inside the trixie root (bookworm has no python3-safetensors).
#   safetensors_python.sh VKTRAIN_BINARY BUILD_DIR SOURCE_DIR
set -euo pipefail
bin=$1 build=$2 src=$3
work="$build/test-python-safetensors"
rm -rf "$work" && mkdir -p "$work"
cp "$src/tests/python/check_safetensors.py" "$work/"
"$bin" train --limit 1000 --test-limit 200 --epochs 1 --batch-size 100 --model mlp:32,16 --quiet \
  --output "$work/w.safetensors" >"$work/train.log"
"$src/platforms/debian/run-in-root.sh" "$build" python3 "$work/check_safetensors.py" "$work/w.safetensors" 32,16 784 10
