#!/usr/bin/env bash
# Where the optimizer runs and how it overlaps, A/B in one run, interleaved (this machine's speed drifts, so
# configurations alternate rather than run in blocks): the default MLP (mixed, 30,000 samples) with the gradients in
# one readback vs the bucketed pipeline, and the GEMM-bound 784-4096-4096-10 MLP (batch 1024, 4 steps) with the
# host update unpipelined, pipelined, and on the device. One line per run: seconds per epoch, the host's update
# per step and the part of it that overlapped the device. Builds nothing.
#   bench/ab_update.sh host|root [REPEATS]   (root: the trixie root's lavapipe 26)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${VKTRAIN_BUILD:-$here/build}" && pwd)
where=${1:-host} repeats=${2:-3}
runner=()
[ "$where" = root ] && runner=("$here/platforms/debian/run-in-root.sh" "$build")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() { # label args...
  local label=$1; shift
  "${runner[@]}" "$build/bin/vktrain" train --precision mixed --quiet --force --epochs 1 --report "$tmp/r.json" "$@" \
    >/dev/null
  python3 - "$tmp/r.json" "$label" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); h = r["history"][-1]
print(f"{sys.argv[2]:<28} {r['seconds_per_epoch']:7.3f} s/epoch  host update {h.get('host_update_ms_per_step', 0):8.3f} ms/step"
      f"  overlapped {h.get('host_overlapped_ms_per_step', 0):8.3f}  update {r['update_location']}"
      f" buckets {r['update_buckets']}  accuracy {r['test_accuracy']:.4f}")
PY
}
echo "# $(date -u +%FT%TZ) $where, commit $(git -C "$here" rev-parse --short HEAD)"
for i in $(seq "$repeats"); do
  run "mlp one-readback" --limit 30000 --test-limit 1000 --update-buckets 1
  run "mlp buckets-4" --limit 30000 --test-limit 1000 --update-buckets 4
done
big=(--model mlp:4096,4096 --batch-size 1024 --limit 4096 --test-limit 1000)
for i in $(seq "$repeats"); do
  run "mlp4096 host one-readback" "${big[@]}" --update-location host --update-buckets 1
  run "mlp4096 host buckets-4" "${big[@]}" --update-location host --update-buckets 4
  run "mlp4096 device update" "${big[@]}" --update-location device
done
