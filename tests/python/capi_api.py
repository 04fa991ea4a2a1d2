#!/usr/bin/env python3
"""The C API's contract and its parity with the C++ API, from Python (ctypes) (issue 22):
- status codes by one rule: a wrong input count and a too-small output buffer are VKT_INVALID_ARGUMENT, and the
  size needed comes back through `written` (capacity 0 asks for it);
- versioned structs: a binding built against the first version (a smaller struct_size) still works and gets the
  defaults of later fields, and the *_default functions write no byte past the size they are given;
- the log callback: warnings go to it, not to stderr, and an unwritable home directory is reported once per context
  (it was 8 identical warnings and one more);
- what the C API lacked: trainer options (Adam, loss scaler, schedule, GEMM path, buckets, location), micro-batches,
  parameters by name, metadata written and read back, output shapes, model inspection and recipes, device
  information and capabilities.

usage: capi_api.py LIBVKTRAIN_C_SO WORK_DIR
"""
import ctypes as C
import json
import math
import os
import random
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from capi_train import (ContextOptions, LOG_CALLBACK, StepResult, TrainerOptions,  # noqa: E402
                        TrainerOptionsV1, TrainerOptionsV2, TRAINER_OPTIONS_V1)

OK, ERROR, INVALID = 0, 1, 2
F32, I32 = 0, 1


class ContextOptionsV1(C.Structure):
    _fields_ = ContextOptions._fields_[:5]


class DeviceInfo(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("index", C.c_uint32), ("name", C.c_char * 256), ("type", C.c_char * 16),
                ("driver_name", C.c_char * 256), ("driver_info", C.c_char * 256), ("api_version", C.c_char * 32),
                ("vendor_id", C.c_uint32), ("device_id", C.c_uint32), ("driver_version", C.c_uint32),
                ("shader_float16", C.c_int32), ("storage_buffer_16bit", C.c_int32), ("subgroup_size", C.c_uint32),
                ("min_subgroup_size", C.c_uint32), ("max_subgroup_size", C.c_uint32),
                ("subgroup_size_control", C.c_int32), ("max_shared_memory", C.c_uint32),
                ("max_workgroup_invocations", C.c_uint32), ("timestamps", C.c_int32),
                ("coopmat_extension", C.c_int32), ("coopmat_feature", C.c_int32),
                ("coopmat_shape_count", C.c_uint32), ("device_memory_bytes", C.c_uint64),
                ("unified_memory", C.c_int32)]


class Capabilities(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("coopmat", C.c_int32), ("fp16", C.c_int32),
                ("unified_memory", C.c_int32), ("allocated_bytes", C.c_uint64), ("peak_allocated_bytes", C.c_uint64)]


class TrainerInfo(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("loss_scale", C.c_float), ("learning_rate", C.c_float),
                ("steps", C.c_uint64), ("skipped_steps", C.c_uint64), ("update_buckets", C.c_uint32),
                ("update_location", C.c_int), ("update_location_reason", C.c_char_p),
                ("gemm_path_summary", C.c_char_p), ("device_bytes", C.c_uint64), ("arena_bytes", C.c_uint64),
                ("train_plan_bytes", C.c_uint64), ("eval_plan_bytes", C.c_uint64), ("unplanned_bytes", C.c_uint64),
                ("in_place", C.c_uint32), ("weight_uploads", C.c_uint64), ("weight_upload_bytes", C.c_uint64)]


class ParameterInfo(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("name", C.c_char_p), ("rank", C.c_size_t), ("shape", C.c_int64 * 8),
                ("elements", C.c_uint64), ("trainable", C.c_int32), ("buffer", C.c_int32),
                ("weight_decay", C.c_float), ("init", C.c_int), ("init_a", C.c_float), ("init_b", C.c_float),
                ("persistent", C.c_int32), ("counter", C.c_int32), ("lr_scale", C.c_float)]


class GptOptions(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("vocab", C.c_uint32), ("layers", C.c_uint32), ("heads", C.c_uint32),
                ("width", C.c_uint32), ("context", C.c_uint32), ("mlp", C.c_uint32), ("tied", C.c_int32),
                ("eps", C.c_float)]


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


class CapturedStderr:
    """What the process writes to file descriptor 2 (the library's own fprintf included) while inside."""

    def __enter__(self):
        sys.stderr.flush()
        self.file = tempfile.TemporaryFile()
        self.saved = os.dup(2)
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.seek(0)
        self.text = self.file.read().decode(errors="replace")
        self.file.close()


def main():
    lib = C.CDLL(sys.argv[1])
    work = sys.argv[2]
    os.makedirs(work, exist_ok=True)
    lib.vkt_last_error.restype = C.c_char_p
    lib.vkt_context_device_name.restype = C.c_char_p

    def err():
        return lib.vkt_last_error().decode()

    def check(status, what):
        if status != OK:
            fail("%s returned %d: %s" % (what, status, err()))

    def expect(status, want, needle, what):
        if status != want or needle not in err():
            fail("%s: status %d (want %d), message %r (want %r)" % (what, status, want, err(), needle))

    def json_out(fn, *args):
        raw = C.c_void_p()
        check(fn(*args, C.byref(raw)), fn.__name__)
        text = C.cast(raw, C.c_char_p).value.decode()
        lib.vkt_free(raw)
        return text

    # ---- versioned option structs: defaults write no byte past the size given ----
    for struct, first in ((TrainerOptions, C.sizeof(TrainerOptionsV1)), (ContextOptions, C.sizeof(ContextOptionsV1))):
        fn = lib.vkt_trainer_options_default if struct is TrainerOptions else lib.vkt_context_options_default
        buf = (C.c_ubyte * C.sizeof(struct))(*([0xAB] * C.sizeof(struct)))
        check(fn(buf, C.c_size_t(first)), "%s default of version 1" % struct.__name__)
        if C.cast(buf, C.POINTER(C.c_uint32))[0] != first or any(b != 0xAB for b in buf[first:]):
            fail("%s_default(size %d) wrote past the size it was given" % (struct.__name__, first))
        expect(fn(buf, C.c_size_t(4)), INVALID, "struct_size 4", "%s default of 4 bytes" % struct.__name__)

    # ---- the log callback, and an unwritable home reported once ----
    messages = []

    @LOG_CALLBACK
    def on_log(user, level, source, message):
        messages.append((level, source, message.decode()))

    for key in ("XDG_CACHE_HOME", "VKTRAIN_CACHE_DIR"):
        os.environ.pop(key, None)
    home = os.path.join(work, "home-is-a-file")
    with open(home, "w") as f:
        f.write("not a directory\n")
    os.environ["HOME"] = home  # the cache directory, $HOME/.cache/vktrain, cannot be made

    def context(log):
        opts = ContextOptions()
        check(lib.vkt_context_options_default(C.byref(opts), C.c_size_t(C.sizeof(opts))), "context defaults")
        if log:
            opts.log = on_log
        ctx = C.c_void_p()
        status = lib.vkt_context_create(C.byref(opts), C.byref(ctx))
        return status, ctx

    status, ctx = context(True)
    if status != OK:
        print("SKIP: no Vulkan device: " + err())
        return 77
    print("device: " + lib.vkt_context_device_name(ctx).decode())

    features, classes, batch = 6, 3, 16
    hidden = (C.c_uint32 * 2)(12, 8)
    m = C.c_void_p()
    check(lib.vkt_model_mlp(features, hidden, C.c_size_t(2), classes, 0, C.byref(m)), "vkt_model_mlp")
    if json_out(lib.vkt_model_describe, m) != "6-12(relu)-8(relu)-3":
        fail("describe: " + json_out(lib.vkt_model_describe, m))
    rng = random.Random(7)

    def batch_of(n):
        xs = [rng.uniform(-1, 1) for _ in range(n * features)]
        ys = [int(abs(xs[i * features]) * classes) % classes for i in range(n)]
        bx, by = (C.c_float * len(xs))(*xs), (C.c_int32 * n)(*ys)
        return bx, by, (C.c_void_p * 2)(C.cast(bx, C.c_void_p), C.cast(by, C.c_void_p))

    def train_briefly(ctx_handle):
        to = TrainerOptions()
        check(lib.vkt_trainer_options_default(C.byref(to), C.c_size_t(C.sizeof(to))), "trainer defaults")
        to.batch_size = batch
        t = C.c_void_p()
        check(lib.vkt_trainer_create(ctx_handle, m, C.byref(to), C.byref(t)), "trainer (mixed precision)")
        r = StepResult(struct_size=C.sizeof(StepResult))
        for _ in range(3):
            bx, by, inputs = batch_of(batch)
            check(lib.vkt_trainer_step(t, inputs, C.c_size_t(2), batch, C.byref(r)), "step")
        out = (C.c_float * (batch * classes))()
        check(lib.vkt_trainer_predict(t, inputs, C.c_size_t(2), C.c_uint64(batch), out, C.c_size_t(len(out)), None),
              "predict")
        lib.vkt_trainer_destroy(t)

    with CapturedStderr() as captured:
        train_briefly(ctx)
        lib.vkt_context_destroy(ctx)  # saves the pipeline cache: the same directory, not reported again
    if "vktrain" in captured.text:
        fail("with a log callback, vktrain wrote to stderr:\n" + captured.text)
    cache = [msg for level, source, msg in messages if "cache" in msg]
    if len(cache) != 1 or messages[0][0] != 2 or messages[0][1] != 0:
        fail("an unwritable cache directory must be one warning through the callback, got %r" % messages)
    print("log callback: " + cache[0][:100])

    status, ctx = context(False)
    check(status, "context without a callback")
    with CapturedStderr() as captured:
        train_briefly(ctx)
        lib.vkt_context_destroy(ctx)
    warnings = [line for line in captured.text.splitlines() if line.startswith("vktrain warning")]
    if len(warnings) != 1:
        fail("an unwritable home must give one warning per context on stderr, got %d:\n%s"
             % (len(warnings), "\n".join(warnings)))
    os.environ["VKTRAIN_CACHE_DIR"] = os.path.join(work, "cache")

    status, ctx = context(False)
    check(status, "context")

    # ---- device information and capabilities ----
    info = DeviceInfo(struct_size=C.sizeof(DeviceInfo))
    check(lib.vkt_context_device_info(ctx, C.byref(info)), "vkt_context_device_info")
    if info.name.decode() != lib.vkt_context_device_name(ctx).decode() or not info.api_version:
        fail("device info: %r" % info.name)
    caps = Capabilities(struct_size=C.sizeof(Capabilities))
    check(lib.vkt_context_capabilities_get(ctx, C.byref(caps)), "capabilities")
    if caps.coopmat and not info.coopmat_feature:
        fail("coopmat available without the feature")
    devices = C.c_void_p()
    check(lib.vkt_list_devices(None, C.byref(devices)), "vkt_list_devices")
    n = C.c_size_t()
    check(lib.vkt_device_list_count(devices, C.byref(n)), "device count")
    names = []
    for i in range(n.value):
        d = DeviceInfo(struct_size=C.sizeof(DeviceInfo))
        check(lib.vkt_device_list_get(devices, C.c_size_t(i), C.byref(d)), "device %d" % i)
        names.append(d.name.decode())
    lib.vkt_device_list_destroy(devices)
    if info.name.decode() not in names:
        fail("the context's device %r is not among the listed %r" % (info.name, names))
    print("devices: %s; coopmat %d, fp16 %d, unified memory %d" % (names, caps.coopmat, caps.fp16,
                                                                   caps.unified_memory))

    # ---- model inspection: output shape, inputs, parameters, groups ----
    dims, rank = (C.c_int64 * 4)(), C.c_size_t()
    check(lib.vkt_model_output_shape(m, dims, C.c_size_t(4), C.byref(rank)), "output shape")
    if [dims[i] for i in range(rank.value)] != [classes]:
        fail("output shape %s" % [dims[i] for i in range(rank.value)])
    expect(lib.vkt_model_output_shape(m, None, C.c_size_t(0), C.byref(rank)), INVALID, "capacity of 0",
           "an output shape into no room")
    if rank.value != 1:
        fail("a too-small shape buffer must report the rank needed, got %d" % rank.value)
    ins, count = (C.c_int32 * 4)(), C.c_size_t()
    check(lib.vkt_model_inputs(m, ins, C.c_size_t(4), C.byref(count)), "inputs")
    if count.value != 2:
        fail("the MLP has %d inputs" % count.value)
    check(lib.vkt_model_set_weight_decay(m, b"linear0.", C.c_float(0.5)), "set_weight_decay")
    check(lib.vkt_model_set_init(m, b"linear2.bias", 3, C.c_float(0.25), C.c_float(0)), "set_init")
    check(lib.vkt_model_set_learning_rate_scale(m, b"linear1.", C.c_float(0.125)), "set_learning_rate_scale")
    expect(lib.vkt_model_set_learning_rate_scale(m, b"linear1.", C.c_float(0)), ERROR, "must be > 0 and finite",
           "a learning-rate scale of 0")
    tensors = C.c_size_t()
    check(lib.vkt_model_parameter_tensors(m, C.byref(tensors)), "parameter tensors")
    params = {}
    for i in range(tensors.value):
        p = ParameterInfo(struct_size=C.sizeof(ParameterInfo))
        check(lib.vkt_model_parameter(m, C.c_size_t(i), C.byref(p)), "parameter %d" % i)
        params[p.name.decode()] = p
    if list(params) != ["linear0.weight", "linear0.bias", "linear1.weight", "linear1.bias", "linear2.weight",
                        "linear2.bias"]:
        fail("parameters %s" % list(params))
    if params["linear0.weight"].weight_decay != 0.5 or params["linear1.weight"].weight_decay >= 0 or \
            params["linear2.bias"].init != 3 or [params["linear0.weight"].shape[i] for i in range(2)] != [12, 6]:
        fail("parameter groups did not reach the parameters")
    if params["linear1.bias"].lr_scale != 0.125 or params["linear0.weight"].lr_scale != 1.0:
        fail("learning-rate scales did not reach the parameters")

    # ---- a version-1 trainer options struct: the later fields take their defaults ----
    v1 = TrainerOptionsV1()
    check(lib.vkt_trainer_options_default(C.byref(v1), C.c_size_t(C.sizeof(v1))), "version-1 defaults")
    v1.precision, v1.batch_size, v1.learning_rate, v1.seed = 1, batch, 0.05, 3
    # A C compiler pads version 1 to 48 bytes after its last field (44 bytes in); the padding may hold anything, and
    # is not the next version's first field (nesterov).
    end = TrainerOptionsV1.inference_only.offset + 4
    C.memset(C.addressof(v1) + end, 0x7F, C.sizeof(v1) - end)
    t = C.c_void_p()
    check(lib.vkt_trainer_create(ctx, m, C.byref(v1), C.byref(t)), "a trainer from a version-1 options struct")
    back = TrainerOptions(struct_size=C.sizeof(TrainerOptions))
    check(lib.vkt_trainer_get_options(t, C.byref(back)), "vkt_trainer_get_options")
    if (back.batch_size, round(back.learning_rate, 6), back.precision) != (batch, 0.05, 1) or \
            (back.nesterov, round(back.beta2, 6), back.init_scale, back.growth_interval, back.loss_scaling) != \
            (0, 0.999, 65536.0, 2000, 1):
        fail("version-1 options came back as batch %d lr %g, beta2 %g, init_scale %g"
             % (back.batch_size, back.learning_rate, back.beta2, back.init_scale))
    bad = TrainerOptionsV1()
    C.memmove(C.byref(bad), C.byref(v1), C.sizeof(v1))
    bad.struct_size = 8
    expect(lib.vkt_trainer_create(ctx, m, C.byref(bad), C.byref(C.c_void_p())), INVALID, "struct_size is 8",
           "a struct_size below version 1")

    # ---- status codes: input count and output sizes are invalid arguments; the size needed comes back ----
    bx, by, inputs = batch_of(batch)
    r = StepResult(struct_size=C.sizeof(StepResult))
    expect(lib.vkt_trainer_step(t, inputs, C.c_size_t(1), batch, C.byref(r)), INVALID,
           "input_count is 1; the model has 2 input(s) (x, labels)", "step with one input of two")
    loss = C.c_double()
    expect(lib.vkt_trainer_evaluate(t, inputs, C.c_size_t(3), C.c_uint64(batch), C.byref(loss)), INVALID,
           "input_count is 3", "evaluate with three inputs")
    written = C.c_size_t(12345)
    expect(lib.vkt_trainer_predict(t, inputs, C.c_size_t(2), C.c_uint64(batch), None, C.c_size_t(0),
                                   C.byref(written)), INVALID, "capacity of 0", "predict with capacity 0")
    if written.value != batch * classes:
        fail("predict with capacity 0 must report the %d floats it needs, wrote %d" % (batch * classes, written.value))
    small = (C.c_float * 5)()
    written.value = 0
    expect(lib.vkt_trainer_predict(t, inputs, C.c_size_t(2), C.c_uint64(batch), small, C.c_size_t(5),
                                   C.byref(written)), INVALID, "capacity of 5", "predict into 5 floats")
    if written.value != batch * classes:
        fail("a too small predict buffer must report the size it needs (%d)" % written.value)
    out = (C.c_float * written.value)()
    check(lib.vkt_trainer_predict(t, inputs, C.c_size_t(2), C.c_uint64(batch), out, written, C.byref(written)),
          "predict with the size it asked for")
    expect(lib.vkt_trainer_predict(t, inputs, C.c_size_t(1), C.c_uint64(batch), out, C.c_size_t(len(out)),
                                   C.byref(written)), INVALID, "input_count is 1", "predict with one input")
    steps = C.c_uint64()
    zero = StepResult()
    expect(lib.vkt_trainer_step(t, inputs, C.c_size_t(2), batch, C.byref(zero)), INVALID,
           "vkt_step_result->struct_size is 0", "a step result without its size")
    check(lib.vkt_trainer_steps(t, C.byref(steps), None), "steps")
    if steps.value != 0:
        fail("a refused call ran a step")
    lib.vkt_trainer_destroy(t)

    # ---- trainer options the C API lacked, and what they resolve to ----
    to = TrainerOptions()
    check(lib.vkt_trainer_options_default(C.byref(to), C.c_size_t(C.sizeof(to))), "trainer defaults")
    to.batch_size, to.learning_rate, to.seed = batch, 0.01, 5
    to.beta1, to.beta2, to.epsilon = 0.8, 0.99, 1e-6
    to.init_scale, to.growth_interval = 1024.0, 7
    to.gemm_path = 2  # tiled fp16
    to.lr_schedule, to.warmup_steps, to.total_steps, to.min_learning_rate = 1, 4, 20, 0.001
    to.update_buckets, to.update_location = 1, 1
    # recompute (version 3): a bad value is refused by name; a version-2 struct (without it) keeps its later fields.
    bad = TrainerOptions()
    C.memmove(C.byref(bad), C.byref(to), C.sizeof(to))
    bad.recompute = 7
    expect(lib.vkt_trainer_create(ctx, m, C.byref(bad), C.byref(C.c_void_p())), INVALID, "recompute",
           "recompute 7")
    v2 = TrainerOptionsV2()
    C.memmove(C.byref(v2), C.byref(to), C.sizeof(v2))
    v2.struct_size = C.sizeof(v2)
    t2 = C.c_void_p()
    check(lib.vkt_trainer_create(ctx, m, C.byref(v2), C.byref(t2)), "trainer from a version-2 struct")
    back2 = TrainerOptions(struct_size=C.sizeof(TrainerOptions))
    check(lib.vkt_trainer_get_options(t2, C.byref(back2)), "version-2 options back")
    if (back2.update_location, back2.growth_interval, back2.recompute) != (1, 7, 0):
        fail("a version-2 struct lost its fields: location %d, growth interval %d, recompute %d"
             % (back2.update_location, back2.growth_interval, back2.recompute))
    lib.vkt_trainer_destroy(t2)
    check(lib.vkt_trainer_create(ctx, m, C.byref(to), C.byref(t)), "trainer with every option")
    back = TrainerOptions(struct_size=C.sizeof(TrainerOptions))
    check(lib.vkt_trainer_get_options(t, C.byref(back)), "options back")
    if (round(back.beta1, 6), round(back.beta2, 6), back.growth_interval, back.gemm_path, back.warmup_steps) != \
            (0.8, 0.99, 7, 2, 4):
        fail("options did not reach the trainer")
    ti = TrainerInfo(struct_size=C.sizeof(TrainerInfo))
    check(lib.vkt_trainer_info_get(t, C.byref(ti)), "trainer info")
    if ti.loss_scale != 1024.0 or ti.update_buckets != 1 or ti.update_location != 1 or \
            ti.gemm_path_summary.decode() != "tiled-fp16" or ti.device_bytes == 0 or ti.arena_bytes == 0:
        fail("trainer info: scale %g, buckets %d, location %d, gemm %s" % (ti.loss_scale, ti.update_buckets,
                                                                         ti.update_location, ti.gemm_path_summary))
    paths = json.loads(json_out(lib.vkt_trainer_gemm_paths_json, t))
    if not paths or any(p["path"] != "tiled-fp16" for p in paths):
        fail("gemm paths %r" % paths)
    check(lib.vkt_trainer_step(t, inputs, C.c_size_t(2), batch, C.byref(r)), "step with a schedule")
    if abs(r.learning_rate - 0.01 / 4) > 1e-9 or r.struct_size != C.sizeof(StepResult):
        fail("the warm-up's first rate is %g, not %g" % (r.learning_rate, 0.01 / 4))
    # Two micro-batches of half a batch each: one step.
    bx2, by2, inputs2 = batch_of(batch // 2)
    micro = (C.POINTER(C.c_void_p) * 2)(C.cast(inputs, C.POINTER(C.c_void_p)), C.cast(inputs2, C.POINTER(C.c_void_p)))
    counts = (C.c_uint32 * 2)(batch // 2, batch // 2)
    check(lib.vkt_trainer_step_micro_batches(t, micro, C.c_size_t(2), counts, C.c_size_t(2), C.byref(r)),
          "micro-batches")
    check(lib.vkt_trainer_steps(t, C.byref(steps), None), "steps")
    if steps.value != 2 or not math.isfinite(r.loss):
        fail("after a step and a micro-batch step: %d steps, loss %g" % (steps.value, r.loss))
    needed = C.c_size_t()
    expect(lib.vkt_trainer_compute_gradients(t, inputs, C.c_size_t(2), batch, None, None, C.c_size_t(0),
                                             C.byref(needed)), INVALID, "capacity of 0", "gradients into no room")
    if needed.value != 6 * 12 + 12 + 12 * 8 + 8 + 8 * 3 + 3:
        fail("gradients need %d floats" % needed.value)
    grads, gl = (C.c_float * needed.value)(), C.c_float()
    check(lib.vkt_trainer_compute_gradients(t, inputs, C.c_size_t(2), batch, C.byref(gl), grads, needed,
                                            C.byref(needed)), "compute_gradients")
    if not any(grads) or not math.isfinite(gl.value):
        fail("gradients")
    profile = json.loads(json_out(lib.vkt_trainer_profile_step, t, inputs, C.c_size_t(2), batch))
    if not profile["ops"] or profile["total_microseconds"] <= 0 or profile.get("dispatches", 0) <= 0:
        fail("profile %r" % profile)

    state = json.loads(json_out(lib.vkt_trainer_optimizer_state_names, t))
    if not state or not state[0].startswith("exp_avg."):
        fail("optimizer state names %r" % state)
    expect(lib.vkt_trainer_optimizer_state(t, state[0].encode(), None, C.c_size_t(0), C.byref(written)), INVALID,
           "capacity of 0", "the size of %s" % state[0])
    if written.value != 12 * 6:  # the first trainable parameter, linear0.weight
        fail("%s has %d values" % (state[0], written.value))

    # ---- parameters by name ----
    bias = (C.c_float * 3)()
    check(lib.vkt_trainer_parameter(t, b"linear2.bias", bias, C.c_size_t(3), C.byref(written)), "get linear2.bias")
    expect(lib.vkt_trainer_parameter(t, b"linear2.bias", None, C.c_size_t(0), C.byref(written)), INVALID,
           "capacity of 0", "a parameter into no room")
    if written.value != 3:
        fail("linear2.bias needs %d floats" % written.value)
    new = (C.c_float * 3)(0.5, -1.5, 2.0)
    check(lib.vkt_trainer_set_parameter(t, b"linear2.bias", new, C.c_size_t(3)), "set linear2.bias")
    check(lib.vkt_trainer_parameter(t, b"linear2.bias", bias, C.c_size_t(3), C.byref(written)), "get it back")
    if list(bias) != [0.5, -1.5, 2.0]:
        fail("linear2.bias is %r after setting it" % list(bias))
    expect(lib.vkt_trainer_set_parameter(t, b"linear2.bias", new, C.c_size_t(2)), INVALID, "has 3 values",
           "setting 2 values of 3")
    expect(lib.vkt_trainer_parameter(t, b"nope.weight", bias, C.c_size_t(3), None), ERROR, "'nope.weight'",
           "an unknown parameter")

    # ---- metadata: written with the weights, read back; a checkpoint's extra entries come back ----
    path = os.path.join(work, "weights.safetensors").encode()
    keys = (C.c_char_p * 2)(b"vocabulary", b"note")
    values = (C.c_char_p * 2)("abc\u00e9".encode(), b"from ctypes")
    check(lib.vkt_trainer_save_with_metadata(t, path, keys, values, C.c_size_t(2)), "save with metadata")
    md = C.c_void_p()
    check(lib.vkt_read_metadata(path, C.byref(md)), "vkt_read_metadata")
    value = C.c_char_p()
    check(lib.vkt_metadata_get(md, b"vocabulary", C.byref(value)), "metadata vocabulary")
    if value.value.decode() != "abc\u00e9":
        fail("vocabulary read back as %r" % value.value)
    expect(lib.vkt_metadata_get(md, b"missing", C.byref(value)), ERROR, "'missing'", "a missing key")
    n = C.c_size_t()
    check(lib.vkt_metadata_count(md, C.byref(n)), "metadata count")
    entries = {}
    for i in range(n.value):
        k, v = C.c_char_p(), C.c_char_p()
        check(lib.vkt_metadata_entry(md, C.c_size_t(i), C.byref(k), C.byref(v)), "entry")
        entries[k.value.decode()] = v.value.decode()
    lib.vkt_metadata_destroy(md)
    if "vktrain_graph" not in entries or entries.get("note") != "from ctypes":
        fail("metadata entries %r" % list(entries))
    ckpt = os.path.join(work, "checkpoint.safetensors").encode()
    ek, ev = (C.c_char_p * 1)(b"epoch"), (C.c_char_p * 1)(b"3")
    check(lib.vkt_trainer_save_checkpoint_with_metadata(t, ckpt, ek, ev, C.c_size_t(1)), "checkpoint with metadata")
    check(lib.vkt_trainer_load_checkpoint_with_metadata(t, ckpt, C.byref(md)), "load it")
    check(lib.vkt_metadata_get(md, b"epoch", C.byref(value)), "epoch")
    if value.value != b"3":
        fail("epoch %r" % value.value)
    lib.vkt_metadata_destroy(md)
    copy = C.c_void_p()
    check(lib.vkt_trainer_model(t, C.byref(copy)), "vkt_trainer_model")
    if json_out(lib.vkt_model_to_json, copy) != json_out(lib.vkt_model_to_json, m):
        fail("the trainer's model is not the one it was made from")
    lib.vkt_model_destroy(copy)
    lib.vkt_trainer_destroy(t)

    # ---- the recipes ----
    cnn = C.c_void_p()
    check(lib.vkt_model_cnn(10, C.byref(cnn)), "vkt_model_cnn")
    if not json_out(lib.vkt_model_describe, cnn).startswith("[1, 28, 28] conv2d32 relu"):
        fail("cnn describe")
    lib.vkt_model_destroy(cnn)
    g = GptOptions()
    check(lib.vkt_gpt_options_default(C.byref(g), C.c_size_t(C.sizeof(g))), "gpt defaults")
    if (g.layers, g.heads, g.width, g.context) != (4, 4, 128, 128):
        fail("gpt defaults")
    g.vocab, g.layers, g.width, g.heads, g.context = 11, 1, 8, 2, 6
    gpt, dec = C.c_void_p(), C.c_void_p()
    check(lib.vkt_model_gpt(C.byref(g), C.byref(gpt)), "vkt_model_gpt")
    check(lib.vkt_model_gpt_decoder(C.byref(g), C.byref(dec)), "vkt_model_gpt_decoder")
    check(lib.vkt_model_output_shape(dec, dims, C.c_size_t(4), C.byref(rank)), "decoder output")
    if [dims[i] for i in range(rank.value)] != [1, 11]:
        fail("decoder logits %s" % [dims[i] for i in range(rank.value)])
    g.vocab = 1
    expect(lib.vkt_model_gpt(C.byref(g), C.byref(C.c_void_p())), ERROR, "at least 2 tokens", "a vocabulary of 1")
    for h in (gpt, dec, m):
        lib.vkt_model_destroy(h)
    lib.vkt_context_destroy(ctx)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
