"""A PEFT adapter folder applied to a vktrain base through the C API (capi_graph.py: ctypes only, so it also runs
under the trixie root's Python): vkt_load_model(BASE), vkt_model_add_lora_adapter(ADAPTER), every base tensor set by
name, vkt_trainer_load_lora_adapter(ADAPTER), then the logits of the ids in INPUTS.bin; and the trainer's adapters
written back with vkt_trainer_save_lora_adapter.

  capi_lora_predict.py LIBVKTRAIN_C BASE.safetensors ADAPTER_DIR PRECISION BATCH INPUTS.bin OUT_PREFIX SAVE_DIR

PRECISION is fp32 or mixed; INPUTS.bin holds BATCH samples of ids (int32 little-endian); a GPT's targets input is
passed as NULL. Writes OUT_PREFIX.bin (the logits, float32) and OUT_PREFIX.json ({"device"}).
"""
import ctypes as C
import json
import sys

import capi_graph as g

lib_path, base, adapter, precision, batch, inputs_path, out, save_dir = sys.argv[1:9]
batch = int(batch)
lib = g.load(lib_path)


def add_adapter(model):
    g.check(lib.vkt_model_add_lora_adapter(model, adapter.encode()), "vkt_model_add_lora_adapter")


ctx, model, trainer = g.create(base, g.FP32 if precision == "fp32" else g.MIXED, batch, add_adapter)
g.set_parameters(trainer, base, only_f32=False)
g.check(lib.vkt_trainer_load_lora_adapter(trainer, adapter.encode()), "vkt_trainer_load_lora_adapter")
with open(inputs_path, "rb") as f:
    ids = C.create_string_buffer(f.read())
feeds = (C.c_void_p * 2)(C.cast(ids, C.c_void_p), None)
capacity = 1 << 20
logits, written = (C.c_float * capacity)(), C.c_size_t()
g.check(lib.vkt_trainer_predict(trainer, feeds, C.c_size_t(2), C.c_uint64(batch), logits, C.c_size_t(capacity),
                                C.byref(written)), "vkt_trainer_predict")
with open(out + ".bin", "wb") as f:
    f.write(bytes(logits)[:written.value * 4])
with open(out + ".json", "w") as f:
    json.dump({"device": lib.vkt_context_device_name(ctx).decode()}, f)
g.check(lib.vkt_trainer_save_lora_adapter(trainer, save_dir.encode(), b"base.safetensors"),
        "vkt_trainer_save_lora_adapter")
g.destroy(ctx, model, trainer)
