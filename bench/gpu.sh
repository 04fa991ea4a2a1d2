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
#                            convolution bench (vktrain_bench_depthwise); dense convolutions and fused attention (vktrain_bench_conv,
#                            vktrain_bench_attention); the CNN and GPT recipes' training steps,
#                            vktrain fp32 and mixed against PyTorch CUDA fp32 and AMP + GradScaler on the same
#                            networks (bench/torch_recipes.py); generation tokens/s against PyTorch with a key/value
#                            cache (bench/generate_bench.py, PyTorch on the CPU and on CUDA). Results go
#                            to $OUT (the device tool's folder) or bench/results/<date>/, the suite as one JSON.
# With the device tool: run(command="bench/gpu.sh run", carry=["gpu-pack"], timeout_s=540).
# GPU_SH_PARTS (default all): a comma-separated subset of tests,suite,depthwise,conv,recipes,generate, e.g.
# GPU_SH_PARTS=recipes,generate for a short run, or for a dry run here on lavapipe with PyTorch on the CPU (PyTorch
# falls back to the CPU when CUDA is absent; GPU_SH_RECIPE_STEPS scales the recipe runs down).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pack="$here/gpu-pack"
case "${1:-}" in
pack)
  set -e
  build=${VKTRAIN_BUILD:-$here/build}
  rm -rf "$pack" && mkdir -p "$pack/bin" "$pack/tests" "$pack/data" "$pack/debs"
  cp "$build/bin/vktrain" "$build/bin/vktrain_bench_gemm" "$build/bin/vktrain_bench_host" \
    "$build/bin/vktrain_bench_elementwise" "$build/bin/vktrain_bench_depthwise" "$build/bin/vktrain_bench_conv" \
    "$build/bin/vktrain_bench_attention" "$pack/bin/"
  cp "$build/tests/vktrain_device_tests" "$pack/tests/"
  cp /usr/share/datasets/fashion-mnist/*.gz "$pack/data/"
  # The GPT recipe's corpus (Debian's fortunes, text files only) for the recipe and generation benches.
  mkdir -p "$pack/data/fortunes"
  find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' -exec cp {} "$pack/data/fortunes/" \;
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
  parts=",${GPU_SH_PARTS:-tests,suite,depthwise,conv,recipes,generate},"
  want() { [[ "$parts" == *",$1,"* ]]; }
  python=${PYTHON:-python3}
  torch_device=$("$python" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")' 2>/dev/null ||
    echo none)
  text=/usr/share/games/fortunes
  [ -d "$text" ] || text="$pack/data/fortunes"
  if want tests; then
    echo "== device tests (coopmat must run)"
    VKTRAIN_TEST_EXPECT_COOPMAT=1 timeout 240 "$pack/tests/vktrain_device_tests" --gtest_brief=1 >"$out/device-tests.log" 2>&1
    echo "device tests exit $?"; tail -n 5 "$out/device-tests.log"
  fi
  if want suite; then
    echo "== suite"
    VKTRAIN_BUILD="$pack" "$here/bench/run_suite.sh" gpu "$out/suite-gpu.json" 2>&1 | tee "$out/suite.log" | tail -n 40
  fi
  if want depthwise; then
    echo "== depthwise convolutions (MobileNetV2 shapes, kernel vs per-group GEMM, a training step)"
    "$pack/bin/vktrain_bench_depthwise" --out "$out/depthwise-gpu.json" --train-step 64 2>&1 | tee "$out/depthwise.log" |
      tail -n 12
  fi
  if want conv; then
    echo "== dense convolutions (CNN recipe, ResNet-18 shapes) per path and direction, and fused attention at context 2048"
    "$pack/bin/vktrain_bench_conv" --out "$out/conv-gpu.json" 2>&1 | tee "$out/conv.log" | tail -n 12
    "$pack/bin/vktrain_bench_attention" --out "$out/attention-gpu.json" 2>&1 | tee "$out/attention.log" | tail -n 12
    "$pack/bin/vktrain_bench_attention" --precision mixed --out "$out/attention-gpu-mixed.json" 2>&1 |
      tee -a "$out/attention.log" | tail -n 12
  fi
  if want recipes; then
    # The recipes' networks (bench/run_cnn_recipe.sh, run_gpt_recipe.sh) for a short run each: the CNN for 100 steps
    # of batch 128 (12,800 Fashion-MNIST images), the GPT for 200 steps of batch 32, with the --profile table of one
    # step; PyTorch trains the same networks on synthetic batches, fp32 and AMP + GradScaler.
    steps=${GPU_SH_RECIPE_STEPS:-200}
    echo "== recipes: CNN and GPT training steps, vktrain fp32 and mixed; PyTorch $torch_device fp32 and AMP"
    for p in fp32 mixed; do
      "$pack/bin/vktrain" train --model cnn --precision "$p" --epochs 1 --limit $((64 * steps)) --test-limit 512 \
        --profile --quiet --force --report "$out/recipe-cnn-$p.json" >"$out/recipe-cnn-$p.log" 2>&1 ||
        echo "vktrain cnn $p failed: $(tail -n 1 "$out/recipe-cnn-$p.log")"
      "$pack/bin/vktrain" train --model gpt:layers=4,heads=4,width=128,context=128 --text "$text" --precision "$p" \
        --steps "$steps" --warmup $((steps / 10)) --batch-size 32 --eval-at 0 --val-limit 8 --profile --quiet --force \
        --report "$out/recipe-gpt-$p.json" >"$out/recipe-gpt-$p.log" 2>&1 ||
        echo "vktrain gpt $p failed: $(tail -n 1 "$out/recipe-gpt-$p.log")"
    done
    if [ "$torch_device" != none ]; then
      for m in cnn gpt; do
        for amp in "" --amp; do
          "$python" "$here/bench/torch_recipes.py" --model $m --device "$torch_device" --steps $((steps / 4 + 1)) $amp \
            --out "$out/torch-recipe-$m${amp:+-amp}.json" || echo "torch_recipes.py $m $amp failed"
        done
      done
    fi
    "$python" "$here/bench/summarize_recipes.py" "$out" | tee "$out/recipes-summary.md"
  fi
  if want generate && [ "$torch_device" != none ]; then
    echo "== generation: vktrain (key/value cache and --no-cache) against PyTorch with a key/value cache"
    "$python" "$here/bench/generate_bench.py" --vktrain "$pack/bin/vktrain" --text "$text" --threads "$(nproc)" \
      --work "$out/generate-work" --out "$out/generate-cpu.json" 2>&1 | tee "$out/generate.log"
    if [ "$torch_device" = cuda ]; then
      "$python" "$here/bench/generate_bench.py" --vktrain "$pack/bin/vktrain" --text "$text" --torch-device cuda \
        --no-uncached --work "$out/generate-work" --out "$out/generate-cuda.json" 2>&1 | tee -a "$out/generate.log"
    fi
  fi
  ;;
*)
  echo "usage: bench/gpu.sh pack|run" >&2
  exit 2
  ;;
esac
