"""A PEFT adapter folder applied to a vktrain base through the C API (ctypes only, so it also runs under the trixie
root's Python): vkt_load_model(BASE), vkt_model_add_lora_adapter(ADAPTER), every base tensor set by name,
vkt_trainer_load_lora_adapter(ADAPTER), then the logits of the ids in INPUTS.bin; and the trainer's adapters written
back with vkt_trainer_save_lora_adapter.

  capi_lora_predict.py LIBVKTRAIN_C BASE.safetensors ADAPTER_DIR PRECISION BATCH INPUTS.bin OUT_PREFIX SAVE_DIR

PRECISION is fp32 or mixed; INPUTS.bin holds BATCH samples of ids (int32 little-endian); a GPT's targets input is
passed as NULL. Writes OUT_PREFIX.bin (the logits, float32) and OUT_PREFIX.json ({"device"}).
"""
import ctypes as C
import json
import struct
import sys

lib_path, base, adapter, precision, batch, inputs_path, out, save_dir = sys.argv[1:9]
batch = int(batch)
lib = C.CDLL(lib_path)
lib.vkt_last_error.restype = C.c_char_p
lib.vkt_context_device_name.restype = C.c_char_p


class TrainerOptions(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("precision", C.c_int), ("batch_size", C.c_uint32),
                ("optimizer", C.c_int), ("learning_rate", C.c_float), ("weight_decay", C.c_float),
                ("momentum", C.c_float), ("max_grad_norm", C.c_float), ("seed", C.c_uint64),
                ("inference_only", C.c_int32)]  # version 1 of vkt_trainer_options


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
        b, e = h["data_offsets"]
        yield name, (C.c_float * ((e - b) // 4)).from_buffer_copy(data[b:e])


ctx, model, trainer = C.c_void_p(), C.c_void_p(), C.c_void_p()
check(lib.vkt_context_create(None, C.byref(ctx)), "vkt_context_create")
check(lib.vkt_load_model(base.encode(), C.byref(model)), "vkt_load_model")
check(lib.vkt_model_add_lora_adapter(model, adapter.encode()), "vkt_model_add_lora_adapter")
o = TrainerOptions()
check(lib.vkt_trainer_options_default(C.byref(o), C.c_size_t(C.sizeof(o))), "vkt_trainer_options_default")
o.precision, o.batch_size = (1 if precision == "fp32" else 0), batch  # VKT_PRECISION_FP32 / MIXED
check(lib.vkt_trainer_create(ctx, model, C.byref(o), C.byref(trainer)), "vkt_trainer_create")
for name, values in f32_tensors(base):
    check(lib.vkt_trainer_set_parameter(trainer, name.encode(), values, C.c_size_t(len(values))),
          "vkt_trainer_set_parameter " + name)
check(lib.vkt_trainer_load_lora_adapter(trainer, adapter.encode()), "vkt_trainer_load_lora_adapter")
with open(inputs_path, "rb") as f:
    ids = C.create_string_buffer(f.read())
feeds = (C.c_void_p * 2)(C.cast(ids, C.c_void_p), None)
capacity = 1 << 20
logits, written = (C.c_float * capacity)(), C.c_size_t()
check(lib.vkt_trainer_predict(trainer, feeds, C.c_size_t(2), C.c_uint64(batch), logits, C.c_size_t(capacity),
                              C.byref(written)), "vkt_trainer_predict")
with open(out + ".bin", "wb") as f:
    f.write(bytes(logits)[:written.value * 4])
with open(out + ".json", "w") as f:
    json.dump({"device": lib.vkt_context_device_name(ctx).decode()}, f)
check(lib.vkt_trainer_save_lora_adapter(trainer, save_dir.encode(), b"base.safetensors"),
      "vkt_trainer_save_lora_adapter")
lib.vkt_trainer_destroy(trainer)
lib.vkt_model_destroy(model)
lib.vkt_context_destroy(ctx)
