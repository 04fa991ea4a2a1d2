"""One batch's loss and fp32 gradients of a vktrain weights file's model, through the C API (capi_graph.py: ctypes
only, so it also runs under the trixie root's Python).

  capi_gradients.py LIBVKTRAIN_C WEIGHTS BATCH INPUTS.bin OUT_PREFIX

INPUTS.bin holds BATCH samples of each model input in turn (int32 little-endian: a GPT's ids, then targets). Writes
OUT_PREFIX.bin (every trainable parameter's gradient, float32, in parameter order) and OUT_PREFIX.json
({"loss", "device", "tensors": [{"name", "shape"}]}).
"""
import sys

import capi_graph as g

lib_path, weights, batch, inputs_path, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
lib = g.load(lib_path)
ctx, model, trainer = g.create(weights, g.FP32, batch)
g.check(lib.vkt_trainer_load(trainer, weights.encode()), "vkt_trainer_load")
feeds, count, keep = g.feeds_from(model, inputs_path=inputs_path)
g.compute_gradients(ctx, model, trainer, feeds, count, batch, out)
g.destroy(ctx, model, trainer)
