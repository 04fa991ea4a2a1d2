#!/usr/bin/env bash
# Trains a small GPT for a few steps with the `vktrain` command, evaluates its validation loss with `vktrain eval`
# (fp32), and checks the weights' names and the loss against a PyTorch float64 nanoGPT (Debian's python3-torch).
#   torch_gpt.sh VKTRAIN_BINARY BUILD_DIR SOURCE_DIR
set -euo pipefail
bin=$1 build=$2 src=$3
py=/usr/bin/python3
"$py" -c 'import torch' 2>/dev/null || { echo "python3-torch is not installed (platforms/debian/setup-test-tools.sh)"; exit 77; }
text=/usr/share/games/fortunes
[ -d "$text" ] || { echo "no text corpus at $text (Debian package fortunes)"; exit 77; }
work="$build/test-python-torch-gpt"
rm -rf "$work" && mkdir -p "$work"
"$bin" train --model gpt:layers=2,heads=2,width=32,context=24,mlp=48 --text "$text" --precision fp32 --steps 20 \
  --warmup 2 --batch-size 8 --lr 3e-3 --eval-at 20 --val-limit 8 --output "$work/g.safetensors" >"$work/train.log"
line=$("$bin" eval --weights "$work/g.safetensors" --text "$text" --precision fp32 --val-limit 40 | grep '^val_loss')
"$py" "$src/tests/python/check_torch_gpt.py" "$work/g.safetensors" "$text" 2 40 "$line"
