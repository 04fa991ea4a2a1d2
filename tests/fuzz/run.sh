#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, ASan + UBSan) in BUILD_DIR/fuzz and runs each for SECONDS from the committed
# seed corpora (copied, so the repository is not changed); any crash, sanitizer report or unexpected exception fails.
# -O1 -g1 as in tests/sanitize.sh: a third of -O2 -g's compile time, with line tables for the reports.
# The mutation seed is fixed (VKTRAIN_FUZZ_SEED, default 1) so that CI explores the same inputs on every run and a
# red run means the code changed, not the dice; an exploratory run sets another seed and more SECONDS.
#   run.sh BUILD_DIR SOURCE_DIR [SECONDS=30]
set -euo pipefail
build=$(cd "$1" && pwd) src=$(cd "$2" && pwd) seconds=${3:-30} seed=${VKTRAIN_FUZZ_SEED:-1}
cxx=$(command -v clang++-14 || command -v clang++ || true)
cc=$(command -v clang-14 || command -v clang || true)
[ -n "$cxx" ] && [ -n "$cc" ] || { echo "clang is not installed (platforms/debian/setup-test-tools.sh)"; exit 77; }
prefix=$(grep -E '^CMAKE_PREFIX_PATH:' "$build/CMakeCache.txt" | cut -d= -f2-)
glslang=$(grep -E '^VKTRAIN_GLSLANG:' "$build/CMakeCache.txt" | cut -d= -f2-)
fuzz="$build/fuzz"
cmake -S "$src" -B "$fuzz" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER="$cc" \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$prefix" -DVKTRAIN_GLSLANG="$glslang" -DVKTRAIN_FUZZ=ON \
  -DVKTRAIN_BUILD_TESTS=OFF -DVKTRAIN_BUILD_TOOLS=OFF -DVKTRAIN_BUILD_BENCH=OFF -DVKTRAIN_BUILD_EXAMPLES=OFF \
  -DVKTRAIN_BUILD_C_SHARED=OFF -DVKTRAIN_INSTALL=OFF >"$fuzz.configure.log" 2>&1 \
  || { cat "$fuzz.configure.log"; exit 1; }
cmake --build "$fuzz" -j"$(nproc)" --target fuzz_idx fuzz_safetensors fuzz_checkpoint fuzz_json fuzz_model fuzz_text fuzz_hf \
  fuzz_tokenizer fuzz_image >"$fuzz.build.log" 2>&1 || { grep -E 'error|Error' "$fuzz.build.log" | head -n 40; exit 1; }
status=0
for name in idx safetensors checkpoint json model text hf tokenizer image; do
  corpus="$fuzz/corpus-$name"
  rm -rf "$corpus" && mkdir -p "$corpus" && cp "$src/tests/fuzz/corpus/$name/"* "$corpus/"
  echo "fuzz_$name: ${seconds}s, seed $seed"
  if ! (cd "$fuzz" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        "./tests/fuzz/fuzz_$name" -max_total_time="$seconds" -seed="$seed" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
        "$corpus" >"$fuzz/fuzz_$name.log" 2>&1); then
    echo "fuzz_$name FAILED:"; tail -n 60 "$fuzz/fuzz_$name.log"; status=1
  else
    grep -E '^stat::number_of_executed_runs|^#[0-9]+.*DONE' "$fuzz/fuzz_$name.log" | tail -n 2
  fi
done
exit $status
