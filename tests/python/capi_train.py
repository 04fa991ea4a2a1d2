#!/usr/bin/env python3
"""Drives a training run through vktrain's C API from Python (ctypes), as a binding would: a model built call by
call, training steps, evaluation and prediction, save / load of weights and checkpoints, and the error contract
(status codes and one-line messages, never a crash).

usage: capi_train.py LIBVKTRAIN_C_SO WORK_DIR
"""
import ctypes as C
import math
import os
import random
import sys

OK, ERROR, INVALID = 0, 1, 2
F32, I32 = 0, 1


LOG_CALLBACK = C.CFUNCTYPE(None, C.c_void_p, C.c_int, C.c_int, C.c_char_p)


class ContextOptions(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("device_index", C.c_int32), ("device_name", C.c_char_p),
                ("validation", C.c_int32), ("allow_coopmat", C.c_int32), ("allow_fp16", C.c_int32),
                ("allow_unified_memory", C.c_int32), ("tune_gemm_tiles", C.c_int32), ("cache_dir", C.c_char_p),
                ("log", LOG_CALLBACK), ("log_user_data", C.c_void_p), ("log_level", C.c_int)]


# Version 1 of vkt_trainer_options: what a binding built against the first versioned header passes.
TRAINER_OPTIONS_V1 = [("struct_size", C.c_uint32), ("precision", C.c_int), ("batch_size", C.c_uint32),
                      ("optimizer", C.c_int), ("learning_rate", C.c_float), ("weight_decay", C.c_float),
                      ("momentum", C.c_float), ("max_grad_norm", C.c_float), ("seed", C.c_uint64),
                      ("inference_only", C.c_int32)]


class TrainerOptionsV1(C.Structure):
    _fields_ = TRAINER_OPTIONS_V1


TRAINER_OPTIONS_V2 = TRAINER_OPTIONS_V1 + [
    ("nesterov", C.c_int32), ("beta1", C.c_float), ("beta2", C.c_float), ("epsilon", C.c_float),
    ("loss_scaling", C.c_int32), ("init_scale", C.c_float), ("growth_factor", C.c_float),
    ("backoff_factor", C.c_float), ("growth_interval", C.c_int32), ("gemm_path", C.c_int),
    ("lr_schedule", C.c_int), ("warmup_steps", C.c_uint64), ("total_steps", C.c_uint64),
    ("min_learning_rate", C.c_float), ("update_buckets", C.c_uint32), ("update_location", C.c_int)]


class TrainerOptionsV2(C.Structure):
    _fields_ = TRAINER_OPTIONS_V2


class TrainerOptions(C.Structure):
    _fields_ = TRAINER_OPTIONS_V2 + [("recompute", C.c_int)]


class StepResult(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("loss", C.c_float), ("loss_scale", C.c_float), ("skipped", C.c_int32),
                ("grad_norm", C.c_float), ("learning_rate", C.c_float), ("host_ms", C.c_float),
                ("overlapped_ms", C.c_float)]


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def main():
    lib = C.CDLL(sys.argv[1])
    work = sys.argv[2]
    lib.vkt_last_error.restype = C.c_char_p
    lib.vkt_version.restype = C.c_char_p
    lib.vkt_context_device_name.restype = C.c_char_p

    def check(status, what):
        if status != OK:
            fail("%s returned %d: %s" % (what, status, lib.vkt_last_error().decode()))

    ctx = C.c_void_p()
    opts = ContextOptions()
    check(lib.vkt_context_options_default(C.byref(opts), C.c_size_t(C.sizeof(opts))), "context defaults")
    if opts.struct_size != C.sizeof(opts) or opts.allow_coopmat != 1 or opts.allow_fp16 != 1 or opts.log_level != 2:
        fail("vkt_context_options_default wrote %d bytes, allow_fp16 %d, log_level %d"
             % (opts.struct_size, opts.allow_fp16, opts.log_level))
    status = lib.vkt_context_create(C.byref(opts), C.byref(ctx))
    if status != OK:
        print("SKIP: no Vulkan device: " + lib.vkt_last_error().decode())
        return 77
    print("vktrain %s on %s" % (lib.vkt_version().decode(), lib.vkt_context_device_name(ctx).decode()))

    features, classes, batch = 8, 3, 32
    m = C.c_void_p()
    check(lib.vkt_model_create(C.byref(m)), "vkt_model_create")
    x, h, logits, labels = C.c_int32(), C.c_int32(), C.c_int32(), C.c_int32()
    shape = (C.c_int64 * 1)(features)
    check(lib.vkt_model_input(m, b"x", shape, C.c_size_t(1), F32, C.byref(x)), "input x")
    # The error contract: a bad value id is a vktrain error with a message; a null pointer an invalid argument.
    bad = C.c_int32()
    if lib.vkt_model_linear(m, 99, 4, 1, C.byref(bad)) != ERROR or b"does not exist" not in lib.vkt_last_error():
        fail("a linear on a missing value must fail with a message")
    if lib.vkt_model_unary(m, b"nope", x, None) != INVALID:
        fail("an unknown op must be an invalid argument")
    if lib.vkt_trainer_step(None, None, C.c_size_t(0), 1, None) != INVALID:
        fail("a null trainer must be an invalid argument")
    print("errors: " + lib.vkt_last_error().decode())

    check(lib.vkt_model_linear(m, x, 16, 1, C.byref(h)), "linear")
    check(lib.vkt_model_unary(m, b"relu", h, C.byref(h)), "relu")
    check(lib.vkt_model_linear(m, h, classes, 1, C.byref(logits)), "linear")
    check(lib.vkt_model_input(m, b"labels", None, C.c_size_t(0), I32, C.byref(labels)), "input labels")
    check(lib.vkt_model_cross_entropy(m, logits, labels, None), "cross_entropy")
    count = C.c_uint64()
    check(lib.vkt_model_parameter_count(m, C.byref(count)), "parameter_count")
    if count.value != features * 16 + 16 + 16 * classes + classes:
        fail("parameter count %d" % count.value)

    to = TrainerOptions()
    check(lib.vkt_trainer_options_default(C.byref(to), C.c_size_t(C.sizeof(to))), "trainer defaults")
    to.precision, to.batch_size, to.learning_rate, to.seed = 1, batch, 0.02, 3
    t = C.c_void_p()
    check(lib.vkt_trainer_create(ctx, m, C.byref(to), C.byref(t)), "vkt_trainer_create")

    # Separable data: the label is the largest of three fixed projections of x.
    rng = random.Random(5)
    w = [[rng.uniform(-1, 1) for _ in range(features)] for _ in range(classes)]

    def batch_of(n):
        xs, ys = [], []
        for _ in range(n):
            v = [rng.uniform(-1, 1) for _ in range(features)]
            xs += v
            ys.append(max(range(classes), key=lambda c: sum(a * b for a, b in zip(w[c], v))))
        return (C.c_float * len(xs))(*xs), (C.c_int32 * n)(*ys)

    r = StepResult(struct_size=C.sizeof(StepResult))
    first = None
    for step in range(150):
        bx, by = batch_of(batch)
        inputs = (C.c_void_p * 2)(C.cast(bx, C.c_void_p), C.cast(by, C.c_void_p))
        check(lib.vkt_trainer_step(t, inputs, C.c_size_t(2), batch, C.byref(r)), "step")
        first = r.loss if first is None else first
    print("loss %.4f -> %.4f" % (first, r.loss))
    if not (r.loss < 0.5 * first):
        fail("the loss did not fall (%.4f -> %.4f)" % (first, r.loss))

    tx, ty = batch_of(200)
    inputs = (C.c_void_p * 2)(C.cast(tx, C.c_void_p), C.cast(ty, C.c_void_p))
    out = (C.c_float * (200 * classes))()
    written = C.c_size_t()
    check(lib.vkt_trainer_predict(t, inputs, C.c_size_t(2), C.c_uint64(200), out, C.c_size_t(len(out)),
                                  C.byref(written)), "predict")
    correct = sum(1 for i in range(200)
                  if max(range(classes), key=lambda c: out[i * classes + c]) == ty[i])
    print("accuracy %.3f" % (correct / 200))
    if written.value != 200 * classes or correct < 170:
        fail("prediction: %d values, %d of 200 correct" % (written.value, correct))
    small = (C.c_float * 3)()
    if lib.vkt_trainer_predict(t, inputs, C.c_size_t(2), C.c_uint64(200), small, C.c_size_t(3), None) != INVALID:
        fail("a too small prediction buffer must be refused")

    # Sizes computed from a count must not wrap around: count x 3 outputs = 2^64 + 2 would be 2 values, count x 8
    # features x 4 bytes overflows too. Each is an invalid argument with a message, before anything is read.
    for n in ((2 ** 64 + 2) // 3, 2 ** 61, 2 ** 64 - 1):
        status = lib.vkt_trainer_predict(t, inputs, C.c_size_t(2), C.c_uint64(n), out, C.c_size_t(len(out)),
                                         C.byref(written))
        if status != INVALID or b"does not fit" not in lib.vkt_last_error():
            fail("predict of %d samples: status %d, %r" % (n, status, lib.vkt_last_error()))
    print("overflow: " + lib.vkt_last_error().decode())
    # One feature in, eight logits out: the inputs of 2^62 - 1 samples fit (2^64 - 4 bytes), their outputs do not.
    wide, wx, wl, wy = C.c_void_p(), C.c_int32(), C.c_int32(), C.c_int32()
    check(lib.vkt_model_create(C.byref(wide)), "vkt_model_create")
    check(lib.vkt_model_input(wide, b"x", (C.c_int64 * 1)(1), C.c_size_t(1), F32, C.byref(wx)), "input x")
    check(lib.vkt_model_linear(wide, wx, 8, 1, C.byref(wy)), "linear")
    check(lib.vkt_model_input(wide, b"labels", None, C.c_size_t(0), I32, C.byref(wl)), "input labels")
    check(lib.vkt_model_cross_entropy(wide, wy, wl, None), "cross_entropy")
    wt = C.c_void_p()
    check(lib.vkt_trainer_create(ctx, wide, C.byref(to), C.byref(wt)), "trainer of the wide model")
    one = (C.c_float * 1)(0.5)
    wide_inputs = (C.c_void_p * 2)(C.cast(one, C.c_void_p), None)
    status = lib.vkt_trainer_predict(wt, wide_inputs, C.c_size_t(2), C.c_uint64(2 ** 62 - 1), out,
                                     C.c_size_t(len(out)), C.byref(written))
    if status != INVALID or b"output values" not in lib.vkt_last_error():
        fail("predict whose output overflows: status %d, %r" % (status, lib.vkt_last_error()))
    print("overflow: " + lib.vkt_last_error().decode())
    lib.vkt_trainer_destroy(wt)
    lib.vkt_model_destroy(wide)
    if lib.vkt_trainer_predict(t, inputs, C.c_size_t(2), C.c_uint64(2 ** 40), out, C.c_size_t(len(out)),
                               None) != INVALID or b"capacity" not in lib.vkt_last_error():
        fail("predict of 2^40 samples must be refused for the capacity before it runs")
    loss = C.c_double()
    if lib.vkt_trainer_evaluate(t, inputs, C.c_size_t(2), C.c_uint64(2 ** 62), C.byref(loss)) != INVALID \
            or b"input 'x'" not in lib.vkt_last_error():
        fail("evaluate of 2^62 samples of 8 features must be refused: %r" % lib.vkt_last_error())
    check(lib.vkt_trainer_evaluate(t, inputs, C.c_size_t(2), C.c_uint64(200), C.byref(loss)), "evaluate")
    weights = os.path.join(work, "capi.safetensors").encode()
    check(lib.vkt_trainer_save(t, weights), "save")
    m2, t2 = C.c_void_p(), C.c_void_p()
    check(lib.vkt_load_model(weights, C.byref(m2)), "vkt_load_model")
    check(lib.vkt_trainer_create(ctx, m2, C.byref(to), C.byref(t2)), "second trainer")
    check(lib.vkt_trainer_load(t2, weights), "load")
    loss2 = C.c_double()
    check(lib.vkt_trainer_evaluate(t2, inputs, C.c_size_t(2), C.c_uint64(200), C.byref(loss2)), "evaluate 2")
    if loss.value != loss2.value:
        fail("reloaded weights evaluate to %r, not %r" % (loss2.value, loss.value))
    ckpt = os.path.join(work, "capi-checkpoint.safetensors").encode()
    check(lib.vkt_trainer_save_checkpoint(t, ckpt), "save_checkpoint")
    check(lib.vkt_trainer_load_checkpoint(t2, ckpt), "load_checkpoint")
    steps = C.c_uint64()
    check(lib.vkt_trainer_steps(t2, C.byref(steps), None), "steps")
    if steps.value != 150:
        fail("the checkpoint restored %d steps, not 150" % steps.value)
    if lib.vkt_trainer_load(t2, b"/nonexistent/file") != ERROR or b"/nonexistent/file" not in lib.vkt_last_error():
        fail("loading a missing file must name it")
    json = C.c_void_p()
    check(lib.vkt_model_to_json(m, C.byref(json)), "to_json")
    if b'"cross_entropy"' not in C.cast(json, C.c_char_p).value:
        fail("the JSON does not describe the model")
    lib.vkt_free(json)
    for handle, destroy in ((t2, lib.vkt_trainer_destroy), (t, lib.vkt_trainer_destroy), (m2, lib.vkt_model_destroy),
                            (m, lib.vkt_model_destroy), (ctx, lib.vkt_context_destroy)):
        destroy(handle)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
