#!/usr/bin/env bash
# LoRA on an imported Hugging Face GPT-2 against the PyTorch reference (check_lora_gpt2.py), on this machine's default
# Vulkan device, or with "root" on Mesa 26.1 lavapipe in the trixie root (the vktrain commands and the C API script run
# there through run-in-root.sh, PyTorch stays on the host).
#   lora_gpt2.sh VKTRAIN_BINARY LIBVKTRAIN_C BUILD_DIR SOURCE_DIR [root]
set -euo pipefail
bin=$1 lib=$2 build=$3 src=$4 where=${5:-host}
py=/usr/bin/python3
"$py" -c 'import torch, numpy' 2>/dev/null || { echo "python3-torch is not installed (platforms/debian/setup-test-tools.sh)"; exit 77; }
runner=()
[ "$where" = root ] && runner=("$src/platforms/debian/run-in-root.sh" "$build")
exec "$py" "$src/tests/python/check_lora_gpt2.py" "$bin" "$lib" "$build/test-lora-gpt2-$where" "${runner[@]}"
