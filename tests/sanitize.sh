#!/usr/bin/env bash
# The suite under AddressSanitizer + UndefinedBehaviorSanitizer: builds BUILD_DIR/asan (-DVKTRAIN_SANITIZE=ON) and
# runs its host, device (the default device) and CLI tests; any sanitizer report fails.
# -O1 -g1: a third of -O2 -g's compile time (the build was most of this test's 34 minutes in CI), with the line tables
# the sanitizers' stack traces need.
#   sanitize.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "$1" && pwd) src=$(cd "$2" && pwd)
prefix=$(grep -E '^CMAKE_PREFIX_PATH:' "$build/CMakeCache.txt" | cut -d= -f2-)
glslang=$(grep -E '^VKTRAIN_GLSLANG:' "$build/CMakeCache.txt" | cut -d= -f2-)
asan="$build/asan"
cmake -S "$src" -B "$asan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" -DCMAKE_PREFIX_PATH="$prefix" \
  -DVKTRAIN_GLSLANG="$glslang" -DVKTRAIN_SANITIZE=ON -DVKTRAIN_BUILD_BENCH=OFF -DVKTRAIN_BUILD_EXAMPLES=OFF \
  -DVKTRAIN_BUILD_C_SHARED=OFF -DVKTRAIN_INSTALL=OFF >"$asan.configure.log" 2>&1 || { cat "$asan.configure.log"; exit 1; }
cmake --build "$asan" -j"$(nproc)" >"$asan.build.log" 2>&1 || { grep -E 'error|Error' "$asan.build.log" | head -n 40; exit 1; }
# Leaks are checked in vktrain's own code; the Vulkan loader and Mesa keep process-lifetime allocations.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:suppressions=$src/tests/asan.supp
export LSAN_OPTIONS=suppressions=$src/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
cd "$asan"
exec ctest --output-on-failure --timeout 1500 -j"$(nproc)" -L 'host|device|cli' -E 'trixie'
