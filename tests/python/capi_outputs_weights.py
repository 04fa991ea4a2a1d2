#!/usr/bin/env python3
"""The C API for issue 22's outputs, weights and run-time trainability, from Python (ctypes), as a binding would use it:
- named outputs: a model without a loss with two named outputs, predicted by name (values checked against the
  weights), all at once (vkt_trainer_predict_all), and their shapes; a model with a loss and a named output;
- cross-entropy's ignore_index through vkt_model_op;
- set_trainable on a running trainer (frozen weights stay, kept optimizer state stays bit for bit, new state is
  fresh), and what a checkpoint load did with the optimizer state (vkt_trainer_load_checkpoint_report);
- parameters by name (Trainer::parameter / set_parameter), parameter info version 2 (persistent, counter);
- weights files read without copying (vkt_weights_*): tensors, dtypes, shapes, fp32 copies, raw bytes, metadata, the
  recorded model; a foreign file with BF16/F16/I64/BOOL tensors;
- GptOptions back from a model, and the decoder loading a GPT's weights file through the C API.
Each with its error cases (the status-code rule of vktrain.h).

usage: capi_outputs_weights.py LIBVKTRAIN_C_SO WORK_DIR
"""
import ctypes as C
import json
import math
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from capi_train import ContextOptions, LOG_CALLBACK, StepResult, TrainerOptions  # noqa: E402

OK, ERROR, INVALID = 0, 1, 2
F32, I32 = 0, 1
P, I32P, SZ, U64, F = C.c_void_p, C.c_int32, C.c_size_t, C.c_uint64, C.c_float


class Attr(C.Structure):
    _fields_ = [("name", C.c_char_p), ("value", C.c_double), ("shape", C.POINTER(C.c_int64)), ("rank", C.c_size_t)]


PARAMETER_INFO_V1 = [("struct_size", C.c_uint32), ("name", C.c_char_p), ("rank", C.c_size_t),
                     ("shape", C.c_int64 * 8), ("elements", C.c_uint64), ("trainable", C.c_int32),
                     ("buffer", C.c_int32), ("weight_decay", C.c_float), ("init", C.c_int), ("init_a", C.c_float),
                     ("init_b", C.c_float)]


class ParameterInfoV1(C.Structure):
    _fields_ = PARAMETER_INFO_V1


class ParameterInfo(C.Structure):
    _fields_ = PARAMETER_INFO_V1 + [("persistent", C.c_int32), ("counter", C.c_int32)]


class TensorInfo(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("name", C.c_char_p), ("type", C.c_int), ("type_name", C.c_char_p),
                ("rank", C.c_size_t), ("elements", C.c_uint64), ("bytes", C.c_uint64), ("data", C.c_void_p)]


class GptOptions(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("vocab", C.c_uint32), ("layers", C.c_uint32), ("heads", C.c_uint32),
                ("width", C.c_uint32), ("context", C.c_uint32), ("mlp", C.c_uint32), ("tied", C.c_int32),
                ("eps", C.c_float)]


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def declare(lib):
    """Argument types of the functions this test calls with sizes (size_t, uint64_t) and pointers."""
    sig = {
        "vkt_model_mark_output": [P, I32P, C.c_char_p],
        "vkt_model_output_count": [P, C.POINTER(SZ)],
        "vkt_model_output_entry": [P, SZ, C.POINTER(C.c_char_p), C.POINTER(I32P)],
        "vkt_model_find_output": [P, C.c_char_p, C.POINTER(I32P)],
        "vkt_model_gpt_options": [P, P],
        "vkt_trainer_predict": [P, P, SZ, U64, P, SZ, C.POINTER(SZ)],
        "vkt_trainer_predict_output": [P, C.c_char_p, P, SZ, U64, P, SZ, C.POINTER(SZ)],
        "vkt_trainer_predict_all": [P, P, SZ, U64, P, SZ, C.POINTER(SZ)],
        "vkt_trainer_output_shape": [P, C.c_char_p, P, SZ, C.POINTER(SZ)],
        "vkt_trainer_output_count": [P, C.POINTER(SZ)],
        "vkt_trainer_output_name": [P, SZ, C.POINTER(C.c_char_p)],
        "vkt_trainer_set_trainable": [P, C.c_char_p, C.c_int32],
        "vkt_trainer_parameter": [P, C.c_char_p, P, SZ, C.POINTER(SZ)],
        "vkt_trainer_set_parameter": [P, C.c_char_p, P, SZ],
        "vkt_trainer_optimizer_state": [P, C.c_char_p, P, SZ, C.POINTER(SZ)],
        "vkt_trainer_load_checkpoint_report": [P, C.c_char_p, C.POINTER(P), C.POINTER(P)],
        "vkt_weights_open": [C.c_char_p, C.POINTER(P)],
        "vkt_weights_mapped": [P, C.POINTER(I32P)],
        "vkt_weights_tensor_count": [P, C.POINTER(SZ)],
        "vkt_weights_tensor": [P, SZ, P],
        "vkt_weights_tensor_shape": [P, SZ, P, SZ, C.POINTER(SZ)],
        "vkt_weights_find": [P, C.c_char_p, C.POINTER(SZ)],
        "vkt_weights_tensor_f32": [P, SZ, P, SZ, C.POINTER(SZ)],
        "vkt_weights_tensor_f32_range": [P, SZ, U64, U64, P],
        "vkt_weights_metadata": [P, C.POINTER(P)],
        "vkt_weights_model": [P, C.POINTER(P)],
        "vkt_model_parameter": [P, SZ, P],
        "vkt_trainer_step": [P, P, SZ, C.c_uint32, P],
        "vkt_trainer_evaluate": [P, P, SZ, U64, P],
        "vkt_trainer_save_with_metadata": [P, C.c_char_p, P, P, SZ],
        "vkt_trainer_save_checkpoint_with_metadata": [P, C.c_char_p, P, P, SZ],
        "vkt_model_mlp": [C.c_uint32, P, SZ, C.c_uint32, C.c_int, P],
        "vkt_gpt_options_default": [P, SZ],
    }
    for name, args in sig.items():
        getattr(lib, name).argtypes = args
    lib.vkt_weights_destroy.argtypes = [P]
    lib.vkt_last_error.restype = C.c_char_p


def main():
    lib = C.CDLL(sys.argv[1])
    work = sys.argv[2]
    os.makedirs(work, exist_ok=True)
    os.environ.setdefault("VKTRAIN_CACHE_DIR", os.path.join(work, "cache"))
    declare(lib)

    def err():
        return lib.vkt_last_error().decode()

    def check(status, what):
        if status != OK:
            fail("%s returned %d: %s" % (what, status, err()))

    def expect(status, want, needle, what):
        if status != want or needle not in err():
            fail("%s: status %d (want %d), message %r (want %r)" % (what, status, want, err(), needle))
        print("  refused as it should be: %s: %s" % (what, err()))

    def string_out(fn, *args):
        raw = C.c_void_p()
        check(fn(*args, C.byref(raw)), fn.__name__)
        text = C.cast(raw, C.c_char_p).value.decode()
        lib.vkt_free(raw)
        return text

    messages = []

    @LOG_CALLBACK
    def on_log(user, level, source, message):
        messages.append(message.decode())

    opts = ContextOptions()
    check(lib.vkt_context_options_default(C.byref(opts), C.c_size_t(C.sizeof(opts))), "context defaults")
    opts.log = on_log
    ctx = C.c_void_p()
    if lib.vkt_context_create(C.byref(opts), C.byref(ctx)) != OK:
        print("SKIP: no Vulkan device: " + err())
        return 77

    def options(batch, precision=1, inference_only=0):
        to = TrainerOptions()
        check(lib.vkt_trainer_options_default(C.byref(to), C.c_size_t(C.sizeof(to))), "trainer defaults")
        to.precision, to.batch_size, to.inference_only, to.learning_rate, to.seed = precision, batch, inference_only, \
            0.05, 11
        return to

    def trainer(model, to):
        t = C.c_void_p()
        check(lib.vkt_trainer_create(ctx, model, C.byref(to), C.byref(t)), "vkt_trainer_create")
        return t

    def op(m, name, inputs, **attrs):
        ins = (C.c_int32 * len(inputs))(*inputs)
        arr = (Attr * max(1, len(attrs)))(*[Attr(k.encode(), float(v), None, 0) for k, v in attrs.items()])
        out = C.c_int32()
        check(lib.vkt_model_op(m, name.encode(), ins, C.c_size_t(len(inputs)), arr, C.c_size_t(len(attrs)),
                               C.byref(out)), "vkt_model_op " + name)
        return out.value

    def model_input(m, name, shape, dtype):
        v = C.c_int32()
        dims = (C.c_int64 * max(1, len(shape)))(*shape)
        check(lib.vkt_model_input(m, name, dims, C.c_size_t(len(shape)), dtype, C.byref(v)), "input")
        return v.value

    def floats(t, name, n):
        buf, written = (C.c_float * n)(), C.c_size_t()
        check(lib.vkt_trainer_parameter(t, name, buf, n, C.byref(written)), "parameter " + name.decode())
        return list(buf)

    def state(t, name):
        needed = C.c_size_t()
        lib.vkt_trainer_optimizer_state(t, name, None, 0, C.byref(needed))
        buf = (C.c_float * needed.value)()
        check(lib.vkt_trainer_optimizer_state(t, name, buf, needed.value, C.byref(needed)), "state " + name.decode())
        return list(buf)

    def shape_of(t, name):
        dims, rank = (C.c_int64 * 8)(), C.c_size_t()
        check(lib.vkt_trainer_output_shape(t, name, dims, 8, C.byref(rank)), "output shape of %r" % name)
        return [dims[i] for i in range(rank.value)]

    rng = random.Random(3)

    # ---- a model without a loss, with two named outputs ----
    print("outputs: a model without a loss")
    features, batch = 4, 5
    m = C.c_void_p()
    check(lib.vkt_model_create(C.byref(m)), "vkt_model_create")
    x = model_input(m, b"x", [features], F32)
    ids = model_input(m, b"ids", [2], I32)
    a = op(m, "linear", [x], out=3)
    b = op(m, "relu", [op(m, "linear", [x], out=2)])
    check(lib.vkt_model_mark_output(m, a, b"a"), "mark a")
    check(lib.vkt_model_mark_output(m, b, b"b"), "mark b")
    expect(lib.vkt_model_mark_output(m, b, b"a"), ERROR, "exists already", "a second output named 'a'")
    expect(lib.vkt_model_mark_output(m, a, b"has space"), ERROR, "not a valid output name", "a name with a space")
    expect(lib.vkt_model_mark_output(m, ids, b"ids_out"), ERROR, "holds integers", "an integer output")
    expect(lib.vkt_model_mark_output(m, 99, b"c"), ERROR, "99", "a value that does not exist")
    expect(lib.vkt_model_mark_output(m, a, None), INVALID, "name is null", "a null name")
    expect(lib.vkt_model_mark_output(None, a, b"c"), INVALID, "model is null", "a null model")
    n, name, value = C.c_size_t(), C.c_char_p(), C.c_int32()
    check(lib.vkt_model_output_count(m, C.byref(n)), "output count")
    outputs = []
    for i in range(n.value):
        check(lib.vkt_model_output_entry(m, i, C.byref(name), C.byref(value)), "output entry %d" % i)
        outputs.append((name.value, value.value))
    if outputs != [(b"a", a), (b"b", b)]:
        fail("the model's outputs are %r" % outputs)
    expect(lib.vkt_model_output_entry(m, 2, C.byref(name), C.byref(value)), INVALID, "2 named output",
           "output entry 2 of 2")
    check(lib.vkt_model_find_output(m, b"b", C.byref(value)), "find b")
    if value.value != b:
        fail("find_output('b') is %d, not %d" % (value.value, b))
    expect(lib.vkt_model_find_output(m, b"c", C.byref(value)), ERROR, "outputs: a, b", "an unknown output")
    expect(lib.vkt_model_find_output(m, None, C.byref(value)), ERROR, "name the one", "the default of two outputs")
    expect(lib.vkt_model_output(m, C.byref(value)), ERROR, "2 outputs", "vkt_model_output without a default")
    copy = C.c_void_p()
    check(lib.vkt_model_from_json(string_out(lib.vkt_model_to_json, m).encode(), C.byref(copy)), "JSON round trip")
    check(lib.vkt_model_output_count(copy, C.byref(n)), "outputs of the copy")
    if n.value != 2:
        fail("the model's JSON kept %d outputs" % n.value)
    lib.vkt_model_destroy(copy)

    expect(lib.vkt_trainer_create(ctx, m, C.byref(options(batch)), C.byref(C.c_void_p())), ERROR, "no loss",
           "a training trainer for a model without a loss")
    t = trainer(m, options(batch, inference_only=1))
    names = []
    check(lib.vkt_trainer_output_count(t, C.byref(n)), "trainer output count")
    for i in range(n.value):
        check(lib.vkt_trainer_output_name(t, i, C.byref(name)), "output name")
        names.append(name.value)
    if names != [b"a", b"b"]:
        fail("predict_all writes %r" % names)
    expect(lib.vkt_trainer_output_name(t, 2, C.byref(name)), INVALID, "writes 2 output", "output name 2 of 2")
    if shape_of(t, b"a") != [3] or shape_of(t, b"b") != [2]:
        fail("output shapes %r %r" % (shape_of(t, b"a"), shape_of(t, b"b")))
    dims, rank = (C.c_int64 * 1)(), C.c_size_t()
    expect(lib.vkt_trainer_output_shape(t, b"a", dims, 0, C.byref(rank)), INVALID, "capacity of 0",
           "a shape into no room")
    if rank.value != 1:
        fail("a shape into no room must report its rank")
    expect(lib.vkt_trainer_output_shape(t, b"zz", dims, 1, C.byref(rank)), ERROR, "no output named 'zz'",
           "the shape of an unknown output")

    # Known weights, so the outputs can be computed here.
    weights = {}
    for pname, count in ((b"linear0.weight", 12), (b"linear0.bias", 3), (b"linear1.weight", 8), (b"linear1.bias", 2)):
        weights[pname] = [round(rng.uniform(-1, 1), 3) for _ in range(count)]
        vals = (C.c_float * count)(*weights[pname])
        check(lib.vkt_trainer_set_parameter(t, pname, vals, count), "set " + pname.decode())
    xs = [round(rng.uniform(-1, 1), 3) for _ in range(batch * features)]
    bx = (C.c_float * len(xs))(*xs)
    inputs = (C.c_void_p * 2)(C.cast(bx, C.c_void_p), None)  # ids: nothing depends on them

    def dense(wname, bname, rows, relu):
        out = []
        for s in range(batch):
            for r in range(rows):
                v = weights[bname][r] + sum(weights[wname][r * features + k] * xs[s * features + k]
                                            for k in range(features))
                out.append(max(v, 0.0) if relu else v)
        return out

    want_a = dense(b"linear0.weight", b"linear0.bias", 3, False)
    want_b = dense(b"linear1.weight", b"linear1.bias", 2, True)

    def close(got, want, what):
        if len(got) != len(want) or any(abs(g - w) > 1e-4 for g, w in zip(got, want)):
            fail("%s: %r, expected %r" % (what, got, want))

    written = C.c_size_t(0)
    expect(lib.vkt_trainer_predict_output(t, b"a", inputs, 2, batch, None, 0, C.byref(written)), INVALID,
           "capacity of 0", "predict 'a' into no room")
    if written.value != batch * 3:
        fail("predict 'a' needs %d floats, reported %d" % (batch * 3, written.value))
    for oname, want in ((b"a", want_a), (b"b", want_b)):
        out = (C.c_float * len(want))()
        check(lib.vkt_trainer_predict_output(t, oname, inputs, 2, batch, out, len(out), C.byref(written)),
              "predict " + oname.decode())
        close(list(out), want, "predict '%s'" % oname.decode())
    out = (C.c_float * 100)()
    expect(lib.vkt_trainer_predict_output(t, b"c", inputs, 2, batch, out, 100, C.byref(written)), ERROR,
           "outputs: a, b", "predict an unknown output")
    expect(lib.vkt_trainer_predict_output(t, None, inputs, 2, batch, out, 100, C.byref(written)), ERROR,
           "name the one", "predict the default of two outputs")
    expect(lib.vkt_trainer_predict(t, inputs, 2, batch, out, 100, C.byref(written)), ERROR, "name the one",
           "vkt_trainer_predict of two outputs")
    expect(lib.vkt_trainer_predict_output(t, b"a", inputs, 1, batch, out, 100, C.byref(written)), INVALID,
           "input_count is 1", "predict with one input of two")
    expect(lib.vkt_trainer_predict_all(t, inputs, 2, batch, None, 0, C.byref(written)), INVALID, "capacity of 0",
           "predict_all into no room")
    if written.value != batch * 5:
        fail("predict_all needs %d floats, reported %d" % (batch * 5, written.value))
    all_out = (C.c_float * (batch * 5))()
    expect(lib.vkt_trainer_predict_all(t, inputs, 2, batch, all_out, batch * 5 - 1, C.byref(written)), INVALID,
           "capacity of %d" % (batch * 5 - 1), "predict_all into one float too few")
    check(lib.vkt_trainer_predict_all(t, inputs, 2, batch, all_out, len(all_out), C.byref(written)), "predict_all")
    close(list(all_out), want_a + want_b, "predict_all")
    loss = C.c_double()
    expect(lib.vkt_trainer_evaluate(t, inputs, 2, batch, C.byref(loss)), ERROR, "no loss", "evaluate without a loss")
    lib.vkt_trainer_destroy(t)
    lib.vkt_model_destroy(m)

    # ---- a model with a loss (cross-entropy with ignore_index) and a named output ----
    print("outputs: a model with a loss and a named output")
    classes, hidden, batch = 3, 6, 8
    m = C.c_void_p()
    check(lib.vkt_model_create(C.byref(m)), "vkt_model_create")
    x = model_input(m, b"x", [features], F32)
    h = op(m, "relu", [op(m, "linear", [x], out=hidden)])
    h2 = op(m, "relu", [op(m, "linear", [h], out=hidden)])
    logits = op(m, "linear", [h2], out=classes)
    labels = model_input(m, b"labels", [], I32)
    op(m, "cross_entropy", [logits, labels], ignore_index=-1)
    check(lib.vkt_model_mark_output(m, h, b"hidden"), "mark hidden")
    if b'"ignore_index":-1' not in string_out(lib.vkt_model_to_json, m).encode():
        fail("ignore_index did not reach the model")

    def batch_of(n):
        xs = [rng.uniform(-1, 1) for _ in range(n * features)]
        ys = [-1 if i % 4 == 3 else int(abs(xs[i * features]) * classes) % classes for i in range(n)]
        bx, by = (C.c_float * len(xs))(*xs), (C.c_int32 * n)(*ys)
        return bx, by, (C.c_void_p * 2)(C.cast(bx, C.c_void_p), C.cast(by, C.c_void_p))

    t = trainer(m, options(batch))
    names = []
    check(lib.vkt_trainer_output_count(t, C.byref(n)), "output count")
    for i in range(n.value):
        check(lib.vkt_trainer_output_name(t, i, C.byref(name)), "output name")
        names.append(name.value)
    if names != [b"", b"hidden"]:
        fail("predict_all of a model with a loss and one named output writes %r" % names)
    bx, by, inputs = batch_of(batch)
    r = StepResult(struct_size=C.sizeof(StepResult))
    check(lib.vkt_trainer_step(t, inputs, 2, batch, C.byref(r)), "a step with ignored labels")
    if not math.isfinite(r.loss):
        fail("loss %r" % r.loss)
    default, hid = (C.c_float * (batch * classes))(), (C.c_float * (batch * hidden))()
    check(lib.vkt_trainer_predict(t, inputs, 2, batch, default, len(default), C.byref(written)), "predict")
    check(lib.vkt_trainer_predict_output(t, b"hidden", inputs, 2, batch, hid, len(hid), C.byref(written)),
          "predict hidden")
    all_out = (C.c_float * (batch * (classes + hidden)))()
    check(lib.vkt_trainer_predict_all(t, inputs, 2, batch, all_out, len(all_out), C.byref(written)), "predict_all")
    if list(all_out) != list(default) + list(hid) or written.value != len(all_out):
        fail("predict_all is not the default output followed by 'hidden'")

    # ---- parameters by name; set_parameter keeps the optimizer state ----
    print("parameters by name")
    before = state(t, b"exp_avg.linear2.bias")
    new = (C.c_float * 3)(0.25, -0.5, 1.0)
    check(lib.vkt_trainer_set_parameter(t, b"linear2.bias", new, 3), "set linear2.bias")
    if floats(t, b"linear2.bias", 3) != [0.25, -0.5, 1.0] or state(t, b"exp_avg.linear2.bias") != before:
        fail("set_parameter: the values or the optimizer state")
    expect(lib.vkt_trainer_parameter(t, b"linear2.bias", None, 0, C.byref(written)), INVALID, "capacity of 0",
           "a parameter into no room")
    if written.value != 3:
        fail("linear2.bias needs %d floats" % written.value)
    expect(lib.vkt_trainer_set_parameter(t, b"linear2.bias", new, 4), INVALID, "has 3 values", "4 values for 3")
    nan = (C.c_float * 3)(0.0, float("nan"), 0.0)
    expect(lib.vkt_trainer_set_parameter(t, b"linear2.bias", nan, 3), ERROR, "linear2.bias", "a NaN value")
    expect(lib.vkt_trainer_parameter(t, b"nope.bias", new, 3, None), ERROR, "'nope.bias'", "an unknown parameter")
    expect(lib.vkt_trainer_set_parameter(t, b"nope.bias", new, 3), ERROR, "'nope.bias'", "setting an unknown one")

    # ---- set_trainable on a running trainer ----
    print("set_trainable at run time")
    w0 = floats(t, b"linear0.weight", hidden * features)
    kept = state(t, b"exp_avg.linear1.weight")
    check(lib.vkt_trainer_set_trainable(t, b"linear0.", 0), "freeze linear0.")
    if any(s.startswith("exp_avg.linear0.") for s in json.loads(string_out(lib.vkt_trainer_optimizer_state_names, t))):
        fail("frozen parameters kept optimizer state")
    if state(t, b"exp_avg.linear1.weight") != kept:
        fail("freezing linear0 changed linear1's optimizer state")
    w2 = floats(t, b"linear2.weight", classes * hidden)
    for _ in range(3):
        bx, by, inputs = batch_of(batch)
        check(lib.vkt_trainer_step(t, inputs, 2, batch, C.byref(r)), "step with linear0 frozen")
    if floats(t, b"linear0.weight", hidden * features) != w0:
        fail("a frozen weight changed")
    if floats(t, b"linear2.weight", classes * hidden) == w2:
        fail("a trainable weight did not change")
    ckpt_frozen = os.path.join(work, "linear0-frozen.safetensors").encode()
    keys, values = (C.c_char_p * 1)(b"epoch"), (C.c_char_p * 1)(b"2")
    check(lib.vkt_trainer_save_checkpoint_with_metadata(t, ckpt_frozen, keys, values, 1), "checkpoint")
    kept = state(t, b"exp_avg.linear1.weight")
    check(lib.vkt_trainer_set_trainable(t, b"linear0.*", 1), "unfreeze linear0.*")
    if any(state(t, b"exp_avg.linear0.weight")) or state(t, b"exp_avg.linear1.weight") != kept:
        fail("unfreezing: new state must be zeros and the kept state unchanged")
    expect(lib.vkt_trainer_set_trainable(t, b"nope.", 0), ERROR, "no parameter matches 'nope.'", "a pattern of none")
    expect(lib.vkt_trainer_set_trainable(t, b"*", 0), ERROR, "no trainable parameter", "freezing everything")
    expect(lib.vkt_trainer_set_trainable(t, None, 0), INVALID, "pattern is null", "a null pattern")
    expect(lib.vkt_trainer_set_trainable(None, b"linear0.", 0), INVALID, "trainer is null", "a null trainer")

    # ---- loading a checkpoint whose trainable set differs: what became of the optimizer state ----
    print("checkpoints across trainability")
    t2 = trainer(m, options(batch))
    report, extra = C.c_void_p(), C.c_void_p()
    del messages[:]
    check(lib.vkt_trainer_load_checkpoint_report(t2, ckpt_frozen, C.byref(extra), C.byref(report)), "load report")
    got = json.loads(C.cast(report, C.c_char_p).value.decode())
    lib.vkt_free(report)
    value = C.c_char_p()
    check(lib.vkt_metadata_get(extra, b"epoch", C.byref(value)), "the checkpoint's epoch")
    lib.vkt_metadata_destroy(extra)
    if value.value != b"2" or sorted(got["fresh"]) != ["linear0.bias", "linear0.weight"] or got["dropped"] or \
            sorted(got["restored"]) != ["linear1.bias", "linear1.weight", "linear2.bias", "linear2.weight"]:
        fail("load report %r, epoch %r" % (got, value.value))
    if not any("optimizer state restored for 4 tensors" in msg for msg in messages):
        fail("the difference was not logged: %r" % messages)
    check(lib.vkt_model_set_trainable(m, b"*.bias", 0), "a glob through vkt_model_set_trainable")
    p = ParameterInfo(struct_size=C.sizeof(ParameterInfo))
    check(lib.vkt_model_parameter(m, 1, C.byref(p)), "parameter 1")
    if p.name != b"linear0.bias" or p.trainable != 0 or p.persistent != 1:
        fail("'*.bias' did not freeze %r" % p.name)
    t3 = trainer(m, options(batch))
    check(lib.vkt_trainer_load_checkpoint_report(t3, ckpt_frozen, None, C.byref(report)), "load report, no extra")
    got = json.loads(C.cast(report, C.c_char_p).value.decode())
    lib.vkt_free(report)
    if got["fresh"] != ["linear0.weight"] or sorted(got["dropped"]) != ["linear1.bias", "linear2.bias"]:
        fail("load report into a trainer without biases: %r" % got)
    check(lib.vkt_trainer_load_checkpoint_report(t3, ckpt_frozen, None, None), "load report, no outputs")
    weights_only = os.path.join(work, "weights.safetensors").encode()
    check(lib.vkt_trainer_save(t, weights_only), "save")
    report.value = 1
    expect(lib.vkt_trainer_load_checkpoint_report(t3, weights_only, None, C.byref(report)), ERROR, "checkpoint",
           "a weights-only file as a checkpoint")
    if report.value:
        fail("a failed load handed out a report")
    for handle in (t2, t3):
        lib.vkt_trainer_destroy(handle)

    # ---- weights files: tensors, bytes, fp32 copies, metadata, the recorded model ----
    print("weights files")
    keys, values = (C.c_char_p * 1)(b"vocabulary"), (C.c_char_p * 1)(b"abc")
    check(lib.vkt_trainer_save_with_metadata(t, weights_only, keys, values, 1), "save with metadata")
    w = C.c_void_p()
    check(lib.vkt_weights_open(weights_only, C.byref(w)), "vkt_weights_open")
    mapped = C.c_int32()
    check(lib.vkt_weights_mapped(w, C.byref(mapped)), "mapped")
    check(lib.vkt_weights_tensor_count(w, C.byref(n)), "tensor count")
    if mapped.value != 1 or n.value != 6:
        fail("mapped %d, %d tensors" % (mapped.value, n.value))
    index = C.c_size_t()
    check(lib.vkt_weights_find(w, b"linear2.bias", C.byref(index)), "find linear2.bias")
    ti = TensorInfo(struct_size=C.sizeof(TensorInfo))
    check(lib.vkt_weights_tensor(w, index.value, C.byref(ti)), "tensor info")
    if (ti.name, ti.type, ti.type_name, ti.rank, ti.elements, ti.bytes) != (b"linear2.bias", 1, b"F32", 1, 3, 12):  # VKT_ELEMENT_F32
        fail("tensor info %r" % [(ti.name, ti.type, ti.type_name, ti.rank, ti.elements, ti.bytes)])
    bias = floats(t, b"linear2.bias", 3)
    if list(struct.unpack("<3f", C.string_at(ti.data, 12))) != bias:
        fail("the tensor's bytes are not the trainer's linear2.bias")
    got = (C.c_float * 3)()
    check(lib.vkt_weights_tensor_f32(w, index.value, got, 3, C.byref(written)), "tensor as fp32")
    if list(got) != bias or written.value != 3:
        fail("tensor_f32 %r, expected %r" % (list(got), bias))
    expect(lib.vkt_weights_tensor_f32(w, index.value, None, 0, C.byref(written)), INVALID, "capacity of 0",
           "a tensor into no room")
    if written.value != 3:
        fail("tensor_f32 needs %d" % written.value)
    piece = (C.c_float * 2)()
    check(lib.vkt_weights_tensor_f32_range(w, index.value, 1, 2, piece), "elements [1, 3)")
    if list(piece) != bias[1:]:
        fail("range %r" % list(piece))
    expect(lib.vkt_weights_tensor_f32_range(w, index.value, 2, 2, piece), INVALID, "outside tensor 'linear2.bias'",
           "elements [2, 4) of 3")
    check(lib.vkt_weights_find(w, b"linear0.weight", C.byref(index)), "find linear0.weight")
    dims, rank = (C.c_int64 * 2)(), C.c_size_t()
    check(lib.vkt_weights_tensor_shape(w, index.value, dims, 2, C.byref(rank)), "shape")
    if list(dims) != [hidden, features]:
        fail("linear0.weight's shape %r" % list(dims))
    expect(lib.vkt_weights_tensor_shape(w, index.value, dims, 1, C.byref(rank)), INVALID, "capacity of 1",
           "a shape into one entry")
    expect(lib.vkt_weights_find(w, b"nope", C.byref(index)), ERROR, "no tensor 'nope'", "an unknown tensor")
    expect(lib.vkt_weights_tensor(w, 6, C.byref(ti)), INVALID, "has 6", "tensor 6 of 6")
    md = C.c_void_p()
    check(lib.vkt_weights_metadata(w, C.byref(md)), "metadata")
    check(lib.vkt_metadata_get(md, b"vocabulary", C.byref(value)), "vocabulary")
    if value.value != b"abc":
        fail("vocabulary %r" % value.value)
    lib.vkt_metadata_destroy(md)
    back = C.c_void_p()
    check(lib.vkt_weights_model(w, C.byref(back)), "the recorded model")
    check(lib.vkt_model_find_output(back, b"hidden", C.byref(C.c_int32())), "its named output")
    lib.vkt_model_destroy(back)
    lib.vkt_weights_destroy(w)
    expect(lib.vkt_weights_open(b"/nonexistent/w.safetensors", C.byref(w)), ERROR, "/nonexistent/w.safetensors",
           "a missing file")
    with open(weights_only, "rb") as f:
        head = f.read(60)
    broken = os.path.join(work, "broken.safetensors").encode()
    with open(broken, "wb") as f:
        f.write(head)
    expect(lib.vkt_weights_open(broken, C.byref(w)), ERROR, "broken.safetensors", "a truncated file")
    expect(lib.vkt_weights_open(None, C.byref(w)), INVALID, "path is null", "a null path")

    # A foreign file (as torch or Hugging Face write): other dtypes, a scalar, metadata of its own, no architecture.
    tensors = [("h.bf16", "BF16", [2], struct.pack("<2H", 0x3FC0, 0xC000), [1.5, -2.0]),
               ("h.f16", "F16", [], struct.pack("<H", 0x3800), [0.5]),
               ("h.i64", "I64", [3], struct.pack("<3q", 1, -5, 2 ** 24), [1.0, -5.0, 16777216.0]),
               ("h.bool", "BOOL", [2], bytes([1, 0]), [1.0, 0.0])]
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for tname, dtype, shape, raw, _ in tensors:
        header[tname] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    foreign = os.path.join(work, "foreign.safetensors").encode()
    with open(foreign, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)
    check(lib.vkt_weights_open(foreign, C.byref(w)), "open a foreign file")
    types = {"BF16": 3, "F16": 2, "I64": 4, "BOOL": 9}
    for i, (tname, dtype, shape, raw, want) in enumerate(tensors):
        check(lib.vkt_weights_tensor(w, i, C.byref(ti)), "tensor %d" % i)
        out = (C.c_float * len(want))()
        check(lib.vkt_weights_tensor_f32(w, i, out, len(out), C.byref(written)), tname)
        if (ti.name.decode(), ti.type_name.decode(), ti.type, ti.rank, ti.elements, ti.bytes) != \
                (tname, dtype, types[dtype], len(shape), len(want), len(raw)) or list(out) != want:
            fail("%s: %r as %r" % (tname, (ti.name, ti.type_name, ti.type, ti.rank, ti.elements), list(out)))
    expect(lib.vkt_weights_model(w, C.byref(back)), ERROR, "foreign.safetensors", "the model of a foreign file")
    lib.vkt_weights_destroy(w)
    check(lib.vkt_read_metadata(foreign, C.byref(md)), "vkt_read_metadata")
    check(lib.vkt_metadata_get(md, b"format", C.byref(value)), "format")
    if value.value != b"pt":
        fail("format %r" % value.value)
    lib.vkt_metadata_destroy(md)
    lib.vkt_trainer_destroy(t)
    lib.vkt_model_destroy(m)

    # ---- GptOptions from a model; the decoder loads the GPT's weights through the C API ----
    print("GPT options and the decoder")
    g = GptOptions()
    check(lib.vkt_gpt_options_default(C.byref(g), C.sizeof(g)), "gpt defaults")
    g.vocab, g.layers, g.width, g.heads, g.context = 13, 2, 8, 2, 6
    gpt = C.c_void_p()
    check(lib.vkt_model_gpt(C.byref(g), C.byref(gpt)), "vkt_model_gpt")
    gt = trainer(gpt, options(2))
    gpt_file = os.path.join(work, "gpt.safetensors").encode()
    check(lib.vkt_trainer_save(gt, gpt_file), "save the GPT")
    check(lib.vkt_weights_open(gpt_file, C.byref(w)), "open it")
    recorded = C.c_void_p()
    check(lib.vkt_weights_model(w, C.byref(recorded)), "its model")
    lib.vkt_weights_destroy(w)
    back = GptOptions(struct_size=C.sizeof(GptOptions))
    check(lib.vkt_model_gpt_options(recorded, C.byref(back)), "vkt_model_gpt_options")
    if (back.vocab, back.layers, back.width, back.heads, back.context, back.mlp, back.tied) != \
            (13, 2, 8, 2, 6, 32, g.tied):
        fail("gpt options back: %r" % [back.vocab, back.layers, back.width, back.heads, back.context, back.mlp])
    expect(lib.vkt_model_gpt_options(recorded, C.byref(GptOptions())), INVALID, "struct_size is 0",
           "gpt options into a struct without its size")
    dec = C.c_void_p()
    check(lib.vkt_model_gpt_decoder(C.byref(back), C.byref(dec)), "the decoder of those options")
    caches = []
    for i in range(100):
        v1 = ParameterInfoV1(struct_size=C.sizeof(ParameterInfoV1))
        if lib.vkt_model_parameter(dec, i, C.byref(v1)) != OK:
            break
        p = ParameterInfo(struct_size=C.sizeof(ParameterInfo))
        check(lib.vkt_model_parameter(dec, i, C.byref(p)), "parameter %d" % i)
        if p.name != v1.name or v1.struct_size != C.sizeof(ParameterInfoV1):
            fail("a version-1 parameter info differs")
        if ".cache." in p.name.decode():
            caches.append((p.name.decode(), p.buffer, p.persistent))
    if len(caches) != 4 or any(buf != 1 or pers != 0 for _, buf, pers in caches):
        fail("the decoder's caches: %r" % caches)
    dt = trainer(dec, options(1, inference_only=1))
    check(lib.vkt_trainer_load(dt, gpt_file), "the decoder loads the GPT's weights")
    check(lib.vkt_trainer_output_count(dt, C.byref(n)), "decoder outputs")
    check(lib.vkt_trainer_output_name(dt, 0, C.byref(name)), "decoder output name")
    token, pos = (C.c_int32 * 1)(4), (C.c_int32 * 1)(0)
    din = (C.c_void_p * 2)(C.cast(token, C.c_void_p), C.cast(pos, C.c_void_p))
    next_logits = (C.c_float * 13)()
    check(lib.vkt_trainer_predict_output(dt, b"logits", din, 2, 1, next_logits, 13, C.byref(written)),
          "next-token logits")
    if n.value != 1 or name.value != b"logits" or written.value != 13 or \
            not all(math.isfinite(v) for v in next_logits):
        fail("decoder: outputs %d (%r), %d logits" % (n.value, name.value, written.value))
    expect(lib.vkt_model_gpt_options(dec, None), INVALID, "out is null", "gpt options into null")
    plain = C.c_void_p()
    hid = (C.c_uint32 * 1)(4)
    check(lib.vkt_model_mlp(4, hid, 1, 2, 0, C.byref(plain)), "an MLP")
    expect(lib.vkt_model_gpt_options(plain, C.byref(back)), ERROR, "not a GPT", "gpt options of an MLP")
    for handle, destroy in ((dt, lib.vkt_trainer_destroy), (gt, lib.vkt_trainer_destroy),
                            (dec, lib.vkt_model_destroy), (recorded, lib.vkt_model_destroy),
                            (gpt, lib.vkt_model_destroy), (plain, lib.vkt_model_destroy),
                            (ctx, lib.vkt_context_destroy)):
        destroy(handle)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
