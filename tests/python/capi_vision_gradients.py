"""One batch's loss and fp32 gradients of a vktrain image classifier (x [B, 3, H, W] float32, labels [B] int32)
through the C API (capi_graph.py: ctypes only, so it also runs under the trixie root's Python).

  capi_vision_gradients.py LIBVKTRAIN_C WEIGHTS BATCH X.bin LABELS.bin TRAIN_ONLY OUT_PREFIX [frozen-bn]

TRAIN_ONLY: "-" trains every parameter; a prefix ("fc.") freezes every other parameter first (vkt_model_set_trainable),
as fine-tuning a new head on a frozen backbone does. "frozen-bn": every BatchNorm keeps its running statistics
(vkt_model_freeze_batch_norm, PyTorch's bn.eval() inside model.train()). Writes OUT_PREFIX.bin (every trainable parameter's gradient,
float32, in parameter order) and OUT_PREFIX.json ({"loss", "device", "tensors": [{"name", "shape"}]}).
"""
import sys

import capi_graph as g

lib_path, weights, batch, x_path, labels_path, train_only, out = sys.argv[1:8]
frozen_bn = sys.argv[8:9] == ["frozen-bn"]
batch = int(batch)
lib = g.load(lib_path)


def freeze(model):
    if train_only != "-":
        g.check(lib.vkt_model_set_trainable(model, b"*", 0), "vkt_model_set_trainable")
        g.check(lib.vkt_model_set_trainable(model, train_only.encode(), 1), "vkt_model_set_trainable")
    if frozen_bn:
        g.check(lib.vkt_model_freeze_batch_norm(model, b"*", 1), "vkt_model_freeze_batch_norm")


ctx, model, trainer = g.create(weights, g.FP32, batch, freeze)
g.check(lib.vkt_trainer_load(trainer, weights.encode()), "vkt_trainer_load")
feeds, count, keep = g.feeds_from(model, paths=[x_path, labels_path])
g.compute_gradients(ctx, model, trainer, feeds, count, batch, out)
g.destroy(ctx, model, trainer)
