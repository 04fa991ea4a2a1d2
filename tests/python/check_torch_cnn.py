#!/usr/bin/env python3
"""PyTorch as the reference for the CNN recipe's forward pass and weight layout.

Loads the weights `vktrain train --model cnn` wrote into docs/results.md's torch.nn.Sequential (strict
load_state_dict after the rename table of the CNN recipe), evaluates the first test images in float64, and compares the
test loss and accuracy with what `vktrain eval --precision fp32` printed for the same images.

usage: check_torch_cnn.py WEIGHTS DATA_DIR COUNT VKTRAIN_EVAL_LINE
"""
import gzip
import struct
import sys

import torch

from safetensors_reader import read_safetensors


def read_idx(path, count):
    with gzip.open(path, "rb") as f:
        magic = struct.unpack(">I", f.read(4))[0]
        dims = [struct.unpack(">I", f.read(4))[0] for _ in range(magic & 0xFF)]
        per = 1
        for d in dims[1:]:
            per *= d
        raw = f.read(count * per)
    return torch.tensor(list(raw), dtype=torch.float64).reshape([count] + dims[1:])


# The rename table of docs/results.md (the CNN recipe): vktrain's names -> the indices of this nn.Sequential.
RENAME = {"conv0": "0", "conv1": "3", "linear0": "7", "linear1": "9"}


def main():
    weights, data_dir, count, line = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    tensors, _ = read_safetensors(weights)
    state = {}
    for name, t in tensors.items():
        layer, what = name.split(".", 1)
        state[RENAME[layer] + "." + what] = t
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(3136, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 10)).double()
    model.load_state_dict({k: v.double() for k, v in state.items()}, strict=True)
    x = read_idx(data_dir + "/t10k-images-idx3-ubyte.gz", count).reshape(count, 1, 28, 28) / 255.0
    y = read_idx(data_dir + "/t10k-labels-idx1-ubyte.gz", count).long()
    with torch.no_grad():
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(1) == y).double().mean().item()
    fields = line.split()
    got_loss = float(fields[fields.index("test_loss") + 1])
    got_accuracy = float(fields[fields.index("test_accuracy") + 1])
    print("torch float64: test_loss %.6f test_accuracy %.4f; vktrain fp32: %s" % (loss, accuracy, line.strip()))
    ok = abs(loss - got_loss) <= 1e-3 + 1e-3 * abs(loss) and abs(accuracy - got_accuracy) <= 1.5 / count
    print("ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
