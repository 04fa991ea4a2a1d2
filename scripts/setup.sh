#!/usr/bin/env bash
# Set-up and build on Debian bookworm (root), idempotent: host packages and Mesa lavapipe from
# bookworm-backports, Vulkan headers/volk/VMA from trixie and glslang 15 (in $VKTRAIN_CACHE), then a
# Release build of the library, the `vktrain` command and the tests in $VKTRAIN_BUILD (default ./build).
#   scripts/setup.sh [--with-test-root] [--with-aarch64]
#     --with-test-root  also makes the Mesa 26.1 (cooperative matrix) trixie test root and installs the test tools
#     --with-aarch64    also installs the aarch64 cross compiler, qemu-user and arm64 lavapipe (the aarch64 tests)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
with_root=0 with_arm=0
for a in "$@"; do
  case "$a" in
    --with-test-root) with_root=1 ;;
    --with-aarch64) with_arm=1 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
build=${VKTRAIN_BUILD:-$here/build}

bash "$here/platforms/debian/setup-host.sh"
prefix=$(bash "$here/platforms/debian/fetch-deps.sh" | tail -n1)
root_opt=()
if [ $with_root = 1 ]; then
  bash "$here/platforms/debian/setup-test-tools.sh"
  bash "$here/platforms/debian/make-trixie-root.sh" >/dev/null
  root_opt=(-DVKTRAIN_TEST_TRIXIE_ROOT=ON)
fi
if [ $with_arm = 1 ]; then
  bash "$here/platforms/debian/setup-aarch64.sh"
  root_opt+=(-DVKTRAIN_TEST_AARCH64=ON)
fi

echo "[vktrain-setup] configuring and building in $build" >&2
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  -DVKTRAIN_WERROR=ON "${root_opt[@]}" >"$build.configure.log" 2>&1 \
  || { cat "$build.configure.log" >&2; exit 1; }
if ! cmake --build "$build" -j"$(nproc)" >"$build.build.log" 2>&1; then
  grep -E 'error|Error|FAILED' "$build.build.log" | head -n 40 >&2
  echo "[vktrain-setup] build failed; full log: $build.build.log" >&2
  exit 1
fi

echo "[vktrain-setup] built: $build/bin/vktrain" >&2
