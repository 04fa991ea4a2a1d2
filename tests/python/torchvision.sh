#!/usr/bin/env bash
# torchvision ResNet import, predict and export against torchvision itself (check_torchvision.py), on this machine's
# default Vulkan device, or with "root" on Mesa 26.1 lavapipe in the trixie root (coopmat; the vktrain commands run
# there through run-in-root.sh, PyTorch stays on the host).
#   torchvision.sh VKTRAIN_BINARY LIBVKTRAIN_C BUILD_DIR SOURCE_DIR [root]   (LIBVKTRAIN_C "-": no gradient checks)
set -euo pipefail
bin=$1 lib=$2 build=$3 src=$4 where=${5:-host}
py=/usr/bin/python3
"$py" -c 'import torch, torchvision, numpy' 2>/dev/null || { echo "python3-torchvision is not installed (platforms/debian/setup-test-tools.sh)"; exit 77; }
runner=()
[ "$where" = root ] && runner=("$src/platforms/debian/run-in-root.sh" "$build")
exec "$py" "$src/tests/python/check_torchvision.py" "$bin" "$lib" "$build/test-torchvision-$where" "${runner[@]}"
