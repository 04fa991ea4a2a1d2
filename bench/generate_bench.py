#!/usr/bin/python3
"""Generation speed: `vktrain generate` against PyTorch CPU greedy generation with a key/value cache, same weights.

  /usr/bin/python3 bench/generate_bench.py --vktrain build/bin/vktrain [--out FILE.json] [--work DIR]
      [--tokens N] [--runner 'platforms/debian/run-in-root.sh build'] [--torch-device cpu|cuda] [--threads N]

Two models, both greedy (temperature 0), fp32 unless --precision says otherwise:
  - gpt: the GPT recipe's network (bench/run_gpt_recipe.sh: gpt:layers=4,heads=4,width=128,context=128), trained by
    `vktrain train` for --train-steps steps on the fortunes corpus (a character vocabulary), read by PyTorch from the
    weights file under vktrain's names (tests/python/check_torch_gpt.py's nanoGPT module);
  - llama: a tiny LlamaForCausalLM (tests/python/hf_llama_reference.py; grouped-query attention, a byte-level BPE of
    258 tokens as tests/python/check_hf_llama.py builds it), random weights, written as a Hugging Face folder and
    imported with `vktrain import`.
PyTorch runs each model one position per token over a key/value cache (the per-layer modules of the reference
models, stepped here with a cache). vktrain runs `generate` over its key/value cache and with --no-cache (the whole
window per token). Tokens/s exclude start-up and the prompt: vktrain's from its "ms per token" line (every token
after the first), PyTorch's timed the same way (the loop after the first token). The generated texts must be the
same (reported as "same_text"; a difference is printed, with the first token that differs).
The JSON (--out) holds every row, the load average and the versions; the table goes to stdout.
"""
import argparse
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))
import check_torch_gpt as gpt_ref  # noqa: E402
import hf_llama_reference as llama_ref  # noqa: E402
import hf_reference as hf_ref  # noqa: E402
from byte_level import bytes_to_unicode  # noqa: E402
from safetensors_reader import read_safetensors  # noqa: E402

GPT_SPEC = "gpt:layers=4,heads=4,width=128,context=128"
LLAMA_CONFIG = dict(vocab_size=260, hidden_size=128, intermediate_size=344, num_hidden_layers=4,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6,
                    model_type="llama", architectures=["LlamaForCausalLM"], hidden_act="silu")


def run(cmd, runner=()):
    p = subprocess.run(list(runner) + cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise SystemExit("generate_bench: %s exited %d: %s" % (" ".join(cmd), p.returncode,
                                                               p.stderr.decode(errors="replace").strip()))
    return p


def vktrain_generate(args, weights, prompt, tokens, no_cache):
    cmd = [args.vktrain, "generate", "--weights", weights, "--prompt", prompt, "--tokens", str(tokens),
           "--temperature", "0", "--precision", args.precision] + (["--no-cache"] if no_cache else [])
    p = run(cmd, args.runner)
    err = p.stderr.decode(errors="replace")
    m = re.search(r"([0-9.]+) ms per token", err)
    if not m:
        raise SystemExit("generate_bench: no 'ms per token' line in: " + err)
    device = re.search(r"vktrain: generating .*?, .*?, .*?, (.*)", err)
    return p.stdout, 1e3 / float(m.group(1)), (device.group(1).strip() if device else "")


def timed_greedy(step, prompt_ids, tokens):
    """Greedy generation with step(token, position) -> logits over a cache: the prompt, then `tokens` new ones.
    Returns (new ids, tokens/s after the first new token)."""
    out = []
    with torch.no_grad():
        for p, t in enumerate(prompt_ids):
            logits = step(t, p)
        start = None
        for i in range(tokens):
            nxt = int(torch.argmax(logits))
            out.append(nxt)
            if i == 0:
                start = time.perf_counter()
            if i + 1 < tokens:
                logits = step(nxt, len(prompt_ids) + i)
        seconds = time.perf_counter() - start
    # tokens - 1 steps after the first token, as vktrain's "ms per token"
    return out, (tokens - 1) / seconds if seconds > 0 else float("inf")


def gpt_stepper(model, heads, device):
    """One position of check_torch_gpt.Gpt over a key/value cache (lists of [1, heads, t, d] tensors per layer)."""
    tr = model.transformer
    cache = [[None, None] for _ in tr.h]

    def step(token, position):
        x = tr.wte(torch.tensor([[token]], device=device)) + tr.wpe(torch.tensor([[position]], device=device))
        for block, kv in zip(tr.h, cache):
            c = x.shape[-1]
            q, k, v = block.attn.c_attn(block.ln_1(x)).split(c, dim=2)
            q, k, v = (z.view(1, 1, heads, c // heads).transpose(1, 2) for z in (q, k, v))
            kv[0] = k if kv[0] is None else torch.cat([kv[0], k], dim=2)
            kv[1] = v if kv[1] is None else torch.cat([kv[1], v], dim=2)
            s = (q @ kv[0].transpose(-2, -1)) / math.sqrt(c // heads)
            y = (torch.softmax(s, dim=-1) @ kv[1]).transpose(1, 2).reshape(1, 1, c)
            x = x + block.attn.c_proj(y)
            x = x + block.mlp.c_proj(F.gelu(block.mlp.c_fc(block.ln_2(x))))
        return model.lm_head(tr.ln_f(x))[0, -1]

    return step


def llama_stepper(model, device):
    """One position of hf_llama_reference.LlamaForCausalLM over a key/value cache (rotated keys)."""
    c = model.config
    heads, kv_heads = c["num_attention_heads"], c["num_key_value_heads"]
    hd = c["hidden_size"] // heads
    cos, sin = llama_ref.rotary_cos_sin(hd, c["rope_theta"], c["max_position_embeddings"], torch.float32)
    cos, sin = cos.to(device), sin.to(device)
    cache = [[None, None] for _ in model.model.layers]

    def step(token, position):
        x = model.model.embed_tokens(torch.tensor([[token]], device=device))
        cp, sp = cos[position], sin[position]
        for layer, kv in zip(model.model.layers, cache):
            a = layer.self_attn
            n = layer.input_layernorm(x)
            q = a.q_proj(n).view(1, 1, heads, hd).transpose(1, 2)
            k = a.k_proj(n).view(1, 1, kv_heads, hd).transpose(1, 2)
            v = a.v_proj(n).view(1, 1, kv_heads, hd).transpose(1, 2)
            q = q * cp + llama_ref.rotate_half(q) * sp
            k = k * cp + llama_ref.rotate_half(k) * sp
            kv[0] = k if kv[0] is None else torch.cat([kv[0], k], dim=2)
            kv[1] = v if kv[1] is None else torch.cat([kv[1], v], dim=2)
            kk = llama_ref.repeat_kv(kv[0], heads // kv_heads)
            vv = llama_ref.repeat_kv(kv[1], heads // kv_heads)
            p = torch.softmax((q @ kk.transpose(2, 3)) / math.sqrt(hd), dim=-1)
            x = x + a.o_proj((p @ vv).transpose(1, 2).reshape(1, 1, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return model.lm_head(model.model.norm(x))[0, -1]

    return step


def prepare_gpt(args, work):
    weights = os.path.join(work, "gpt.safetensors")
    if not os.path.exists(weights):
        run([args.vktrain, "train", "--model", GPT_SPEC, "--text", args.text, "--steps", str(args.train_steps),
             "--warmup", "2", "--batch-size", "16", "--lr", "3e-3", "--eval-at", "0", "--val-limit", "4",
             "--precision", "fp32", "--quiet", "--output", weights], args.runner)
    state, metadata = read_safetensors(weights)
    vocab = metadata["vktrain_vocabulary"]
    v, c = state["transformer.wte.weight"].shape
    context = state["transformer.wpe.weight"].shape[0]
    layers = len([k for k in state if k.endswith(".ln_1.weight")])
    mlp = state["transformer.h.0.mlp.c_fc.weight"].shape[0]
    heads = int(re.search(r"heads=(\d+)", GPT_SPEC).group(1))
    model = gpt_ref.Gpt(v, context, c, layers, heads, mlp)
    model.load_state_dict({k: t.float() for k, t in state.items()}, strict=True)
    index = {ch: i for i, ch in enumerate(vocab)}
    prompt = "The "
    return dict(weights=weights, model=model, context=context, prompt=prompt,
                prompt_ids=[index[ch] for ch in prompt], decode=lambda ids: "".join(vocab[i] for i in ids).encode(),
                stepper=lambda m, dev: gpt_stepper(m, heads, dev))


def prepare_llama(args, work):
    sym = bytes_to_unicode()
    folder = os.path.join(work, "llama")
    model = llama_ref.LlamaForCausalLM(LLAMA_CONFIG)
    model.randomize(7, scale=0.25)
    state = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    hf_ref.save_hf_folder(folder, LLAMA_CONFIG, state)
    vocab = {sym[b]: b for b in range(256)}
    vocab["ab"], vocab[sym[32] + "ab"] = 256, 257
    with open(os.path.join(folder, "vocab.json"), "w") as f:
        json.dump(vocab, f)
    with open(os.path.join(folder, "merges.txt"), "w") as f:
        f.write("#version: 0.2\na b\n%s ab\n" % sym[32])
    weights = os.path.join(work, "llama.safetensors")
    run([args.vktrain, "import", folder, "--output", weights, "--quiet", "--force"], args.runner)
    pieces = {v: k for k, v in vocab.items()}
    byte_of = {ch: b for b, ch in sym.items()}
    # The model's vocabulary is padded to 260; greedy picks among the tokenizer's 258 (as vktrain generate).
    return dict(weights=weights, model=model, context=LLAMA_CONFIG["max_position_embeddings"], prompt="ab ab",
                prompt_ids=[256, 257], decode=lambda ids: b"".join(bytes(byte_of[ch] for ch in pieces[i]) for i in ids),
                stepper=lambda m, dev: (lambda st: (lambda t, p: st(t, p)[:258]))(llama_stepper(m, dev)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vktrain", required=True)
    ap.add_argument("--out", help="JSON report")
    ap.add_argument("--work", default=None, help="scratch folder (default: a folder beside --out or /tmp)")
    ap.add_argument("--tokens", type=int, default=100, help="new tokens per generation (fits in both contexts)")
    ap.add_argument("--train-steps", type=int, default=60, help="vktrain train steps of the GPT")
    ap.add_argument("--text", default="/usr/share/games/fortunes")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "mixed"])
    ap.add_argument("--runner", default="", help="command prefix for vktrain (run-in-root.sh BUILD)")
    ap.add_argument("--torch-device", default="cpu")
    ap.add_argument("--threads", type=int, default=1,
                    help="PyTorch CPU threads (1: on a shared machine, 2 OpenMP threads spin against the other load)")
    ap.add_argument("--models", default="gpt,llama")
    ap.add_argument("--no-uncached", action="store_true", help="skip the vktrain --no-cache runs")
    args = ap.parse_args()
    args.runner = shlex.split(args.runner)
    args.vktrain = os.path.abspath(args.vktrain)
    work = args.work or os.path.join(os.path.dirname(os.path.abspath(args.out)) if args.out else "/tmp",
                                     "generate-bench-work")
    work = os.path.abspath(work)  # vktrain may run elsewhere (run-in-root.sh)
    os.makedirs(work, exist_ok=True)
    torch.set_num_threads(args.threads)
    device = torch.device(args.torch_device)
    rows = []
    load_before = open("/proc/loadavg").read().split()[:3]
    for name in args.models.split(","):
        m = (prepare_gpt if name == "gpt" else prepare_llama)(args, work)
        tokens = min(args.tokens, m["context"] - len(m["prompt_ids"]))
        model = m["model"].to(device).eval()
        ids, torch_tps = timed_greedy(m["stepper"](model, device), m["prompt_ids"], tokens)
        want = m["prompt"].encode() + m["decode"](ids) + b"\n"
        text, vk_tps, vk_device = vktrain_generate(args, m["weights"], m["prompt"], tokens, False)
        row = dict(model=name, tokens=tokens, precision=args.precision, vktrain_device=vk_device,
                   torch_device=str(device), torch_threads=args.threads, torch_tokens_per_s=torch_tps,
                   vktrain_tokens_per_s=vk_tps, ratio=vk_tps / torch_tps, same_text=text == want)
        if not args.no_uncached:
            text_nc, nc_tps, _ = vktrain_generate(args, m["weights"], m["prompt"], tokens, True)
            row.update(vktrain_no_cache_tokens_per_s=nc_tps, cache_speedup=vk_tps / nc_tps,
                       same_text_no_cache=text_nc == want)
        if text != want:
            a, b = text.decode(errors="replace"), want.decode(errors="replace")
            first = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
            print("%s: texts differ from character %d:\n  vktrain %r\n  torch   %r" % (name, first, a, b))
        rows.append(row)
    report = dict(bench="generate", loadavg_before=load_before, loadavg_after=open("/proc/loadavg").read().split()[:3],
                  torch=torch.__version__, python=platform.python_version(), host=platform.node(), rows=rows,
                  note="tokens/s exclude start-up and the prompt (every token after the first); greedy decoding")
    print("%-6s %-6s %6s %12s %12s %8s %12s %8s %5s" % ("model", "prec", "tokens", "torch tok/s", "vktrain tok/s",
                                                      "ratio", "no-cache", "cache x", "same"))
    for r in rows:
        print("%-6s %-6s %6d %12.1f %12.1f %8.3f %12s %8s %5s" % (
            r["model"], r["precision"], r["tokens"], r["torch_tokens_per_s"], r["vktrain_tokens_per_s"], r["ratio"],
            "%.1f" % r["vktrain_no_cache_tokens_per_s"] if "vktrain_no_cache_tokens_per_s" in r else "-",
            "%.2f" % r["cache_speedup"] if "cache_speedup" in r else "-", r["same_text"]))
    print("vktrain device: %s; PyTorch %s on %s (%d threads); load average %s before, %s after" % (
        rows[0]["vktrain_device"] if rows else "?", torch.__version__, device, args.threads,
        " ".join(load_before), " ".join(report["loadavg_after"])))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
    return 0 if all(r["same_text"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
