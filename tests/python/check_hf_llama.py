"""Hugging Face Llama in and out of vktrain, against the PyTorch reference of hf_llama_reference.py.

  check_hf_llama.py VKTRAIN_BINARY LIBVKTRAIN_C WORK_DIR [RUNNER...]

RUNNER (optional) is a command prefix the vktrain binary and the C API script run under (run-in-root.sh BUILD for
the trixie device).
For several LlamaForCausalLM checkpoints written by the test (grouped-query, multi-query and multi-head attention;
F32, BF16 and F16; tied and untied heads; rope_theta 10000, 1000 and 500000; a single file and shards;
rotary_emb.inv_freq buffers):
  - vktrain import + vktrain predict: logits within relative L2 1e-4 (fp32) and 1e-2 (mixed) of PyTorch (float64
    on the file's values), on the full context and on a shorter window;
  - vktrain export: every F32 tensor back bit for bit, the config.json unchanged, and the folder loads into the
    reference with strict keys;
  - one fp32 training step's gradients (through the C API: vkt_load_model, vkt_trainer_load,
    vkt_trainer_compute_gradients) within relative L2 1e-4 of PyTorch's, tensor by tensor: full fine-tuning, and LoRA
    on every projection (q, k, v, o, gate, up, down; PEFT's lora.Linear in the reference);
  - a Llama folder with a byte-level BPE tokenizer: `vktrain generate --temperature 0` (over the key/value cache, and
    with --no-cache the whole window per token) gives PyTorch's greedy continuation, and `vktrain train --from` fine-tunes it (fully and with --lora);
and every bad config or tensor fails with one line naming the field or tensor.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_harness import Checks  # noqa: E402
import hf_llama_reference as llama  # noqa: E402
from byte_level import bytes_to_unicode  # noqa: E402
import hf_reference as ref  # noqa: E402

CHECKS = Checks(sys.argv)
BIN, LIB, WORK, RUNNER = CHECKS.bin, CHECKS.lib, CHECKS.work, CHECKS.runner
run, check, expect_error = CHECKS.run, CHECKS.check, CHECKS.expect_error


def hf_state(model, head=False, buffers=False):
    """save_pretrained's tensors (a tied head left out unless head=True), with the inv_freq buffers older
    transformers saved when buffers=True."""
    out = {}
    for k, v in model.state_dict().items():
        if k == "lm_head.weight" and model.config["tie_word_embeddings"] and not head:
            continue
        out[k] = v.detach().numpy().astype(np.float32)
        if buffers and k.endswith(".self_attn.q_proj.weight"):
            out[k[:-len("q_proj.weight")] + "rotary_emb.inv_freq"] = llama.inv_freq(model.config)
    return out


def is_buffer(k):
    return k.endswith("rotary_emb.inv_freq")


def folder_tensors(folder, raw=False):
    out = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".safetensors"):
            out.update(ref.read_safetensors(os.path.join(folder, f), raw=raw)[0])
    return out


def reference(config, folder):
    """The reference model in float64 holding the folder's values (BF16 widened)."""
    m = llama.LlamaForCausalLM(config)
    m.load_strict({k: v for k, v in folder_tensors(folder).items() if not is_buffer(k)})
    return m.double()


BASE = dict(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=16, rms_norm_eps=1e-6)
VARIANTS = [
    # name, config changes, dtype, tied head saved, inv_freq buffers, shards, ids dtype, positions
    ("f32-gqa-untied-buffers", {}, "F32", False, True, 1, np.int64, 16),
    ("bf16-gqa-tied-theta", dict(tie_word_embeddings=True, rope_theta=500000.0), "BF16", False, False, 1, np.int32,
     16),
    ("f32-mha-tiedhead-sharded", dict(tie_word_embeddings=True, num_key_value_heads=None, rms_norm_eps=1e-5),
     "F32", True, False, 2, np.int32, 9),
    ("f32-mqa-untied", dict(num_key_value_heads=1, rope_theta=1000.0), "F32", False, False, 1, np.int64, 16),
    ("f16-gqa-untied", dict(rms_norm_eps=1e-5), "F16", False, False, 1, np.int32, 5),
]


def variant(name, changes, dtype, head, buffers, shards, id_type, positions, seed):
    config = dict(BASE)
    config.update(changes)
    config.update(model_type="llama", architectures=["LlamaForCausalLM"], hidden_act="silu")
    if config.get("num_key_value_heads", 0) is None:
        del config["num_key_value_heads"]  # absent: LlamaConfig's default, the attention heads
    model = llama.LlamaForCausalLM(config)
    model.randomize(seed)
    folder = os.path.join(WORK, name)
    ref.save_hf_folder(folder, config, hf_state(model, head, buffers), dtype, shards)
    weights = os.path.join(WORK, name + ".safetensors")
    run(["import", folder, "--output", weights, "--quiet"])

    rng = np.random.default_rng(seed)
    ids = rng.integers(0, config["vocab_size"], size=(3, positions)).astype(id_type)
    x = os.path.join(WORK, name + "-input.safetensors")
    ref.write_safetensors(x, {"input": ids})
    with torch.no_grad():
        want = reference(config, folder)(torch.from_numpy(ids.astype(np.int64))).numpy()
    # In the trixie root (the coopmat device) mixed precision also runs with every GEMM forced onto cooperative
    # matrices: at these small shapes the automatic choice takes the tiled path.
    runs = [("fp32", 1e-4, []), ("mixed", 1e-2, [])] + ([("mixed-coopmat", 1e-2, ["--gemm-path", "coopmat"])]
                                                       if RUNNER else [])
    for label, tol, extra in runs:
        precision = label.split("-")[0]
        y = os.path.join(WORK, "%s-%s-logits.safetensors" % (name, label))
        run(["predict", "--weights", weights, "--input", x, "--output", y, "--precision", precision, "--force"] + extra)
        got = ref.read_safetensors(y)[0]["logits"]
        err = ref.relative_l2(got, want) if got.shape == want.shape else float("inf")
        check(err <= tol, "%s: %s logits %s relative L2 error %.3g <= %g" % (name, label, list(got.shape), err, tol))

    out = os.path.join(WORK, name + "-export")
    shutil.rmtree(out, ignore_errors=True)
    run(["export", weights, "--output", out, "--quiet"])
    exported = folder_tensors(out, raw=True)
    original = folder_tensors(folder, raw=True)
    dropped = set(original) - set(exported)
    check(all(is_buffer(k) or k == "lm_head.weight" for k in dropped) and not set(exported) - set(original),
          "%s: export writes the original names (left out: %d buffers/tied head)" % (name, len(dropped)))
    if dtype == "F32":
        same = all(exported[k] == original[k] for k in exported)
        check(same, "%s: import -> export gives back every F32 tensor bit for bit (%d tensors)" % (name, len(exported)))
    else:  # BF16 and F16 come back as F32 holding exactly their values
        a, b = folder_tensors(out), folder_tensors(folder)
        check(all(np.array_equal(a[k], b[k]) for k in a), "%s: export holds the %s values exactly (as F32)"
              % (name, dtype))
    with open(os.path.join(out, "config.json")) as f:
        check(json.load(f) == config, "%s: export's config.json is the original" % name)
    try:
        llama.LlamaForCausalLM(config).load_strict(folder_tensors(out))
        check(True, "%s: exported folder loads with strict key checking" % name)
    except RuntimeError as e:
        check(False, "%s: exported folder loads with strict key checking (%s)" % (name, e))
    return config, model, folder, weights


def gradients(name, config, folder, weights, seed):
    """One batch's fp32 gradients from vktrain (C API) against PyTorch float64 on the file's values."""
    rng = np.random.default_rng(seed)
    batch, t = 3, config["max_position_embeddings"]
    ids = rng.integers(0, config["vocab_size"], size=(batch, t)).astype(np.int32)
    targets = rng.integers(0, config["vocab_size"], size=(batch, t)).astype(np.int32)
    inputs = os.path.join(WORK, name + "-grad-inputs.bin")
    with open(inputs, "wb") as f:
        f.write(ids.astype("<i4").tobytes() + targets.astype("<i4").tobytes())
    out = os.path.join(WORK, name + "-grads")
    p = CHECKS.run_capi_script("capi_gradients.py", [LIB, weights, batch, inputs, out])
    if p.returncode != 0:
        check(False, "%s: gradients through the C API (%s)" % (name, (p.stdout + p.stderr).strip()))
        return
    with open(out + ".json") as f:
        info = json.load(f)
    flat = np.fromfile(out + ".bin", dtype="<f4")

    m = reference(config, folder)
    logits = m(torch.from_numpy(ids.astype(np.int64)))
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)),
                                             torch.from_numpy(targets.astype(np.int64)).reshape(-1))
    loss.backward()
    want = {k: p.grad.numpy() for k, p in m.named_parameters()}
    check(abs(info["loss"] - loss.item()) <= 1e-5 * abs(loss.item()),
          "%s: loss %.7f, PyTorch %.7f" % (name, info["loss"], loss.item()))
    offset, worst, worst_name = 0, 0.0, ""
    names = set()
    for t in info["tensors"]:
        size = int(np.prod(t["shape"]))
        g = flat[offset:offset + size].reshape(t["shape"])
        offset += size
        names.add(t["name"])
        err = ref.relative_l2(g, want[t["name"]]) if t["name"] in want else float("inf")
        if err > worst:
            worst, worst_name = err, t["name"]
    check(names == set(want) and offset == flat.size,
          "%s: a gradient for every PyTorch parameter (%d tensors)" % (name, len(names)))
    check(worst <= 1e-4, "%s: fp32 gradients within relative L2 %.3g (worst: %s) <= 1e-4 of PyTorch's on %s"
          % (name, worst, worst_name, info["device"]))


LORA_PATTERN, LORA_R, LORA_ALPHA = "model.layers.*_proj", 4, 12.0


class LoraLayer(nn.Module):
    """PEFT's lora.Linear around a frozen nn.Linear (bias "none", no dropout)."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        self.scaling = alpha / r

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scaling


def lora_gradients(name, config, folder, weights, seed):
    """One batch's fp32 LoRA gradients (vkt_model_add_lora on the imported file) against PyTorch float64."""
    rng = np.random.default_rng(seed)
    m = reference(config, folder)
    targets = {n: mod for n, mod in m.named_modules() if isinstance(mod, nn.Linear) and n.endswith("_proj")}
    adapter = {}
    for n, mod in targets.items():
        adapter[n + ".lora_A.weight"] = (0.1 * rng.standard_normal((LORA_R, mod.in_features))).astype(np.float32)
        adapter[n + ".lora_B.weight"] = (0.1 * rng.standard_normal((mod.out_features, LORA_R))).astype(np.float32)
    adapter_path = os.path.join(WORK, name + "-adapter.safetensors")
    ref.write_safetensors(adapter_path, adapter)
    batch, t = 2, config["max_position_embeddings"]
    ids = rng.integers(0, config["vocab_size"], size=(batch, t)).astype(np.int32)
    labels = rng.integers(0, config["vocab_size"], size=(batch, t)).astype(np.int32)
    inputs = os.path.join(WORK, name + "-lora-inputs.bin")
    with open(inputs, "wb") as f:
        f.write(ids.astype("<i4").tobytes() + labels.astype("<i4").tobytes())
    out = os.path.join(WORK, name + "-lora-grads")
    p = CHECKS.run_capi_script("capi_lora_gradients.py", [LIB, weights, adapter_path, LORA_PATTERN, LORA_R, LORA_ALPHA,
                                                          batch, inputs, out])
    if p.returncode != 0:
        check(False, "%s: LoRA gradients through the C API (%s)" % (name, (p.stdout + p.stderr).strip()))
        return
    with open(out + ".json") as f:
        info = json.load(f)
    flat = np.fromfile(out + ".bin", dtype="<f4")

    for n, mod in targets.items():
        layer = LoraLayer(mod, LORA_R, LORA_ALPHA).double()
        with torch.no_grad():
            layer.lora_A.weight.copy_(torch.from_numpy(adapter[n + ".lora_A.weight"]))
            layer.lora_B.weight.copy_(torch.from_numpy(adapter[n + ".lora_B.weight"]))
        parent, child = n.rsplit(".", 1)
        setattr(m.get_submodule(parent), child, layer)
    for n, prm in m.named_parameters():
        prm.requires_grad_(".lora_" in n)
    logits = m(torch.from_numpy(ids.astype(np.int64)))
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)),
                                             torch.from_numpy(labels.astype(np.int64)).reshape(-1))
    loss.backward()
    want = {k.replace(".base.", "."): prm.grad.numpy() for k, prm in m.named_parameters() if prm.requires_grad}
    check(abs(info["loss"] - loss.item()) <= 1e-5 * abs(loss.item()),
          "%s: LoRA loss %.7f, PyTorch %.7f" % (name, info["loss"], loss.item()))
    offset, worst, worst_name, names = 0, 0.0, "", set()
    for t_ in info["tensors"]:
        size = int(np.prod(t_["shape"]))
        g = flat[offset:offset + size].reshape(t_["shape"])
        offset += size
        names.add(t_["name"])
        err = ref.relative_l2(g, want[t_["name"]]) if t_["name"] in want else float("inf")
        if err > worst:
            worst, worst_name = err, t_["name"]
    check(names == set(want) and offset == flat.size and len(names) == 2 * 7 * config["num_hidden_layers"],
          "%s: a gradient for exactly the adapters' tensors (%d)" % (name, len(names)))
    check(worst <= 1e-4, "%s: fp32 LoRA gradients within relative L2 %.3g (worst: %s) <= 1e-4 of PyTorch's on %s"
          % (name, worst, worst_name, info["device"]))


def capi_llama_options(config, weights):
    """vkt_model_llama_options on an imported file and vkt_model_llama back (no device needed)."""
    import ctypes as C
    lib = C.CDLL(LIB)
    lib.vkt_last_error.restype = C.c_char_p

    class LlamaOptions(C.Structure):
        _fields_ = [("struct_size", C.c_uint32), ("vocab", C.c_uint32), ("layers", C.c_uint32),
                    ("heads", C.c_uint32), ("kv_heads", C.c_uint32), ("width", C.c_uint32),
                    ("intermediate", C.c_uint32), ("context", C.c_uint32), ("tied", C.c_int32), ("eps", C.c_float),
                    ("rope_theta", C.c_float), ("sequence", C.c_uint32)]
    model = C.c_void_p()
    check(lib.vkt_load_model(weights.encode(), C.byref(model)) == 0, "vkt_load_model reads an imported Llama")
    o = LlamaOptions()
    check(lib.vkt_llama_options_default(C.byref(o), C.c_size_t(C.sizeof(o))) == 0 and o.rope_theta == 10000.0
          and o.eps == np.float32(1e-6), "vkt_llama_options_default: rope_theta 10000, eps 1e-6")
    check(lib.vkt_model_llama_options(model, C.byref(o)) == 0 and o.vocab == config["vocab_size"]
          and o.heads == config["num_attention_heads"] and o.kv_heads == config["num_key_value_heads"]
          and o.intermediate == config["intermediate_size"] and o.context == config["max_position_embeddings"]
          and o.tied == 0, "vkt_model_llama_options gives the config's sizes back")
    rebuilt = C.c_void_p()
    o.sequence = 4
    check(lib.vkt_model_llama(C.byref(o), C.byref(rebuilt)) == 0, "vkt_model_llama builds it again (4 positions)")
    lib.vkt_model_destroy(rebuilt)
    o.kv_heads = 3
    status = lib.vkt_model_llama(C.byref(o), C.byref(rebuilt))
    error = lib.vkt_last_error().decode()
    check(status != 0 and "kv_heads 3 does not divide heads 4" in error, "vkt_model_llama refuses: " + error)
    gpt = C.c_void_p()
    check(lib.vkt_model_cnn(10, C.byref(gpt)) == 0, "vkt_model_cnn")
    status = lib.vkt_model_llama_options(gpt, C.byref(o))
    error = lib.vkt_last_error().decode()
    check(status != 0 and "not a Llama" in error, "vkt_model_llama_options refuses a CNN: " + error)
    lib.vkt_model_destroy(gpt)
    lib.vkt_model_destroy(model)


def generate_and_train(seed):
    """A Llama with a byte-level BPE of 258 tokens (the bytes, "ab" and " ab"; the model's vocabulary is padded to
    260): greedy generation against PyTorch's, and `train --from` on a small text."""
    sym = bytes_to_unicode()
    config = dict(BASE, vocab_size=260, model_type="llama", architectures=["LlamaForCausalLM"], hidden_act="silu")
    model = llama.LlamaForCausalLM(config)
    model.randomize(seed, scale=0.3)
    folder = os.path.join(WORK, "bpe")
    ref.save_hf_folder(folder, config, hf_state(model))
    vocab = {sym[b]: b for b in range(256)}
    vocab["ab"], vocab[sym[32] + "ab"] = 256, 257
    with open(os.path.join(folder, "vocab.json"), "w") as f:
        json.dump(vocab, f)
    with open(os.path.join(folder, "merges.txt"), "w") as f:
        f.write("#version: 0.2\na b\n%s ab\n" % sym[32])
    weights = os.path.join(WORK, "bpe.safetensors")
    run(["import", folder, "--output", weights, "--quiet"])

    prompt = "ab ab"
    m = reference(config, folder)
    pieces = {v: k for k, v in vocab.items()}
    byte_of = {c: b for b, c in sym.items()}
    context = config["max_position_embeddings"]
    # 6 tokens: a window of 8 positions; 20: past the context of 16, so the window restarts from its last 8 tokens.
    for count in (6, 20):
        ids, first = [256, 257], 0
        with torch.no_grad():
            for _ in range(count):
                if len(ids) - first > context:
                    first = len(ids) - context // 2
                logits = m(torch.tensor([ids[first:]], dtype=torch.int64))[0, -1, :258]
                ids.append(int(torch.argmax(logits)))
        want = prompt.encode() + b"".join(bytes(byte_of[c] for c in pieces[i]) for i in ids[2:]) + b"\n"
        # By default over the key/value cache (Model::llama_decoder), and with --no-cache the whole window per token.
        for flags, mode in (([], b"key/value cache (one position per token)"),
                            (["--no-cache"], b"no cache (the whole window per token)")):
            p = subprocess.run(RUNNER + [BIN, "generate", "--weights", weights, "--prompt", prompt, "--tokens",
                                         str(count), "--temperature", "0", "--precision", "fp32"] + flags,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            check(p.returncode == 0 and p.stdout == want and mode in p.stderr,
                  "generate %s: a Llama's greedy continuation of %d tokens is PyTorch's (%r, want %r; %s)"
                  % (" ".join(flags) or "(cached)", count, p.stdout, want,
                     p.stderr.decode().strip().splitlines()[0] if p.stderr else ""))

    text = os.path.join(WORK, "text.txt")
    rng = np.random.default_rng(seed)
    words = ["ab", "abc", "cab", "a", "b", "ba", "bab"]
    with open(text, "w") as f:
        f.write(" ".join(words[i] for i in rng.integers(0, len(words), size=600)) + "\n")
    common = ["train", "--from", weights, "--text", text, "--steps", "2", "--warmup", "1", "--batch-size", "2",
              "--eval-at", "2", "--val-limit", "2", "--precision", "fp32", "--quiet"]
    out = os.path.join(WORK, "tuned.safetensors")
    p = run(common + ["--output", out, "--force"], expect_ok=False)
    check(p.returncode == 0 and "llama layers 2 heads 4 kv_heads 2 width 64 context 16 intermediate 96" in p.stdout,
          "train --from fine-tunes an imported Llama (%s)" % (p.stderr.strip() or "ok"))
    p = run(["eval", "--weights", out, "--text", text, "--val-limit", "2", "--precision", "fp32"], expect_ok=False)
    check(p.returncode == 0 and "val_loss" in p.stdout, "eval takes the fine-tuned Llama with its tokenizer (%s)"
          % (p.stderr.strip() or "ok"))
    back = os.path.join(WORK, "tuned-export")
    shutil.rmtree(back, ignore_errors=True)
    p = run(["export", out, "--output", back, "--quiet"], expect_ok=False)
    try:
        llama.LlamaForCausalLM(config).load_strict(folder_tensors(back))
        loaded = p.returncode == 0
    except (RuntimeError, OSError) as e:
        loaded = False
        print(e)
    check(loaded and os.path.exists(os.path.join(back, "vocab.json")),
          "the fine-tuned Llama exports to a folder that loads with strict keys, tokenizer included (%s)"
          % (p.stderr.strip() or "ok"))
    lora = os.path.join(WORK, "lora.safetensors")
    adapter = os.path.join(WORK, "lora-adapter")
    shutil.rmtree(adapter, ignore_errors=True)
    p = run(common + ["--lora", "model.layers.*.self_attn.q_proj", "--lora-r", "2", "--lr", "5e-2", "--output", lora,
                      "--save-adapter", adapter, "--force"], expect_ok=False)
    check(p.returncode == 0 and "on 2 layers" in p.stdout, "train --from --lora adapts an imported Llama's q_proj (%s)"
          % (p.stderr.strip() or "ok"))
    # generate takes the LoRA file, its adapters merged on load: the text of export --adapter + import, token for token.
    merged_folder = os.path.join(WORK, "lora-merged")
    shutil.rmtree(merged_folder, ignore_errors=True)
    merged = os.path.join(WORK, "lora-merged.safetensors")
    run(["export", weights, "--adapter", adapter, "--output", merged_folder, "--quiet"])
    run(["import", merged_folder, "--output", merged, "--precision", "fp32", "--force", "--quiet"])
    texts = []
    for w in (lora, merged, weights):
        p = subprocess.run(RUNNER + [BIN, "generate", "--weights", w, "--prompt", prompt, "--tokens", "12",
                                     "--temperature", "0", "--precision", "fp32", "--quiet"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # bytes: the text may not be UTF-8
        check(p.returncode == 0, "generate --weights %s (%s)" % (w, p.stderr.decode(errors="replace").strip()))
        texts.append(p.stdout)
    check(texts[0] == texts[1] and texts[0] != texts[2],
          "generate on a Llama LoRA file gives the merged model's text, not the base's (%r, %r, base %r)"
          % tuple(texts))


def bad_inputs(config, model, weights):
    bad = os.path.join(WORK, "bad")
    out = os.path.join(WORK, "bad.safetensors")

    def folder_with(cfg=None, tensors=None):
        shutil.rmtree(bad, ignore_errors=True)
        c = dict(config)
        c.update(cfg or {})
        ref.save_hf_folder(bad, c, tensors if tensors is not None else hf_state(model))
        return bad

    def refused(cfg, text):
        expect_error(["import", folder_with(cfg), "--output", out], text)

    good = hf_state(model)
    refused({"rope_scaling": {"type": "linear", "factor": 2.0}}, "rope_scaling")
    refused({"hidden_act": "gelu"}, 'hidden_act "gelu" is not supported')
    refused({"num_key_value_heads": 3}, "num_key_value_heads 3 does not divide num_attention_heads 4")
    refused({"head_dim": 32}, "head_dim 32 is not hidden_size / num_attention_heads = 16")
    refused({"attention_bias": True}, "attention_bias")
    refused({"mlp_bias": True}, "mlp_bias")
    refused({"num_attention_heads": "4"}, 'field "num_attention_heads" must be an integer')
    t = dict(good)
    del t["model.layers.1.mlp.up_proj.weight"]
    expect_error(["import", folder_with(tensors=t), "--output", out], "missing tensor 'model.layers.1.mlp.up_proj.weight'")
    t = dict(good)
    t["model.layers.0.self_attn.q_proj.bias"] = np.zeros(64, dtype=np.float32)
    expect_error(["import", folder_with(tensors=t), "--output", out],
                 "unexpected tensor 'model.layers.0.self_attn.q_proj.bias'")
    t = dict(good)
    t["model.layers.0.self_attn.k_proj.weight"] = np.zeros((64, 64), dtype=np.float32)  # not grouped-query's [32, 64]
    expect_error(["import", folder_with(tensors=t), "--output", out],
                 "tensor 'model.layers.0.self_attn.k_proj.weight' has shape [64, 64], config.json implies [32, 64]")

    x = os.path.join(WORK, "bad-input.safetensors")
    y = os.path.join(WORK, "bad-logits.safetensors")
    ref.write_safetensors(x, {"input": np.zeros((1, 17), dtype=np.int32)})
    expect_error(["predict", "--weights", weights, "--input", x, "--output", y], "the model's context is 16")


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    torch.set_num_threads(2)
    first = None
    for i, v in enumerate(VARIANTS):
        r = variant(*v, seed=10 + i)
        first = first or r
        if v[2] == "F32" and LIB != "-":
            gradients(v[0], r[0], r[2], r[3], seed=20 + i)
    if LIB != "-":
        lora_gradients(VARIANTS[0][0], first[0], first[2], first[3], seed=40)
    if LIB != "-" and not RUNNER:  # the C API's model calls need no device: once, on the host
        capi_llama_options(first[0], first[3])
    generate_and_train(seed=30)
    bad_inputs(first[0], first[1], first[3])
    sys.exit(CHECKS.summary())


main()
