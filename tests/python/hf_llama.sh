#!/usr/bin/env bash
# Hugging Face Llama import, predict and export against the PyTorch reference (check_hf_llama.py), on this machine's
# default Vulkan device, or with "root" on Mesa 26.1 lavapipe in the trixie root (coopmat; the vktrain commands run
# there through run-in-root.sh, PyTorch stays on the host).
#   hf_llama.sh VKTRAIN_BINARY LIBVKTRAIN_C BUILD_DIR SOURCE_DIR [root]
set -euo pipefail
bin=$1 lib=$2 build=$3 src=$4 where=${5:-host}
py=/usr/bin/python3
"$py" -c 'import torch, numpy' 2>/dev/null || { echo "python3-torch is not installed (platforms/debian/setup-test-tools.sh)"; exit 77; }
runner=()
[ "$where" = root ] && runner=("$src/platforms/debian/run-in-root.sh" "$build")
exec "$py" "$src/tests/python/check_hf_llama.py" "$bin" "$lib" "$build/test-hf-llama-$where" "${runner[@]}"
