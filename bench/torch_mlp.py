#!/usr/bin/env python3
"""The PyTorch side of the benchmark comparison (bench/run_suite.sh, bench/gpu.sh).

Trains the same MLP as `vktrain train` (784-H1-...-10, ReLU, AdamW lr 1e-3, batch B, cross-entropy) on the same
Fashion-MNIST files for one epoch and reports samples/s; on CUDA optionally with AMP + GradScaler (the mixed
precision reference), and times fp16 matmuls at given sizes. Writes one JSON object (--out) and a line per result.

  torch_mlp.py [--data DIR] [--hidden 256,128] [--batch 128] [--limit N] [--threads T] [--device cpu|cuda]
               [--amp] [--matmul 1024,4096] [--out FILE]
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time


def read_idx(path):
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return shape, data[4 + 4 * dims:]


def find(data_dir, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(data_dir, name)
        if os.path.exists(p):
            return p
    sys.exit(f"torch_mlp.py: error: {stem}[.gz] not found in {data_dir}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--hidden", default="256,128")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true")
    ap.add_argument("--matmul", default="")
    ap.add_argument("--out", default="")
    a = ap.parse_args()

    import torch
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    result = {"torch": torch.__version__, "device": a.device, "threads": torch.get_num_threads(),
              "blas": "openblas" if "openblas" in torch.__config__.show().lower() else "other"}
    if dev.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(dev)

    shape, pixels = read_idx(find(a.data, "train-images-idx3-ubyte"))
    _, labels = read_idx(find(a.data, "train-labels-idx1-ubyte"))
    n = shape[0] if a.limit <= 0 else min(a.limit, shape[0])
    x = torch.frombuffer(bytearray(pixels[:n * 784]), dtype=torch.uint8).reshape(n, 784).float().div_(255.0)
    y = torch.frombuffer(bytearray(labels[:n]), dtype=torch.uint8).long()
    x, y = x.to(dev), y.to(dev)

    torch.manual_seed(1)
    sizes = [784] + [int(h) for h in a.hidden.split(",") if h] + [10]
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i + 2 < len(sizes):
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    loss_fn = torch.nn.CrossEntropyLoss()
    scaler = torch.cuda.amp.GradScaler() if a.amp else None

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            with torch.autocast(device_type="cuda", dtype=torch.float16):
                loss = loss_fn(model(xb), yb)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
        return loss

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    # One warm-up step (allocations, kernel selection), then the timed epoch over shuffled batches.
    step(x[:a.batch], y[:a.batch])
    sync()
    perm = torch.randperm(n, device=dev)
    t0 = time.perf_counter()
    for s in range(0, n, a.batch):
        idx = perm[s:s + a.batch]
        loss = step(x[idx], y[idx])
    sync()
    seconds = time.perf_counter() - t0
    result.update({"model": "-".join(map(str, sizes)), "batch": a.batch, "samples": n, "amp": a.amp,
                   "epoch_seconds": seconds, "samples_per_second": n / seconds, "final_loss": float(loss)})
    print(f"torch {a.device} mlp {result['model']} batch {a.batch}{' amp' if a.amp else ''}: "
          f"{n / seconds:.0f} samples/s ({seconds:.2f} s for {n} samples, {result['threads']} threads)")

    mm = []
    for size in [int(s) for s in a.matmul.split(",") if s]:
        dtype = torch.float16 if dev.type == "cuda" else torch.float32
        p = torch.randn(size, size, device=dev, dtype=dtype)
        q = torch.randn(size, size, device=dev, dtype=dtype)
        torch.matmul(p, q)
        sync()
        reps = max(3, int(2e11 / (2 * size ** 3))) if dev.type == "cuda" else 3
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.matmul(p, q)
        sync()
        s = (time.perf_counter() - t0) / reps
        gflops = 2 * size ** 3 / s * 1e-9
        mm.append({"size": size, "dtype": str(dtype).replace("torch.", ""), "microseconds": s * 1e6,
                   "gflops": gflops})
        print(f"torch matmul {size}^3 {mm[-1]['dtype']}: {gflops:.1f} GFLOP/s")
    result["matmul"] = mm
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
