#!/usr/bin/env python3
"""Merges one run of bench/run_suite.sh (its folder of intermediate files) into one JSON with the machine, the
device, the commit, every result with its ratio to the ceiling measured in the same run, and issue 13's targets
checked; prints a short summary.   summarize_suite.py TMP_DIR WHERE OUT.json"""
import json
import os
import sys

from results_common import commit, load, machine, utc_now


def main():
    tmp, where, out = sys.argv[1:4]
    gemm = load(os.path.join(tmp, "gemm.json")) or {}
    doc = {
        "suite": "vktrain benchmark suite (bench/run_suite.sh)",
        "where": where,
        "date": utc_now(),
        "commit": commit(),
        "machine": machine(),
        "device": gemm.get("device"),
        "driver": gemm.get("driver"),
        "coopmat_shapes": gemm.get("coopmat_shapes", []),
        "ceilings": gemm.get("ceilings", {}),
        "gemm": gemm.get("results", []),
    }
    training = {}
    for name in ("mlp", "mlp4096", "mlp4096-devupdate", "mlp4096-hostserial"):
        for precision in ("fp32", "mixed"):
            r = load(os.path.join(tmp, f"train-{name}-{precision}.json"))
            if not r:
                continue
            batch = r["batch_size"]
            wall_us = batch / r["samples_per_second"] * 1e6
            device_us = r.get("profile_total_us", 0.0)
            training[f"{name}-{precision}"] = {
                "model": r["model"], "batch": batch, "gemm_path": r.get("gemm_path"),
                "samples_per_second": r["samples_per_second"], "seconds_per_epoch": r["seconds_per_epoch"],
                "train_samples": r["train_samples"], "peak_device_bytes": r["peak_device_bytes"],
                "step_wall_us": wall_us, "step_device_us": device_us,
                # What the wall-clock step spends beyond the device's own time: host work not hidden behind it.
                "host_share_of_step": max(0.0, 1.0 - device_us / wall_us) if device_us else None,
                # The host update per step (inf/NaN check, optimizer, fp16 copy) and the part of it done while the
                # device still computed later gradients (the bucketed pipeline, TrainerOptions::update_buckets).
                "host_update_ms_per_step": (r.get("history") or [{}])[-1].get("host_update_ms_per_step"),
                "host_overlapped_ms_per_step": (r.get("history") or [{}])[-1].get("host_overlapped_ms_per_step"),
                "test_accuracy": r.get("test_accuracy"),
                "update_location": r.get("update_location"), "update_location_reason": r.get("update_location_reason"),
                "update_buckets": r.get("update_buckets"),
            }
    doc["training"] = training
    cold, warm = load(os.path.join(tmp, "startup-cold-time.json")), load(os.path.join(tmp, "startup-warm-time.json"))
    if cold and warm:
        doc["startup_seconds"] = {"cold_cache": cold["seconds"], "warm_cache": warm["seconds"],
                                  "what": "a whole one-step run of the default MLP (process start to exit)"}
    elementwise = load(os.path.join(tmp, "elementwise.json"))
    doc["elementwise"] = elementwise["results"] if elementwise else []
    host = load(os.path.join(tmp, "host.json"))
    doc["host_update"] = host["results"] if host else []
    torch = {}
    for key, name in (("cpu_or_fp32", "torch.json"), ("amp", "torch-amp.json"), ("amp_mlp4096", "torch-amp-mlp4096.json")):
        t = load(os.path.join(tmp, name))
        if t:
            torch[key] = t
    doc["pytorch"] = torch
    generate = load(os.path.join(tmp, "generate.json"))  # bench/generate_bench.py
    doc["generate"] = generate["rows"] if generate else []

    # Issue 13's targets, each as a measured ratio (None where this run cannot tell).
    ceil32 = doc["ceilings"].get("fma_f32", {}).get("value") or 0
    def best_fraction(pred):
        fr = [g.get("fraction_of_ceiling", 0) for g in doc["gemm"] if pred(g["shape"])]
        return max(fr) if fr else None
    mlp_shapes = ("ABt:m=128,n=256,k=784", "AtB:m=256,n=784,k=128", "AB:m=128,n=256,k=128")
    targets = {
        "best_gemm_1024_fraction_of_ceiling": best_fraction(lambda s: s.startswith("AB:m=1024,n=1024,k=1024")),
        "best_gemm_mlp_shapes_fraction_of_ceiling": {
            s: best_fraction(lambda x, s=s: x.startswith(s)) for s in mlp_shapes},
    }
    f32, mixed = training.get("mlp-fp32"), training.get("mlp-mixed")
    if f32 and mixed:
        targets["mlp_mixed_over_fp32_speed"] = mixed["samples_per_second"] / f32["samples_per_second"]
        targets["mlp_mixed_over_fp32_peak_memory"] = mixed["peak_device_bytes"] / f32["peak_device_bytes"]
    b32, bmixed = training.get("mlp4096-fp32"), training.get("mlp4096-mixed")
    if b32 and bmixed:
        targets["mlp4096_mixed_over_fp32_speed"] = bmixed["samples_per_second"] / b32["samples_per_second"]
        targets["mlp4096_mixed_over_fp32_peak_memory"] = bmixed["peak_device_bytes"] / b32["peak_device_bytes"]
    t = torch.get("cpu_or_fp32")
    if t and f32 and where != "gpu":
        best = max(f32["samples_per_second"], mixed["samples_per_second"] if mixed else 0)
        targets["mlp_epoch_time_over_pytorch_cpu"] = t["samples_per_second"] / best
    h124 = [h for h in doc["host_update"] if h["params"] >= 1.2e8 and h["work"] == "adamw with fp16 (fused)"]
    if h124:
        targets["host_update_124M_fraction_of_memcpy"] = h124[0]["fraction_of_memcpy"]
    if where == "gpu" and torch.get("cpu_or_fp32"):
        mm = {m["size"]: m["gflops"] for m in torch["cpu_or_fp32"].get("matmul", [])}
        ours = [g["gflops"] for g in doc["gemm"] if g["shape"].startswith("AB:m=4096,n=4096,k=4096") and
                g["path"] == "coopmat"]
        if 4096 in mm and ours:
            targets["coopmat_4096_over_pytorch_fp16_matmul"] = max(ours) / mm[4096]
    for g in doc["generate"]:  # issue 25: cached generation tokens/s against PyTorch CPU with a key/value cache
        targets["generate_%s_tokens_per_s_over_pytorch_cpu" % g["model"]] = g["ratio"]
    doc["targets"] = targets
    with open(out, "w") as f:
        json.dump(doc, f, indent=2)

    print(f"suite ({where}): {doc['device']} — {doc['driver']}; {doc['machine']['cpu']}, {doc['machine']['cores']} cores")
    for k, c in doc["ceilings"].items():
        print(f"  ceiling {k}: {c.get('value', 0):.1f} {c.get('unit', '')}")
    for k, v in targets.items():
        if isinstance(v, dict):
            v = ", ".join(f"{s}: {x:.2f}" for s, x in v.items() if x is not None)
        elif isinstance(v, float):
            v = f"{v:.2f}"
        print(f"  {k}: {v}")
    for k, r in training.items():
        share = r["host_share_of_step"]
        update, hidden = r.get("host_update_ms_per_step"), r.get("host_overlapped_ms_per_step")
        print(f"  {k}: {r['samples_per_second']:.0f} samples/s, peak {r['peak_device_bytes'] / 2**20:.2f} MiB"
              + (f", host share {share:.2f}" if share is not None else "")
              + (f", host update {update:.2f} ms/step ({hidden:.2f} overlapped)" if update is not None else ""))
    print(f"  -> {out}")


if __name__ == "__main__":
    main()
