#!/usr/bin/env bash
# The main job: set up, build, and train the default recipe (an MLP on Fashion-MNIST, mixed precision,
# 5 epochs) on the default Vulkan device. Extra arguments go to `vktrain train`.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/scripts/setup.sh"
build=${VKTRAIN_BUILD:-$here/build}
mkdir -p "$here/out"
exec "$build/bin/vktrain" train --report "$here/out/report.json" --output "$here/out/weights.safetensors" --force "$@"
