#!/usr/bin/env python3
"""Summarises vktrain_bench_depthwise JSON files: per path and direction, the range and median of the depthwise
kernel's speed-up over the per-group GEMM, its fraction of the copy-bandwidth ceiling, the dense 3x3 convolution's
fraction of the compute ceiling, and their ratio; then the training-step rows.
  bench/summarize_depthwise.py FILE.json [FILE.json ...]"""
import json
import statistics
import sys


def span(values, fmt):
    return "%s-%s (median %s)" % (fmt % min(values), fmt % max(values), fmt % statistics.median(values))


def main(paths):
    for path in paths:
        with open(path) as f:
            doc = json.load(f)
        c = doc["ceilings"]
        print("%s: %s (%s), batch %d" % (path, doc["device"], doc["driver"], doc["batch"]))
        print("  ceilings: fma fp32 %.1f GFLOP/s, coopmat %.1f GFLOP/s, copy %.1f GB/s" %
              (c["fma_f32"]["value"], c["coopmat"]["value"], c["copy"]["value"]))
        groups = {}
        for r in doc["results"]:
            groups.setdefault((r["path"], r["direction"]), []).append(r)
        for (p, d), rows in groups.items():
            line = "  %-10s %-10s speed-up over GEMM %s; depthwise %s of copy bandwidth" % (
                p, d, span([r["speedup_over_gemm"] for r in rows], "%.1fx"),
                span([100 * r["depthwise_fraction_of_bandwidth"] for r in rows], "%.1f%%"))
            if all("dense_fraction_of_compute" in r for r in rows):
                line += "; dense 3x3 %s of compute; ratio %s" % (
                    span([100 * r["dense_fraction_of_compute"] for r in rows], "%.1f%%"),
                    span([r["efficiency_ratio"] for r in rows], "%.2f"))
            print(line)
        for t in doc.get("training", []):
            print("  %s %s batch %d, %s: %.2f images/s with the depthwise kernel, %.2f with the per-group GEMM "
                  "(%.2fx)" % (t["model"], t["input"], t["batch"], t["path"], t["depthwise_images_per_second"],
                               t["gemm_images_per_second"], t["speedup"]))


if __name__ == "__main__":
    main(sys.argv[1:])
