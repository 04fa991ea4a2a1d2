"""One batch's loss and fp32 LoRA gradients through the C API (capi_graph.py: ctypes only, so it also runs under the
trixie root's Python): the model a vktrain weights file records, vkt_model_add_lora on it, every tensor of the base
file and of the adapter file set by name (vkt_trainer_set_parameter), then vkt_trainer_compute_gradients.

  capi_lora_gradients.py LIBVKTRAIN_C BASE.safetensors ADAPTER.safetensors PATTERN R ALPHA BATCH INPUTS.bin OUT_PREFIX

ADAPTER holds "<module>.lora_A.weight" / "<module>.lora_B.weight" in F32. INPUTS.bin holds BATCH samples of each model
input in turn (int32 little-endian). Writes OUT_PREFIX.bin (every trainable parameter's gradient, float32, in
parameter order) and OUT_PREFIX.json ({"loss", "device", "tensors": [{"name", "shape"}]}).
"""
import ctypes as C
import sys

import capi_graph as g

(lib_path, base, adapter, pattern, r, alpha, batch, inputs_path, out) = sys.argv[1:10]
r, alpha, batch = int(r), float(alpha), int(batch)
lib = g.load(lib_path)


def add_lora(model):
    g.check(lib.vkt_model_add_lora(model, pattern.encode(), C.c_uint32(r), C.c_float(alpha), C.c_float(0.0)),
            "vkt_model_add_lora")


ctx, model, trainer = g.create(base, g.FP32, batch, add_lora)
for path in (base, adapter):
    g.set_parameters(trainer, path)
feeds, count, keep = g.feeds_from(model, inputs_path=inputs_path)
g.compute_gradients(ctx, model, trainer, feeds, count, batch, out)
g.destroy(ctx, model, trainer)
