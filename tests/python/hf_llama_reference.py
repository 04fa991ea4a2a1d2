"""A reference Hugging Face Llama in PyTorch, written from transformers' published definition
(transformers/models/llama/modeling_llama.py, LlamaForCausalLM) without the transformers package: Debian's
python3-torch only. The safetensors helpers and save_hf_folder are hf_reference.py's.

  - LlamaRMSNorm: x / sqrt(mean(x^2) + rms_norm_eps) computed in float32 (or wider), times the weight;
  - LlamaRotaryEmbedding: inv_freq = 1 / rope_theta^(2i / head_dim), cos and sin of position * inv_freq repeated
    over both halves, applied as q * cos + rotate_half(q) * sin with rotate_half(x) = cat(-x2, x1);
  - LlamaAttention: q_proj, k_proj, v_proj and o_proj without biases, num_key_value_heads key/value heads repeated
    to num_attention_heads (repeat_kv), scores scaled by 1 / sqrt(head_dim), causal mask, softmax in float32;
  - LlamaMLP: down_proj(silu(gate_proj(x)) * up_proj(x));
  - pre-norm decoder layers, model.norm, lm_head tied to model.embed_tokens when tie_word_embeddings is true.
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LLAMA_DEFAULTS = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=None, hidden_act="silu",
                      max_position_embeddings=2048, initializer_range=0.02, rms_norm_eps=1e-6, use_cache=True,
                      tie_word_embeddings=False, rope_theta=10000.0, rope_scaling=None, attention_bias=False,
                      attention_dropout=0.0, mlp_bias=False, model_type="llama", architectures=["LlamaForCausalLM"])


def full_config(config):
    c = dict(LLAMA_DEFAULTS)
    c.update(config)
    if c["num_key_value_heads"] is None:
        c["num_key_value_heads"] = c["num_attention_heads"]
    return c


class LlamaRMSNorm(nn.Module):
    def __init__(self, hidden, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.variance_epsilon = eps

    def forward(self, x):
        dtype = x.dtype
        h = x.to(torch.float32) if dtype in (torch.float16, torch.bfloat16) else x
        variance = h.pow(2).mean(-1, keepdim=True)
        h = h * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * h.to(dtype)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rotary_cos_sin(head_dim, theta, positions, dtype):
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    freqs = torch.outer(torch.arange(positions, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def repeat_kv(x, n_rep):
    b, kvh, t, d = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(b, kvh, n_rep, t, d).reshape(b, kvh * n_rep, t, d)


class LlamaAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads = c["num_attention_heads"]
        self.kv_heads = c["num_key_value_heads"]
        self.head_dim = c["hidden_size"] // self.heads
        self.theta = c["rope_theta"]
        hidden = c["hidden_size"]
        self.q_proj = nn.Linear(hidden, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, hidden, bias=False)

    def forward(self, x):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = rotary_cos_sin(self.head_dim, self.theta, t, q.dtype)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = repeat_kv(k, self.heads // self.kv_heads)
        v = repeat_kv(v, self.heads // self.kv_heads)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim)
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(mask, torch.finfo(scores.dtype).min)
        p = F.softmax(scores, dim=-1, dtype=torch.float32 if q.dtype != torch.float64 else torch.float64).to(q.dtype)
        y = torch.matmul(p, v).transpose(1, 2).reshape(b, t, -1)
        return self.o_proj(y)


class LlamaMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, i = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(h, i, bias=False)
        self.up_proj = nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = LlamaAttention(c)
        self.mlp = LlamaMLP(c)
        self.input_layernorm = LlamaRMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.post_attention_layernorm = LlamaRMSNorm(c["hidden_size"], c["rms_norm_eps"])

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList([LlamaDecoderLayer(c) for _ in range(c["num_hidden_layers"])])
        self.norm = LlamaRMSNorm(c["hidden_size"], c["rms_norm_eps"])

    def forward(self, ids):
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class LlamaForCausalLM(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = full_config(config)
        self.config = c
        self.model = LlamaModel(c)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        if c["tie_word_embeddings"]:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, ids):
        return self.lm_head(self.model(ids))

    def randomize(self, seed, scale=0.1):
        """Random weights, the RMSNorm weights around 1, so every tensor matters."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("layernorm.weight") or name == "model.norm.weight":
                    p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(scale * torch.randn(p.shape, generator=g))

    def load_strict(self, tensors):
        """from_pretrained's key check: every key a parameter, every parameter present (a tied head may be absent)."""
        sd = {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}
        result = self.load_state_dict(sd, strict=False)
        allowed = {"lm_head.weight"} if self.config["tie_word_embeddings"] else set()
        missing = set(result.missing_keys) - allowed
        if missing or result.unexpected_keys:
            raise RuntimeError("strict load failed: missing %s, unexpected %s" % (sorted(missing),
                                                                                   result.unexpected_keys))
        if self.config["tie_word_embeddings"]:
            self.lm_head.weight = self.model.embed_tokens.weight


def inv_freq(config):
    """The rotary_emb.inv_freq buffer older transformers versions saved with each layer."""
    c = full_config(config)
    d = c["hidden_size"] // c["num_attention_heads"]
    return (1.0 / (c["rope_theta"] ** (np.arange(0, d, 2, dtype=np.float64) / d))).astype(np.float32)
