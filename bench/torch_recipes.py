#!/usr/bin/env python3
"""The PyTorch side of the recipe comparison (bench/gpu.sh): training steps of the CNN and GPT recipes' networks.

  torch_recipes.py --model cnn|gpt [--device cpu|cuda] [--amp] [--steps N] [--warmup-steps N] [--threads T]
                   [--out FILE]

  - cnn: the CNN recipe (docs/results.md; tests/python/check_torch_cnn.py's network): conv5x5(32)-ReLU-pool,
    conv5x5(64)-ReLU-pool, linear 3136-1024, ReLU, linear 10; AdamW lr 1e-3, weight decay 0.01; batch 128 of
    28x28 images; samples/s.
  - gpt: the GPT recipe (bench/run_gpt_recipe.sh: layers 4, heads 4, width 128, context 128, MLP 512, a character
    vocabulary of 96; tests/python/check_torch_gpt.py's nanoGPT); AdamW 3e-4, weight decay 0.1, gradient clipping
    at 1.0; batch 32 windows; tokens/s.
Batches are synthetic (random images and labels, random token ids): the step's time does not depend on the values.
--amp: torch.autocast(fp16) + GradScaler (CUDA), the reference for vktrain's mixed precision. The first
--warmup-steps steps are not timed; CUDA is synchronised around the timed steps. One JSON object (--out).
"""
import argparse
import contextlib
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))


def cnn():
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(3136, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 10))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, choices=["cnn", "gpt"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup-steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    g = torch.Generator().manual_seed(1)
    if a.model == "cnn":
        model, batch, unit = cnn(), 128, "samples"
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        x = torch.rand(batch, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (batch,), generator=g)
        per_step = batch
    else:
        import check_torch_gpt
        vocab, context, batch = 96, 128, 32
        model, unit = check_torch_gpt.Gpt(vocab, context, 128, 4, 4, 512), "tokens"
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
        x = torch.randint(0, vocab, (batch, context), generator=g)
        y = torch.randint(0, vocab, (batch, context), generator=g)
        per_step = batch * context
    model.to(dev).train()
    x, y = x.to(dev), y.to(dev)
    amp = a.amp and dev.type == "cuda"
    scaler = torch.cuda.amp.GradScaler(enabled=amp)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.float16) if amp else contextlib.nullcontext():
            out = model(x)
            loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]).float(), y.reshape(-1))
        scaler.scale(loss).backward()
        if a.model == "gpt":
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        return loss

    for _ in range(a.warmup_steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    r = dict(model=a.model, device=str(dev), amp=amp, steps=a.steps, batch=batch, seconds=seconds,
             step_ms=1e3 * seconds / a.steps, loss=float(loss), torch=torch.__version__,
             threads=torch.get_num_threads(), gpu=torch.cuda.get_device_name(0) if dev.type == "cuda" else "",
             synthetic_batches=True)
    r[unit + "_per_second"] = per_step * a.steps / seconds
    print("torch %s %s%s: %.2f ms per step, %.0f %s/s" % (a.model, dev, " amp" if amp else "", r["step_ms"],
                                                       r[unit + "_per_second"], unit))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(r, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
