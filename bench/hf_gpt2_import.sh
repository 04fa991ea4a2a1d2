#!/usr/bin/env bash
# Scale check for `vktrain import`: a GPT-2 124M-sized Hugging Face folder (random weights: 12 layers, 768 wide,
# 12 heads, vocabulary 50257, n_positions 1024; F32 model.safetensors, ~500 MB, written by numpy) is imported, and the
# import's wall time and peak resident memory (GNU time) are reported against the size of the weights. Then
# `vktrain export` writes it back (checked bit for bit) and `vktrain predict` runs 8 tokens through it.
# Too slow for the default test suite on 2 cores (tens of seconds); run by hand:
#   bench/hf_gpt2_import.sh build/bin/vktrain [WORK_DIR]
set -euo pipefail
bin=$1 work=${2:-/tmp/vktrain-hf-gpt2-124m}
py=/usr/bin/python3
rm -rf "$work" && mkdir -p "$work"
src=$(cd "$(dirname "$0")/../tests/python" && pwd)
"$py" - "$work" "$src" <<'EOF'
import os, sys, time
import numpy as np
sys.path.insert(0, sys.argv[2])
import hf_reference as ref
work = sys.argv[1]
c = dict(ref.GPT2_DEFAULTS)  # the 124M configuration
rng = np.random.default_rng(0)
C, L, V, P = c["n_embd"], c["n_layer"], c["vocab_size"], c["n_positions"]
t = {"transformer.wte.weight": (V, C), "transformer.wpe.weight": (P, C)}
for i in range(L):
    h = "transformer.h.%d." % i
    t.update({h + "ln_1.weight": (C,), h + "ln_1.bias": (C,), h + "attn.c_attn.weight": (C, 3 * C),
              h + "attn.c_attn.bias": (3 * C,), h + "attn.c_proj.weight": (C, C), h + "attn.c_proj.bias": (C,),
              h + "ln_2.weight": (C,), h + "ln_2.bias": (C,), h + "mlp.c_fc.weight": (C, 4 * C),
              h + "mlp.c_fc.bias": (4 * C,), h + "mlp.c_proj.weight": (4 * C, C), h + "mlp.c_proj.bias": (C,)})
t.update({"transformer.ln_f.weight": (C,), "transformer.ln_f.bias": (C,)})
start = time.time()
tensors = {k: (0.02 * rng.standard_normal(s, dtype=np.float32)) for k, s in t.items()}
n = sum(v.size for v in tensors.values())
ref.save_hf_folder(os.path.join(work, "gpt2-124m"), c, tensors)
print("folder: %d parameters, %.1f MB of F32 weights, written in %.1f s" % (n, n * 4 / 1e6, time.time() - start))
ids = rng.integers(0, V, size=(1, 8)).astype(np.int64)
ref.write_safetensors(os.path.join(work, "input.safetensors"), {"input": ids})
EOF
sync
measure() { # label, command...: wall seconds and peak RSS of one run
  local label=$1; shift
  /usr/bin/time -f "$label: %e s wall, %M KiB peak resident" "$@" 2>&1 >/dev/null | grep -v '^vktrain: predicted' || true
}
measure "import (F32 folder -> vktrain file)" "$bin" import "$work/gpt2-124m" --output "$work/gpt2.safetensors" --quiet
measure "export (vktrain file -> folder)" "$bin" export "$work/gpt2.safetensors" --output "$work/export" --quiet
cmp "$work/gpt2-124m/model.safetensors" "$work/export/model.safetensors" >/dev/null &&
  echo "export: model.safetensors identical to the source file" ||
  "$py" - "$work" "$src" <<'EOF'
import os, sys
sys.path.insert(0, sys.argv[2])
import hf_reference as ref
a = ref.read_safetensors(os.path.join(sys.argv[1], "gpt2-124m/model.safetensors"), raw=True)[0]
b = ref.read_safetensors(os.path.join(sys.argv[1], "export/model.safetensors"), raw=True)[0]
print("export: %d tensors, all bit-identical: %s" % (len(b), all(a[k] == b[k] for k in b) and set(a) == set(b)))
EOF
# fp32 binds the tied head's fp32 table (154 MB) in one GEMM, over lavapipe's 128 MiB maxStorageBufferRange: there
# predict fails with that message; mixed (fp16 table, 77 MB) runs.
for p in fp32 mixed; do
  measure "predict ($p, 1 x 8 tokens)" "$bin" predict --weights "$work/gpt2.safetensors" \
    --input "$work/input.safetensors" --output "$work/logits-$p.safetensors" --precision "$p"
done
ls -l "$work/gpt2-124m/model.safetensors" "$work/gpt2.safetensors" | awk '{print $5, $9}'
