"""LoRA on a Hugging Face GPT-2 imported into vktrain, against PyTorch (hf_reference.py plus PEFT's LoRA layer).

  check_lora_gpt2.py VKTRAIN_BINARY LIBVKTRAIN_C WORK_DIR [RUNNER...]

RUNNER (optional) is a command prefix the vktrain binary and the C API script run under (run-in-root.sh BUILD for
the trixie device). A GPT-2 with random weights (PyTorch, Conv1D layers) is written as a Hugging Face folder and
imported with `vktrain import`; LoRA goes on every linear layer of the blocks (c_attn, c_proj, c_fc, mlp.c_proj)
with random nonzero A and B. One fp32 batch's loss and LoRA gradients (C API: vkt_load_model, vkt_model_add_lora,
vkt_trainer_compute_gradients) must be within relative L2 1e-4 of PyTorch float64, where each adapted Conv1D
computes base(x) + lora_B(lora_A(x)) * alpha / r as PEFT's lora.Linear does (fan_in_fan_out: the adapter's own
layers are nn.Linear, [r, in] and [out, r]).

PEFT round trip: an adapter folder written here as peft's save_pretrained does (adapter_config.json with suffix
target_modules ["c_attn", "c_fc"], fan_in_fan_out, adapter_model.safetensors under "base_model.model.") is applied by
vktrain (C API: vkt_model_add_lora_adapter, vkt_trainer_load_lora_adapter, vkt_trainer_predict) and its logits must
match PyTorch's GPT-2 with W + (alpha / r)·(B·A)ᵀ merged into each Conv1D (relative L2 1e-4 fp32, 1e-2 mixed); the
folder vktrain writes back (vkt_trainer_save_lora_adapter) holds the same tensors bit for bit and PEFT's config
fields; `vktrain export --adapter` writes a merged Hugging Face folder that loads with strict key checking, holds
the merged weights (relative L2 1e-6) and gives the same logits.
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_harness import Checks  # noqa: E402
import hf_reference as ref  # noqa: E402

CHECKS = Checks(sys.argv)
BIN, LIB, WORK, RUNNER = CHECKS.bin, CHECKS.lib, CHECKS.work, CHECKS.runner
run, check = CHECKS.run, CHECKS.check
CONFIG = dict(vocab_size=53, n_positions=12, n_embd=16, n_layer=2, n_head=2, activation_function="gelu_new",
              tie_word_embeddings=True)
PATTERN, R, ALPHA = "transformer.h.*", 4, 12.0


class LoraLayer(nn.Module):
    """PEFT's lora.Linear around a frozen base layer (bias "none", no dropout)."""

    def __init__(self, base, fan_in, fan_out, r, alpha):
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(fan_in, r, bias=False)
        self.lora_B = nn.Linear(r, fan_out, bias=False)
        self.scaling = alpha / r

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scaling


def adapted_modules(model):
    """The Conv1D modules PATTERN matches, by name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, ref.Conv1D) and name.startswith("transformer.h.")}


def with_lora(model, adapter):
    """model with every adapted Conv1D wrapped; adapter: {"<module>.lora_A.weight": array, ...}."""
    for name, m in adapted_modules(model).items():
        fan_in, fan_out = m.weight.shape
        layer = LoraLayer(m, fan_in, fan_out, R, ALPHA)
        with torch.no_grad():
            layer.lora_A.weight.copy_(torch.from_numpy(adapter[name + ".lora_A.weight"]))
            layer.lora_B.weight.copy_(torch.from_numpy(adapter[name + ".lora_B.weight"]))
        parent, child = name.rsplit(".", 1)
        setattr(model.get_submodule(parent), child, layer)
    for n, p in model.named_parameters():
        p.requires_grad_(".lora_" in n)
    return model


def lora_gradients(folder, weights, seed):
    rng = np.random.default_rng(seed)
    base = ref.GPT2LMHeadModel(CONFIG)
    adapter = {}
    for name, m in adapted_modules(base).items():
        fan_in, fan_out = m.weight.shape
        adapter[name + ".lora_A.weight"] = (0.3 * rng.standard_normal((R, fan_in))).astype(np.float32)
        adapter[name + ".lora_B.weight"] = (0.3 * rng.standard_normal((fan_out, R))).astype(np.float32)
    adapter_path = os.path.join(WORK, "adapter-vktrain-names.safetensors")
    ref.write_safetensors(adapter_path, adapter)
    batch, t = 3, CONFIG["n_positions"]
    ids = rng.integers(0, CONFIG["vocab_size"], size=(batch, t)).astype(np.int32)
    targets = rng.integers(0, CONFIG["vocab_size"], size=(batch, t)).astype(np.int32)
    inputs = os.path.join(WORK, "grad-inputs.bin")
    with open(inputs, "wb") as f:
        f.write(ids.astype("<i4").tobytes() + targets.astype("<i4").tobytes())
    out = os.path.join(WORK, "lora-grads")
    p = CHECKS.run_capi_script("capi_lora_gradients.py", [LIB, weights, adapter_path, PATTERN, R, ALPHA, batch, inputs,
                                                          out])
    if p.returncode != 0:
        check(False, "LoRA gradients through the C API (%s)" % (p.stdout + p.stderr).strip())
        return
    with open(out + ".json") as f:
        info = json.load(f)
    flat = np.fromfile(out + ".bin", dtype="<f4")

    m = ref.GPT2LMHeadModel(CONFIG)
    m.load_strict(ref.read_safetensors(os.path.join(folder, "model.safetensors"))[0])
    m = with_lora(m, adapter).double()
    logits = m(torch.from_numpy(ids.astype(np.int64)))
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)),
                                             torch.from_numpy(targets.astype(np.int64)).reshape(-1))
    loss.backward()
    want = {k: p.grad.numpy() for k, p in m.named_parameters() if p.requires_grad}
    want = {k.replace(".base.", "."): v for k, v in want.items()}
    check(abs(info["loss"] - loss.item()) <= 1e-5 * abs(loss.item()),
          "LoRA loss %.7f, PyTorch %.7f" % (info["loss"], loss.item()))
    offset, worst, worst_name, names = 0, 0.0, "", set()
    for t in info["tensors"]:
        size = int(np.prod(t["shape"]))
        g = flat[offset:offset + size].reshape(t["shape"])
        offset += size
        names.add(t["name"])
        if t["name"] not in want:
            continue
        err = ref.relative_l2(g, want[t["name"]])
        if err > worst:
            worst, worst_name = err, t["name"]
    check(names == set(want) and offset == flat.size and len(names) == 4 * CONFIG["n_layer"] * 2,
          "a gradient for exactly the adapters' tensors (%d: %s ...)" % (len(names), sorted(names)[0]))
    check(worst <= 1e-4, "fp32 LoRA gradients within relative L2 %.3g (worst: %s) <= 1e-4 of PyTorch's on %s"
          % (worst, worst_name, info["device"]))


def merged_reference(folder, adapter, targets):
    """The reference GPT-2 with the adapter merged as PEFT's merge_and_unload does for fan_in_fan_out layers."""
    m = ref.GPT2LMHeadModel(CONFIG)
    m.load_strict(ref.read_safetensors(os.path.join(folder, "model.safetensors"))[0])
    m = m.double()
    with torch.no_grad():
        for name, mod in m.named_modules():
            if isinstance(mod, ref.Conv1D) and any(name == t or name.endswith("." + t) for t in targets):
                a = torch.from_numpy(adapter[name + ".lora_A.weight"]).double()
                b = torch.from_numpy(adapter[name + ".lora_B.weight"]).double()
                mod.weight += (b @ a).T * (ALPHA / R)
    return m


def peft_round_trip(folder, weights, seed):
    rng = np.random.default_rng(seed)
    base = ref.GPT2LMHeadModel(CONFIG)
    targets = ["c_attn", "c_fc"]
    adapter = {}
    for name, m in base.named_modules():
        if isinstance(m, ref.Conv1D) and any(name.endswith("." + t) for t in targets):
            fan_in, fan_out = m.weight.shape
            adapter[name + ".lora_A.weight"] = (0.1 * rng.standard_normal((R, fan_in))).astype(np.float32)
            adapter[name + ".lora_B.weight"] = (0.1 * rng.standard_normal((fan_out, R))).astype(np.float32)
    peft = os.path.join(WORK, "peft-adapter")
    os.makedirs(peft)
    with open(os.path.join(peft, "adapter_config.json"), "w") as f:
        json.dump({"alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": "gpt2", "bias": "none",
                   "fan_in_fan_out": True, "inference_mode": True, "init_lora_weights": True,
                   "layers_pattern": None, "layers_to_transform": None, "lora_alpha": ALPHA, "lora_dropout": 0.05,
                   "modules_to_save": None, "peft_type": "LORA", "r": R, "rank_pattern": {}, "revision": None,
                   "target_modules": targets, "task_type": "CAUSAL_LM", "use_dora": False, "use_rslora": False},
                  f, indent=2)
    ref.write_safetensors(os.path.join(peft, "adapter_model.safetensors"),
                          {"base_model.model." + k: v for k, v in adapter.items()}, {"format": "pt"})
    batch, t = 2, CONFIG["n_positions"]
    ids = rng.integers(0, CONFIG["vocab_size"], size=(batch, t)).astype(np.int32)
    inputs = os.path.join(WORK, "predict-ids.bin")
    with open(inputs, "wb") as f:
        f.write(ids.astype("<i4").tobytes())
    m = merged_reference(folder, adapter, targets)
    with torch.no_grad():
        want = m(torch.from_numpy(ids.astype(np.int64))).numpy()
    for precision, bound in (("fp32", 1e-4), ("mixed", 1e-2)):
        out = os.path.join(WORK, "lora-logits-" + precision)
        saved = os.path.join(WORK, "vktrain-adapter-" + precision)
        p = CHECKS.run_capi_script("capi_lora_predict.py", [LIB, weights, peft, precision, batch, inputs, out, saved])
        if p.returncode != 0:
            check(False, "PEFT adapter through the C API in %s (%s)" % (precision, (p.stdout + p.stderr).strip()))
            continue
        got = np.fromfile(out + ".bin", dtype="<f4").reshape(want.shape)
        device = json.load(open(out + ".json"))["device"]
        err = ref.relative_l2(got, want)
        check(err <= bound, "PEFT adapter applied by vktrain (%s): logits within relative L2 %.3g <= %g of PyTorch's "
              "W + (alpha/r)·B·A on %s" % (precision, err, bound, device))
        back, _ = ref.read_safetensors(os.path.join(saved, "adapter_model.safetensors"))
        same = sorted(back) == sorted("base_model.model." + k for k in adapter) and all(
            np.array_equal(back["base_model.model." + k], v) for k, v in adapter.items())
        check(same, "vktrain's saved adapter (%s) holds the same %d tensors under PEFT's keys, bit for bit"
              % (precision, len(adapter)))
        c = json.load(open(os.path.join(saved, "adapter_config.json")))
        check(c["peft_type"] == "LORA" and c["r"] == R and c["lora_alpha"] == ALPHA and c["fan_in_fan_out"] is True
              and c["task_type"] == "CAUSAL_LM" and c["bias"] == "none" and len(c["target_modules"]) == 4
              and c["lora_dropout"] == 0.05,
              "vktrain's adapter_config.json (%s): %s" % (precision, json.dumps(c, sort_keys=True)))

    merged = os.path.join(WORK, "merged")
    run(["export", weights, "--adapter", peft, "--output", merged, "--quiet"])
    tensors, _ = ref.read_safetensors(os.path.join(merged, "model.safetensors"))
    strict = ref.GPT2LMHeadModel(CONFIG)
    try:
        strict.load_strict(tensors)
        loaded = True
    except RuntimeError:
        loaded = False
    check(loaded, "the merged export loads into GPT2LMHeadModel with strict key checking")
    worst = max(ref.relative_l2(tensors[k], v.detach().numpy()) for k, v in m.state_dict().items()
                if k in tensors and k.endswith(".weight"))
    check(worst <= 1e-6, "merged weights within relative L2 %.3g <= 1e-6 of PyTorch's merge" % worst)
    with torch.no_grad():
        merged_logits = strict.double()(torch.from_numpy(ids.astype(np.int64))).numpy()
    check(ref.relative_l2(merged_logits, want) <= 1e-6, "the merged export's logits are the adapter's")


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    torch.set_num_threads(2)
    model = ref.GPT2LMHeadModel(CONFIG)
    model.randomize(5)
    folder = os.path.join(WORK, "gpt2")
    state = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items() if k != "lm_head.weight"}
    ref.save_hf_folder(folder, model.config, state)
    weights = os.path.join(WORK, "base.safetensors")
    run(["import", folder, "--output", weights, "--quiet"])
    if LIB != "-":
        lora_gradients(folder, weights, seed=7)
        peft_round_trip(folder, weights, seed=8)
    sys.exit(CHECKS.summary())


main()
