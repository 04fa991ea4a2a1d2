#!/usr/bin/env bash
# Issue 25's speed targets on one device, measured in one run (never part of the pass/fail suite), written as one
# JSON and a Markdown table by bench/summarize_targets.py:
#   - GEMM 1024^3 and every convolution direction as fractions of the fp32 FMA ceiling measured by the same binary
#     (vktrain_bench_gemm, vktrain_bench_conv);
#   - LayerNorm, RMSNorm, softmax and the element-wise kernels as fractions of the copy bandwidth measured by the same
#     binary (vktrain_bench_elementwise);
#   - fused attention against the unfused path: peak memory and step time at a long context (vktrain_bench_attention);
#   - the GPT step with and without the IR's fusions: dispatches and step time (vktrain_bench_fusion);
#   - activation recomputation: planned activations, device peak and step time with --recompute blocks against none,
#     on the GPT recipe's network and GPT-2 124M's transformer (bench/recompute_bench.py);
#   - the CNN and GPT recipes' networks (bench/run_cnn_recipe.sh, run_gpt_recipe.sh) for a short run, fp32 and mixed,
#     with the --profile table of one step (the non-GEMM share of the GPT step, dispatches per step), and the MLP
#     epoch, each against PyTorch CPU fp32 on the same network (bench/torch_recipes.py, torch_mlp.py) run right after.
# Run it on a quiet machine: every ratio compares two numbers from this run, but a loaded machine moves each side.
# Binaries come from the build folder: the script builds nothing.
#   bench/speed_targets.sh host|root [OUT_PREFIX]     (default bench/results/<date>/targets-<where>.{json,md})
# Environment: VKTRAIN_BUILD (default build), PYTHON (default /usr/bin/python3 when it has torch, else python3),
# TARGETS_QUICK=1 (fewer steps and samples, for a check of the script itself).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${VKTRAIN_BUILD:-$here/build}" && pwd)
where=${1:-host}
prefix=${2:-$here/bench/results/$(date -u +%Y-%m-%d)/targets-$where}
python=${PYTHON:-python3}
[ -z "${PYTHON:-}" ] && /usr/bin/python3 -c 'import torch' 2>/dev/null && python=/usr/bin/python3
for b in vktrain vktrain_bench_gemm vktrain_bench_conv vktrain_bench_elementwise vktrain_bench_attention \
  vktrain_bench_fusion; do
  [ -x "$build/bin/$b" ] || { echo "speed_targets.sh: $build/bin/$b is missing (build first; see README)" >&2; exit 1; }
done
runner=()
case "$where" in
  host) ;;
  root) runner=("$here/platforms/debian/run-in-root.sh" "$build") ;;
  *) echo "speed_targets.sh: the first argument is host or root" >&2; exit 2 ;;
esac
tmp="$build/bench-targets-$where" # bind-mounted into the root with the build folder
rm -rf "$tmp" && mkdir -p "$tmp" "$(dirname "$prefix")"
export VKTRAIN_CACHE_DIR="$tmp/cache" # tile choices are measured in this run, not remembered
cat /proc/loadavg >"$tmp/loadavg-start.txt"

quick=${TARGETS_QUICK:-0}
cnn_limit=2560 gpt_steps=40 mlp_limit=60000 torch_steps=20
[ "$quick" = 1 ] && cnn_limit=256 gpt_steps=4 mlp_limit=2560 torch_steps=3

echo "== GEMM 1024^3 and ceilings ($where)" >&2
"${runner[@]}" "$build/bin/vktrain_bench_gemm" --sizes 1024 --out "$tmp/gemm.json" >"$tmp/gemm.txt"
echo "== convolutions ($where)" >&2
conv_args=()
[ "$quick" = 1 ] && conv_args=(--default-tiles)
"${runner[@]}" "$build/bin/vktrain_bench_conv" "${conv_args[@]}" --out "$tmp/conv.json" >"$tmp/conv.txt"
echo "== norms, softmax, element-wise ($where)" >&2
"${runner[@]}" "$build/bin/vktrain_bench_elementwise" --out "$tmp/elementwise.json" >"$tmp/elementwise.txt"
echo "== attention, fused and unfused ($where)" >&2
# Batch 1 for the ratio: at batch 8 the unfused path cannot run on lavapipe (its 256 MiB score matrix exceeds the
# 128 MiB maxStorageBufferRange), so batch 8 is the fused path alone (it trains, and its peak is recorded).
att_args=(--context 2048 --batch 1) att8_args=(--context 2048 --batch 8 --steps 1 --no-kernels --no-unfused)
[ "$quick" = 1 ] && att_args=(--context 512 --batch 1 --steps 1 --repeats 1) &&
  att8_args=(--context 512 --batch 2 --steps 1 --no-kernels --no-unfused)
"${runner[@]}" "$build/bin/vktrain_bench_attention" "${att_args[@]}" --out "$tmp/attention.json" >"$tmp/attention.txt"
"${runner[@]}" "$build/bin/vktrain_bench_attention" "${att8_args[@]}" --out "$tmp/attention-batch.json" \
  >"$tmp/attention-batch.txt"

echo "== fusions on and off ($where)" >&2
fusion_steps=10 recompute_steps=3 recompute_configs=recipe,gpt2
[ "$quick" = 1 ] && fusion_steps=2 recompute_steps=1 recompute_configs=recipe
for p in fp32 mixed; do
  "${runner[@]}" "$build/bin/vktrain_bench_fusion" --precision $p --steps $fusion_steps --out "$tmp/fusion-$p.json" \
    >"$tmp/fusion-$p.txt"
done
echo "== activation recomputation ($where)" >&2
runner_arg=()
[ ${#runner[@]} -gt 0 ] && runner_arg=(--runner "${runner[*]}")
"$python" "$here/bench/recompute_bench.py" --binary "$build/bin/vktrain" --steps $recompute_steps \
  --configs $recompute_configs "${runner_arg[@]}" --work "$tmp/recompute" --out "$tmp/recompute.json" \
  >"$tmp/recompute.txt"

text=/usr/share/games/fortunes
for p in fp32 mixed; do
  echo "== CNN recipe network, $p ($where)" >&2
  "${runner[@]}" "$build/bin/vktrain" train --model cnn --precision "$p" --epochs 1 --limit "$cnn_limit" \
    --test-limit 256 --profile --quiet --force --report "$tmp/recipe-cnn-$p.json" >"$tmp/recipe-cnn-$p.log"
  echo "== GPT recipe network, $p ($where)" >&2
  "${runner[@]}" "$build/bin/vktrain" train --model gpt:layers=4,heads=4,width=128,context=128 --text "$text" \
    --precision "$p" --steps "$gpt_steps" --warmup $((gpt_steps / 10)) --batch-size 32 --eval-at 0 --val-limit 8 \
    --profile --quiet --force --report "$tmp/recipe-gpt-$p.json" >"$tmp/recipe-gpt-$p.log"
  echo "== MLP epoch, $p ($where)" >&2
  "${runner[@]}" "$build/bin/vktrain" train --precision "$p" --epochs 1 --limit "$mlp_limit" --test-limit 1000 \
    --quiet --force --report "$tmp/mlp-$p.json" >"$tmp/mlp-$p.log"
done
if "$python" -c 'import torch' 2>/dev/null; then
  echo "== PyTorch CPU fp32, $(nproc) threads" >&2
  for m in cnn gpt; do
    "$python" "$here/bench/torch_recipes.py" --model $m --device cpu --threads "$(nproc)" --steps "$torch_steps" \
      --out "$tmp/torch-recipe-$m.json" >&2
  done
  "$python" "$here/bench/torch_mlp.py" --threads "$(nproc)" --limit "$mlp_limit" --out "$tmp/torch-mlp.json" >&2
else
  echo "== PyTorch: not installed for $python; the ratios to PyTorch are left out" >&2
fi
cat /proc/loadavg >"$tmp/loadavg-end.txt"
"$python" "$here/bench/summarize_targets.py" "$tmp" "$where" "$prefix.json" | tee "$prefix.md"
