#!/usr/bin/env bash
# The test command: set up (including the Mesa 26.1 trixie root), build, then run the whole suite with
# ctest: host tests, device tests on the host's lavapipe (no cooperative matrix) and again inside the
# trixie root (cooperative matrix, Khronos validation layer: any message fails), CLI and format checks, fuzzing,
# the sanitizer build, and an aarch64 cross build run under qemu-user against arm64 lavapipe.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/scripts/setup.sh" --with-test-root --with-aarch64
build=${VKTRAIN_BUILD:-$here/build}
cd "$build"
ctest --output-on-failure --timeout 1500 "$@"
