#!/usr/bin/env python3
"""Summarises GPT recipe reports (vktrain train --model gpt:... --report ...) as markdown: the validation loss at each
reported step per precision with the mixed/fp32 ratio, training tokens/s and peak device memory.

usage: summarize_gpt.py MIXED.json FP32.json
"""
import json
import sys

MIB = 2.0 ** 20


def main():
    mixed, fp32 = (json.load(open(p)) for p in sys.argv[1:3])
    vm = {v["step"]: v["val_loss"] for v in mixed["validation"]}
    vf = {v["step"]: v["val_loss"] for v in fp32["validation"]}
    print("| step | fp32 val loss | mixed val loss | mixed / fp32 |")
    print("|---|---|---|---|")
    for step in sorted(set(vm) & set(vf)):
        print("| %d | %.4f | %.4f | %+.2f%% |" % (step, vf[step], vm[step], 100.0 * (vm[step] / vf[step] - 1.0)))
    print()
    print("| precision | GEMM paths | tokens/s | train s | peak device MiB | trainer MiB | skipped | final scale |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in (("fp32", fp32), ("mixed", mixed)):
        print("| %s | %s | %.0f | %.0f | %.2f | %.2f | %d | %g |" % (
            name, r["gemm_path"], r["tokens_per_second"], r["train_seconds"], r["peak_device_bytes"] / MIB,
            r["trainer_device_bytes"] / MIB, r["skipped_steps"], r["loss_scale"]))


if __name__ == "__main__":
    main()
