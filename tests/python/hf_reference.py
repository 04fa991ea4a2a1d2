"""Reference Hugging Face models in PyTorch, written from transformers' published definitions (no transformers
package: Debian's python3-torch only), and a safetensors writer/reader for their checkpoints.

GPT-2 follows transformers/models/gpt2/modeling_gpt2.py (GPT2LMHeadModel): Conv1D layers (y = x W + b with W
[in, out]), the fused c_attn split into q, k, v, scores scaled by 1/sqrt(head_dim) with the causal mask from the
non-persistent "bias" buffer, gelu_new (the tanh form) or gelu (erf), pre-LayerNorm blocks, ln_f and a head tied to
wte unless tie_word_embeddings is false. Shared with the Llama reference (hf_llama_reference.py may sit beside it).
"""
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

GPT2_DEFAULTS = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12, n_inner=None,
                     activation_function="gelu_new", layer_norm_epsilon=1e-5, tie_word_embeddings=True,
                     resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1, initializer_range=0.02,
                     scale_attn_weights=True, model_type="gpt2", architectures=["GPT2LMHeadModel"])


class NewGELUActivation(nn.Module):  # transformers.activations.NewGELUActivation ("gelu_new")
    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


ACT2FN = {"gelu_new": NewGELUActivation, "gelu_pytorch_tanh": NewGELUActivation, "gelu": nn.GELU}


class Conv1D(nn.Module):  # transformers.pytorch_utils.Conv1D
    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


class GPT2Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        p = c["n_positions"]
        self.register_buffer("bias", torch.tril(torch.ones((p, p), dtype=torch.bool)).view(1, 1, p, p),
                             persistent=False)
        self.register_buffer("masked_bias", torch.tensor(-1e4), persistent=False)
        self.embed_dim = c["n_embd"]
        self.num_heads = c["n_head"]
        self.head_dim = self.embed_dim // self.num_heads
        self.c_attn = Conv1D(3 * self.embed_dim, self.embed_dim)
        self.c_proj = Conv1D(self.embed_dim, self.embed_dim)

    def _split_heads(self, t):
        return t.view(t.size()[:-1] + (self.num_heads, self.head_dim)).permute(0, 2, 1, 3)

    def forward(self, x):
        q, k, v = self.c_attn(x).split(self.embed_dim, dim=2)
        q, k, v = self._split_heads(q), self._split_heads(k), self._split_heads(v)
        w = torch.matmul(q, k.transpose(-1, -2)) / torch.full([], v.size(-1) ** 0.5, dtype=q.dtype)
        qn, kn = q.size(-2), k.size(-2)
        causal = self.bias[:, :, kn - qn:kn, :kn]
        w = torch.where(causal, w, torch.full([], torch.finfo(w.dtype).min, dtype=w.dtype))
        w = F.softmax(w, dim=-1)
        a = torch.matmul(w, v).permute(0, 2, 1, 3).contiguous()
        a = a.view(a.size()[:-2] + (self.embed_dim,))
        return self.c_proj(a)


class GPT2MLP(nn.Module):
    def __init__(self, inner, c):
        super().__init__()
        self.c_fc = Conv1D(inner, c["n_embd"])
        self.c_proj = Conv1D(c["n_embd"], inner)
        self.act = ACT2FN[c["activation_function"]]()

    def forward(self, x):
        return self.c_proj(self.act(self.c_fc(x)))


class GPT2Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        inner = c["n_inner"] if c.get("n_inner") is not None else 4 * c["n_embd"]
        self.ln_1 = nn.LayerNorm(c["n_embd"], eps=c["layer_norm_epsilon"])
        self.attn = GPT2Attention(c)
        self.ln_2 = nn.LayerNorm(c["n_embd"], eps=c["layer_norm_epsilon"])
        self.mlp = GPT2MLP(inner, c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wte = nn.Embedding(c["vocab_size"], c["n_embd"])
        self.wpe = nn.Embedding(c["n_positions"], c["n_embd"])
        self.h = nn.ModuleList([GPT2Block(c) for _ in range(c["n_layer"])])
        self.ln_f = nn.LayerNorm(c["n_embd"], eps=c["layer_norm_epsilon"])

    def forward(self, ids):
        pos = torch.arange(0, ids.size(-1), dtype=torch.long).unsqueeze(0)
        x = self.wte(ids) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.ln_f(x)


class GPT2LMHeadModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = dict(GPT2_DEFAULTS)
        c.update(config)
        self.config = c
        self.transformer = GPT2Model(c)
        self.lm_head = nn.Linear(c["n_embd"], c["vocab_size"], bias=False)
        if c["tie_word_embeddings"]:
            self.lm_head.weight = self.transformer.wte.weight

    def forward(self, ids):
        return self.lm_head(self.transformer(ids))

    def randomize(self, seed, scale=0.1):
        """Random weights (every parameter, LayerNorms and biases included, so every tensor matters)."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                    p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(scale * torch.randn(p.shape, generator=g))

    def load_strict(self, tensors):
        """from_pretrained's key check: every key must be a parameter, every parameter present, except a tied
        head (save_pretrained leaves it out and tie_weights restores it)."""
        sd = {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}
        result = self.load_state_dict(sd, strict=False)
        allowed = {"lm_head.weight"} if self.config["tie_word_embeddings"] else set()
        missing = set(result.missing_keys) - allowed
        if missing or result.unexpected_keys:
            raise RuntimeError("strict load failed: missing %s, unexpected %s" % (sorted(missing),
                                                                                   result.unexpected_keys))
        if self.config["tie_word_embeddings"]:
            self.lm_head.weight = self.transformer.wte.weight


# ---- safetensors without the safetensors package ----

_DTYPES = {"F32": (np.float32, 4), "I64": (np.int64, 8), "I32": (np.int32, 4), "BF16": (None, 2), "F16": (np.float16, 2),
           "BOOL": (np.bool_, 1), "U8": (np.uint8, 1)}


def bf16_bytes(a):
    """float32 values rounded to bfloat16 (by torch), as raw little-endian bytes."""
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(torch.bfloat16)
    return t.view(torch.int16).numpy().tobytes()


def write_safetensors(path, tensors, metadata=None, dtype="F32"):
    """tensors: {name: numpy array} in order; float arrays are stored as `dtype` (F32, F16 or BF16), integer and bool
    arrays as they are."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, a in tensors.items():
        a = np.asarray(a)
        if a.dtype == np.float32 or a.dtype == np.float64:
            if dtype == "BF16":
                data, dt = bf16_bytes(a), "BF16"
            elif dtype == "F16":
                data, dt = np.ascontiguousarray(a, dtype="<f2").tobytes(), "F16"
            else:
                data, dt = np.ascontiguousarray(a, dtype=np.float32).tobytes(), "F32"
        elif a.dtype == np.int64:
            data, dt = a.astype("<i8").tobytes(), "I64"
        elif a.dtype == np.int32:
            data, dt = a.astype("<i4").tobytes(), "I32"
        elif a.dtype == np.bool_:
            data, dt = a.tobytes(), "BOOL"
        else:
            raise ValueError("unsupported dtype %s" % a.dtype)
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read_safetensors(path, raw=False):
    """{name: numpy array} (BF16 widened to float32), or with raw=True {name: (dtype, shape, bytes)}; and the
    metadata."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, h in header.items():
        b, e = h["data_offsets"]
        blob = data[b:e]
        if raw:
            out[name] = (h["dtype"], h["shape"], blob)
        elif h["dtype"] == "BF16":
            bits = np.frombuffer(blob, dtype="<u2").astype(np.uint32) << 16
            out[name] = bits.view(np.float32).reshape(h["shape"])
        else:
            a = np.frombuffer(blob, dtype=_DTYPES[h["dtype"]][0]).reshape(h["shape"]).copy()
            out[name] = a.astype(np.float32) if h["dtype"] == "F16" else a
    return out, meta


def save_hf_folder(folder, config, tensors, dtype="F32", shards=1):
    """A Hugging Face folder: config.json and model.safetensors, or `shards` files and model.safetensors.index.json."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    names = list(tensors)
    if shards == 1:
        write_safetensors(os.path.join(folder, "model.safetensors"), tensors, {"format": "pt"}, dtype)
        return
    weight_map = {}
    per = (len(names) + shards - 1) // shards
    for s in range(shards):
        part = names[s * per:(s + 1) * per]
        file = "model-%05d-of-%05d.safetensors" % (s + 1, shards)
        write_safetensors(os.path.join(folder, file), {k: tensors[k] for k in part}, {"format": "pt"}, dtype)
        weight_map.update({k: file for k in part})
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=2)


def relative_l2(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))
