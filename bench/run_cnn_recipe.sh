#!/usr/bin/env bash
# Runs the CNN recipe (docs/results.md: conv-conv-linear-linear on Fashion-MNIST, AdamW 1e-3 with weight decay 0.01,
# constant learning rate, batch 128, 5 epochs, seed 1) in mixed precision and fp32 on both test devices of a
# Debian bookworm machine — the host's lavapipe (Mesa 25) and the trixie root's (Mesa 26.1) — with the
# --profile table of one step, and writes one JSON report and log per run into bench/results/<date>/.
# On lavapipe each run takes 40–60 minutes; pass e.g. `--epochs 1 --limit 12800` for a quick look.
#   bench/run_cnn_recipe.sh [lavapipe25|lavapipe26|all] [extra vktrain train arguments]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${VKTRAIN_BUILD:-$here/build}
bin="$build/bin/vktrain"
[ -x "$bin" ] || { echo "run_cnn_recipe.sh: build first (scripts/setup.sh --with-test-root)" >&2; exit 1; }
which=${1:-all}
[ $# -gt 0 ] && shift
out="$here/bench/results/$(date -u +%Y-%m-%d)"
mkdir -p "$out"
tmp="$build/bench-cnn"
rm -rf "$tmp" && mkdir -p "$tmp"
run() { # name precision [runner...]
  local name=$1 precision=$2; shift 2
  echo "== $name" >&2
  "$@" "$bin" train --model cnn --precision "$precision" --profile --quiet --report "$tmp/$name.json" --force \
    "${extra[@]}" | tee "$tmp/$name.log"
  cp "$tmp/$name.json" "$tmp/$name.log" "$out/"
}
extra=("$@")
root=("$here/platforms/debian/run-in-root.sh" "$build")
if [ "$which" = all ] || [ "$which" = lavapipe26 ]; then
  run cnn-lavapipe26-mixed mixed "${root[@]}"
  run cnn-lavapipe26-fp32 fp32 "${root[@]}"
fi
if [ "$which" = all ] || [ "$which" = lavapipe25 ]; then
  run cnn-lavapipe25-mixed mixed
  run cnn-lavapipe25-fp32 fp32
fi
python3 "$here/bench/summarize_cnn.py" "$out"/cnn-*.json | tee "$out/cnn-summary.md"
