#!/usr/bin/env bash
# The benchmark suite on one device, in one run, written as one JSON (never part of the pass/fail suite):
#   - the device's ceilings (fma fp32/fp16, cooperative matrix, copy bandwidth) and every GEMM path and form at
#     square sizes and the shapes of the models vktrain trains, as GFLOP/s and fractions of the ceiling
#     (vktrain_bench_gemm);
#   - element-wise kernels (gradient scan, cast, ReLU, bias add) as GB/s against copy bandwidth, with and without
#     the device's cap on workgroups (vktrain_bench_elementwise);
#   - training: samples/s, seconds per epoch and peak device memory, fp32 vs mixed, for the default MLP (one
#     epoch of Fashion-MNIST) and a GEMM-bound MLP (784-4096-4096-10, batch 1024), with the device time of one
#     step (--profile) so that the host's share of the step shows, and where the optimizer runs (the automatic choice,
#     the update forced onto the device, and the host update without the bucketed pipeline);
#   - the host update (unscale + AdamW + fp16 pack) at 1M/10M/124M parameters against memcpy (vktrain_bench_host);
#   - PyTorch on this machine's CPU (or its GPU, see bench/gpu.sh) for the same MLP, when python3 has torch;
#   - generation: `vktrain generate` tokens/s (key/value cache and --no-cache) for the GPT recipe's network and a
#     small Llama against PyTorch CPU greedy generation with a key/value cache (bench/generate_bench.py).
# Binaries come from the build folder: the script builds nothing.
#   bench/run_suite.sh host|root|gpu [OUT.json]
#     host: the default Vulkan device of this machine; root: the trixie root's lavapipe 26 (run-in-root.sh);
#     gpu: the default device, with bigger GEMMs and PyTorch on CUDA (bench/gpu.sh calls it).
# Environment: VKTRAIN_BUILD (default build), PYTHON (default python3), SUITE_QUICK=1 (fewer sizes, for a check).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${VKTRAIN_BUILD:-$here/build}" && pwd)
where=${1:-host}
out=${2:-$here/bench/results/$(date -u +%Y-%m-%d)/suite-$where.json}
python=${PYTHON:-python3}
for b in vktrain vktrain_bench_gemm vktrain_bench_host vktrain_bench_elementwise; do
  [ -x "$build/bin/$b" ] || { echo "run_suite.sh: $build/bin/$b is missing (build first; see README)" >&2; exit 1; }
done
runner=()
case "$where" in
  host|gpu) ;;
  root) runner=("$here/platforms/debian/run-in-root.sh" "$build") ;;
  *) echo "run_suite.sh: the first argument is host, root or gpu" >&2; exit 2 ;;
esac
# Intermediate files live in the build folder (bind-mounted into the root).
tmp="$build/bench-suite-$where"
rm -rf "$tmp" && mkdir -p "$tmp" "$(dirname "$out")"
export VKTRAIN_CACHE_DIR="$tmp/cache" # the GEMM-path choices are measured in this run, not remembered

sizes=256,1024
[ "$where" = gpu ] && sizes=256,1024,4096
[ "${SUITE_QUICK:-0}" = 1 ] && sizes=256
echo "== GEMMs and ceilings ($where)" >&2
"${runner[@]}" "$build/bin/vktrain_bench_gemm" --sizes "$sizes" --out "$tmp/gemm.json" | tee "$tmp/gemm.txt" >&2

echo "== element-wise kernels ($where)" >&2
"${runner[@]}" "$build/bin/vktrain_bench_elementwise" --out "$tmp/elementwise.json" | tee "$tmp/elementwise.txt" >&2

train() { # name precision args...
  local name=$1 precision=$2; shift 2
  echo "== training: $name $precision ($where)" >&2
  "${runner[@]}" "$build/bin/vktrain" train --precision "$precision" --quiet --profile --force \
    --report "$tmp/train-$name-$precision.json" "$@" >"$tmp/train-$name-$precision.log"
  tail -n 3 "$tmp/train-$name-$precision.log" >&2
}
mlp_limit=60000 big_limit=4096
[ "${SUITE_QUICK:-0}" = 1 ] && mlp_limit=2560 big_limit=1024
for p in fp32 mixed; do train mlp "$p" --epochs 1 --limit "$mlp_limit" --test-limit 1000; done
for p in fp32 mixed; do
  train mlp4096 "$p" --model mlp:4096,4096 --batch-size 1024 --epochs 1 --limit "$big_limit" --test-limit 1000
done
# Where the optimizer runs: the mixed runs above took the automatic choice (the report says which and why); the same
# GEMM-bound step with the update forced onto the device, and with the host update unpipelined (one readback).
train mlp4096-devupdate mixed --model mlp:4096,4096 --batch-size 1024 --epochs 1 --limit "$big_limit" \
  --test-limit 1000 --update-location device
train mlp4096-hostserial mixed --model mlp:4096,4096 --batch-size 1024 --epochs 1 --limit "$big_limit" \
  --test-limit 1000 --update-location host --update-buckets 1

# Start-up: a whole short run (device, pipelines, GEMM-path choices, one step) with an empty cache folder, then
# again with the pipeline cache and path choices that the first run wrote.
echo "== start-up, cold and warm caches ($where)" >&2
rm -rf "$tmp/startup-cache"
for run in cold warm; do
  t0=$(date +%s%N)
  VKTRAIN_CACHE_DIR="$tmp/startup-cache" "${runner[@]}" "$build/bin/vktrain" train --epochs 1 --limit 128 \
    --test-limit 128 --quiet --force --report "$tmp/startup-$run.json" >/dev/null
  ms=$((($(date +%s%N) - t0) / 1000000))
  echo "{\"seconds\": $((ms / 1000)).$(printf %03d $((ms % 1000)))}" >"$tmp/startup-$run-time.json"
  echo "$run start-up run: $ms ms" >&2
done

echo "== host update" >&2
host_sizes=1,10,124
[ "${SUITE_QUICK:-0}" = 1 ] && host_sizes=1
"$build/bin/vktrain_bench_host" --sizes "$host_sizes" --out "$tmp/host.json" >&2

torch_args=(--threads "$(nproc)" --limit "$mlp_limit")
[ "$where" = gpu ] && torch_args=(--device cuda --matmul "$sizes" --limit "$mlp_limit")
if "$python" -c 'import torch' 2>/dev/null; then
  echo "== PyTorch" >&2
  "$python" "$here/bench/torch_mlp.py" "${torch_args[@]}" --out "$tmp/torch.json" >&2 || true
  if [ "$where" = gpu ]; then
    "$python" "$here/bench/torch_mlp.py" "${torch_args[@]}" --amp --out "$tmp/torch-amp.json" >&2 || true
    "$python" "$here/bench/torch_mlp.py" --device cuda --hidden 4096,4096 --batch 1024 --limit "$big_limit" --amp \
      --out "$tmp/torch-amp-mlp4096.json" >&2 || true
  fi
  echo "== generation ($where)" >&2
  gen_args=(--vktrain "$build/bin/vktrain" --work "$tmp/generate-work" --out "$tmp/generate.json")
  [ "$where" = root ] && gen_args+=(--runner "${runner[*]}")
  [ "$where" = gpu ] && gen_args+=(--threads "$(nproc)")
  [ "${SUITE_QUICK:-0}" = 1 ] && gen_args+=(--tokens 20 --train-steps 10)
  "$python" "$here/bench/generate_bench.py" "${gen_args[@]}" >&2 || true
else
  echo "== PyTorch: not installed for $python; skipped" >&2
fi

"$python" "$here/bench/summarize_suite.py" "$tmp" "$where" "$out"
