#!/usr/bin/env bash
# Trains the CNN for a few steps with the `vktrain` command (fp32), evaluates it with `vktrain eval`, and checks the
# weights and the result against PyTorch (Debian's python3-torch, on the host).
#   torch_cnn.sh VKTRAIN_BINARY BUILD_DIR SOURCE_DIR
set -euo pipefail
bin=$1 build=$2 src=$3
py=/usr/bin/python3
"$py" -c 'import torch' 2>/dev/null || { echo "python3-torch is not installed (platforms/debian/setup-test-tools.sh)"; exit 77; }
data=/usr/share/datasets/fashion-mnist
[ -d "$data" ] || { echo "no Fashion-MNIST at $data"; exit 77; }
work="$build/test-python-torch-cnn"
rm -rf "$work" && mkdir -p "$work"
"$bin" train --model cnn --precision fp32 --limit 256 --test-limit 64 --epochs 1 --batch-size 64 --quiet \
  --output "$work/w.safetensors" >"$work/train.log"
line=$("$bin" eval --weights "$work/w.safetensors" --precision fp32 --test-limit 200 | grep '^test_loss')
"$py" "$src/tests/python/check_torch_cnn.py" "$work/w.safetensors" "$data" 200 "$line"
