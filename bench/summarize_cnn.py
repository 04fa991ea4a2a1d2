#!/usr/bin/env python3
"""Summarises CNN recipe reports (vktrain train --model cnn --report ...) as a markdown table.

usage: summarize_cnn.py REPORT.json [REPORT.json ...]
"""
import json
import sys

MIB = 2.0 ** 20


def main():
    print("| device | precision | GEMM paths | test accuracy after epochs 1..N | s/epoch | samples/s | "
          "planned arena (train / eval) MiB | one buffer per value MiB | trainer MiB | observed peak MiB | skipped |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for path in sys.argv[1:]:
        r = json.load(open(path))
        m = r["memory"]
        accs = ", ".join("%.4f" % e["test_accuracy"] for e in r["history"])
        paths = {}
        for g in r["gemm_paths"]:
            paths[g["path"]] = paths.get(g["path"], 0) + 1
        print("| %s (%s) | %s | %s | %s | %.1f | %.0f | %.2f (%.2f / %.2f) | %.2f | %.2f | %.2f | %d |" % (
            r["device"]["name"], r["device"]["driver_info"], r["precision"],
            ", ".join("%s ×%d" % kv for kv in sorted(paths.items())), accs, r["seconds_per_epoch"],
            r["samples_per_second"], m["planned_arena_bytes"] / MIB, m["planned_training_bytes"] / MIB,
            m["planned_evaluation_bytes"] / MIB, m["unplanned_bytes"] / MIB, m["trainer_bytes"] / MIB,
            m["observed_peak_bytes"] / MIB, r["skipped_steps"]))


if __name__ == "__main__":
    main()
