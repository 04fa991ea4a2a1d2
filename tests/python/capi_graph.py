"""The C API's graph builder through ctypes, shared by the PyTorch comparisons of single ops (torch_llama_ops.py,
torch_vision_ops.py): load(path) opens libvktrain_c; op() and model_input() add nodes, check() turns a failed call into
a FAIL exit naming it."""
import ctypes as C
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


def check(status, what):
    if status != 0:
        sys.exit("FAIL: %s returned %d: %s" % (what, status, lib.vkt_last_error().decode()))


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
