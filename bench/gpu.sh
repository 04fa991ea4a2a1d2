#!/usr/bin/env bash
# The GPU comparison, ready to run: on a machine with an NVIDIA GPU and its Vulkan driver (such as the device
# tool's H200, which has CUDA and PyTorch but no Vulkan loader), it builds nothing and runs what was built here.
#
#   bench/gpu.sh pack        (here, after the build) copies the binaries, the Fashion-MNIST files and, when apt can
#                            fetch them, the Vulkan loader packages into gpu-pack/ (ignored by git; about 45 MiB)
#   bench/gpu.sh run         (there, in the repository root, with gpu-pack/ carried) installs the loader and the
#                            data if missing, then runs: `vktrain devices`; the device tests, where the coopmat
#                            tests must run (a skip fails); bench/run_suite.sh gpu (ceilings, GEMMs up to 4096^3 on
#                            every path, fp32 vs mixed training steps, host update) with PyTorch on CUDA beside it
#                            (fp16 matmul at the same sizes; an AMP + GradScaler step of the same MLPs); the depthwise
#                            convolution bench (vktrain_bench_depthwise). Results go
#                            to $OUT (the device tool's folder) or bench/results/<date>/, the suite as one JSON.
# With the device tool: run(command="bench/gpu.sh run", carry=["gpu-pack"], timeout_s=540).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pack="$here/gpu-pack"
case "${1:-}" in
pack)
  set -e
  build=${VKTRAIN_BUILD:-$here/build}
  rm -rf "$pack" && mkdir -p "$pack/bin" "$pack/tests" "$pack/data" "$pack/debs"
  cp "$build/bin/vktrain" "$build/bin/vktrain_bench_gemm" "$build/bin/vktrain_bench_host" \
    "$build/bin/vktrain_bench_elementwise" "$build/bin/vktrain_bench_depthwise" "$pack/bin/"
  cp "$build/tests/vktrain_device_tests" "$pack/tests/"
  cp /usr/share/datasets/fashion-mnist/*.gz "$pack/data/"
  (cd "$pack/debs" && apt-get download libvulkan1 >/dev/null 2>&1) ||
    echo "gpu.sh: could not download libvulkan1 (no apt access); the GPU machine must have a Vulkan loader" >&2
  du -sh "$pack"
  ;;
run)
  [ -x "$pack/bin/vktrain" ] || { echo "gpu.sh: $pack is missing; run 'bench/gpu.sh pack' here and carry it" >&2; exit 1; }
  out=${OUT:-$here/bench/results/$(date -u +%Y-%m-%d)/gpu}
  mkdir -p "$out"
  if ! ldconfig -p | grep -q libvulkan.so.1; then
    for f in "$pack"/debs/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done
    ldconfig
  fi
  icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  if ! "$pack/bin/vktrain" devices >/dev/null 2>&1 && [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd; fi
  if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    mkdir -p /usr/share/datasets/fashion-mnist && cp "$pack"/data/*.gz /usr/share/datasets/fashion-mnist/
  fi
  { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1; uname -a; } | tee "$out/machine.txt"
  "$pack/bin/vktrain" devices 2>&1 | tee -a "$out/machine.txt"
  echo "== device tests (coopmat must run)"
  VKTRAIN_TEST_EXPECT_COOPMAT=1 timeout 240 "$pack/tests/vktrain_device_tests" --gtest_brief=1 >"$out/device-tests.log" 2>&1
  echo "device tests exit $?"; tail -n 5 "$out/device-tests.log"
  echo "== suite"
  export VKTRAIN_BUILD="$pack"
  "$here/bench/run_suite.sh" gpu "$out/suite-gpu.json" 2>&1 | tee "$out/suite.log" | tail -n 40
  echo "== depthwise convolutions (MobileNetV2 shapes, kernel vs per-group GEMM, a training step)"
  "$pack/bin/vktrain_bench_depthwise" --out "$out/depthwise-gpu.json" --train-step 64 2>&1 | tee "$out/depthwise.log" |
    tail -n 12
  ;;
*)
  echo "usage: bench/gpu.sh pack|run" >&2
  exit 2
  ;;
esac
