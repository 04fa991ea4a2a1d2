#!/usr/bin/env python3
"""The recipe comparison of bench/gpu.sh as a Markdown table: vktrain's CNN and GPT recipe runs (fp32 and mixed,
recipe-{cnn,gpt}-{fp32,mixed}.json, `vktrain train --report`) against PyTorch's steps of the same networks
(torch-recipe-{cnn,gpt}[-amp].json, bench/torch_recipes.py). Throughput: samples/s (CNN) and tokens/s (GPT); the
ratio is vktrain mixed / PyTorch AMP and vktrain fp32 / PyTorch fp32.

  summarize_recipes.py FOLDER
"""
import os
import sys

from results_common import load


def main():
    folder = sys.argv[1]
    print("| model | unit | vktrain fp32 | vktrain mixed | PyTorch fp32 | PyTorch AMP | fp32 ratio | mixed/AMP ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for model, unit in (("cnn", "samples"), ("gpt", "tokens")):
        key = unit + "_per_second"
        vk = {p: load(os.path.join(folder, "recipe-%s-%s.json" % (model, p))) for p in ("fp32", "mixed")}
        pt = {a: load(os.path.join(folder, "torch-recipe-%s%s.json" % (model, a))) for a in ("", "-amp")}
        v = {p: (r or {}).get(key) for p, r in vk.items()}
        t = {a: (r or {}).get(key) for a, r in pt.items()}
        cell = lambda x: "%.0f" % x if x else "-"  # noqa: E731
        ratio = lambda a, b: "%.3f" % (a / b) if a and b else "-"  # noqa: E731
        print("| %s | %s/s | %s | %s | %s | %s | %s | %s |" % (model, unit, cell(v["fp32"]), cell(v["mixed"]),
                                                              cell(t[""]), cell(t["-amp"]), ratio(v["fp32"], t[""]),
                                                              ratio(v["mixed"], t["-amp"])))
    dev = next((r["device"]["name"] for r in (load(os.path.join(folder, "recipe-cnn-fp32.json")),) if r), "?")
    tdev = next((r.get("gpu") or r["device"] for r in (load(os.path.join(folder, "torch-recipe-cnn.json")),) if r),
                "?")
    print("\nvktrain on %s; PyTorch on %s (synthetic batches); load average %s" % (
        dev, tdev, " ".join(open("/proc/loadavg").read().split()[:3])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
