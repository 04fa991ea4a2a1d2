"""One batch's loss and fp32 LoRA gradients through the C API (ctypes only: no numpy, so it also runs under the
trixie root's Python): the model a vktrain weights file records, vkt_model_add_lora on it, every tensor of the base
file and of the adapter file set by name (vkt_trainer_set_parameter), then vkt_trainer_compute_gradients.

  capi_lora_gradients.py LIBVKTRAIN_C BASE.safetensors ADAPTER.safetensors PATTERN R ALPHA BATCH INPUTS.bin OUT_PREFIX

ADAPTER holds "<module>.lora_A.weight" / "<module>.lora_B.weight" in F32. INPUTS.bin holds BATCH samples of each model
input in turn (int32 little-endian). Writes OUT_PREFIX.bin (every trainable parameter's gradient, float32, in
parameter order) and OUT_PREFIX.json ({"loss", "device", "tensors": [{"name", "shape"}]}).
"""
import ctypes as C
import json
import struct
import sys

(lib_path, base, adapter, pattern, r, alpha, batch, inputs_path, out) = sys.argv[1:10]
r, alpha, batch = int(r), float(alpha), int(batch)
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


def f32_tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    for name, h in header.items():
        if h["dtype"] != "F32":
            sys.exit("FAIL: %s: tensor %s is %s, expected F32" % (path, name, h["dtype"]))
        b, e = h["data_offsets"]
        yield name, (C.c_float * ((e - b) // 4)).from_buffer_copy(data[b:e])


ctx, model, trainer = C.c_void_p(), C.c_void_p(), C.c_void_p()
check(lib.vkt_context_create(None, C.byref(ctx)), "vkt_context_create")
check(lib.vkt_load_model(base.encode(), C.byref(model)), "vkt_load_model")
check(lib.vkt_model_add_lora(model, pattern.encode(), C.c_uint32(r), C.c_float(alpha), C.c_float(0.0)),
      "vkt_model_add_lora")
o = TrainerOptions()
check(lib.vkt_trainer_options_default(C.byref(o), C.c_size_t(C.sizeof(o))), "vkt_trainer_options_default")
o.precision, o.batch_size = 1, batch  # VKT_PRECISION_FP32
check(lib.vkt_trainer_create(ctx, model, C.byref(o), C.byref(trainer)), "vkt_trainer_create")
for path in (base, adapter):
    for name, values in f32_tensors(path):
        check(lib.vkt_trainer_set_parameter(trainer, name.encode(), values, C.c_size_t(len(values))),
              "vkt_trainer_set_parameter " + name)

count = C.c_size_t()
lib.vkt_model_inputs(model, None, C.c_size_t(0), C.byref(count))  # too small on purpose: the count comes back
with open(inputs_path, "rb") as f:
    data = f.read()
per_input = len(data) // count.value
buffers = [C.create_string_buffer(data[i * per_input:(i + 1) * per_input], per_input) for i in range(count.value)]
feeds = (C.c_void_p * count.value)(*[C.cast(b, C.c_void_p) for b in buffers])

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
