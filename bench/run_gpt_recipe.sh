#!/usr/bin/env bash
# Runs the GPT recipe (docs/results.md: 4 layers, 4 heads, width 128, context 128 on Debian's fortunes texts,
# AdamW 3e-4 with warm-up and cosine, weight decay 0.1, clip 1.0, batch 32, 2000 steps) in mixed precision and fp32
# on one test device with the --profile table of one step, then generates 300 characters (temperature 0.8) with and without the
# key/value cache, and writes the JSON reports, logs and samples into bench/results/<date>/. On lavapipe each
# training run takes about an hour; pass e.g. `--steps 200 --warmup 20` for a quick look.
#   bench/run_gpt_recipe.sh [lavapipe26|lavapipe25] [extra vktrain train arguments]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${VKTRAIN_BUILD:-$here/build}
bin="$build/bin/vktrain"
[ -x "$bin" ] || { echo "run_gpt_recipe.sh: build first (scripts/setup.sh --with-test-root)" >&2; exit 1; }
which=${1:-lavapipe26}
[ $# -gt 0 ] && shift
out="$here/bench/results/$(date -u +%Y-%m-%d)"
mkdir -p "$out"
tmp="$build/bench-gpt"
rm -rf "$tmp" && mkdir -p "$tmp"
runner=()
[ "$which" = lavapipe26 ] && runner=("$here/platforms/debian/run-in-root.sh" "$build")
for precision in mixed fp32; do
  name=gpt-$which-$precision
  echo "== $name" >&2
  "${runner[@]}" "$bin" train --model gpt:layers=4,heads=4,width=128,context=128 --text /usr/share/games/fortunes \
    --precision "$precision" --profile --report "$tmp/$name.json" --output "$tmp/$name.safetensors" --force "$@" \
    | tee "$tmp/$name.log"
  for cache in cache no-cache; do
    flag=(); [ $cache = no-cache ] && flag=(--no-cache)
    "${runner[@]}" "$bin" generate --weights "$tmp/$name.safetensors" --prompt "The " --tokens 300 \
      --temperature 0.8 --seed 1 "${flag[@]}" >"$tmp/$name-sample-$cache.txt" 2>"$tmp/$name-sample-$cache.err"
  done
  cp "$tmp/$name.json" "$tmp/$name.log" "$tmp/$name"-sample-* "$out/"
done
python3 "$here/bench/summarize_gpt.py" "$out"/gpt-"$which"-{mixed,fp32}.json
