#!/usr/bin/env python3
"""Activation recomputation's trade (vktrain train --recompute none|blocks): planned activation memory, device memory
and step time with and without recomputation, in one run per configuration, on the same device and binary:
  - recipe: the GPT recipe's network (bench/run_gpt_recipe.sh: layers 4, heads 4, width 128, context 128; batch 32);
  - gpt2:   GPT-2 124M's transformer (12 layers, width 768, 12 heads, MLP 3072) at context 128, batch 2, so a step
            takes seconds on lavapipe. The corpus is character-level, so the embeddings are small: the body's 85M
            parameters are GPT-2's, its 50257-token embedding (38.6M) is not.
Each run trains --steps steps on /usr/share/games/fortunes from the same seed, with the default GEMM tiles (--no-tune:
tuning by measurement could pick other tiles in the two runs). The losses must agree bit for bit
(recomputation is exact); the script fails otherwise. The largest batch that fits a memory budget for activations
(--budget-mib) is extrapolated from the planned training arena, which is linear in the batch (the plan of batch b is
b times the plan per sample, within alignment).

Usage: bench/recompute_bench.py [--binary build/bin/vktrain] [--steps N] [--configs recipe,gpt2] [--precision fp32]
                                [--budget-mib 512] [--runner PREFIX] [--out FILE.json]
"""
import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile

CONFIGS = {
    "recipe": {"spec": "gpt:layers=4,heads=4,width=128,context=128", "batch": 32, "context": 128},
    "gpt2": {"spec": "gpt:layers=12,heads=12,width=768,context=128", "batch": 2, "context": 128},
}


def run(binary, config, recompute, steps, precision, work, extra, runner):
    report = os.path.join(work, f"{config}-{recompute}-{precision}.json")
    c = CONFIGS[config]
    cmd = runner + [binary, "train", "--model", c["spec"], "--text", "/usr/share/games/fortunes", "--precision", precision,
           "--steps", str(steps), "--warmup", "0", "--batch-size", str(c["batch"]), "--eval-at", "0", "--val-limit",
           "1", "--recompute", recompute, "--no-tune", "--quiet", "--force", "--report", report] + extra
    print("==", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(report) as f:
        r = json.load(f)
    history = r.get("history", [])
    return {
        "recompute": r["recompute"],
        "planned_training_bytes": r["planned_training_bytes"],
        "peak_device_bytes": r["peak_device_bytes"],
        "trainer_device_bytes": r["trainer_device_bytes"],
        "tokens_per_second": r["tokens_per_second"],
        "train_seconds": r["train_seconds"],
        "final_loss": r["final_loss"],
        "losses": [h.get("loss") for h in history] if isinstance(history, list) else [],
        "parameters": r["parameters"],
        "device": "%s (%s)" % (r["device"].get("name", ""), r["device"].get("driver_info", "")),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="build/bin/vktrain")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--configs", default="recipe,gpt2")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "mixed"])
    ap.add_argument("--budget-mib", type=float, default=512.0, help="activation budget for the largest-batch estimate")
    ap.add_argument("--out", default="")
    ap.add_argument("--work", default="", help="where the runs' reports go (default: a temporary folder; under a "
                    "--runner such as run-in-root.sh, a folder the runner shares, e.g. inside the build folder)")
    ap.add_argument("--runner", default="", help="a command prefix, e.g. 'platforms/debian/run-in-root.sh build' "
                    "for lavapipe 26.1 (then --binary must be an absolute path)")
    ap.add_argument("extra", nargs="*", help="more vktrain train options (after --)")
    a = ap.parse_args()
    runner = a.runner.split()
    with open("/proc/loadavg") as f:
        load_start = f.read().split()[:3]
    result = {"binary": a.binary, "runner": a.runner, "steps": a.steps, "precision": a.precision, "loadavg_start": load_start,
              "configs": {}}
    if a.work:
        os.makedirs(a.work, exist_ok=True)
    with (contextlib.nullcontext(a.work) if a.work else tempfile.TemporaryDirectory()) as work:
        for config in a.configs.split(","):
            none = run(a.binary, config, "none", a.steps, a.precision, work, a.extra, runner)
            blocks = run(a.binary, config, "blocks", a.steps, a.precision, work, a.extra, runner)
            if none["final_loss"] != blocks["final_loss"] or none["losses"] != blocks["losses"]:
                sys.exit(f"{config}: the losses differ with recomputation: {none['losses']} vs {blocks['losses']}")
            c = CONFIGS[config]
            per_sample = {k: v["planned_training_bytes"] / c["batch"] for k, v in (("none", none), ("blocks", blocks))}
            budget = a.budget_mib * 2**20
            result["configs"][config] = {
                "device": none["device"], "spec": c["spec"], "batch": c["batch"], "context": c["context"], "parameters": none["parameters"],
                "none": none, "blocks": blocks,
                "planned_training_ratio": blocks["planned_training_bytes"] / none["planned_training_bytes"],
                "peak_device_ratio": blocks["peak_device_bytes"] / none["peak_device_bytes"],
                "step_time_ratio": none["tokens_per_second"] / blocks["tokens_per_second"],
                "budget_mib": a.budget_mib,
                "max_batch_in_budget": {k: int(budget // v) for k, v in per_sample.items()},
            }
    with open("/proc/loadavg") as f:
        result["loadavg_end"] = f.read().split()[:3]
    for config, r in result["configs"].items():
        print(f"{config} on {r['device']} ({r['spec']}, batch {r['batch']}, {r['parameters'] / 1e6:.1f}M parameters, {a.precision}): "
              f"planned activations {r['none']['planned_training_bytes'] / 2**20:.1f} -> "
              f"{r['blocks']['planned_training_bytes'] / 2**20:.1f} MiB ({r['planned_training_ratio']:.2f}x), "
              f"device peak {r['none']['peak_device_bytes'] / 2**20:.1f} -> "
              f"{r['blocks']['peak_device_bytes'] / 2**20:.1f} MiB ({r['peak_device_ratio']:.2f}x), "
              f"step time {r['step_time_ratio']:.2f}x, largest batch in {r['budget_mib']:.0f} MiB of activations "
              f"{r['max_batch_in_budget']['none']} -> {r['max_batch_in_budget']['blocks']}")
    print(f"load average {' '.join(result['loadavg_start'])} at the start, {' '.join(result['loadavg_end'])} at the end")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
