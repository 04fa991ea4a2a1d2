"""The C API through ctypes (no numpy: it also runs under the trixie root's Python), shared by the PyTorch comparisons
of single ops (torch_llama_ops.py, torch_vision_ops.py) and the capi_*gradients.py / capi_lora_predict.py scripts:
load(path) opens libvktrain_c; op() and model_input() add nodes, check() turns a failed call into a FAIL exit naming
it; create() makes a context, a model and a trainer; compute_gradients() writes one batch's gradients."""
import ctypes as C
import json
import struct
import sys

lib = None
FP32, MIXED = 1, 0


def load(path):
    global lib
    lib = C.CDLL(path)
    lib.vkt_last_error.restype = C.c_char_p
    lib.vkt_context_device_name.restype = C.c_char_p
    return lib


class Attr(C.Structure):
    _fields_ = [("name", C.c_char_p), ("value", C.c_double), ("shape", C.POINTER(C.c_int64)), ("rank", C.c_size_t)]


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


def create(weights, precision=FP32, batch=1, edit_model=None):
    """A context on the default device, the model a vktrain weights file records (edit_model(model) changes it before
    the trainer is made: LoRA, freezing) and a trainer for it. Returns (ctx, model, trainer)."""
    ctx, model, trainer = C.c_void_p(), C.c_void_p(), C.c_void_p()
    check(lib.vkt_context_create(None, C.byref(ctx)), "vkt_context_create")
    check(lib.vkt_load_model(weights.encode(), C.byref(model)), "vkt_load_model")
    if edit_model:
        edit_model(model)
    o = TrainerOptions()
    check(lib.vkt_trainer_options_default(C.byref(o), C.c_size_t(C.sizeof(o))), "vkt_trainer_options_default")
    o.precision, o.batch_size = precision, batch
    check(lib.vkt_trainer_create(ctx, model, C.byref(o), C.byref(trainer)), "vkt_trainer_create")
    return ctx, model, trainer


def destroy(ctx, model, trainer):
    lib.vkt_trainer_destroy(trainer)
    lib.vkt_model_destroy(model)
    lib.vkt_context_destroy(ctx)


def f32_tensors(path, only_f32=True):
    """(name, ctypes float array) for every tensor of a safetensors file; only_f32: any other dtype is a FAIL."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    for name, h in header.items():
        if only_f32 and h["dtype"] != "F32":
            sys.exit("FAIL: %s: tensor %s is %s, expected F32" % (path, name, h["dtype"]))
        b, e = h["data_offsets"]
        yield name, (C.c_float * ((e - b) // 4)).from_buffer_copy(data[b:e])


def set_parameters(trainer, path, only_f32=True):
    for name, values in f32_tensors(path, only_f32):
        check(lib.vkt_trainer_set_parameter(trainer, name.encode(), values, C.c_size_t(len(values))),
              "vkt_trainer_set_parameter " + name)


def feeds_from(model, paths=None, inputs_path=None):
    """The model's inputs as C API feeds: one file per input (paths), or one file holding each input in turn, in
    equal parts (inputs_path). Returns (feeds, count, buffers): keep the buffers alive while the feeds are used."""
    if paths is None:
        count = C.c_size_t()
        lib.vkt_model_inputs(model, None, C.c_size_t(0), C.byref(count))  # too small on purpose: the count comes back
        with open(inputs_path, "rb") as f:
            data = f.read()
        per_input = len(data) // count.value
        parts = [data[i * per_input:(i + 1) * per_input] for i in range(count.value)]
    else:
        parts = [open(p, "rb").read() for p in paths]
    buffers = [C.create_string_buffer(d, len(d)) for d in parts]
    feeds = (C.c_void_p * len(buffers))(*[C.cast(b, C.c_void_p) for b in buffers])
    return feeds, C.c_size_t(len(buffers)), buffers


def compute_gradients(ctx, model, trainer, feeds, count, batch, out):
    """One batch's loss and gradients (vkt_trainer_compute_gradients): OUT.bin holds every trainable parameter's
    gradient (float32, parameter order), OUT.json {"loss", "device", "tensors": [{"name", "shape"}]}."""
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


def op(m, name, inputs, attrs=None):
    attrs = attrs or {}
    ins = (C.c_int32 * len(inputs))(*inputs)
    at = (Attr * max(1, len(attrs)))()
    for i, (k, v) in enumerate(attrs.items()):
        at[i].name, at[i].value = k.encode(), v
    out = C.c_int32()
    check(lib.vkt_model_op(m, name.encode(), ins, len(inputs), at, len(attrs), C.byref(out)), "vkt_model_op " + name)
    return out.value


def model_input(m, name, shape):
    dims = (C.c_int64 * len(shape))(*shape)
    out = C.c_int32()
    check(lib.vkt_model_input(m, name.encode(), dims, len(shape), 0, C.byref(out)), "vkt_model_input")
    return out.value


def floats(t):
    return (C.c_float * t.numel())(*t.flatten().tolist())
