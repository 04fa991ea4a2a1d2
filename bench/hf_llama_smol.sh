#!/usr/bin/env bash
# Scale check for Llama import: a SmolLM-135M-shaped Hugging Face folder (LlamaForCausalLM with random weights: 30
# layers, hidden 576, 9 heads of 64 over 3 key/value heads, intermediate 1536, vocabulary 49152, 2048 positions, tied
# head; F32 model.safetensors, ~540 MB, written by numpy) is imported, exported back (checked bit for bit), and
# `vktrain predict` runs 8 tokens through it in fp32 and mixed precision; the logits are compared with the PyTorch
# reference (tests/python/hf_llama_reference.py, float64). Wall time and peak resident memory (GNU time) per step.
# Too slow for the default test suite on 2 cores (about a minute); run by hand:
#   bench/hf_llama_smol.sh build/bin/vktrain [WORK_DIR]
set -euo pipefail
bin=$1 work=${2:-/tmp/vktrain-hf-llama-smol}
py=/usr/bin/python3
rm -rf "$work" && mkdir -p "$work"
src=$(cd "$(dirname "$0")/../tests/python" && pwd)
"$py" - "$work" "$src" <<'EOF'
import os, sys, time
import numpy as np
sys.path.insert(0, sys.argv[2])
import hf_reference as ref
work = sys.argv[1]
c = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
         num_key_value_heads=3, max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=10000.0,
         tie_word_embeddings=True, hidden_act="silu", model_type="llama", architectures=["LlamaForCausalLM"])
rng = np.random.default_rng(0)
H, I, V, L = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["num_hidden_layers"]
kv = c["num_key_value_heads"] * H // c["num_attention_heads"]
t = {"model.embed_tokens.weight": (V, H)}
for i in range(L):
    p = "model.layers.%d." % i
    t.update({p + "self_attn.q_proj.weight": (H, H), p + "self_attn.k_proj.weight": (kv, H),
              p + "self_attn.v_proj.weight": (kv, H), p + "self_attn.o_proj.weight": (H, H),
              p + "mlp.gate_proj.weight": (I, H), p + "mlp.up_proj.weight": (I, H), p + "mlp.down_proj.weight": (H, I),
              p + "input_layernorm.weight": (H,), p + "post_attention_layernorm.weight": (H,)})
t["model.norm.weight"] = (H,)
start = time.time()
tensors = {k: (1.0 + 0.1 * rng.standard_normal(s, dtype=np.float32)) if k.endswith("norm.weight")
           else (0.02 * rng.standard_normal(s, dtype=np.float32)) for k, s in t.items()}
n = sum(v.size for v in tensors.values())
ref.save_hf_folder(os.path.join(work, "smol"), c, tensors)
print("folder: %d parameters, %.1f MB of F32 weights, written in %.1f s" % (n, n * 4 / 1e6, time.time() - start))
ids = rng.integers(0, V, size=(1, 8)).astype(np.int64)
ref.write_safetensors(os.path.join(work, "input.safetensors"), {"input": ids})
EOF
sync
measure() { # label, command...: wall seconds and peak RSS of one run
  local label=$1; shift
  /usr/bin/time -f "$label: %e s wall, %M KiB peak resident" "$@" 2>&1 >/dev/null | grep -v '^vktrain: predicted' || true
}
measure "import (F32 folder -> vktrain file)" "$bin" import "$work/smol" --output "$work/smol.safetensors" --quiet
measure "export (vktrain file -> folder)" "$bin" export "$work/smol.safetensors" --output "$work/export" --quiet
cmp "$work/smol/model.safetensors" "$work/export/model.safetensors" >/dev/null &&
  echo "export: model.safetensors identical to the source file" ||
  "$py" - "$work" "$src" <<'EOF'
import os, sys
sys.path.insert(0, sys.argv[2])
import hf_reference as ref
a = ref.read_safetensors(os.path.join(sys.argv[1], "smol/model.safetensors"), raw=True)[0]
b = ref.read_safetensors(os.path.join(sys.argv[1], "export/model.safetensors"), raw=True)[0]
print("export: %d tensors, all bit-identical: %s" % (len(b), all(a[k] == b[k] for k in b) and set(a) == set(b)))
EOF
for p in fp32 mixed; do
  measure "predict ($p, 1 x 8 tokens)" "$bin" predict --weights "$work/smol.safetensors" \
    --input "$work/input.safetensors" --output "$work/logits-$p.safetensors" --precision "$p"
done
"$py" - "$work" "$src" <<'EOF'
import json, os, sys
import numpy as np
import torch
sys.path.insert(0, sys.argv[2])
import hf_llama_reference as llama
import hf_reference as ref
work = sys.argv[1]
torch.set_num_threads(2)
config = json.load(open(os.path.join(work, "smol", "config.json")))
m = llama.LlamaForCausalLM(config)
m.load_strict(ref.read_safetensors(os.path.join(work, "smol", "model.safetensors"))[0])
m = m.double()
ids = ref.read_safetensors(os.path.join(work, "input.safetensors"))[0]["input"]
with torch.no_grad():
    want = m(torch.from_numpy(ids)).numpy()
for p in ("fp32", "mixed"):
    f = os.path.join(work, "logits-%s.safetensors" % p)
    if os.path.exists(f):
        got = ref.read_safetensors(f)[0]["logits"]
        print("predict (%s): logits %s, relative L2 error against PyTorch float64 %.3g" % (p, list(got.shape),
                                                                                      ref.relative_l2(got, want)))
EOF
ls -l "$work/smol/model.safetensors" "$work/smol.safetensors" | awk '{print $5, $9}'
