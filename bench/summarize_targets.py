#!/usr/bin/env python3
"""Issue 25's targets from one run of bench/speed_targets.sh (its folder of intermediate files): one JSON with the
machine, the device, the commit and every measured ratio beside its target, and a Markdown table on stdout.

  summarize_targets.py TMP_DIR WHERE OUT.json
"""
import json
import os
import statistics
import sys

from results_common import commit, load, machine, utc_now


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def profile_shares(report):
    """The GPT step's --profile split: GEMMs, attention, norms, the rest (fractions of the ops' sum)."""
    ops = (report or {}).get("profile") or []
    total = sum(o["microseconds"] for o in ops)
    if total <= 0:
        return None
    kinds = {"gemm": 0.0, "attention": 0.0, "norm": 0.0, "other": 0.0}
    for o in ops:
        name = o["op"]
        if "(gemm" in name:
            kinds["gemm"] += o["microseconds"]
        elif name.startswith("attn") or ".attn." in name and "c_attn" not in name and "c_proj" not in name:
            kinds["attention"] += o["microseconds"]
        elif ".ln_" in name or "ln_f" in name or "norm" in name:
            kinds["norm"] += o["microseconds"]
        else:
            kinds["other"] += o["microseconds"]
    return {k: v / total for k, v in kinds.items()}


def main():
    tmp, where, out = sys.argv[1:4]
    gemm = load(os.path.join(tmp, "gemm.json")) or {}
    conv = load(os.path.join(tmp, "conv.json")) or {}
    elem = load(os.path.join(tmp, "elementwise.json")) or {}
    att = load(os.path.join(tmp, "attention.json")) or {}
    rows = []  # (measure, value, target, comparison)

    def add(measure, value, target, ok):
        rows.append({"measure": measure, "value": value, "target": target,
                     "met": None if value is None else bool(ok(value))})

    g1024 = [r for r in gemm.get("results", []) if r.get("shape", "").startswith("AB:m=1024,n=1024,k=1024")]
    f32 = [r.get("fraction_of_ceiling") for r in g1024 if r.get("path") == "fp32"]
    add("GEMM 1024^3 fp32 / fp32 FMA ceiling", max(f32) if f32 else None, ">= 0.5", lambda v: v >= 0.5)
    for s in conv.get("summary", []):
        add("convolution %s, %s path: median / fp32 FMA ceiling" % (s["direction"], s["path"]),
            s.get("median_fraction_of_fma_f32"), ">= 0.5", lambda v: v >= 0.5)
    for op in ("layer_norm_forward", "layer_norm_backward", "rms_norm_forward", "rms_norm_backward",
               "softmax_forward", "softmax_backward", "softmax_causal_forward", "softmax_causal_backward"):
        for shape in ("gpt-recipe", "124M"):
            fr = [r["fraction_of_copy"] for r in elem.get("results", [])
                  if r.get("op") == op and r.get("shape") == shape]
            if fr:
                add("%s (%s rows) / copy bandwidth, best storage" % (op, shape), max(fr), ">= 0.5",
                    lambda v: v >= 0.5)
    ew = [r["fraction_of_copy"] for r in elem.get("results", []) if "shape" not in r]
    add("element-wise kernels (scan, cast, ReLU, bias): median / copy bandwidth", median(ew), ">= 0.5",
        lambda v: v >= 0.5)
    step = att.get("gpt_step", {})
    if step:
        add("GPT context %s, batch %s: peak memory fused / unfused attention" % (step.get("context"),
                                                                               step.get("batch")),
            step.get("peak_memory_ratio_fused_over_unfused"), "<= 0.3", lambda v: v <= 0.3)
        add("GPT context %s step time fused / unfused attention" % step.get("context"),
            step.get("step_time_ratio_fused_over_unfused"), "(measured)", lambda v: True)
    big = (load(os.path.join(tmp, "attention-batch.json")) or {}).get("gpt_step", {})
    if big:
        add("GPT context %s, batch %s, fused attention alone: peak MiB (unfused: beyond the device's binding limit)"
            % (big.get("context"), big.get("batch")), big.get("fused_peak_bytes", 0) / 1048576.0, "(measured)",
            lambda v: True)
    k = att.get("kernels", {})
    for d in ("forward", "backward"):
        if "fused_%s_fraction_of_fma" % d in k:
            add("fused attention %s / fp32 FMA ceiling" % d, k["fused_%s_fraction_of_fma" % d], "(measured)",
                lambda v: True)

    vk = {(m, p): load(os.path.join(tmp, "recipe-%s-%s.json" % (m, p))) for m in ("cnn", "gpt") for p in
          ("fp32", "mixed")}
    mlp = {p: load(os.path.join(tmp, "mlp-%s.json" % p)) for p in ("fp32", "mixed")}
    pt = {m: load(os.path.join(tmp, "torch-recipe-%s.json" % m)) for m in ("cnn", "gpt")}
    pt_mlp = load(os.path.join(tmp, "torch-mlp.json"))

    def speed(r, key):
        return (r or {}).get(key)

    cnn = max(filter(None, [speed(vk["cnn", p], "samples_per_second") for p in ("fp32", "mixed")]), default=None)
    if cnn and pt["cnn"]:
        add("CNN recipe epoch / PyTorch CPU fp32 epoch", pt["cnn"]["samples_per_second"] / cnn, "<= 3",
            lambda v: v <= 3)
    gpt = max(filter(None, [speed(vk["gpt", p], "tokens_per_second") for p in ("fp32", "mixed")]), default=None)
    if gpt and pt["gpt"]:
        add("GPT recipe tokens/s / PyTorch CPU fp32 tokens/s", gpt / pt["gpt"]["tokens_per_second"], ">= 0.33",
            lambda v: v >= 0.33)
    m = max(filter(None, [speed(mlp[p], "samples_per_second") for p in ("fp32", "mixed")]), default=None)
    if m and pt_mlp:
        add("MLP epoch / PyTorch CPU epoch", pt_mlp["samples_per_second"] / m, "<= 3", lambda v: v <= 3)
    shares = profile_shares(vk["gpt", "fp32"])
    if shares:
        add("non-GEMM share of the GPT step (fp32 profile; attention counted as non-GEMM)", 1 - shares["gemm"],
            "<= 0.2", lambda v: v <= 0.2)
    for model, key in (("cnn", "samples_per_second"), ("gpt", "tokens_per_second"), ("mlp", "samples_per_second")):
        a, b = (mlp["fp32"], mlp["mixed"]) if model == "mlp" else (vk[model, "fp32"], vk[model, "mixed"])
        if speed(a, key) and speed(b, key):
            add("%s mixed / fp32 step time" % model, speed(a, key) / speed(b, key), "<= 1.0", lambda v: v <= 1.0)
    for p in ("fp32", "mixed"):
        r = vk["gpt", p]
        if r and r.get("profile_dispatches"):
            add("GPT recipe dispatches per step, %s" % p, r["profile_dispatches"], "(measured)", lambda v: True)
    for p in ("fp32", "mixed"):
        f = load(os.path.join(tmp, "fusion-%s.json" % p))
        if f:
            add("GPT step with / without the IR's fusions, %s: dispatches %s / %s; step time ratio" % (
                p, f.get("dispatches_fused"), f.get("dispatches_unfused")), f.get("step_ratio_fused_over_unfused"),
                "(measured)", lambda v: True)
    rec = (load(os.path.join(tmp, "recompute.json")) or {}).get("configs", {})
    for name, what in (("recipe", "GPT recipe network"), ("gpt2", "GPT-2 124M transformer")):
        r = rec.get(name)
        if r:
            add("--recompute blocks / none, %s: planned activations" % what, r.get("planned_training_ratio"),
                "(measured)", lambda v: True)
            add("--recompute blocks / none, %s: device peak" % what, r.get("peak_device_ratio"), "(measured)",
                lambda v: True)
            add("--recompute blocks / none, %s: step time" % what, r.get("step_time_ratio"), "(measured)",
                lambda v: True)
    for p in ("fp32", "mixed"):  # accuracy must not move: the short runs' losses, for comparison across commits
        r = vk["cnn", p]
        if r:
            add("CNN short run test accuracy, %s" % p, r.get("test_accuracy"), "(no drift)", lambda v: True)

    def loadavg(name):
        try:
            return open(os.path.join(tmp, name)).read().split()[:3]
        except OSError:
            return None

    doc = {
        "suite": "issue 25 speed targets (bench/speed_targets.sh)", "where": where, "commit": commit(),
        "date": utc_now(), "machine": machine(),
        "device": gemm.get("device") or conv.get("device"), "driver": gemm.get("driver") or conv.get("driver"),
        "ceilings": gemm.get("ceilings", {}), "copy_gb_s": elem.get("copy_gb_s"),
        "loadavg_start": loadavg("loadavg-start.txt"), "loadavg_end": loadavg("loadavg-end.txt"),
        "pytorch_cnn": pt["cnn"], "pytorch_gpt": pt["gpt"], "pytorch_mlp": pt_mlp,
        "gpt_step_shares": shares, "targets": rows,
    }
    with open(out, "w") as f:
        json.dump(doc, f, indent=2)
    print("Issue 25 targets on %s (%s), commit %s, %s; load average %s at the start, %s at the end\n" % (
        doc["device"], where, doc["commit"], doc["date"], " ".join(doc["loadavg_start"] or []),
        " ".join(doc["loadavg_end"] or [])))
    print("| measure | measured | target | met |")
    print("|---|---|---|---|")
    for r in rows:
        v = r["value"]
        v = "-" if v is None else ("%.3g" % v if isinstance(v, float) else str(v))
        met = {True: "yes", False: "no", None: "-"}[r["met"]] if not r["target"].startswith("(") else ""
        print("| %s | %s | %s | %s |" % (r["measure"], v, r["target"], met))
    return 0


if __name__ == "__main__":
    sys.exit(main())
