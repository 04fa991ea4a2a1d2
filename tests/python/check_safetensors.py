#!/usr/bin/env python3
"""Reads a vktrain checkpoint with the Python `safetensors` package (as a PyTorch user would) and checks
the tensor names, shapes, dtype and values against what `vktrain` says it wrote.

usage: check_safetensors.py WEIGHTS.safetensors HIDDEN,SIZES INPUTS CLASSES"""
import json
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file


def main() -> int:
    path, hidden, inputs, classes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    sizes = [inputs] + [int(h) for h in hidden.split(",") if h] + [classes]
    tensors = load_file(path)
    expected = {}
    for i in range(len(sizes) - 1):
        expected[f"linear{i}.weight"] = (sizes[i + 1], sizes[i])  # PyTorch nn.Linear layout: (out, in)
        expected[f"linear{i}.bias"] = (sizes[i + 1],)
    if set(tensors) != set(expected):
        print(f"FAIL: tensor names {sorted(tensors)} != {sorted(expected)}")
        return 1
    for name, shape in expected.items():
        t = tensors[name]
        if t.dtype != np.float32 or tuple(t.shape) != shape or not np.all(np.isfinite(t)):
            print(f"FAIL: {name}: dtype {t.dtype} shape {t.shape} (want float32 {shape}), finite {np.all(np.isfinite(t))}")
            return 1
        if float(np.abs(t).max()) == 0.0:
            print(f"FAIL: {name} is all zeros")
            return 1
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata() or {}
    want_model = "-".join(str(s) for s in sizes[:1]) + "".join(f"-{s}(relu)" for s in sizes[1:-1]) + f"-{sizes[-1]}"
    if meta.get("vktrain_model") != want_model:
        print(f"FAIL: metadata {json.dumps(meta)} lacks vktrain_model={want_model}")
        return 1
    print(f"OK: {len(tensors)} tensors, {sum(t.size for t in tensors.values())} parameters, metadata {json.dumps(meta)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
