"""Hugging Face GPT-2 in and out of vktrain, against the PyTorch reference of hf_reference.py.

  check_hf_gpt2.py VKTRAIN_BINARY LIBVKTRAIN_C WORK_DIR [RUNNER...]

RUNNER (optional) is a command prefix the vktrain binary and the C API script run under (run-in-root.sh BUILD for
the trixie device).
For several checkpoints written by the test (F32, BF16 and F16; keys with and without the "transformer." prefix; a single
file and shards with model.safetensors.index.json; attn.bias buffers; tied and untied heads; gelu_new and gelu):
  - vktrain import + vktrain predict: logits within relative L2 1e-4 (fp32) and 1e-2 (mixed) of PyTorch (float64
    on the file's values);
  - vktrain export: every F32 tensor back bit for bit, and the folder loads into the reference with strict keys;
  - one fp32 training step's gradients (full fine-tuning, through the C API: vkt_load_model, vkt_trainer_load,
    vkt_trainer_compute_gradients) within relative L2 1e-4 of PyTorch's, tensor by tensor;
and every bad input fails with one line naming the problem.
"""
import json
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_harness import Checks  # noqa: E402
import hf_reference as ref  # noqa: E402

CHECKS = Checks(sys.argv)
BIN, LIB, WORK, RUNNER = CHECKS.bin, CHECKS.lib, CHECKS.work, CHECKS.runner
run, check, expect_error = CHECKS.run, CHECKS.check, CHECKS.expect_error


def hf_state(model, prefix=True, head=False, buffers=False):
    """The tensors a checkpoint holds: save_pretrained's (prefix, no tied head), GPT2Model's (no prefix), or a raw
    state_dict with the tied head (head=True); with the causal-mask buffers older files carry."""
    out = {}
    for k, v in model.state_dict().items():
        if k == "lm_head.weight" and model.config["tie_word_embeddings"] and not head:
            continue
        if not prefix and k.startswith("transformer."):
            k = k[len("transformer."):]
        out[k] = v.detach().numpy().astype(np.float32)
        if buffers and k.endswith("ln_1.weight"):
            p = model.config["n_positions"]
            base = k[:-len("ln_1.weight")]
            out[base + "attn.bias"] = np.tril(np.ones((p, p), dtype=np.float32)).reshape(1, 1, p, p)
            out[base + "attn.masked_bias"] = np.array(-1e4, dtype=np.float32)
    return out


def reference_logits(config, folder_tensors, ids):
    """float64 PyTorch logits from the values the folder holds (BF16 widened)."""
    m = ref.GPT2LMHeadModel(config)
    sd = {}
    for k, v in folder_tensors.items():
        if k.endswith(".attn.bias") or k.endswith(".attn.masked_bias"):
            continue
        if not k.startswith("transformer.") and k != "lm_head.weight":
            k = "transformer." + k
        sd[k] = v
    m.load_strict(sd)
    m = m.double()
    with torch.no_grad():
        return m(torch.from_numpy(ids.astype(np.int64))).numpy()


def folder_tensors(folder):
    out = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".safetensors"):
            out.update(ref.read_safetensors(os.path.join(folder, f))[0])
    return out


def folder_raw(folder):
    out = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".safetensors"):
            out.update(ref.read_safetensors(os.path.join(folder, f), raw=True)[0])
    return out


BASE = dict(vocab_size=101, n_positions=16, n_embd=32, n_layer=2, n_head=4)
VARIANTS = [
    # name, config changes, dtype, prefix, tied head saved, buffers, shards, ids dtype, positions
    ("f32-prefix-buffers-tiedhead", {}, "F32", True, True, True, 1, np.int64, 9),
    ("bf16-noprefix-sharded", {}, "BF16", False, False, False, 2, np.int32, 16),
    ("f32-untied-gelu-inner-sharded", dict(tie_word_embeddings=False, activation_function="gelu", n_inner=48,
                                           layer_norm_epsilon=1e-6), "F32", True, False, False, 3, np.int64, 16),
    ("f16-prefix", dict(activation_function="gelu_pytorch_tanh"), "F16", True, False, False, 1, np.int32, 5),
]


def variant(name, changes, dtype, prefix, head, buffers, shards, id_type, positions, seed):
    config = dict(ref.GPT2_DEFAULTS)
    config.update(BASE)
    config.update(changes)
    model = ref.GPT2LMHeadModel(config)
    model.randomize(seed)
    folder = os.path.join(WORK, name)
    ref.save_hf_folder(folder, config, hf_state(model, prefix, head, buffers), dtype, shards)
    weights = os.path.join(WORK, name + ".safetensors")
    run(["import", folder, "--output", weights, "--quiet"])

    rng = np.random.default_rng(seed)
    ids = rng.integers(0, config["vocab_size"], size=(3, positions)).astype(id_type)
    x = os.path.join(WORK, name + "-input.safetensors")
    ref.write_safetensors(x, {"input": ids})
    want = reference_logits(config, folder_tensors(folder), ids)
    for precision, tol in (("fp32", 1e-4), ("mixed", 1e-2)):
        y = os.path.join(WORK, "%s-%s-logits.safetensors" % (name, precision))
        run(["predict", "--weights", weights, "--input", x, "--output", y, "--precision", precision, "--force"])
        got = ref.read_safetensors(y)[0]["logits"]
        err = ref.relative_l2(got, want) if got.shape == want.shape else float("inf")
        check(err <= tol, "%s: %s logits %s relative L2 error %.3g <= %g" % (name, precision, list(got.shape), err, tol))

    out = os.path.join(WORK, name + "-export")
    shutil.rmtree(out, ignore_errors=True)
    run(["export", weights, "--output", out, "--quiet"])
    exported = folder_raw(out)
    original = folder_raw(folder)
    # Every weight comes back under its name; only the buffers and a tied head are left out.
    dropped = set(original) - set(exported)
    check(all(k.endswith(".attn.bias") or k.endswith(".attn.masked_bias") or k == "lm_head.weight" for k in dropped)
          and not set(exported) - set(original), "%s: export writes the original names (left out: %d buffers/tied "
          "head)" % (name, len(dropped)))
    if dtype == "F32":
        same = all(exported[k] == original[k] for k in exported)
        check(same, "%s: import -> export gives back every F32 tensor bit for bit (%d tensors)" % (name, len(exported)))
    else:  # BF16 and F16 come back as F32 holding exactly their values
        a, b = folder_tensors(out), folder_tensors(folder)
        check(all(np.array_equal(a[k], b[k]) for k in a), "%s: export holds the %s values exactly (as F32)"
              % (name, dtype))
    with open(os.path.join(out, "config.json")) as f:
        check(json.load(f) == config, "%s: export's config.json is the original" % name)
    loaded = ref.GPT2LMHeadModel(config)
    try:
        sd = folder_tensors(out)
        sd = {(k if k.startswith("transformer.") or k == "lm_head.weight" else "transformer." + k): v
              for k, v in sd.items()}
        loaded.load_strict(sd)
        check(True, "%s: exported folder loads with strict key checking" % name)
    except RuntimeError as e:
        check(False, "%s: exported folder loads with strict key checking (%s)" % (name, e))
    return config, model, folder, weights


CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def gradients(name, config, folder, weights, seed):
    """One batch's fp32 gradients from vktrain (C API) against PyTorch float64 on the file's values."""
    rng = np.random.default_rng(seed)
    batch, t = 3, config["n_positions"]
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

    m = ref.GPT2LMHeadModel(config)
    sd = {}
    for k, v in folder_tensors(folder).items():
        if k.endswith(".attn.bias") or k.endswith(".attn.masked_bias"):
            continue
        sd[k if k.startswith("transformer.") or k == "lm_head.weight" else "transformer." + k] = v
    m.load_strict(sd)
    m = m.double()
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
        w = want[t["name"]]
        if t["name"].endswith(CONV1D):  # vktrain's [out, in] is Conv1D's [in, out] transposed
            w = w.T
        err = ref.relative_l2(g, w)
        if err > worst:
            worst, worst_name = err, t["name"]
    check(names == set(want) and offset == flat.size,
          "%s: a gradient for every PyTorch parameter (%d tensors)" % (name, len(names)))
    check(worst <= 1e-4, "%s: fp32 gradients within relative L2 %.3g (worst: %s) <= 1e-4 of PyTorch's on %s"
          % (name, worst, worst_name, info["device"]))


def capi_import_export(config, folder):
    """vkt_import_hf / vkt_export_hf and the GPT options' activation through the C API (no device needed)."""
    import ctypes as C
    lib = C.CDLL(LIB)
    lib.vkt_last_error.restype = C.c_char_p
    out = os.path.join(WORK, "capi.safetensors")
    check(lib.vkt_import_hf(folder.encode(), out.encode(), 1) == 0, "vkt_import_hf (fp32) returns VKT_OK")
    _, meta = ref.read_safetensors(out)
    check(meta.get("vktrain_precision") == "fp32", "vkt_import_hf records fp32")

    class GptOptions(C.Structure):
        _fields_ = [("struct_size", C.c_uint32), ("vocab", C.c_uint32), ("layers", C.c_uint32),
                    ("heads", C.c_uint32), ("width", C.c_uint32), ("context", C.c_uint32), ("mlp", C.c_uint32),
                    ("tied", C.c_int32), ("eps", C.c_float), ("activation", C.c_int), ("sequence", C.c_uint32)]
    model = C.c_void_p()
    check(lib.vkt_load_model(out.encode(), C.byref(model)) == 0, "vkt_load_model reads the imported file")
    g = GptOptions(struct_size=C.sizeof(GptOptions))
    check(lib.vkt_model_gpt_options(model, C.byref(g)) == 0 and g.activation == 1 and g.context == 16
          and g.vocab == config["vocab_size"] and g.tied == 1, "vkt_model_gpt_options: gelu_tanh, context, tied")
    rebuilt = C.c_void_p()
    g.sequence = 4
    check(lib.vkt_model_gpt(C.byref(g), C.byref(rebuilt)) == 0, "vkt_model_gpt takes activation and sequence")
    lib.vkt_model_destroy(rebuilt)
    lib.vkt_model_destroy(model)
    check(lib.vkt_import_hf(folder.encode(), out.encode(), 7) == 2, "vkt_import_hf: a bad precision is invalid")
    d = os.path.join(WORK, "capi-export")
    check(lib.vkt_export_hf(out.encode(), d.encode(), 0) == 0, "vkt_export_hf returns VKT_OK")
    same = folder_raw(d) == folder_raw(os.path.join(WORK, VARIANTS[0][0] + "-export"))
    check(same, "vkt_export_hf writes what vktrain export wrote")
    status = lib.vkt_export_hf(out.encode(), d.encode(), 0)
    error = lib.vkt_last_error().decode()
    check(status == 1 and "already exists" in error and "\n" not in error, "vkt_export_hf refuses to overwrite: " +
          error)


def bad_inputs(config, model, folder, weights):
    bad = os.path.join(WORK, "bad")
    out = os.path.join(WORK, "bad.safetensors")

    def folder_with(cfg=None, tensors=None):
        shutil.rmtree(bad, ignore_errors=True)
        c = dict(config)
        c.update(cfg or {})
        ref.save_hf_folder(bad, c, tensors if tensors is not None else hf_state(model))
        return bad

    good = hf_state(model)
    expect_error(["import", folder_with({"model_type": "bert"}), "--output", out], 'model_type "bert" is not supported')
    expect_error(["import", folder_with({"add_cross_attention": True}), "--output", out], "add_cross_attention")
    expect_error(["import", folder_with({"activation_function": "swish"}), "--output", out], "activation_function")
    expect_error(["import", folder_with({"n_head": "4"}), "--output", out], 'field "n_head" must be an integer')
    t = dict(good)
    del t["transformer.h.1.mlp.c_fc.bias"]
    expect_error(["import", folder_with(tensors=t), "--output", out], "missing tensor 'transformer.h.1.mlp.c_fc.bias'")
    t = dict(good)
    t["transformer.h.0.attn.rotary"] = np.zeros(3, dtype=np.float32)
    expect_error(["import", folder_with(tensors=t), "--output", out], "unexpected tensor 'transformer.h.0.attn.rotary'")
    t = dict(good)
    t["transformer.h.0.mlp.c_fc.weight"] = t["transformer.h.0.mlp.c_fc.weight"].T.copy()  # [out, in]: not Conv1D
    expect_error(["import", folder_with(tensors=t), "--output", out],
                 "tensor 'transformer.h.0.mlp.c_fc.weight' has shape [128, 32], config.json implies [32, 128]")
    t = dict(good)
    t["lm_head.weight"] = t["transformer.wte.weight"] + 1.0
    expect_error(["import", folder_with(tensors=t), "--output", out], "'lm_head.weight' differs from")
    t = dict(good)
    w = t["transformer.h.1.attn.c_proj.weight"].copy()
    w[2, 3] = 1e5
    t["transformer.h.1.attn.c_proj.weight"] = w
    expect_error(["import", folder_with(tensors=t), "--output", out],
                 "tensor 'transformer.h.1.attn.c_proj.weight' holds 100000 at element")
    p = run(["import", bad, "--output", out, "--precision", "fp32", "--force", "--quiet"], expect_ok=False)
    check(p.returncode == 0, "a weight outside fp16's range imports with --precision fp32")
    os.remove(os.path.join(bad, "model.safetensors"))
    expect_error(["import", bad, "--output", out, "--force"], "no model.safetensors or model.safetensors.index.json")
    check(not os.path.exists(out + ".tmp"), "a failed import leaves no temporary file")

    x = os.path.join(WORK, "bad-input.safetensors")
    y = os.path.join(WORK, "bad-logits.safetensors")
    ref.write_safetensors(x, {"ids": np.zeros((1, 4), dtype=np.int64)})
    expect_error(["predict", "--weights", weights, "--input", x, "--output", y], "no tensor 'input'")
    ref.write_safetensors(x, {"input": np.zeros((1, 4), dtype=np.float32)})
    expect_error(["predict", "--weights", weights, "--input", x, "--output", y], "but the model takes token ids")
    ref.write_safetensors(x, {"input": np.zeros((4,), dtype=np.int64)})
    expect_error(["predict", "--weights", weights, "--input", x, "--output", y], "has shape [4]")
    ref.write_safetensors(x, {"input": np.full((2, 4), 101, dtype=np.int64)})
    expect_error(["predict", "--weights", weights, "--input", x, "--output", y],
                 "holds token id 101 at [0, 0], outside the model's vocabulary [0, 101)")
    ref.write_safetensors(x, {"input": np.zeros((1, 17), dtype=np.int32)})
    expect_error(["predict", "--weights", weights, "--input", x, "--output", y], "the model's context is 16")
    expect_error(["export", os.path.join(WORK, "nothing.safetensors"), "--output", os.path.join(WORK, "e")],
                 "nothing.safetensors")
    expect_error(["import", "--output", out], "SRC is required", status=2)
    expect_error(["eval", "--weights", weights], "a model over token ids without a vocabulary")


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
    if LIB != "-" and not RUNNER:  # the C API's import and export need no device: once, on the host
        capi_import_export(first[0], first[2])
    bad_inputs(*first)
    sys.exit(CHECKS.summary())


main()
