#!/usr/bin/env python3
"""PyTorch as the reference for the GPT recipe's network and weight names.

Builds a nanoGPT-style module tree (transformer.wte / wpe / h.<i>.{ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc,
mlp.c_proj} / ln_f, lm_head), loads the weights `vktrain train --model gpt:...` wrote with load_state_dict(strict=True)
under vktrain's own names, rebuilds the validation split of the corpus by the recipe's rules with the vocabulary
stored in the file, and compares its float64 validation loss with what `vktrain eval --precision fp32` printed.

usage: check_torch_gpt.py WEIGHTS TEXT_DIR HEADS WINDOWS VKTRAIN_EVAL_LINE
"""
import math
import os
import sys

import torch

from safetensors_reader import read_safetensors


def corpus(folder):
    text = ""
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.islink(path) or not os.path.isfile(path) or name.endswith(".dat") or name.endswith(".u8"):
            continue
        try:
            s = open(path, "rb").read().decode("utf-8")
        except UnicodeDecodeError:
            continue
        if "\0" not in s:
            text += s
    return text


class Block(torch.nn.Module):
    def __init__(self, c, heads, mlp):
        super().__init__()
        self.heads = heads
        self.ln_1 = torch.nn.LayerNorm(c)
        self.attn = torch.nn.Module()
        self.attn.c_attn = torch.nn.Linear(c, 3 * c)
        self.attn.c_proj = torch.nn.Linear(c, c)
        self.ln_2 = torch.nn.LayerNorm(c)
        self.mlp = torch.nn.Module()
        self.mlp.c_fc = torch.nn.Linear(c, mlp)
        self.mlp.c_proj = torch.nn.Linear(mlp, c)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.attn.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        s = (q @ k.transpose(-2, -1)) / math.sqrt(c // self.heads)
        s = s.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), float("-inf"))
        y = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(b, t, c)
        x = x + self.attn.c_proj(y)
        return x + self.mlp.c_proj(torch.nn.functional.gelu(self.mlp.c_fc(self.ln_2(x))))


class Gpt(torch.nn.Module):
    def __init__(self, vocab, context, c, layers, heads, mlp):
        super().__init__()
        self.transformer = torch.nn.Module()
        self.transformer.wte = torch.nn.Embedding(vocab, c)
        self.transformer.wpe = torch.nn.Embedding(context, c)
        self.transformer.h = torch.nn.ModuleList([Block(c, heads, mlp) for _ in range(layers)])
        self.transformer.ln_f = torch.nn.LayerNorm(c)
        self.lm_head = torch.nn.Linear(c, vocab, bias=False)

    def forward(self, ids):
        x = self.transformer.wte(ids) + self.transformer.wpe(torch.arange(ids.shape[1]))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def main():
    weights, text_dir, heads, windows, line = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    state, metadata = read_safetensors(weights)
    vocab = metadata["vktrain_vocabulary"]
    v, c = state["transformer.wte.weight"].shape
    context = state["transformer.wpe.weight"].shape[0]
    layers = len([k for k in state if k.endswith(".ln_1.weight")])
    mlp = state["transformer.h.0.mlp.c_fc.weight"].shape[0]
    model = Gpt(v, context, c, layers, heads, mlp).double()
    model.load_state_dict({k: t.double() for k, t in state.items()}, strict=True)
    text = corpus(text_dir)
    index = {ch: i for i, ch in enumerate(vocab)}
    val = [index[ch] for ch in text[int(len(text) * 0.9):]]
    ids = torch.tensor([val[w * context:(w + 1) * context] for w in range(windows)])
    targets = torch.tensor([val[w * context + 1:(w + 1) * context + 1] for w in range(windows)])
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model(ids).reshape(-1, v), targets.reshape(-1)).item()
    fields = line.split()
    got = float(fields[fields.index("val_loss") + 1])
    print("torch float64: val_loss %.6f over %d windows; vktrain fp32: %s" % (loss, windows, line.strip()))
    ok = abs(loss - got) <= 2e-4 * abs(loss)
    print("ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
