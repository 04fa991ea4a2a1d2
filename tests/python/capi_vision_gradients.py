"""One batch's loss and fp32 gradients of a vktrain image classifier (x [B, 3, H, W] float32, labels [B] int32)
through the C API (ctypes only: no numpy, so it also runs under the trixie root's Python).

  capi_vision_gradients.py LIBVKTRAIN_C WEIGHTS BATCH X.bin LABELS.bin TRAIN_ONLY OUT_PREFIX [frozen-bn]

TRAIN_ONLY: "-" trains every parameter; a prefix ("fc.") freezes every other parameter first (vkt_model_set_trainable),
as fine-tuning a new head on a frozen backbone does. "frozen-bn": every BatchNorm keeps its running statistics
(vkt_model_freeze_batch_norm, PyTorch's bn.eval() inside model.train()). Writes OUT_PREFIX.bin (every trainable parameter's gradient,
float32, in parameter order) and OUT_PREFIX.json ({"loss", "device", "tensors": [{"name", "shape"}]}).
"""
import ctypes as C
import json
import sys

lib_path, weights, batch, x_path, labels_path, train_only, out = sys.argv[1:8]
frozen_bn = sys.argv[8:9] == ["frozen-bn"]
batch = int(batch)
lib = C.CDLL(lib_path)
lib.vkt_last_error.restype = C.c_char_p
lib.vkt_context_device_name.restype = C.c_char_p


class TrainerOptions(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("precision", C.c_int), ("batch_size", C.c_uint32),
                ("optimizer", C.c_int), ("learning_rate", C.c_float), ("weight_decay", C.c_float),
                ("momentum", C.c_float), ("max_grad_norm", C.c_float), ("seed", C.c_uint64),
                ("inference_only", C.c_int32)]  # version 1 of vkt_trainer_options


class ParameterInfo(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("name", C.c_char_p), ("rank", C.c_size_t), ("shape", C.c_int64 * 8),
                ("elements", C.c_uint64), ("trainable", C.c_int32), ("buffer", C.c_int32),
                ("weight_decay", C.c_float), ("init", C.c_int), ("init_a", C.c_float), ("init_b", C.c_float),
                ("persistent", C.c_int32), ("counter", C.c_int32)]


def check(status, what):
    if status != 0:
        sys.exit("FAIL: %s returned %d: %s" % (what, status, lib.vkt_last_error().decode()))


ctx, model, trainer = C.c_void_p(), C.c_void_p(), C.c_void_p()
check(lib.vkt_context_create(None, C.byref(ctx)), "vkt_context_create")
check(lib.vkt_load_model(weights.encode(), C.byref(model)), "vkt_load_model")
if train_only != "-":
    check(lib.vkt_model_set_trainable(model, b"*", 0), "vkt_model_set_trainable")
    check(lib.vkt_model_set_trainable(model, train_only.encode(), 1), "vkt_model_set_trainable")
if frozen_bn:
    check(lib.vkt_model_freeze_batch_norm(model, b"*", 1), "vkt_model_freeze_batch_norm")
o = TrainerOptions()
check(lib.vkt_trainer_options_default(C.byref(o), C.c_size_t(C.sizeof(o))), "vkt_trainer_options_default")
o.precision, o.batch_size = 1, batch  # VKT_PRECISION_FP32
check(lib.vkt_trainer_create(ctx, model, C.byref(o), C.byref(trainer)), "vkt_trainer_create")
check(lib.vkt_trainer_load(trainer, weights.encode()), "vkt_trainer_load")

buffers = []
for p in (x_path, labels_path):
    with open(p, "rb") as f:
        data = f.read()
    buffers.append(C.create_string_buffer(data, len(data)))
count = C.c_size_t(2)
feeds = (C.c_void_p * 2)(*[C.cast(b, C.c_void_p) for b in buffers])

tensors, total = [], 0
n = C.c_size_t()
check(lib.vkt_model_parameter_tensors(model, C.byref(n)), "vkt_model_parameter_tensors")
for i in range(n.value):
    info = ParameterInfo(struct_size=C.sizeof(ParameterInfo))
    check(lib.vkt_model_parameter(model, C.c_size_t(i), C.byref(info)), "vkt_model_parameter")
    if info.trainable and not info.buffer:
        tensors.append({"name": info.name.decode(), "shape": list(info.shape[:info.rank])})
        total += info.elements
grads = (C.c_float * total)()
loss, written = C.c_float(), C.c_size_t()
check(lib.vkt_trainer_compute_gradients(trainer, feeds, count, C.c_uint32(batch), C.byref(loss), grads,
                                        C.c_size_t(total), C.byref(written)), "vkt_trainer_compute_gradients")
if written.value != total:
    sys.exit("FAIL: %d gradient values, the parameters hold %d" % (written.value, total))
with open(out + ".bin", "wb") as f:
    f.write(bytes(grads))
with open(out + ".json", "w") as f:
    json.dump({"loss": loss.value, "device": lib.vkt_context_device_name(ctx).decode(), "tensors": tensors}, f)
lib.vkt_trainer_destroy(trainer)
lib.vkt_model_destroy(model)
lib.vkt_context_destroy(ctx)
