#!/usr/bin/env python3
"""MobileNet's ops (issue 24) against PyTorch: ReLU6, hardswish, hardsigmoid, adaptive average pooling (global and
with overlapping bins) and squeeze-excitation's channel-wise multiply, through the C API (ctypes), in one block:
a = hardswish(conv1x1(x)), s = hardsigmoid(conv1x1(adaptive_avg_pool2d(a, 1))), y = adaptive_avg_pool2d(relu6(a·s),
3, 2), MSE against a target. predict()'s y and one batch's weight gradients must match PyTorch float64 autograd
(F.relu6, F.hardswish, F.hardsigmoid, F.adaptive_avg_pool2d; relative L2) in fp32 and mixed precision, on an odd
7x5 plane (bins that overlap) and on MobileNetV3's 7x7 head.

usage: torch_vision_ops.py LIBVKTRAIN_C
"""
import ctypes as C
import os
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("python3-torch is not installed (platforms/debian/setup-test-tools.sh)")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from capi_graph import TrainerOptions, FP32, MIXED, check, op, model_input, floats, load  # noqa: E402

lib = load(sys.argv[1])


def run_case(ctx, batch, channels, h, w, bounds):
    gen = torch.Generator().manual_seed(channels * 100 + h * 10 + w)
    x = torch.rand(batch, channels, h, w, generator=gen) * 8 - 4
    target = torch.rand(batch, channels, 3, 2, generator=gen) * 4
    w0 = (torch.rand(channels, channels, 1, 1, generator=gen) - 0.5) * (6 / channels ** 0.5)
    w1 = (torch.rand(channels, channels, 1, 1, generator=gen) - 0.5) * (12 / channels ** 0.5)
    for precision, name in ((FP32, "fp32"), (MIXED, "mixed")):
        m = C.c_void_p()
        check(lib.vkt_model_create(C.byref(m)), "vkt_model_create")
        xi, ti = model_input(m, "x", [channels, h, w]), model_input(m, "target", [channels, 3, 2])
        conv = {"out": channels, "kernel_h": 1, "bias": 0}
        a = op(m, "hardswish", [op(m, "conv2d", [xi], conv)])
        s = op(m, "hardsigmoid", [op(m, "conv2d", [op(m, "adaptive_avg_pool2d", [a])], conv)])
        y = op(m, "adaptive_avg_pool2d", [op(m, "relu6", [op(m, "channel_mul", [a, s])])], {"out_h": 3, "out_w": 2})
        op(m, "mse_loss", [y, ti])
        o = TrainerOptions()
        check(lib.vkt_trainer_options_default(C.byref(o), C.c_size_t(C.sizeof(o))), "vkt_trainer_options_default")
        o.precision, o.batch_size = precision, batch
        t = C.c_void_p()
        check(lib.vkt_trainer_create(ctx, m, C.byref(o), C.byref(t)), "vkt_trainer_create")
        for pname, wt in ((b"conv0.weight", w0), (b"conv1.weight", w1)):
            check(lib.vkt_trainer_set_parameter(t, pname, floats(wt), wt.numel()), "vkt_trainer_set_parameter")
        xb, tb = floats(x), floats(target)
        feeds = (C.c_void_p * 2)(C.cast(xb, C.c_void_p), C.cast(tb, C.c_void_p))
        n = batch * channels * 6
        out, written = (C.c_float * n)(), C.c_size_t()
        check(lib.vkt_trainer_predict(t, feeds, 2, batch, out, n, C.byref(written)), "vkt_trainer_predict")
        size = channels * channels
        grads, loss = (C.c_float * (2 * size))(), C.c_float()
        check(lib.vkt_trainer_compute_gradients(t, feeds, 2, batch, C.byref(loss), grads, 2 * size, C.byref(written)),
              "vkt_trainer_compute_gradients")
        lib.vkt_trainer_destroy(t)
        lib.vkt_model_destroy(m)

        # PyTorch on what the device holds (fp16-rounded inputs and weights in mixed precision), in float64.
        held = (lambda v: v.half().double()) if precision == MIXED else (lambda v: v.double())
        r0, r1 = held(w0).requires_grad_(), held(w1).requires_grad_()
        ra = F.hardswish(F.conv2d(held(x), r0))
        rs = F.hardsigmoid(F.conv2d(F.adaptive_avg_pool2d(ra, 1), r1))
        ref = F.adaptive_avg_pool2d(F.relu6(ra * rs), (3, 2))
        ((ref - held(target)) ** 2).mean().backward()

        def rel(got, want):
            return float((got - want).norm() / want.norm())
        g = torch.tensor(list(grads), dtype=torch.float64)
        errors = {"y": rel(torch.tensor(list(out), dtype=torch.float64).view_as(ref), ref.detach()),
                  "dW0": rel(g[:size].view_as(r0), r0.grad), "dW1": rel(g[size:].view_as(r1), r1.grad)}
        bound = bounds[name]
        print("B=%d C=%d %dx%d %s: relative L2 %s (bound %g)" % (
            batch, channels, h, w, name, ", ".join("%s %.2e" % kv for kv in errors.items()), bound))
        for what, err in errors.items():
            if not err <= bound:
                sys.exit("FAIL: %s relative L2 %.3e > %g" % (what, err, bound))


def main():
    ctx = C.c_void_p()
    check(lib.vkt_context_create(None, C.byref(ctx)), "vkt_context_create")
    print("device: " + lib.vkt_context_device_name(ctx).decode())
    run_case(ctx, 3, 16, 7, 5, {"fp32": 1e-5, "mixed": 1e-2})
    run_case(ctx, 2, 24, 7, 7, {"fp32": 1e-5, "mixed": 1e-2})
    lib.vkt_context_destroy(ctx)
    print("OK")


if __name__ == "__main__":
    main()
