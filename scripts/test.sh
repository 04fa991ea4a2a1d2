#!/usr/bin/env bash
# The test command: set up (including the Mesa 26.1 trixie root), build, then run the whole suite with
# ctest: host tests, device tests on the host's lavapipe (no cooperative matrix) and again inside the
# trixie root (cooperative matrix, Khronos validation layer: any message fails), CLI and format checks, fuzzing,
# the sanitizer build, and an aarch64 cross build run under qemu-user against arm64 lavapipe.
# Tests run in parallel, one per core (the long sanitizer, aarch64 and fuzzing tests start first: their COST in
# tests/CMakeLists.txt); lavapipe and the builds use every core anyway, but the suite has many short single-threaded
# tests whose start-up and host work then overlap. Extra arguments go to ctest (e.g. -R cli). A ctest test that skips itself (exit 77: a tool or data set missing)
# fails the command: after this script's own set-up nothing may be missing, and a skip would hide a missing
# install step.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/scripts/setup.sh" --with-test-root --with-aarch64
build=${VKTRAIN_BUILD:-$here/build}
cd "$build"
log="$build/ctest.log"
status=0
ctest --output-on-failure --timeout 1500 -j"$(nproc)" "$@" 2>&1 | tee "$log" || status=$?
if grep -q '(Skipped)' "$log"; then
  echo "scripts/test.sh: these tests skipped themselves, so something they need was not installed:" >&2
  grep '(Skipped)' "$log" >&2
  [ $status -ne 0 ] || status=1
fi
exit $status
