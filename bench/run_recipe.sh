#!/usr/bin/env bash
# Runs the default recipe (784-256-128-10 MLP, Fashion-MNIST, 5 epochs, AdamW 1e-3, batch 128, seed 1)
# in fp32 and mixed precision (auto GEMM path) on both test devices, and forced onto the coopmat path on the second, of a Debian bookworm machine — the host's lavapipe
# (Mesa 25, no cooperative matrix) and the trixie root's (Mesa 26.1, cooperative matrix) — and writes
# one JSON report per run plus summary.md into bench/results/<date>/. Needs scripts/setup.sh --with-test-root.
#   bench/run_recipe.sh [extra vktrain train arguments]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${VKTRAIN_BUILD:-$here/build}
bin="$build/bin/vktrain"
[ -x "$bin" ] || { echo "run_recipe.sh: build first (scripts/setup.sh --with-test-root)" >&2; exit 1; }
day=$(date -u +%Y-%m-%d)
out="$here/bench/results/$day"
mkdir -p "$out"
# Reports are written inside the build folder (bind-mounted into the root) and copied out.
tmp="$build/bench-recipe"
rm -rf "$tmp" && mkdir -p "$tmp"

run() { # name precision gemm-path [runner...]
  local name=$1 precision=$2 path=$3; shift 3
  echo "== $name" >&2
  "$@" "$bin" train --precision "$precision" --gemm-path "$path" --quiet --report "$tmp/$name.json" --force \
    "${extra[@]}" | tee "$tmp/$name.log"
  cp "$tmp/$name.json" "$tmp/$name.log" "$out/"
}
extra=("$@")
# A fresh GEMM-path cache per run so the auto choice is measured, not remembered.
export VKTRAIN_CACHE_DIR="$tmp/cache"
root=("$here/platforms/debian/run-in-root.sh" "$build")
run lavapipe25-fp32 fp32 auto
run lavapipe25-mixed mixed auto
run lavapipe26-fp32 fp32 auto "${root[@]}"
run lavapipe26-mixed mixed auto "${root[@]}"
# The cooperative-matrix path through the whole recipe (auto prefers tiled on emulated coopmat).
run lavapipe26-mixed-coopmat mixed coopmat "${root[@]}"

python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = []
for name in sorted(os.listdir(out)):
    # Only this script's runs (the folder also holds the CNN recipe's and memory reports).
    if not name.endswith(".json") or not name.startswith(("lavapipe25-", "lavapipe26-")):
        continue
    r = json.load(open(os.path.join(out, name)))
    rows.append((name[:-5], r))
with open(os.path.join(out, "summary.md"), "w") as f:
    f.write("| run | device | precision | GEMM path | test accuracy | s/epoch | samples/s | peak device MiB | skipped |\n")
    f.write("|---|---|---|---|---|---|---|---|---|\n")
    for name, r in rows:
        f.write(f"| {name} | {r['device']['name']} ({r['device']['driver_info']}) | {r['precision']} | {r['gemm_path']} | "
                f"{r['test_accuracy']:.4f} | {r['seconds_per_epoch']:.1f} | {r['samples_per_second']:.0f} | "
                f"{r['peak_device_bytes'] / 2**20:.1f} | {r['skipped_steps']} |\n")
print(open(os.path.join(out, "summary.md")).read())
PY
