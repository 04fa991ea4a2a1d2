#!/usr/bin/env python3
"""Llama's ops (issue 23) against PyTorch: rotary position embeddings exactly as transformers' LlamaRotaryEmbedding and
apply_rotary_pos_emb compute them (inv_freq = 1 / theta^(arange(0, D, 2) / D) and the angles t·inv_freq in fp32,
cos/sin of cat(freqs, freqs), q·cos + rotate_half(q)·sin) and the element-wise product, through the C API (ctypes):
y = rotary(x·W0ᵀ, heads, theta) · silu(x·W1ᵀ), MSE against a target. predict()'s y and one batch's weight gradients
must match PyTorch float64 autograd (relative L2) in fp32 and mixed precision, at Llama's head sizes and at a long
sequence (angles of thousands of radians).

usage: torch_llama_ops.py LIBVKTRAIN_C
"""
import ctypes as C
import os
import sys

try:
    import torch
except ImportError:
    print("python3-torch is not installed (platforms/debian/setup-test-tools.sh)")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from capi_graph import TrainerOptions, FP32, MIXED, check, op, model_input, floats, load  # noqa: E402

lib = load(sys.argv[1])


# transformers' LlamaRotaryEmbedding (fp32 cos/sin), then apply_rotary_pos_emb on [B, heads, T, D] in float64.
def rope_cos_sin(positions, head_size, theta):
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_size, 2, dtype=torch.int64).float() / head_size))
    position_ids = torch.arange(positions)[None, :]
    freqs = (inv_freq[None, :, None].float() @ position_ids[:, None, :].float()).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos()[:, None].double(), emb.sin()[:, None].double()


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def run_case(ctx, batch, positions, heads, head_size, theta, bounds):
    width = heads * head_size
    gen = torch.Generator().manual_seed(positions + head_size)
    x = torch.rand(batch, positions, width, generator=gen) * 2 - 1
    target = torch.rand(batch, positions, width, generator=gen) * 2 - 1
    w0 = (torch.rand(width, width, generator=gen) - 0.5) * (2 / width ** 0.5)
    w1 = (torch.rand(width, width, generator=gen) - 0.5) * (2 / width ** 0.5)
    cos, sin = rope_cos_sin(positions, head_size, theta)
    for precision, name in ((FP32, "fp32"), (MIXED, "mixed")):
        m = C.c_void_p()
        check(lib.vkt_model_create(C.byref(m)), "vkt_model_create")
        xi, ti = model_input(m, "x", [positions, width]), model_input(m, "target", [positions, width])
        q = op(m, "linear", [xi], {"out": width, "bias": 0})
        gate = op(m, "linear", [xi], {"out": width, "bias": 0})
        y = op(m, "mul", [op(m, "rotary", [q], {"heads": heads, "theta": theta}), op(m, "silu", [gate])])
        op(m, "mse_loss", [y, ti])
        o = TrainerOptions()
        check(lib.vkt_trainer_options_default(C.byref(o), C.c_size_t(C.sizeof(o))), "vkt_trainer_options_default")
        o.precision, o.batch_size = precision, batch
        t = C.c_void_p()
        check(lib.vkt_trainer_create(ctx, m, C.byref(o), C.byref(t)), "vkt_trainer_create")
        for pname, w in ((b"linear0.weight", w0), (b"linear1.weight", w1)):
            check(lib.vkt_trainer_set_parameter(t, pname, floats(w), w.numel()), "vkt_trainer_set_parameter")
        xb, tb = floats(x), floats(target)
        feeds = (C.c_void_p * 2)(C.cast(xb, C.c_void_p), C.cast(tb, C.c_void_p))
        n = batch * positions * width
        out, written = (C.c_float * n)(), C.c_size_t()
        check(lib.vkt_trainer_predict(t, feeds, 2, batch, out, n, C.byref(written)), "vkt_trainer_predict")
        grads, loss = (C.c_float * (2 * width * width))(), C.c_float()
        check(lib.vkt_trainer_compute_gradients(t, feeds, 2, batch, C.byref(loss), grads, 2 * width * width,
                                                C.byref(written)), "vkt_trainer_compute_gradients")
        lib.vkt_trainer_destroy(t)
        lib.vkt_model_destroy(m)

        # PyTorch on what the device holds (fp16-rounded inputs and weights in mixed precision), in float64.
        held = (lambda v: v.half().double()) if precision == MIXED else (lambda v: v.double())
        r0, r1 = held(w0).requires_grad_(), held(w1).requires_grad_()
        xr = held(x)
        z = (xr @ r0.t()).view(batch, positions, heads, head_size).transpose(1, 2)
        rotated = (z * cos + rotate_half(z) * sin).transpose(1, 2).reshape(batch, positions, width)
        ref = rotated * torch.nn.functional.silu(xr @ r1.t())
        ((ref - held(target)) ** 2).mean().backward()

        def rel(got, want):
            return float((got - want).norm() / want.norm())
        g = torch.tensor(list(grads), dtype=torch.float64)
        errors = {"y": rel(torch.tensor(list(out), dtype=torch.float64).view_as(ref), ref.detach()),
                  "dW0": rel(g[:width * width].view(width, width), r0.grad),
                  "dW1": rel(g[width * width:].view(width, width), r1.grad)}
        bound = bounds[name]
        print("B=%d T=%d heads=%d D=%d theta=%g %s: relative L2 %s (bound %g)" % (
            batch, positions, heads, head_size, theta, name,
            ", ".join("%s %.2e" % kv for kv in errors.items()), bound))
        for what, err in errors.items():
            if not err <= bound:
                sys.exit("FAIL: %s relative L2 %.3e > %g" % (what, err, bound))


def main():
    ctx = C.c_void_p()
    check(lib.vkt_context_create(None, C.byref(ctx)), "vkt_context_create")
    print("device: " + lib.vkt_context_device_name(ctx).decode())
    run_case(ctx, 2, 128, 4, 64, 500000.0, {"fp32": 1e-5, "mixed": 2e-3})
    run_case(ctx, 1, 96, 3, 128, 10000.0, {"fp32": 1e-5, "mixed": 2e-3})
    # Long: angles up to 2047 rad, where each ulp of fp32 inv_freq (transformers' own rounding) moves an angle ~1e-4.
    run_case(ctx, 1, 2048, 2, 64, 10000.0, {"fp32": 1e-4, "mixed": 2e-3})
    lib.vkt_context_destroy(ctx)
    print("OK")


if __name__ == "__main__":
    main()
