#!/usr/bin/env python3
"""End-to-end checks of the `vktrain` command: exit codes, one-line errors, outputs never overwritten, the JSON
report and a train -> eval round trip. Each case is its own ctest test:

    test_cli.py --binary build/bin/vktrain --work DIR --case NAME

Exit status 0 = pass, 1 = fail (the first wrong check is printed), 77 = skipped (no data set / no device).
"""

import argparse
import gzip
import hashlib
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from byte_level import bytes_to_unicode  # noqa: E402

DATA_DIR = os.environ.get("VKTRAIN_TEST_DATA", "/usr/share/datasets/fashion-mnist")
SKIP = 77

REQUIRED_REPORT_KEYS = [
    "precision", "device", "gemm_path", "gemm_paths", "model", "parameters", "optimizer", "learning_rate",
    "batch_size", "seed", "epochs", "test_accuracy", "test_loss", "final_loss", "loss_scale", "skipped_steps",
    "steps", "samples_per_second", "seconds_per_epoch", "epoch_seconds", "history", "peak_device_bytes",
    "trainer_device_bytes", "vktrain_version", "date", "resumed_from", "checkpoint", "memory",
]


class Failure(Exception):
    pass


class Skip(Exception):
    pass


class Cli:
    def __init__(self, binary, work):
        self.binary = binary
        self.work = work

    def run(self, *args, timeout=600):
        cmd = [self.binary] + [str(a) for a in args]
        print("$ " + " ".join(cmd), flush=True)
        p = subprocess.run(cmd, cwd=self.work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           text=True, errors="replace")
        for line in p.stdout.splitlines():
            print("  stdout: " + line)
        for line in p.stderr.splitlines():
            print("  stderr: " + line)
        print("  exit %d" % p.returncode, flush=True)
        return p


def check(condition, message):
    if not condition:
        raise Failure(message)
    print("  ok: " + message, flush=True)


def error_lines(stderr):
    return [l for l in stderr.splitlines() if l.startswith("vktrain: error: ")]


def check_one_line_error(p, status, *needles):
    """The whole of stderr is exactly one 'vktrain: error: ...' line containing every needle."""
    check(p.returncode == status, "exit status %d (got %d)" % (status, p.returncode))
    lines = p.stderr.splitlines()
    check(len(lines) == 1, "exactly one line on stderr (got %d)" % len(lines))
    check(lines[0].startswith("vktrain: error: "), "stderr starts with 'vktrain: error: '")
    for n in needles:
        check(n in lines[0], "error names %r" % n)


def check_last_error(p, status, *needles):
    """For failures after a device was opened: drivers may print their own notices first (lavapipe warns that it
    is not conformant), so only the final line is ours to check."""
    check(p.returncode == status, "exit status %d (got %d)" % (status, p.returncode))
    errors = error_lines(p.stderr)
    check(len(errors) == 1, "exactly one 'vktrain: error:' line (got %d)" % len(errors))
    check(p.stderr.splitlines()[-1] == errors[0], "the error is the last stderr line")
    for n in needles:
        check(n in errors[0], "error names %r" % n)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def need_data():
    if not os.path.isfile(os.path.join(DATA_DIR, "t10k-images-idx3-ubyte.gz")):
        raise Skip("Fashion-MNIST not found in " + DATA_DIR)


def case_usage(cli):
    p = cli.run("train", "--bogus")
    check_one_line_error(p, 2, "--bogus")
    p = cli.run("frobnicate")
    check_one_line_error(p, 2, "frobnicate")
    p = cli.run()
    check_one_line_error(p, 2)
    p = cli.run("eval")
    check_one_line_error(p, 2, "--weights")
    p = cli.run("--help")
    check(p.returncode == 0 and "train" in p.stdout and p.stderr == "", "--help exits 0 with usage on stdout")
    p = cli.run("train", "--help")
    check(p.returncode == 0 and "--batch-size" in p.stdout, "train --help lists the options")
    check("--checkpoint FILE" in p.stdout and "--resume FILE" in p.stdout, "train --help lists --checkpoint, --resume")
    check("--profile" in p.stdout, "train --help lists --profile")
    p = cli.run("--version")
    check(p.returncode == 0 and p.stdout.strip() == "vktrain 0.1.0", "--version prints 'vktrain 0.1.0'")


def case_bad_values(cli):
    for args, needle in [
        (["--epochs", "abc"], "--epochs"),
        (["--epochs", "-1"], "--epochs"),
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size"], "--batch-size"),
        (["--lr", "nan"], "--lr"),
        (["--lr", "0"], "--lr"),
        (["--lr", "1e39"], "--lr"),
        (["--loss-scale", "1e-39"], "--loss-scale"),
        (["--lr", "1e-50"], "--lr"),
        (["--weight-decay", "1e40"], "--weight-decay"),
        (["--optimizer", "sgd", "--momentum", "1"], "--momentum"),
        (["--precision", "fp8"], "--precision"),
        (["--optimizer", "adam"], "--optimizer"),
        (["--gemm-path", "fast"], "--gemm-path"),
        (["--model", "mlp:256,x"], "--model"),
        (["--model", "cnn:3"], "--model"),
        (["--model", "cnnx"], "--model"),
        (["--model", "resnet"], "--model"),
        (["--limit", "12k"], "--limit"),
        (["--quiet=yes"], "--quiet"),
        (["--profile=yes"], "--profile"),
        (["--checkpoint"], "--checkpoint"),
        (["--resume"], "--resume"),
        (["--checkpoint", "x.safetensors", "--output", "x.safetensors"], "--checkpoint"),
        (["--output", "x.json", "--report", "./x.json"], "--output"),
        (["--checkpoint", "sub/../c.st", "--output", "c.st"], "--checkpoint"),
        (["--stop-after", "1"], "--stop-after"),
        (["--stop-after", "0", "--checkpoint", "x.safetensors"], "--stop-after"),
    ]:
        p = cli.run("train", *args)
        check_one_line_error(p, 2, needle)


def case_shared_options(cli):
    """The options several commands share are declared once (tools/vktrain/args.cpp): each command spells,
    validates and reports them the same way."""
    for command, extra in [("train", []), ("eval", ["--weights", "w.safetensors"]),
                           ("generate", ["--weights", "w.safetensors"])]:
        for args, needle in [
            (["--precision", "fp8"], "--precision expects mixed or fp32, got 'fp8'"),
            (["--gemm-path=fast"], "--gemm-path expects auto, coopmat or tiled-fp16, got 'fast'"),
            (["--device", "2147483648"], "--device expects an integer in [0, 2147483647]"),
            (["--no-tune=1"], "--no-tune takes no value"),
            (["--validation", "word"], "unexpected argument 'word'"),
            (["--precision", "--no-coopmat"], "--precision needs a value"),
            (["--help=1"], "--help takes no value"),
        ]:
            p = cli.run(command, *extra, *args)
            check_one_line_error(p, 2, needle, "(see 'vktrain %s --help')" % command)
        p = cli.run(command, "-h")
        check(p.returncode == 0 and p.stdout.startswith("usage: vktrain " + command), command + " -h prints its help")
    for command in ["train", "generate"]:
        p = cli.run(command, "--seed", "-1")
        check_one_line_error(p, 2, "--seed expects an integer >= 0, got '-1'")
        p = cli.run(command, "--quiet=yes")
        check_one_line_error(p, 2, "--quiet takes no value")
    p = cli.run("eval", "--weights", "w.safetensors", "--seed", "1")
    check_one_line_error(p, 2, "unknown option '--seed'")
    p = cli.run("devices", "--device", "0")
    check_one_line_error(p, 2, "unknown option '--device'")
    p = cli.run("devices", "--validation=1")
    check_one_line_error(p, 2, "--validation takes no value")


def case_registry_models(cli):
    """The op registry reaches the command (issue 22): `vktrain ops` lists it, mlp: specs take any activation op of
    it, and net: specs chain any of its one-input ops with their attributes; a bad op or attribute is a one-line usage
    error naming it, before any work."""
    p = cli.run("ops")
    check(p.returncode == 0, "vktrain ops exits 0")
    for needle in ["linear(x)  [dense]", "conv2d(x)  [vision]", "cross_entropy(logits, labels)  [loss]",
                   "kernel_w        integer [1, 2147483647]      default: kernel_h"]:
        check(needle in p.stdout, "vktrain ops lists %r" % needle)
    for spec, needles in [
        ("net:nope", ["unknown op 'nope'", "ops of one input: linear"]),
        ("net:add", ["op 'add' takes 2 inputs (a, b)"]),
        ("net:linear", ["op 'linear' needs attribute 'out'"]),
        ("net:linear(out=0)", ["linear: out 0 is outside [1, 2147483647]"]),
        ("net:linear(out=4,stride=2)", ["op 'linear' has no attribute 'stride' (attributes: out, bias)"]),
        ("net:linear(out=4,out=5)", ["attribute 'out' is given more than once"]),
        ("net:reshape(shape=4xy)", ["shape '4xy' is not dimensions joined by 'x'"]),
        ("net:relu(x", ["'relu(x' is not OP(KEY=VALUE,...)"]),
        ("mlp:16:tanh", ["unknown activation 'tanh'", ":silu"]),
    ]:
        p = cli.run("train", "--model", spec)
        check_one_line_error(p, 2, "--model", *needles)
    need_data()
    common = ["--limit", 64, "--test-limit", 64, "--epochs", 1, "--batch-size", 32, "--precision", "fp32"]
    p = cli.run("train", "--model", "net:conv2d(out=4,kernel_h=3,pad_h=1),relu,max_pool2d,dropout(p=0.1)", *common)
    check(p.returncode == 0, "a net: model trains")
    check("model       [1, 28, 28] conv2d4 relu max_pool2d dropout flatten linear10 cross_entropy" in p.stdout,
          "the images come in as [1, 28, 28]; flatten and the classifier are added")
    p = cli.run("train", "--model", "mlp:16:silu", *common, "--output", "silu.safetensors")
    check(p.returncode == 0 and "model       [784] linear16 silu linear10 cross_entropy" in p.stdout,
          "an mlp: spec takes any activation of the registry")
    p = cli.run("eval", "--weights", "silu.safetensors", "--test-limit", 64)
    check(p.returncode == 0, "its weights evaluate")
    p = cli.run("train", "--model", "net:conv2d(out=4,groups=3)", *common)
    check_last_error(p, 1, "groups")


def case_model_spec(cli):
    """GPT specs: a key given twice is refused rather than the last one winning, and depth is capped at what has been
    measured to work (4096 layers), with one line naming the key or the limit, before any work."""
    for spec, needles in [
        ("gpt:layers=1,layers=2", ["key 'layers' is given more than once"]),
        ("gpt:tied=0,heads=2,tied=1", ["key 'tied' is given more than once"]),
        ("gpt:layers=4097", ["layers 4097", "4096"]),
        ("gpt:layers=1048576", ["layers 1048576", "4096"]),
    ]:
        p = cli.run("train", "--model", spec, "--text", "none.txt")
        check_one_line_error(p, 2, "--model", *needles)
    # The deepest accepted specs parse (and fail later only for the missing corpus).
    p = cli.run("train", "--model", "gpt:layers=4096,width=8,heads=2", "--text", "none.txt")
    check_one_line_error(p, 1, "none.txt")


def case_missing_data(cli):
    missing = os.path.join(cli.work, "no-such-dir")
    p = cli.run("train", "--data", missing, "--quiet")
    check_one_line_error(p, 1, missing, "train-images-idx3-ubyte")
    p = cli.run("eval", "--weights", "w.safetensors")
    check_one_line_error(p, 1, "w.safetensors")


def case_batch_clamp(cli):
    """A batch larger than the data is clamped to the sample count (no compute spent on padding)."""
    need_data()
    p = cli.run("train", "--limit", 200, "--test-limit", 50, "--epochs", 1, "--batch-size", 100000, "--quiet",
                "--report", "r.json")
    check(p.returncode == 0 and "exceeds the 200 training samples; using 200" in p.stdout, "the batch is clamped")
    check(read_report(cli, "r.json")["batch_size"] == 200, "the report says batch size 200")


def case_batch_clamp_resume(cli):
    """A run whose batch was reduced to the sample count resumes from its checkpoint with the same options, and ends
    exactly like the uninterrupted run."""
    need_data()
    common = ["--limit", 50, "--test-limit", 20, "--epochs", 3, "--quiet"]  # the default batch of 128 becomes 50
    p = cli.run("train", *common, "--report", "a.json")
    check(p.returncode == 0 and "using 50" in p.stdout, "uninterrupted run exits 0 with the batch reduced to 50")
    p = cli.run("train", *common, "--stop-after", 1, "--checkpoint", "c.safetensors")
    check(p.returncode == 0 and re.search(r"^stopped     after epoch 1 of 3", p.stdout, re.M) is not None,
          "--stop-after 1 stops after the first epoch")
    p = cli.run("train", *common, "--resume", "c.safetensors", "--report", "b.json")
    check(p.returncode == 0, "the same options resume the run (exit %d)" % p.returncode)
    a, b = read_report(cli, "a.json"), read_report(cli, "b.json")
    check_same_results(a, b)
    check(b["batch_size"] == 50, "the resumed run's report says batch size 50")
    # An explicit batch that differs after the reduction is still refused, before any data is loaded.
    p = cli.run("train", *common, "--batch-size", 20, "--resume", "c.safetensors")
    check_one_line_error(p, 1, "c.safetensors", "--batch-size 50", "this run has 20")


def case_permission_denied(cli):
    """A folder the user may not read is reported as such, not as a missing file (run as nobody; root reads all)."""
    if os.geteuid() != 0:
        raise Skip("needs root to run a command as another user")
    # The build folder may lie where nobody cannot enter (a clone in /root, mode 700): run a copy of the command from
    # a folder of its own under /tmp instead.
    home = tempfile.mkdtemp(prefix="vktrain-nobody-")
    try:
        os.chmod(home, 0o755)
        binary = os.path.join(home, "vktrain")
        shutil.copy(cli.binary, binary)
        os.chmod(binary, 0o755)
        # A sanitizer build's suppression files may lie where nobody cannot read them either: copies go beside it.
        env = dict(os.environ)
        for var in ("ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS"):
            if var not in env:
                continue
            options = []
            for option in env[var].split(":"):
                if option.startswith("suppressions="):
                    copy = os.path.join(home, var.lower() + ".supp")
                    shutil.copy(option[len("suppressions="):], copy)
                    os.chmod(copy, 0o644)
                    option = "suppressions=" + copy
                options.append(option)
            env[var] = ":".join(options)
        probe = subprocess.run([binary, "--version"], cwd="/", user=65534, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=60, env=env)
        check(probe.returncode == 0, "user nobody cannot run a copy of the command: " + probe.stderr.strip())
        locked = os.path.join(home, "locked")
        os.makedirs(locked)
        os.chmod(locked, 0o700)  # root's: nobody may not enter it
        for args in (["train", "--data", locked, "--limit", 10], ["train", "--model", "gpt", "--text", locked]):
            cmd = [binary] + [str(a) for a in args]
            print("$ (as nobody) " + " ".join(cmd), flush=True)
            p = subprocess.run(cmd, cwd="/", user=65534, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=120, env=env)
            print("  stderr: " + p.stderr.strip())
            check_one_line_error(p, 1, "locked", "ermission denied")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def case_corrupt_data(cli):
    need_data()
    data = os.path.join(cli.work, "data")
    os.makedirs(data)
    for name in os.listdir(DATA_DIR):
        shutil.copy(os.path.join(DATA_DIR, name), data)
    images = os.path.join(data, "train-images-idx3-ubyte.gz")
    with open(images, "r+b") as f:
        f.truncate(os.path.getsize(images) // 2)
    p = cli.run("train", "--data", data, "--epochs", "1", "--quiet")
    check_one_line_error(p, 1, "train-images-idx3-ubyte.gz")
    # Not gzip at all: a text file under the image file's name.
    with open(images, "wb") as f:
        f.write(b"this is not an IDX file\n" * 10)
    p = cli.run("train", "--data", data, "--epochs", "1", "--quiet")
    check_one_line_error(p, 1, "train-images-idx3-ubyte.gz")


def case_diverged(cli):
    need_data()
    # A learning rate that ruins the weights at the first step: every later step overflows and is skipped, the loss
    # scale stops at its floor (2^-24, never 0), and the run exits 1 with a diagnosis.
    p = cli.run("train", "--limit", 600, "--test-limit", 100, "--epochs", 2, "--batch-size", 20, "--lr", "1e38",
                "--quiet", "--checkpoint", "d.safetensors", "--report", "d.json")
    check_one_line_error(p, 1, "diverged", "skipped")
    r = read_report(cli, "d.json")
    check(r["loss_scale"] == 2.0 ** -24 and r["skipped_steps"] > 0, "the report was written (scale %r, %d skipped)"
          % (r["loss_scale"], r["skipped_steps"]))
    p = cli.run("train", "--limit", 600, "--test-limit", 100, "--epochs", 3, "--batch-size", 20, "--lr", "1e38",
                "--quiet", "--resume", "d.safetensors")
    # Its weights are NaN (the first update overflowed them): refused by name, never trained on.
    check_one_line_error(p, 1, "d.safetensors", "linear0.weight", "finite")


def case_existing_output(cli):
    for option in ["--output", "--report"]:
        path = os.path.join(cli.work, "existing" + ("" if option == "--output" else ".json"))
        with open(path, "wb") as f:
            f.write(b"precious contents\n")
        before = sha256(path)
        # A missing data directory too: the output check must come first, before any data is read.
        p = cli.run("train", option, path, "--data", os.path.join(cli.work, "no-such-dir"), "--quiet")
        check(p.returncode != 0, "exit status is non-zero")
        check_one_line_error(p, p.returncode, path, "already exists")
        check(sha256(path) == before, "%s file is unchanged" % option)
    p = cli.run("train", "--output", os.path.join(cli.work, "no-such-dir", "w.safetensors"), "--quiet")
    check_one_line_error(p, 1, "no-such-dir")
    # --force replaces regular files only: a symlink (such as /dev/stdout) or a device node is never renamed over.
    target = os.path.join(cli.work, "link-target.json")
    with open(target, "wb") as f:
        f.write(b"precious contents\n")
    link = os.path.join(cli.work, "link.json")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(target, link)
    for path in [link, "/dev/null"]:
        p = cli.run("train", "--report", path, "--force", "--data", os.path.join(cli.work, "no-such-dir"), "--quiet")
        check_one_line_error(p, 1, path, "not a regular file")
    check(os.path.islink(link) and sha256(target) == sha256(target), "the symlink is still there")


def case_devices(cli):
    p = cli.run("devices")
    if p.returncode != 0 and "no Vulkan devices" in p.stderr:
        raise Skip("no Vulkan device")
    check(p.returncode == 0, "devices exits 0")
    check(re.search(r"^device 0: ", p.stdout, re.M) is not None, "lists device 0")
    check("cooperative matrix" in p.stdout and "subgroup size" in p.stdout, "lists capabilities")
    check("(default)" in p.stdout, "marks the default device")
    for m in re.finditer(r"^  type +(\S+)\n(?:  .*\n)*?  unified memory +(yes|no)", p.stdout, re.M):
        # CPU devices and integrated GPUs share the host's memory; discrete GPUs do not.
        check((m.group(2) == "yes") == (m.group(1) in ("cpu", "integrated")), "unified memory follows the type")
    check(re.search(r"^  unified memory +(yes|no)", p.stdout, re.M) is not None, "reports unified memory")


def case_train_eval(cli):
    need_data()
    report, weights = "r.json", "w.safetensors"
    p = cli.run("train", "--limit", 2000, "--test-limit", 500, "--epochs", 1, "--batch-size", 100, "--precision",
                "mixed", "--report", report, "--output", weights)
    check(p.returncode == 0, "train exits 0")
    check(re.search(r"^epoch 1/1  train_loss [0-9.]+  test_loss [0-9.]+  test_accuracy [0-9.]+  seconds ", p.stdout,
                    re.M) is not None, "prints the epoch summary line")
    check(re.search(r"^  gemm linear0\.forward \S+ -> \S+", p.stdout, re.M) is not None, "prints the GEMM paths")
    with open(os.path.join(cli.work, report)) as f:
        r = json.load(f)
    for key in REQUIRED_REPORT_KEYS:
        check(key in r, "report has %r" % key)
    check(r["precision"] == "mixed", "report precision is mixed")
    for key in ["name", "driver_name", "driver_info", "api_version", "type"]:
        check(key in r["device"], "report device has %r" % key)
    check(len(r["gemm_paths"]) > 0 and all(set(g) >= {"site", "shape", "path", "reason"} for g in r["gemm_paths"]),
          "gemm_paths entries have site, shape, path, reason")
    check(r["steps"] == 20, "20 steps of 100 samples (got %s)" % r["steps"])
    check(len(r["history"]) == 1 and len(r["epoch_seconds"]) == 1, "one epoch in history and epoch_seconds")
    check(r["test_accuracy"] > 0.5, "test_accuracy %.4f > 0.5" % r["test_accuracy"])
    check(r["vktrain_version"] == "0.1.0", "vktrain_version is 0.1.0")
    check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["date"]) is not None, "date is UTC ISO 8601")
    check(os.path.getsize(os.path.join(cli.work, weights)) > 0, "weights were written")
    mem = r["memory"]
    check(0 < mem["planned_arena_bytes"] < mem["unplanned_bytes"], "the planned arena is below one buffer per value")
    check(mem["planned_arena_bytes"] == max(mem["planned_training_bytes"], mem["planned_evaluation_bytes"]),
          "the arena holds the larger plan")
    check(mem["planned_arena_bytes"] < mem["trainer_bytes"] <= mem["observed_peak_bytes"],
          "the trainer's bytes include the arena and are within the observed peak")
    check(re.search(r"^memory      planned activation arena [0-9.]+ MiB", p.stdout, re.M) is not None,
          "the header gives the planned memory")

    p = cli.run("eval", "--weights", weights, "--test-limit", 500)
    check(p.returncode == 0, "eval exits 0")
    m = re.search(r"^test_loss ([0-9.]+)  test_accuracy ([0-9.]+)  samples (\d+)$", p.stdout, re.M)
    check(m is not None, "eval prints 'test_loss X  test_accuracy Y  samples N'")
    check(m.group(3) == "500", "eval used 500 samples")
    check(m.group(2) == "%.4f" % r["test_accuracy"],
          "eval accuracy %s equals the report's %.4f" % (m.group(2), r["test_accuracy"]))

    # Running again must not replace either file; with --force it may.
    before = sha256(os.path.join(cli.work, weights))
    p = cli.run("train", "--limit", 200, "--epochs", 1, "--output", weights, "--quiet")
    check_one_line_error(p, 1, weights, "already exists")
    check(sha256(os.path.join(cli.work, weights)) == before, "weights unchanged without --force")

    # Weights that do not fit the requested model.
    p = cli.run("eval", "--weights", weights, "--model", "mlp:64", "--test-limit", 100)
    check_last_error(p, 1, weights)


def write_f32_safetensors(path, name, shape, values):
    """A one-tensor F32 safetensors file, with the standard library only."""
    import struct
    header = json.dumps({name: {"dtype": "F32", "shape": shape, "data_offsets": [0, 4 * len(values)]}}).encode()
    header += b" " * ((8 - len(header) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + struct.pack("<%df" % len(values), *values))


def read_f32_safetensors(path, name):
    import struct
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    h = header[name]
    b, e = h["data_offsets"]
    return h["shape"], list(struct.unpack("<%df" % ((e - b) // 4), data[b:e]))


def case_predict_images(cli):
    """`vktrain predict` on images [B, C, H, W]: its logits give the loss and accuracy `vktrain eval` reports."""
    need_data()
    weights = "net.safetensors"
    p = cli.run("train", "--model", "net:conv2d(out=4,kernel_h=3,pad_h=1),relu,max_pool2d", "--limit", 300,
                "--test-limit", 50, "--epochs", 1, "--batch-size", 100, "--precision", "fp32", "--quiet", "--output",
                weights, "--force")
    check(p.returncode == 0, "train exits 0")
    count = 60
    p = cli.run("eval", "--weights", weights, "--test-limit", count, "--precision", "fp32")
    m = re.search(r"^test_loss ([0-9.]+)  test_accuracy ([0-9.]+)", p.stdout, re.M)
    check(p.returncode == 0 and m is not None, "eval prints the test loss and accuracy")
    with gzip.open(os.path.join(DATA_DIR, "t10k-images-idx3-ubyte.gz")) as f:
        pixels = f.read()[16:16 + count * 784]
    with gzip.open(os.path.join(DATA_DIR, "t10k-labels-idx1-ubyte.gz")) as f:
        labels = f.read()[8:8 + count]
    write_f32_safetensors(os.path.join(cli.work, "images.safetensors"), "input", [count, 1, 28, 28],
                          [b / 255.0 for b in pixels])
    p = cli.run("predict", "--weights", weights, "--input", "images.safetensors", "--output", "logits.safetensors",
                "--force", "--batch-size", 32)
    check(p.returncode == 0, "predict exits 0")
    shape, logits = read_f32_safetensors(os.path.join(cli.work, "logits.safetensors"), "logits")
    check(shape == [count, 10], "logits are [%d, 10] (got %s)" % (count, shape))
    loss, correct = 0.0, 0
    for i in range(count):
        row = logits[i * 10:(i + 1) * 10]
        top = max(row)
        loss += math.log(sum(math.exp(v - top) for v in row)) + top - row[labels[i]]
        correct += row.index(top) == labels[i]
    check(abs(loss / count - float(m.group(1))) < 1e-3, "loss from the logits %.4f is eval's %s" % (loss / count,
                                                                                               m.group(1)))
    check("%.4f" % (correct / count) == m.group(2), "accuracy from the logits %.4f is eval's %s" % (correct / count,
                                                                                                 m.group(2)))
    write_f32_safetensors(os.path.join(cli.work, "images.safetensors"), "input", [2, 28, 28], [0.0] * (2 * 784))
    p = cli.run("predict", "--weights", weights, "--input", "images.safetensors", "--output", "logits.safetensors",
                "--force")
    check_one_line_error(p, 1, "tensor 'input' has shape [2, 28, 28], the model takes [batch] + [1, 28, 28]")


def case_profile(cli):
    need_data()
    common = ["--limit", 300, "--test-limit", 100, "--epochs", 1, "--quiet"]
    p = cli.run("train", *common, "--profile", "--report", "p.json")
    check(p.returncode == 0, "train --profile exits 0")
    header = r"^profile     one training step on the first batch \(128 samples\)"
    check(re.search(header, p.stdout, re.M) is not None, "prints the profile header")
    timestamps = "GPU timestamps" in p.stdout
    if timestamps:
        check("pessimistic" in p.stdout, "the header says the times are pessimistic")
        # The unit is "µs"; matched loosely so that the test does not depend on the locale's encoding.
        check(re.search(r"^  op +\S+ +%$", p.stdout, re.M) is not None, "prints the table heading")
        for op in [r"x\.cast", r"linear0\.forward \(gemm \S+\)", "loss",
                   r"linear0\.weight_grad \(gemm \S+\)", r"linear0\.bias_grad"]:
            check(re.search(r"^  %s +[0-9.]+ +[0-9.]+$" % op, p.stdout, re.M) is not None, "table row %s" % op)
        check(re.search(r"^  total +[0-9.]+ +100\.0   gemm [0-9.]+ \S+ \([0-9.]+%\), other -?[0-9.]+ \S+ \(", p.stdout,
                        re.M) is not None, "prints the total with GEMM vs other")
    check(p.stdout.index("profile     ") < p.stdout.index("epoch 1/1"), "the profile comes before training")
    r = read_report(cli, "p.json")
    check(isinstance(r.get("profile"), list) and len(r["profile"]) > 0, "report has a non-empty 'profile'")
    check(all(set(e) == {"op", "microseconds"} and e["microseconds"] >= 0 for e in r["profile"]),
          "profile entries are {op, microseconds >= 0}")
    check(len(set(e["op"] for e in r["profile"])) == len(r["profile"]), "profile ops are unique")
    check(r["profile_total_us"] > 0, "report has profile_total_us > 0")
    m = re.search(r"[ \n](\d+) (?:compute )?dispatches", p.stdout)
    check(m is not None and isinstance(r.get("profile_dispatches"), int) and r["profile_dispatches"] > 0
          and int(m.group(1)) == r["profile_dispatches"], "the table and the report give the dispatches per step")
    if timestamps:
        total = sum(e["microseconds"] for e in r["profile"])
        check(abs(total - r["profile_total_us"]) <= 1e-3 * r["profile_total_us"] + 0.01,
              "the ops add up to profile_total_us")
    # Measurement only: the run trains exactly as it does without --profile.
    p = cli.run("train", *common, "--report", "q.json")
    check(p.returncode == 0 and "profile     " not in p.stdout, "a run without --profile prints no profile")
    q = read_report(cli, "q.json")
    check("profile" not in q and "profile_total_us" not in q, "a report without --profile has no profile")
    for key in ["test_accuracy", "test_loss", "final_loss", "loss_scale", "steps", "skipped_steps"]:
        check(q[key] == r[key], "%s %r equals the --profile run's %r" % (key, q[key], r[key]))


def safetensors_header(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n))


def read_report(cli, name):
    with open(os.path.join(cli.work, name)) as f:
        return json.load(f)


def check_same_results(a, b):
    for key in ["test_accuracy", "test_loss", "final_loss", "loss_scale", "steps", "skipped_steps"]:
        check(a[key] == b[key], "resumed %s %r equals the uninterrupted run's %r" % (key, b[key], a[key]))


def case_checkpoint_resume(cli):
    need_data()
    common = ["--limit", 2000, "--test-limit", 500, "--batch-size", 100, "--precision", "mixed",
              "--growth-interval", 7, "--quiet"]
    # Constant learning rate: 1 epoch with --checkpoint, then --resume to 2 epochs, equals 2 epochs straight. With a
    # growth interval of 7 the scaler is 6 steps into its interval at the checkpoint, so its state matters too.
    constant = common + ["--lr-schedule", "constant"]
    p = cli.run("train", *constant, "--epochs", 2, "--report", "a.json")
    check(p.returncode == 0, "uninterrupted run exits 0")
    p = cli.run("train", *constant, "--epochs", 1, "--checkpoint", "c.safetensors")
    check(p.returncode == 0, "run with --checkpoint exits 0")
    check(re.search(r"^checkpoint  c\.safetensors \(epoch 1\)$", p.stdout, re.M) is not None,
          "reports the checkpoint")
    header = safetensors_header(os.path.join(cli.work, "c.safetensors"))
    meta = header["__metadata__"]
    check(meta.get("vktrain_checkpoint") == "2" and meta.get("vktrain_train_epoch") == "1",
          "checkpoint metadata marks a checkpoint after epoch 1")
    check("optimizer.exp_avg.linear0.weight" in header and "linear0.weight" in header,
          "holds weights and optimizer state")
    epoch1_accuracy = re.search(r"^epoch 1/1 .* test_accuracy ([0-9.]+)", p.stdout, re.M).group(1)
    p = cli.run("train", *constant, "--epochs", 2, "--resume", "c.safetensors", "--report", "b.json")
    check(p.returncode == 0, "resumed run exits 0")
    check(re.search(r"^resumed     c\.safetensors: 1 of 2 epochs done, 20 steps", p.stdout, re.M) is not None,
          "prints the resume line")
    check(re.search(r"^epoch 1/", p.stdout, re.M) is None and re.search(r"^epoch 2/2 ", p.stdout, re.M) is not None,
          "continues with epoch 2")
    a, b = read_report(cli, "a.json"), read_report(cli, "b.json")
    check_same_results(a, b)
    check(b["resumed_from"] == "c.safetensors" and a["resumed_from"] is None, "report has resumed_from")
    check([h["epoch"] for h in b["history"]] == [2], "resumed history holds epoch 2")

    # The checkpoint is also a weights file for eval.
    p = cli.run("eval", "--weights", "c.safetensors", "--test-limit", 500)
    check(p.returncode == 0 and ("test_accuracy %s " % epoch1_accuracy) in p.stdout,
          "eval of the checkpoint reproduces epoch 1's accuracy %s" % epoch1_accuracy)

    # Cosine schedule (the default): a run stopped after its first epoch, resumed into its own checkpoint file,
    # ends exactly like the uninterrupted run; the schedule continues where it stopped.
    p = cli.run("train", *common, "--epochs", 2, "--report", "cos-a.json", "--checkpoint", "cos-a.safetensors")
    check(p.returncode == 0, "uninterrupted cosine run exits 0")
    p = cli.run("train", *common, "--epochs", 2, "--stop-after", 1, "--checkpoint", "cos.safetensors")
    check(p.returncode == 0 and re.search(r"^stopped     after epoch 1 of 2", p.stdout, re.M) is not None,
          "--stop-after 1 stops after the first epoch")
    check(re.search(r"^epoch 2/", p.stdout, re.M) is None, "the stopped run did not train epoch 2")
    p = cli.run("train", *common, "--epochs", 2, "--resume", "cos.safetensors", "--checkpoint", "cos.safetensors",
                "--force", "--report", "cos-b.json")
    check(p.returncode == 0, "resumed cosine run exits 0")
    check_same_results(read_report(cli, "cos-a.json"), read_report(cli, "cos-b.json"))
    with open(os.path.join(cli.work, "cos-a.safetensors"), "rb") as fa, \
            open(os.path.join(cli.work, "cos.safetensors"), "rb") as fb:
        check(fa.read() == fb.read(), "the final checkpoints are byte-identical")

    # An existing --checkpoint file is refused up front without --force.
    before = sha256(os.path.join(cli.work, "c.safetensors"))
    p = cli.run("train", *constant, "--epochs", 1, "--checkpoint", "c.safetensors", "--data", "no-such-dir")
    check_one_line_error(p, 1, "c.safetensors", "already exists")
    check(sha256(os.path.join(cli.work, "c.safetensors")) == before, "checkpoint unchanged without --force")

    # Files that cannot be resumed from, and runs that do not match the checkpoint: one line naming the file.
    with open(os.path.join(cli.work, "corrupt.safetensors"), "wb") as f:
        f.write(os.urandom(64))
    with open(os.path.join(cli.work, "c.safetensors"), "rb") as f:
        data = f.read()
    with open(os.path.join(cli.work, "truncated.safetensors"), "wb") as f:
        f.write(data[:len(data) // 2])
    p = cli.run("train", *constant, "--epochs", 1, "--output", "w.safetensors")
    check(p.returncode == 0, "weights-only run exits 0")
    for args, needles in [
        (["--resume", "corrupt.safetensors"], ["corrupt.safetensors"]),
        (["--resume", "truncated.safetensors"], ["truncated.safetensors"]),
        (["--resume", "missing.safetensors"], ["missing.safetensors"]),
        (["--resume", "w.safetensors"], ["w.safetensors", "not a training checkpoint"]),
        (["--resume", "c.safetensors", "--epochs", 1], ["c.safetensors", "--epochs"]),
    ]:
        p = cli.run("train", *constant, "--epochs", 2, *args)
        check_one_line_error(p, 1, *needles)
    for option, value in [("--batch-size", 50), ("--precision", "fp32"), ("--optimizer", "sgd"),
                          ("--lr-schedule", "cosine"), ("--model", "mlp:64"), ("--seed", 5), ("--limit", 1000)]:
        args = [str(a) for a in constant]
        if option in args:
            i = args.index(option)
            args[i + 1] = str(value)
        else:
            args += [option, str(value)]
        p = cli.run("train", *args, "--epochs", 2, "--resume", "c.safetensors")
        check_one_line_error(p, 1, "c.safetensors", {"--model": "model", "--limit": "samples per epoch"}.get(option, option))


def case_corrupt_weights(cli):
    path = os.path.join(cli.work, "random.safetensors")
    with open(path, "wb") as f:
        f.write(os.urandom(10))
    p = cli.run("eval", "--weights", path)
    check_one_line_error(p, 1, path)
    # A valid gzip file is no safetensors file either.
    with gzip.open(path, "wb") as f:
        f.write(b"{}")
    p = cli.run("eval", "--weights", path)
    check_one_line_error(p, 1, path)


def write_metadata_only(path, metadata):
    """A safetensors file with no tensors, only the given metadata."""
    header = json.dumps({"__metadata__": metadata}).encode()
    header += b" " * ((8 - len(header) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(header).to_bytes(8, "little") + header)


def case_weights_metadata(cli):
    """A weights file's metadata is checked before it is used, and every error names the file: an unknown precision
    (it used to read as mixed), an architecture without nodes, a node name the builder would refuse."""
    graph = {"vktrain_graph": 1, "nodes": [
        {"op": "input", "name": "x", "inputs": [], "shape": [4], "type": "f32"},
        {"op": "linear", "name": "linear0", "inputs": [0], "attrs": {"out": 3, "bias": 1}},
        {"op": "input", "name": "labels", "inputs": [], "shape": [], "type": "i32"},
        {"op": "cross_entropy", "name": "loss", "inputs": [1, 2]}]}
    write_metadata_only(os.path.join(cli.work, "bf16.safetensors"),
                        {"vktrain_precision": "bf16", "vktrain_model": "784-10"})
    for extra in ([], ["--precision", "fp32"]):  # refused even when --precision makes it irrelevant
        p = cli.run("eval", "--weights", "bf16.safetensors", *extra)
        check_one_line_error(p, 1, "bf16.safetensors", '"vktrain_precision" is "bf16"', "mixed or fp32")
    write_metadata_only(os.path.join(cli.work, "empty.safetensors"),
                        {"vktrain_graph": json.dumps({"vktrain_graph": 1, "nodes": []})})
    p = cli.run("eval", "--weights", "empty.safetensors")
    check_one_line_error(p, 1, "empty.safetensors", "nodes")
    graph["nodes"][1]["name"] = "linear\n0"
    write_metadata_only(os.path.join(cli.work, "newline.safetensors"), {"vktrain_graph": json.dumps(graph)})
    p = cli.run("eval", "--weights", "newline.safetensors")
    check_one_line_error(p, 1, "newline.safetensors", "'linear\\n0' is not a valid node name")


TEXT_DIR = os.environ.get("VKTRAIN_TEST_TEXT", "/usr/share/games/fortunes")


def case_text_gpt(cli):
    """The GPT recipe in short: the validation loss falls well below its step-0 value, the weights generate text,
    and the key/value cache gives the same greedy text as re-running the whole context."""
    if not os.path.isdir(TEXT_DIR):
        raise Skip("no text corpus at " + TEXT_DIR + " (Debian package fortunes)")
    # Usage errors before any work.
    p = cli.run("train", "--model", "gpt:layers=2,heads=3,width=32")
    check_one_line_error(p, 2, "width 32 is not a multiple of heads 3")
    p = cli.run("train", "--model", "gpt", "--epochs", 2)
    check_one_line_error(p, 2, "--epochs does not apply to text models")
    p = cli.run("train", "--model", "mlp:16", "--steps", 5)
    check_one_line_error(p, 2, "--steps applies only to text models")
    p = cli.run("train", "--model", "gpt", "--batch-size", 12, "--micro-batch", 5)
    check_one_line_error(p, 2, "--micro-batch 5 must divide --batch-size 12")
    p = cli.run("train", "--model", "gpt", "--text", "no-such-corpus")
    check_one_line_error(p, 1, "no-such-corpus", "no such file")
    with open(os.path.join(cli.work, "bad.txt"), "wb") as f:
        f.write(b"caf\xe9\n")
    p = cli.run("train", "--model", "gpt", "--text", "bad.txt")
    check_one_line_error(p, 1, "bad.txt", "invalid UTF-8", "byte 3")
    with open(os.path.join(cli.work, "short.txt"), "w") as f:
        f.write("tiny corpus\n" * 3)
    p = cli.run("train", "--model", "gpt:context=64", "--text", "short.txt", "--quiet")
    check_last_error(p, 1, "context of 64 tokens needs at least 65 tokens")

    p = cli.run("train", "--model", "gpt:layers=2,heads=2,width=32,context=32", "--text", TEXT_DIR, "--steps", 150,
                "--warmup", 10, "--batch-size", 16, "--micro-batch", 8, "--lr", "3e-3", "--eval-at", "0,150",
                "--val-limit", 64, "--output", "g.safetensors", "--report", "g.json", timeout=900)
    check(p.returncode == 0, "short GPT recipe trains")
    r = read_report(cli, "g.json")
    val = {v["step"]: v["val_loss"] for v in r["validation"]}
    check(set(val) == {0, 150}, "validation at steps 0 and 150 (got %r)" % sorted(val))
    check(abs(val[0] - math.log(r["vocabulary"])) < 0.3, "step-0 loss %.3f is near ln(vocabulary) %.3f"
          % (val[0], math.log(r["vocabulary"])))
    check(val[150] < 0.7 * val[0], "validation loss fell well below step 0 (%.3f -> %.3f)" % (val[0], val[150]))
    check(r["tokens_per_second"] > 0 and r["micro_batch"] == 8, "report has tokens/s and the micro-batch")
    check("step 150/150" in p.stdout and "tokens/s" in p.stdout, "progress lines show steps and tokens/s")

    # Greedy generation: the cache (one position per token) and the whole-context reference agree while the text fits
    # the context (28 new characters after a 4-character prompt).
    texts = []
    for extra in ([], ["--no-cache"]):
        p = cli.run("generate", "--weights", "g.safetensors", "--prompt", "The ", "--tokens", 28, "--temperature", 0,
                    *extra)
        check(p.returncode == 0 and p.stdout.startswith("The "), "generate continues the prompt")
        check("ms per token" in p.stderr, "generate reports the time per token")
        texts.append(p.stdout)
    check(texts[0] == texts[1] and len(texts[0]) >= 32, "cached and uncached greedy text agree: %r" % texts[0])
    p = cli.run("generate", "--weights", "g.safetensors", "--prompt", "The ", "--tokens", 100, "--seed", 5,
                "--quiet")
    check(p.returncode == 0 and len(p.stdout) > 100, "sampling past the 32-character context works (the cache restarts)")
    p = cli.run("generate", "--weights", "g.safetensors", "--prompt", "\u2603")
    check_last_error(p, 1, "not in the vocabulary")
    p = cli.run("generate", "--weights", "bad.txt")
    check_one_line_error(p, 1, "bad.txt")
    # eval rebuilds the model and the validation split from the file (architecture and vocabulary).
    p = cli.run("eval", "--weights", "g.safetensors", "--val-limit", 64)
    m = re.search(r"^val_loss (\S+)  windows 64", p.stdout, re.M)
    check(p.returncode == 0 and m and abs(float(m.group(1)) - val[150]) < 1e-5,
          "eval reproduces the final validation loss (%s vs %.6f)" % (m and m.group(1), val[150]))


def case_text_profile(cli):
    """train --text --profile prints the step's profile and its dispatch count, and reports both."""
    if not os.path.isdir(TEXT_DIR):
        raise Skip("no text corpus at " + TEXT_DIR + " (Debian package fortunes)")
    p = cli.run("train", "--model", "gpt:layers=1,heads=2,width=16,context=16", "--text", TEXT_DIR, "--steps", 2,
                "--warmup", 1, "--batch-size", 4, "--eval-at", "2", "--val-limit", 4, "--profile", "--report", "tp.json", "--quiet")
    check(p.returncode == 0, "train --text --profile exits 0")
    check(re.search(r"^profile     one training step", p.stdout, re.M) is not None, "prints the profile")
    m = re.search(r"[ \n](\d+) (?:compute )?dispatches", p.stdout)
    r = read_report(cli, "tp.json")
    check(m is not None and r.get("profile_dispatches") == int(m.group(1)) and r["profile_dispatches"] > 20,
          "the table and the report give the same dispatch count (%s, %r)" % (m and m.group(1),
                                                                               r.get("profile_dispatches")))


def peak_rss(cli, *args):
    """Runs the command and returns (its exit status, its peak resident set in bytes), from wait4's rusage."""
    cmd = [cli.binary] + [str(a) for a in args]
    print("$ " + " ".join(cmd), flush=True)
    with open(os.devnull, "wb") as null:
        child = subprocess.Popen(cmd, cwd=cli.work, stdout=null, stderr=null)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    print("  exit %d, peak resident set %.1f MiB" % (child.returncode, usage.ru_maxrss / 1024.0), flush=True)
    return child.returncode, usage.ru_maxrss * 1024  # Linux reports KiB


def case_attention_context_2048(cli):
    """A GPT with a context of 2048 trains on the fused attention path (no 2048 x 2048 score matrix per head), and
    --attention unfused (and auto, which picks unfused for scores this small) trains the same steps to the same loss;
    a bad --attention value is a usage error."""
    p = cli.run("train", "--model", "gpt", "--attention", "flash")
    check_one_line_error(p, 2, "--attention expects auto, fused or unfused, got 'flash'")
    line = "the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs.\n"
    with open(os.path.join(cli.work, "long.txt"), "w") as f:
        f.write(line * 300)  # 25,800 characters: the validation split (a tenth) holds a window of 2049
    losses = {}
    for mode in ("fused", "unfused", "auto"):  # auto: these 32 MiB of scores are below its 64 MiB, so unfused
        p = cli.run("train", "--model", "gpt:layers=1,heads=2,width=16,context=2048", "--text", "long.txt",
                    "--steps", 2, "--warmup", 0, "--batch-size", 1, "--precision", "fp32", "--val-limit", 1,
                    "--eval-at", 2, "--attention", mode, "--no-tune", "--report", mode + ".json", "--quiet", timeout=600)
        check(p.returncode == 0, "a GPT with context 2048 trains two steps with --attention " + mode)
        r = read_report(cli, mode + ".json")
        losses[mode] = [v["val_loss"] for v in r["validation"]]
    check(len(losses["fused"]) == 1 and abs(losses["fused"][0] - losses["unfused"][0]) < 1e-4 and
          abs(losses["auto"][0] - losses["unfused"][0]) < 1e-4,
          "fused, unfused and auto attention give the same validation loss (%r)" % losses)


def case_text_memory(cli):
    """Loading a text corpus holds about one byte per character (the token array), not the file, its decoded copy,
    the splits and int32 ids (18 bytes per byte before): a 24 MB corpus adds at most 3 bytes per byte to the peak
    resident set of a run over a tiny corpus."""
    size = 24 << 20
    line = "the quick brown fox jumps over the lazy dog, caf\u00e9 \u20ac\n"
    with open(os.path.join(cli.work, "big.txt"), "w", encoding="utf-8") as f:
        f.write(line * (size // len(line.encode())))
    with open(os.path.join(cli.work, "tiny.txt"), "w", encoding="utf-8") as f:
        f.write(line * 20)
    common = ["train", "--model", "gpt:layers=1,heads=1,width=8,context=8", "--steps", 1, "--warmup", 0,
              "--batch-size", 1, "--val-limit", 1, "--eval-at", 0]
    status, tiny = peak_rss(cli, *common, "--text", "tiny.txt")
    check(status == 0, "a run over a tiny corpus exits 0")
    status, big = peak_rss(cli, *common, "--text", "big.txt")
    check(status == 0, "a run over a 24 MB corpus exits 0")
    growth = big - tiny
    check(growth <= 3 * size, "the 24 MB corpus added %.1f MiB (%.2f bytes per byte) to the peak, at most 3 per byte"
          % (growth / 2.0 ** 20, growth / size))


def case_text_resume(cli):
    """A text run trained in slices (--checkpoint, --stop-after, --resume) ends bit-identical to an uninterrupted one,
    with the same validation history; a resume with other options is refused by name."""
    if not os.path.isdir(TEXT_DIR):
        raise Skip("no text corpus at " + TEXT_DIR + " (Debian package fortunes)")
    run = ["train", "--model", "gpt:layers=1,heads=2,width=16,context=16", "--text", TEXT_DIR, "--steps", 40,
           "--warmup", 4, "--batch-size", 8, "--micro-batch", 4, "--lr", "3e-3", "--eval-at", "0,10,20,30",
           "--val-limit", 16, "--quiet"]
    p = cli.run(*run, "--output", "whole.safetensors", "--report", "whole.json")
    check(p.returncode == 0, "uninterrupted run")
    p = cli.run(*run, "--checkpoint", "c.safetensors", "--stop-after", 15)
    check(p.returncode == 0 and "stopped     after step 15 of 40" in p.stdout, "first slice stops after 15 steps")
    p = cli.run(*[x if x != "3e-3" else "4e-3" for x in run], "--resume", "c.safetensors")
    check_last_error(p, 1, "c.safetensors", "--lr=0.0030000000000000001", "--lr=0.0040000000000000001")
    p = cli.run(*run, "--checkpoint", "c.safetensors", "--resume", "c.safetensors", "--output", "sliced.safetensors",
                "--report", "sliced.json")
    check(p.returncode == 0 and "resumed     c.safetensors at step 15" in p.stdout, "second slice resumes at step 15")
    check(sha256(os.path.join(cli.work, "whole.safetensors")) == sha256(os.path.join(cli.work, "sliced.safetensors")),
          "the sliced run's weights are bit-identical to the uninterrupted run's")
    a, b = read_report(cli, "whole.json"), read_report(cli, "sliced.json")
    check(a["validation"] == b["validation"] and len(a["validation"]) == 5,
          "the validation history (steps 0, 10, 20, 30, 40) carries over")


# Small text runs that need no corpus package: a generated text of a few kilobytes, and the tiny GPT of the issue.
TINY_GPT = "gpt:layers=1,heads=2,width=16,context=16"


def write_small_text(cli, name="small.txt", lines=300):
    words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and", "then", "sleeps"]
    with open(os.path.join(cli.work, name), "w") as f:
        for i in range(lines):
            f.write(" ".join(words[(i + k) % len(words)] for k in range(5 + i % 4)) + ".\n")
    return name


def read_safetensors(path):
    """(header without __metadata__, metadata, raw data bytes) of a safetensors file."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    metadata = header.pop("__metadata__", {})
    return header, metadata, data


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, dtype, shape, bytes), written contiguously in that order."""
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name, dtype, shape, blob in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + b"".join(blobs))


def rewrite_safetensors(src, dst, edit_metadata=None, drop=(), add=()):
    header, metadata, data = read_safetensors(src)
    tensors = [(k, v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
               for k, v in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]) if k not in drop]
    if edit_metadata:
        edit_metadata(metadata)
    write_safetensors(dst, tensors + list(add), metadata)


def edit_graph_node(name, **attrs):
    def edit(metadata):
        graph = json.loads(metadata["vktrain_graph"])
        for node in graph["nodes"]:
            if node["name"] == name:
                node["attrs"].update(attrs)
        metadata["vktrain_graph"] = json.dumps(graph)
    return edit


def case_text_resume_at_validation(cli):
    """A run stopped at a validation step (its checkpoint written by that validation) and resumed keeps validating
    and checkpointing: the same validation steps, the same final weights and a checkpoint at the last step."""
    text = write_small_text(cli)
    run = ["train", "--model", TINY_GPT, "--text", text, "--steps", 40, "--warmup", 4, "--batch-size", 8,
           "--micro-batch", 4, "--eval-at", "0,10,20,30", "--val-limit", 16, "--quiet"]
    p = cli.run(*run, "--output", "whole.safetensors", "--report", "whole.json")
    check(p.returncode == 0, "uninterrupted run")
    p = cli.run(*run, "--checkpoint", "c.safetensors", "--stop-after", 10)
    check(p.returncode == 0 and "stopped     after step 10 of 40" in p.stdout, "first slice stops at step 10")
    check(p.stdout.count("checkpoint  c.safetensors (step 10)") == 1, "the checkpoint at step 10 is written once")
    p = cli.run(*run, "--checkpoint", "c.safetensors", "--resume", "c.safetensors", "--output", "sliced.safetensors",
                "--report", "sliced.json")
    check(p.returncode == 0 and "resumed     c.safetensors at step 10" in p.stdout, "second slice resumes at step 10")
    a, b = read_report(cli, "whole.json"), read_report(cli, "sliced.json")
    steps = [v["step"] for v in b["validation"]]
    check(steps == [0, 10, 20, 30, 40], "the resumed run validates at steps 0, 10, 20, 30, 40 (got %r)" % steps)
    check(a["validation"] == b["validation"], "the validation history equals the uninterrupted run's")
    for step in (20, 30, 40):
        check("checkpoint  c.safetensors (step %d)" % step in p.stdout, "checkpoint written at step %d" % step)
    meta = safetensors_header(os.path.join(cli.work, "c.safetensors"))["__metadata__"]
    check(meta["vktrain_steps"] == "40", "the checkpoint ends at step 40 (got %s)" % meta["vktrain_steps"])
    check(sha256(os.path.join(cli.work, "whole.safetensors")) == sha256(os.path.join(cli.work, "sliced.safetensors")),
          "the sliced run's weights are bit-identical to the uninterrupted run's")


def case_text_min_lr_zero(cli):
    """A cosine schedule may decay to 0 (or to a rate that underflows in fp32): the run completes, its last step has
    rate 0, and the checkpoint written at that step resumes and evaluates."""
    text = write_small_text(cli)
    run = ["train", "--model", TINY_GPT, "--text", text, "--steps", 6, "--warmup", 2, "--batch-size", 4,
           "--eval-at", 0, "--val-limit", 4, "--log-every", 1, "--quiet"]
    for min_lr in ("0", "1e-60"):
        name = "z%s" % min_lr
        p = cli.run(*run, "--min-lr", min_lr, "--report", name + ".json", "--checkpoint", name + ".safetensors")
        check(p.returncode == 0, "--min-lr %s trains to the end" % min_lr)
        r = read_report(cli, name + ".json")
        check(r["history"][-1]["step"] == 6 and r["history"][-1]["learning_rate"] == 0.0,
              "the last step's rate is 0 (got %r)" % r["history"][-1]["learning_rate"])
        check([v["step"] for v in r["validation"]] == [0, 6], "validated at steps 0 and 6")
    p = cli.run(*run, "--min-lr", "0", "--checkpoint", "z0.safetensors", "--resume", "z0.safetensors")
    check(p.returncode == 0 and "resumed     z0.safetensors at step 6" in p.stdout,
          "the checkpoint written at rate 0 resumes")
    # A peak rate of 1e-45 (a subnormal float) on the MLP recipe's cosine: every rate is 0, and the run completes.
    if os.path.isfile(os.path.join(DATA_DIR, "train-images-idx3-ubyte.gz")):
        p = cli.run("train", "--model", "mlp:16", "--lr", "1e-45", "--epochs", 1, "--limit", 64, "--batch-size", 16,
                    "--test-limit", 64, "--quiet", "--report", "mlp.json")
        check(p.returncode == 0, "the MLP recipe with --lr 1e-45 trains to the end")
    else:
        print("  note: no Fashion-MNIST in %s, the MLP part is not run" % DATA_DIR)


def case_generate_tiny_context(cli):
    """Generation with contexts of 1, 2 and 3 tokens (shorter than the prompt): never a crash, and the key/value
    cache gives the same greedy text as re-running the model over the same window."""
    text = write_small_text(cli)
    for context in (1, 2, 3):
        weights = "c%d.safetensors" % context
        p = cli.run("train", "--model", "gpt:layers=1,heads=1,width=16,context=%d" % context, "--text", text,
                    "--steps", 80, "--warmup", 2, "--lr", "3e-2", "--batch-size", 16, "--eval-at", 0, "--val-limit", 4,
                    "--quiet", "--output", weights)
        check(p.returncode == 0, "context %d model trains" % context)
        texts = []
        for extra in ([], ["--no-cache"]):
            p = cli.run("generate", "--weights", weights, "--prompt", "th", "--tokens", 20, "--temperature", 0,
                        "--precision", "fp32", "--quiet", *extra)
            check(p.returncode == 0 and p.stdout.startswith("th") and len(p.stdout) == 23,
                  "context %d: generate %s prints 20 characters" % (context, extra or "(cache)"))
            texts.append(p.stdout)
        check(texts[0] == texts[1], "context %d: cached and uncached greedy text agree (%r, %r)" % (context, *texts))


def case_text_checkpoint_appears(cli):
    """A --checkpoint file that appears while the run trains is not replaced without --force (as --output and
    --report are not). Deterministic: the run's stdout is a pipe of one page that the test stops reading after the
    step-0 validation, so the run blocks on its progress lines (--log-every 1) long before its checkpoint at the last
    step; the file is created meanwhile."""
    import fcntl
    if not hasattr(fcntl, "F_SETPIPE_SZ"):
        raise Skip("pipe sizes cannot be set here (Linux only)")
    text = write_small_text(cli)
    target = os.path.join(cli.work, "late.safetensors")
    cmd = [cli.binary, "train", "--model", TINY_GPT, "--text", text, "--steps", "120", "--warmup", "2",
           "--batch-size", "4", "--eval-at", "0", "--val-limit", "4", "--log-every", "1",
           "--checkpoint", "late.safetensors"]
    print("$ " + " ".join(cmd), flush=True)
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    check(fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ) == 4096, "stdout pipe of 4096 bytes")
    with open(os.path.join(cli.work, "late.err"), "w+") as err:
        proc = subprocess.Popen(cmd, cwd=cli.work, stdout=write_end, stderr=err)
        os.close(write_end)
        seen = b""
        while b"validation  step 0 " not in seen:  # byte by byte: nothing after the line is drained
            c = os.read(read_end, 1)
            if not c:
                break
            seen += c
        check(b"validation  step 0 " in seen, "the run validated at step 0")
        check(not os.path.exists(target), "no checkpoint yet")
        with open(target, "w") as f:
            f.write("precious")
        rest = b""
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            rest += chunk
        os.close(read_end)
        status = proc.wait(timeout=600)
        err.seek(0)
        stderr = err.read()
    out = (seen + rest).decode(errors="replace")
    for line in out.splitlines():
        print("  stdout: " + line)
    for line in stderr.splitlines():
        print("  stderr: " + line)
    check(re.search(r"^step 1/120 ", out, re.M) is not None, "the run trained after the file appeared")
    check(status == 1, "exit status 1 (got %d)" % status)
    errors = error_lines(stderr)
    check(len(errors) == 1 and "--checkpoint" in errors[0] and "late.safetensors" in errors[0] and
          "already exists" in errors[0], "one error naming --checkpoint and the file")
    with open(target) as f:
        check(f.read() == "precious", "the file that appeared is intact")
    p = cli.run("train", "--model", TINY_GPT, "--text", text, "--steps", 4, "--warmup", 1, "--batch-size", 4,
                "--eval-at", 0, "--val-limit", 4, "--quiet", "--checkpoint", "late.safetensors", "--force")
    check(p.returncode == 0 and safetensors_header(target)["__metadata__"]["vktrain_steps"] == "4",
          "with --force the file is replaced")


def case_text_update_location_clip(cli):
    """--update-location device cannot clip, and the GPT recipe clips by default: refused before any work (the corpus
    is never read), naming the CLI's options."""
    p = cli.run("train", "--model", TINY_GPT, "--text", "no-such-corpus", "--update-location", "device")
    check_one_line_error(p, 2, "--update-location device", "--clip 0")
    p = cli.run("train", "--model", TINY_GPT, "--text", "no-such-corpus", "--update-location", "device", "--clip", 0)
    check_one_line_error(p, 1, "no-such-corpus")


def text_checkpoint(cli, text, name="c.safetensors"):
    """A checkpoint of a tiny text run written at step 5 (a validation), and that run's report."""
    p = cli.run("train", "--model", TINY_GPT, "--text", text, "--steps", 20, "--warmup", 2, "--batch-size", 4,
                "--eval-at", "0,5", "--val-limit", 8, "--quiet", "--checkpoint", name, "--stop-after", 5,
                "--report", name + ".json")
    check(p.returncode == 0, "a checkpoint at step 5")
    return os.path.join(cli.work, name), read_report(cli, name + ".json")


def case_text_checkpoint_vocabulary(cli):
    """A text run's checkpoint records the vocabulary, so eval and generate take it like weights; a checkpoint
    without one (an earlier version's) is named as such, with what to use instead."""
    text = write_small_text(cli)
    c, report = text_checkpoint(cli, text)
    check("vktrain_vocabulary" in safetensors_header(c)["__metadata__"], "the checkpoint records the vocabulary")
    val5 = report["validation"][-1]
    p = cli.run("eval", "--weights", "c.safetensors", "--text", text, "--val-limit", 8)
    m = re.search(r"^val_loss (\S+)  windows 8", p.stdout, re.M)
    check(p.returncode == 0 and m and abs(float(m.group(1)) - val5["val_loss"]) < 1e-5,
          "eval of the checkpoint reproduces its step-5 validation loss (%s vs %r)" % (m and m.group(1), val5))
    p = cli.run("generate", "--weights", "c.safetensors", "--prompt", "the ", "--tokens", 8, "--quiet")
    check(p.returncode == 0 and p.stdout.startswith("the ") and len(p.stdout) == 13, "generate takes the checkpoint")
    rewrite_safetensors(c, os.path.join(cli.work, "old.safetensors"),
                        edit_metadata=lambda md: md.pop("vktrain_vocabulary", None))
    p = cli.run("eval", "--weights", "old.safetensors", "--text", text)
    check_last_error(p, 1, "old.safetensors", "without its vocabulary", "--output")
    p = cli.run("generate", "--weights", "old.safetensors")
    check_last_error(p, 1, "old.safetensors", "without its vocabulary", "--output")


def case_text_validation_history(cli):
    """A checkpoint's validation history is parsed strictly: a malformed one is refused naming the file and the
    entry, and nothing trains."""
    text = write_small_text(cli)
    c, _ = text_checkpoint(cli, text)
    bad = ["4" * 40, "4" * 40 + ":1:1;", "0:1.5:8", "0:1.5;", "0:x:8;", "0:1:8;0:1:8;", "6:1:8;",
           "0:1:99999999999999999999;", "0:1:8;junk", "-1:1:8;", " 0:1:8;"]
    for i, value in enumerate(bad):
        name = "bad%d.safetensors" % i

        def edit(md, value=value):
            md["vktrain_text_validation"] = value
        rewrite_safetensors(c, os.path.join(cli.work, name), edit_metadata=edit)
        p = cli.run("train", "--model", TINY_GPT, "--text", text, "--steps", 20, "--warmup", 2, "--batch-size", 4,
                    "--eval-at", "0,5", "--val-limit", 8, "--quiet", "--resume", name)
        check_last_error(p, 1, name, "vktrain_text_validation")
        check("resumed" not in p.stdout and "step 6/" not in p.stdout, "nothing trained")


def case_text_recompute(cli):
    """--recompute blocks trains a GPT to the same losses as --recompute none (bit for bit, as the report prints them)
    with a smaller planned activation arena, and says so in the report; a bad value is a one-line usage error; a model
    without blocks (the MLP) trains after one warning line."""
    text = write_small_text(cli)
    reports = {}
    for mode in ("none", "blocks"):
        name = "recompute-%s.json" % mode
        p = cli.run("train", "--model", "gpt:layers=2,heads=2,width=16,context=16", "--text", text, "--steps", 3,
                    "--warmup", 0, "--batch-size", 2, "--eval-at", "0", "--val-limit", 2, "--quiet", "--report", name,
                    "--no-tune", "--recompute", mode)
        check(p.returncode == 0, "--recompute %s trains" % mode)
        reports[mode] = read_report(cli, name)
        check(reports[mode]["recompute"] == mode, "the report says recompute %s" % mode)
    check([h["loss"] for h in reports["none"]["history"]] == [h["loss"] for h in reports["blocks"]["history"]] and
          reports["none"]["final_loss"] == reports["blocks"]["final_loss"], "the same losses with recomputation")
    check(reports["blocks"]["planned_training_bytes"] < reports["none"]["planned_training_bytes"],
          "a smaller planned training arena with recomputation (%d < %d bytes)"
          % (reports["blocks"]["planned_training_bytes"], reports["none"]["planned_training_bytes"]))
    p = cli.run("train", "--model", TINY_GPT, "--text", text, "--recompute", "layers")
    check_one_line_error(p, 2, "--recompute", "layers")
    need_data()
    p = cli.run("train", "--limit", 64, "--test-limit", 64, "--epochs", 1, "--batch-size", 32, "--quiet",
                "--no-tune", "--recompute", "blocks", "--model", "mlp:16")
    check(p.returncode == 0, "an MLP trains with --recompute blocks")
    warnings = [l for l in p.stderr.splitlines() if "no blocks" in l]
    check(len(warnings) == 1, "one warning line that the model has no blocks (got %d)" % len(warnings))


def case_generate_large_head(cli):
    """A GPT whose head is larger than the cached decoder holds (520 > 512 columns) still generates: the whole window
    per token, said so in the progress line; a head of 512 runs over the key/value cache with the same greedy text
    as --no-cache."""
    text = write_small_text(cli)
    for width, cached in ((520, False), (512, True)):
        weights = "h%d.safetensors" % width
        p = cli.run("train", "--model", "gpt:layers=1,heads=1,width=%d,context=6,mlp=8" % width, "--text", text,
                    "--steps", 2, "--warmup", 1, "--batch-size", 2, "--eval-at", 0, "--val-limit", 2, "--quiet",
                    "--output", weights)
        check(p.returncode == 0, "head size %d: the model trains" % width)
        texts = []
        for extra in ([], ["--no-cache"]):
            p = cli.run("generate", "--weights", weights, "--prompt", "th", "--tokens", 8, "--temperature", 0,
                        "--precision", "fp32", *extra)
            mode = ("key/value cache" if cached else "the head size is above") if not extra else "no cache"
            check(p.returncode == 0 and len(p.stdout) == 11 and mode in p.stderr,
                  "head size %d: generate %s runs %r (%s)" % (width, extra or "(default)", mode, p.stderr.strip()))
            texts.append(p.stdout)
        check(texts[0] == texts[1], "head size %d: the same greedy text both ways (%r, %r)" % (width, *texts))


def case_generate_weight_checks(cli):
    """generate refuses what eval refuses (one check of the tensors against the recorded architecture): an extra
    tensor, a head bias the graph declares but the file lacks, a final LayerNorm without affine whose tensors are
    still there; and a graph that is not the GPT the decoder mirrors."""
    text = write_small_text(cli)
    p = cli.run("train", "--model", TINY_GPT, "--text", text, "--steps", 4, "--warmup", 1, "--batch-size", 4,
                "--eval-at", 0, "--val-limit", 4, "--quiet", "--output", "w.safetensors")
    check(p.returncode == 0, "weights for the checks")
    w = os.path.join(cli.work, "w.safetensors")
    variants = {
        "extra.safetensors": (dict(add=[("extra.weight", "F32", [2], b"\0" * 8)]), "extra.weight"),
        "bias.safetensors": (dict(edit_metadata=edit_graph_node("lm_head", bias=1)), "lm_head.bias"),
        "affine.safetensors": (dict(edit_metadata=edit_graph_node("transformer.ln_f", affine=0)),
                               "transformer.ln_f."),
    }
    for name, (how, needle) in variants.items():
        rewrite_safetensors(w, os.path.join(cli.work, name), **how)
        p = cli.run("eval", "--weights", name, "--text", text)
        check_last_error(p, 1, name, needle)
        p = cli.run("generate", "--weights", name, "--prompt", "the ")
        check_last_error(p, 1, name, needle)
    # A LayerNorm without affine and without its tensors is a valid model (eval takes it), but not the GPT the
    # decoder mirrors.
    rewrite_safetensors(w, os.path.join(cli.work, "noaffine.safetensors"),
                        edit_metadata=edit_graph_node("transformer.ln_f", affine=0),
                        drop=("transformer.ln_f.weight", "transformer.ln_f.bias"))
    p = cli.run("eval", "--weights", "noaffine.safetensors", "--text", text, "--val-limit", 4)
    check(p.returncode == 0, "eval takes a final LayerNorm without affine")
    p = cli.run("generate", "--weights", "noaffine.safetensors", "--prompt", "the ")
    check_last_error(p, 1, "noaffine.safetensors", "transformer.ln_f")


def case_text_split_too_short(cli):
    """A text too short for the context: the message names the file and the split (train and eval)."""
    with open(os.path.join(cli.work, "short.txt"), "w") as f:
        f.write("tiny corpus\n" * 3)
    p = cli.run("train", "--model", "gpt:context=64", "--text", "short.txt", "--quiet")
    check_one_line_error(p, 1, "short.txt", "training split", "context of 64 tokens needs at least 65 tokens")
    with open(os.path.join(cli.work, "shortval.txt"), "w") as f:
        f.write("the lazy dog. " * 10)
    p = cli.run("train", "--model", "gpt:context=16", "--text", "shortval.txt", "--quiet")
    check_one_line_error(p, 1, "shortval.txt", "validation split", "needs at least 17 tokens")
    text = write_small_text(cli)
    p = cli.run("train", "--model", TINY_GPT, "--text", text, "--steps", 2, "--warmup", 1, "--batch-size", 4,
                "--eval-at", 0, "--val-limit", 4, "--quiet", "--output", "w.safetensors")
    check(p.returncode == 0, "weights")
    with open(os.path.join(cli.work, "shortval2.txt"), "w") as f:
        f.write("the lazy dog. " * 10)
    p = cli.run("eval", "--weights", "w.safetensors", "--text", "shortval2.txt")
    check_last_error(p, 1, "shortval2.txt", "validation split", "needs at least 17 tokens")


def write_small_bpe(cli, name="tok", extra=()):
    """A byte-level BPE folder (vocab.json + merges.txt): 256 byte tokens, a few merges, <|endoftext|>."""
    sym = bytes_to_unicode()
    vocab = {sym[b]: b for b in range(256)}
    merges = [(sym[32], "t"), ("h", "e"), (sym[32] + "t", "he"), ("'", "s")] + list(extra)
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tok = os.path.join(cli.work, name)
    os.makedirs(tok)
    with open(os.path.join(tok, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(tok, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join("%s %s\n" % m for m in merges))
    return tok, vocab, sym


def case_tokenize(cli):
    """`vktrain tokenize`: ids on one line, --decode gives the bytes back, one-line errors for a missing or corrupt
    tokenizer, ids out of range or not numbers, and invalid UTF-8."""
    tok, vocab, sym = write_small_bpe(cli)
    text = "it's the \u00e9t\u00e9 \U0001F600\n".encode("utf-8")
    with open(os.path.join(cli.work, "in.txt"), "wb") as f:
        f.write(text)
    p = cli.run("tokenize", "--tokenizer", "tok", "in.txt")
    check(p.returncode == 0 and p.stderr == "", "tokenize succeeds")
    the, s = vocab[sym[32] + "the"], vocab["'s"]
    expect = [ord("i"), ord("t"), s, the, 32] + list("\u00e9t\u00e9".encode()) + [32] + list("\U0001F600".encode()) + [10]
    check(p.stdout == " ".join(map(str, expect)) + "\n", "ids are the BPE's, space-separated on one line")
    with open(os.path.join(cli.work, "ids.txt"), "w") as f:
        f.write(p.stdout)
    back = subprocess.run([cli.binary, "tokenize", "--tokenizer", "tok", "--decode", "ids.txt"], cwd=cli.work,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    check(back.returncode == 0 and back.stdout == text, "--decode gives the bytes back")
    # Errors.
    check_one_line_error(cli.run("tokenize", "--tokenizer", "nope", "in.txt"), 1, "nope: no such tokenizer folder")
    check_one_line_error(cli.run("tokenize", "in.txt"), 2, "--tokenizer DIR is required")
    check_one_line_error(cli.run("tokenize", "--tokenizer", "tok"), 2, "no FILE given")
    check_one_line_error(cli.run("tokenize", "--tokenizer", "tok", "--bogus", "in.txt"), 2, "--bogus")
    check_one_line_error(cli.run("tokenize", "--tokenizer", "tok", "missing.txt"), 1, "missing.txt")
    with open(os.path.join(cli.work, "bad.txt"), "wb") as f:
        f.write(b"ok \xff")
    check_one_line_error(cli.run("tokenize", "--tokenizer", "tok", "bad.txt"), 1, "bad.txt", "invalid UTF-8",
                         "at byte 3")
    with open(os.path.join(cli.work, "range.txt"), "w") as f:
        f.write("1 2 %d\n" % len(vocab))
    check_one_line_error(cli.run("tokenize", "--tokenizer", "tok", "--decode", "range.txt"), 1, "range.txt",
                         "token id %d is not in the vocabulary of %d" % (len(vocab), len(vocab)))
    with open(os.path.join(cli.work, "word.txt"), "w") as f:
        f.write("1 x2 3\n")
    check_one_line_error(cli.run("tokenize", "--tokenizer", "tok", "--decode", "word.txt"), 1, "word.txt",
                         '"x2" at byte 2 is not a token id')
    corrupt = os.path.join(cli.work, "corrupt")
    os.makedirs(corrupt)
    shutil.copy(os.path.join(tok, "merges.txt"), corrupt)
    with open(os.path.join(corrupt, "vocab.json"), "w") as f:
        f.write('{"a": 0,')
    check_one_line_error(cli.run("tokenize", "--tokenizer", "corrupt", "in.txt"), 1, "corrupt/vocab.json: JSON parse error")
    with open(os.path.join(corrupt, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(corrupt, "merges.txt"), "w") as f:
        f.write("#version: 0.2\nh e\nonly\n")
    check_one_line_error(cli.run("tokenize", "--tokenizer", "corrupt", "in.txt"), 1, "corrupt/merges.txt line 3: expected two tokens")



def case_text_tokenizer(cli):
    """train --text --tokenizer: a GPT over BPE tokens; its checkpoint and weights carry the tokenizer, so --resume
    (without --tokenizer), eval and generate use it; a resume with another tokenizer is refused."""
    tok, vocab, sym = write_small_bpe(cli)
    other, _, _ = write_small_bpe(cli, "other", extra=[("o", "g")])
    text = write_small_text(cli)
    p = cli.run("train", "--model", TINY_GPT, "--text", text, "--tokenizer", "tok", "--steps", 6, "--warmup", 1,
                "--batch-size", 4, "--eval-at", 3, "--val-limit", 4, "--checkpoint", "c.safetensors",
                "--stop-after", 3, "--report", "r.json")
    check(p.returncode == 0, "training with --tokenizer stops at step 3")
    check(re.search(r"tokens \(\d+ train, \d+ validation\), vocabulary %d \(gpt2-bpe\)" % len(vocab), p.stdout),
          "the corpus is counted in BPE tokens, the vocabulary is the tokenizer's")
    report = read_report(cli, "r.json")
    check(report["tokenizer"] == "gpt2-bpe" and report["vocabulary"] == len(vocab), "the report names the tokenizer")
    md = safetensors_header(os.path.join(cli.work, "c.safetensors"))["__metadata__"]
    check("vktrain_tokenizer" in md and "vktrain_vocabulary" not in md, "the checkpoint carries the tokenizer")
    check(json.loads(md["vktrain_tokenizer"])["kind"] == "gpt2-bpe", "as a serialised gpt2-bpe tokenizer")
    p = cli.run("train", "--model", TINY_GPT, "--text", text, "--tokenizer", "other", "--steps", 6, "--warmup", 1,
                "--batch-size", 4, "--eval-at", 3, "--val-limit", 4, "--checkpoint", "c.safetensors",
                "--resume", "c.safetensors")
    check_last_error(p, 1, "c.safetensors", "tokenizer is not the one of --tokenizer other")
    p = cli.run("train", "--model", TINY_GPT, "--text", text, "--steps", 6, "--warmup", 1, "--batch-size", 4,
                "--eval-at", 3, "--val-limit", 4, "--checkpoint", "c.safetensors", "--resume", "c.safetensors",
                "--output", "w.safetensors", "--quiet")
    check(p.returncode == 0, "resumed without --tokenizer: the checkpoint's is used")
    md = safetensors_header(os.path.join(cli.work, "w.safetensors"))["__metadata__"]
    check("vktrain_tokenizer" in md, "the weights carry the tokenizer")
    p = cli.run("eval", "--weights", "w.safetensors", "--text", text, "--val-limit", 4)
    check(p.returncode == 0 and re.search(r"^val_loss \S+  windows 4  tokens 64$", p.stdout, re.M),
          "eval tokenises with the file's tokenizer")
    check("vocabulary %d" % len(vocab) in p.stdout, "eval shows the tokenizer's vocabulary")
    g = subprocess.run([cli.binary, "generate", "--weights", "w.safetensors", "--prompt", "it's the",
                        "--tokens", "8", "--quiet"], cwd=cli.work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    check(g.returncode == 0 and g.stdout.startswith(b"it's the") and g.stdout.endswith(b"\n"),
          "generate encodes the prompt and decodes the tokens with the file's tokenizer")



def case_hf_tokenizer(cli):
    """A GPT trained over BPE tokens goes out as a Hugging Face folder with its tokenizer files and comes back in
    through `vktrain import` carrying them, so eval and generate take the imported file as they took the trained one."""
    tok, vocab, sym = write_small_bpe(cli)
    text = write_small_text(cli)
    p = cli.run("train", "--model", TINY_GPT, "--text", text, "--tokenizer", "tok", "--steps", 4, "--warmup", 1,
                "--batch-size", 4, "--eval-at", 4, "--val-limit", 4, "--precision", "fp32", "--output",
                "w.safetensors", "--quiet")
    check(p.returncode == 0, "train with --tokenizer exits 0")
    p = cli.run("export", "w.safetensors", "--output", "hf")
    check(p.returncode == 0 and "tokenizer" in p.stdout, "export writes the tokenizer too: " + p.stdout.strip())
    for name in ("vocab.json", "merges.txt"):
        with open(os.path.join(cli.work, "tok", name), "rb") as a, open(os.path.join(cli.work, "hf", name), "rb") as b:
            check(a.read() == b.read(), "the exported %s is the tokenizer's, byte for byte" % name)
    p = cli.run("import", "hf", "--output", "back.safetensors", "--precision", "fp32")
    check(p.returncode == 0 and "tokenizer gpt2-bpe" in p.stdout, "import carries the folder's tokenizer: "
          + p.stdout.strip())
    md = safetensors_header(os.path.join(cli.work, "back.safetensors"))["__metadata__"]
    check(json.loads(md["vktrain_tokenizer"])["kind"] == "gpt2-bpe", "the imported file holds the tokenizer")
    losses = []
    for weights in ("w.safetensors", "back.safetensors"):
        p = cli.run("eval", "--weights", weights, "--text", text, "--val-limit", 4, "--precision", "fp32")
        m = re.search(r"^val_loss (\S+)  windows 4  tokens 64$", p.stdout, re.M)
        check(p.returncode == 0 and m is not None, "eval tokenises %s with its tokenizer" % weights)
        losses.append(m.group(1))
    check(losses[0] == losses[1], "the imported file evaluates as the trained one (%s, %s)" % tuple(losses))
    g = subprocess.run([cli.binary, "generate", "--weights", "back.safetensors", "--prompt", "it's the",
                        "--tokens", "8", "--quiet"], cwd=cli.work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    check(g.returncode == 0 and g.stdout.startswith(b"it's the"), "generate takes the imported file")
    p = cli.run("import", "hf", "--output", "bare.safetensors", "--no-tokenizer")
    check(p.returncode == 0 and "tokenizer none" in p.stdout, "--no-tokenizer leaves it out")
    os.remove(os.path.join(cli.work, "hf", "merges.txt"))
    p = cli.run("import", "hf", "--output", "bad.safetensors")
    check_one_line_error(p, 1, "merges.txt", "--no-tokenizer")

def case_train_from(cli):
    """`train --from FILE` fine-tunes a BPE GPT with --lora (adapters saved as a PEFT folder; the checkpoint holds only
    the adapters, their optimizer state and the scaler; a run in slices resumes bit-identically) and with --freeze;
    progress shows the trainable and frozen counts; bad combinations are one-line usage errors."""
    tok, vocab, sym = write_small_bpe(cli)
    text = write_small_text(cli)
    p = cli.run("train", "--model", TINY_GPT, "--text", text, "--tokenizer", "tok", "--steps", 2, "--warmup", 1,
                "--batch-size", 4, "--eval-at", 2, "--val-limit", 4, "--precision", "fp32", "--output",
                "base.safetensors", "--quiet")
    check(p.returncode == 0, "a base model trained over BPE tokens")
    run = ["train", "--from", "base.safetensors", "--text", text, "--steps", 6, "--warmup", 1, "--batch-size", 4,
           "--micro-batch", 2, "--eval-at", "3", "--val-limit", 4, "--precision", "fp32", "--lr", "1e-2",
           "--lora", "*.attn.c_attn", "--lora", "*.mlp.c_fc", "--lora-r", 2, "--lora-alpha", 4]
    p = cli.run(*run, "--output", "whole.safetensors", "--save-adapter", "adapter")
    # c_attn 16 -> 48 and c_fc 16 -> 64 with r 2: 2 x (2 x 16 + 48 x 2) + ... in one layer
    trainable = (2 * 16 + 48 * 2) + (2 * 16 + 64 * 2)
    m = re.search(r"^trainable   (\d+) parameters, frozen (\d+) \(LoRA r 2 alpha 4 dropout 0 on 2 layers\)", p.stdout,
                  re.M)
    check(p.returncode == 0 and m is not None and int(m.group(1)) == trainable,
          "--lora trains the adapters only (%s)" % (m.group(0) if m else p.stdout + p.stderr))
    cfg = json.load(open(os.path.join(cli.work, "adapter", "adapter_config.json")))
    check(cfg["peft_type"] == "LORA" and cfg["r"] == 2 and cfg["lora_alpha"] == 4 and
          cfg["base_model_name_or_path"] == "base.safetensors" and cfg["fan_in_fan_out"] is True,
          "--save-adapter writes PEFT's adapter_config.json")
    names = set(safetensors_header(os.path.join(cli.work, "adapter", "adapter_model.safetensors"))) - {"__metadata__"}
    check(len(names) == 4 and all(n.startswith("base_model.model.transformer.h.0.") for n in names),
          "adapter_model.safetensors holds the four adapter tensors under PEFT's keys")
    p = cli.run(*run, "--checkpoint", "c.safetensors", "--stop-after", 3)
    check(p.returncode == 0 and "stopped     after step 3 of 6" in p.stdout, "first slice stops after 3 steps")
    tensors = set(safetensors_header(os.path.join(cli.work, "c.safetensors"))) - {"__metadata__"}
    check(all(".lora_" in n for n in tensors) and len(tensors) == 4 * 3,
          "the LoRA checkpoint holds the adapters and their AdamW state only (%d tensors)" % len(tensors))
    p = cli.run(*run, "--checkpoint", "c.safetensors", "--resume", "c.safetensors", "--output", "sliced.safetensors")
    check(p.returncode == 0 and "resumed     c.safetensors at step 3" in p.stdout, "second slice resumes at step 3")
    check(sha256(os.path.join(cli.work, "whole.safetensors")) == sha256(os.path.join(cli.work, "sliced.safetensors")),
          "the sliced LoRA run's weights are bit-identical to the uninterrupted run's")
    other = list(run)
    other[other.index("--lora-r") + 1] = 4
    p = cli.run(*other, "--resume", "c.safetensors")
    check_last_error(p, 1, "c.safetensors", "--lora-options=r=2", "r=4")
    p = cli.run("export", "base.safetensors", "--adapter", "adapter", "--output", "merged")
    check(p.returncode == 0 and "+ adapter adapter" in p.stdout, "export --adapter merges the adapter")

    p = cli.run("train", "--from", "base.safetensors", "--text", text, "--steps", 2, "--warmup", 1, "--batch-size", 4,
                "--eval-at", 2, "--val-limit", 4, "--precision", "fp32", "--freeze", "transformer.h.0.",
                "--freeze", "transformer.w*", "--output", "frozen.safetensors")
    m = re.search(r"^trainable   (\d+) parameters, frozen (\d+);", p.stdout, re.M)
    check(p.returncode == 0 and m is not None and int(m.group(1)) > 0 and int(m.group(2)) > int(m.group(1)),
          "--freeze leaves the head and ln_f training (%s)" % (m.group(0) if m else p.stdout + p.stderr))
    base = read_safetensors(os.path.join(cli.work, "base.safetensors"))
    frozen = read_safetensors(os.path.join(cli.work, "frozen.safetensors"))
    name = "transformer.h.0.attn.c_attn.weight"
    b0, b1 = base[0][name]["data_offsets"]
    f0, f1 = frozen[0][name]["data_offsets"]
    check(base[2][b0:b1] == frozen[2][f0:f1], "a frozen weight is saved unchanged")
    p = cli.run("train", "--from", "base.safetensors", "--text", text, "--steps", 2, "--warmup", 1, "--batch-size", 4,
                "--eval-at", 2, "--val-limit", 4, "--precision", "fp32", "--freeze", "*", "--train", "lm_head.",
                "--lr-scale", "lm_head.=0.5")
    m = re.search(r"^trainable   (\d+) parameters, frozen (\d+);", p.stdout, re.M)
    check(p.returncode == 0 and m is not None and int(m.group(1)) == len(vocab) * 16,
          "--freeze '*' --train lm_head. trains the head alone, with --lr-scale (%s)" % (m.group(0) if m else p.stderr))

    p = cli.run("train", "--from", "base.safetensors", "--model", TINY_GPT, "--text", text)
    check_one_line_error(p, 2, "--model does not apply")
    p = cli.run("train", "--model", TINY_GPT, "--text", text, "--lora", "*.c_attn")
    check_one_line_error(p, 2, "--lora applies only with --from FILE")
    p = cli.run("train", "--from", "base.safetensors", "--text", text, "--lora", "*.c_nope", "--steps", 2, "--warmup", 1)
    check_one_line_error(p, 2, "--lora *.c_nope", "no linear layer matches '*.c_nope'")
    p = cli.run("train", "--from", "base.safetensors", "--text", text, "--freeze", "nothing.", "--steps", 2,
                "--warmup", 1)
    check_one_line_error(p, 2, "--freeze nothing.", "no parameter matches 'nothing.'")
    p = cli.run("train", "--from", "base.safetensors", "--text", text, "--lora-dropout", 1)
    check_one_line_error(p, 2, "--lora-dropout")


def case_generate_lora(cli):
    """`generate` takes the LoRA model `train --from ... --lora --output` writes, merging its adapters on load
    (W + (alpha / r)·B·A): the same greedy text, token for token, as the model merged by `export --adapter` and
    imported again, with the key/value cache and without; so do `predict` on a shorter window and `train --from`."""
    tok, vocab, sym = write_small_bpe(cli)
    text = write_small_text(cli)
    p = cli.run("train", "--model", TINY_GPT, "--text", text, "--tokenizer", "tok", "--steps", 2, "--warmup", 1,
                "--batch-size", 4, "--eval-at", 2, "--val-limit", 4, "--precision", "fp32", "--output",
                "base.safetensors", "--quiet")
    check(p.returncode == 0, "a base model trained over BPE tokens")
    p = cli.run("train", "--from", "base.safetensors", "--text", text, "--steps", 6, "--warmup", 1, "--batch-size", 4,
                "--eval-at", 6, "--val-limit", 4, "--precision", "fp32", "--lr", "5e-2", "--lora", "*.attn.c_attn",
                "--lora", "*.mlp.c_fc", "--lora-r", 2, "--lora-alpha", 8, "--output", "tuned.safetensors",
                "--save-adapter", "adapter", "--quiet")
    check(p.returncode == 0, "a LoRA run writes the adapted model (%s)" % p.stderr)
    header, _, data = read_safetensors(os.path.join(cli.work, "tuned.safetensors"))
    b0, b1 = header["transformer.h.0.attn.c_attn.lora_B.weight"]["data_offsets"]
    check(any(x != 0.0 for x in struct.unpack("<%df" % ((b1 - b0) // 4), data[b0:b1])),
          "training moved B away from zero (else the merge would change nothing)")
    p = cli.run("export", "base.safetensors", "--adapter", "adapter", "--output", "merged")
    check(p.returncode == 0, "export --adapter merges the adapter (%s)" % p.stderr)
    p = cli.run("import", "merged", "--output", "merged.safetensors", "--precision", "fp32")
    check(p.returncode == 0, "the merged folder imports (%s)" % p.stderr)
    outputs = {}
    for weights in ["tuned.safetensors", "merged.safetensors", "base.safetensors"]:
        for cache in [[], ["--no-cache"]]:
            p = cli.run("generate", "--weights", weights, "--prompt", "the ", "--tokens", 24,
                        "--temperature", 0, "--quiet", *cache)
            check(p.returncode == 0, "generate %s %s (%s)" % (weights, " ".join(cache), p.stderr))
            outputs[(weights, bool(cache))] = p.stdout
    for cache in [False, True]:
        check(outputs[("tuned.safetensors", cache)] == outputs[("merged.safetensors", cache)],
              "generate on the LoRA file equals generate on the merged, imported file (no cache: %s): %r vs %r" %
              (cache, outputs[("tuned.safetensors", cache)], outputs[("merged.safetensors", cache)]))
    check(outputs[("tuned.safetensors", False)] == outputs[("tuned.safetensors", True)],
          "the cached decoder and the whole window give the same text")
    check(outputs[("tuned.safetensors", False)] != outputs[("base.safetensors", False)],
          "the adapters change the text (the merge is not a no-op)")
    # predict on a window shorter than the context (which needs the plain GPT) runs the merged model too.
    write_safetensors(os.path.join(cli.work, "ids.safetensors"),
                      [("input", "I32", [2, 5], struct.pack("<10i", *[(7 * k) % 60 for k in range(10)]))], {})
    logits = []
    for weights in ["tuned.safetensors", "merged.safetensors"]:
        out = weights + ".logits.safetensors"
        p = cli.run("predict", "--weights", weights, "--input", "ids.safetensors", "--output", out, "--precision",
                    "fp32")
        check(p.returncode == 0, "predict --weights %s on 5 of 16 positions (%s)" % (weights, p.stderr))
        header, _, data = read_safetensors(os.path.join(cli.work, out))
        check(header["logits"]["shape"][:2] == [2, 5], "logits for 2 x 5 positions (%r)" % header["logits"]["shape"])
        logits.append(data)
    check(logits[0] == logits[1], "predict on the LoRA file gives the merged file's logits bit for bit")
    # train --from the LoRA file trains on from the merged weights: the same run as from the merged, imported file.
    losses = []
    for weights in ["tuned.safetensors", "merged.safetensors"]:
        p = cli.run("train", "--from", weights, "--text", text, "--steps", 2, "--warmup", 1, "--batch-size", 4,
                    "--eval-at", 2, "--val-limit", 4, "--precision", "fp32", "--report", weights + ".json")
        check(p.returncode == 0, "train --from %s (%s)" % (weights, p.stderr))
        if weights == "tuned.safetensors":
            check("merged      the 2 LoRA adapters of tuned.safetensors into its base weights" in p.stdout,
                  "the header says the adapters were merged")
        r = read_report(cli, weights + ".json")
        losses.append((r["final_loss"], r["validation"][-1]["val_loss"]))
    check(losses[0] == losses[1], "train --from the LoRA file equals train --from the merged file: %r" % losses)


def case_train_from_chars(cli):
    """`train --from` a character-level GPT (no tokenizer in the file): the new corpus is mapped onto the file's
    characters, so it trains and writes the file's vocabulary back; a corpus holding a character the file lacks is
    one line naming it."""
    text = write_small_text(cli)
    p = cli.run("train", "--model", TINY_GPT, "--text", text, "--steps", 2, "--warmup", 1, "--batch-size", 4,
                "--eval-at", 2, "--val-limit", 4, "--precision", "fp32", "--output", "base.safetensors", "--quiet")
    check(p.returncode == 0, "a character-level base model (%s)" % p.stderr)
    # Other text over a subset of the same characters: its own vocabulary would be smaller and ordered otherwise.
    with open(os.path.join(cli.work, "other.txt"), "w") as f:
        for i in range(200):
            f.write(["the lazy dog sleeps.\n", "then the fox jumps over.\n"][i % 2])
    p = cli.run("train", "--from", "base.safetensors", "--text", "other.txt", "--steps", 3, "--warmup", 1,
                "--batch-size", 4, "--eval-at", 3, "--val-limit", 4, "--precision", "fp32", "--output",
                "tuned.safetensors", "--report", "r.json", "--quiet")
    check(p.returncode == 0, "train --from a character-level file (%s)" % p.stderr)
    r = read_report(cli, "r.json")
    base_vocab = read_safetensors(os.path.join(cli.work, "base.safetensors"))[1]["vktrain_vocabulary"]
    check(r["from"] == "base.safetensors" and r["tokenizer"] == "char" and math.isfinite(r["final_loss"]) and
          r["vocabulary"] == len(base_vocab) and math.isfinite(r["validation"][-1]["val_loss"]),
          "the report has from, a finite loss and the file's vocabulary (%r)" % r)
    tuned_vocab = read_safetensors(os.path.join(cli.work, "tuned.safetensors"))[1]["vktrain_vocabulary"]
    check(base_vocab == tuned_vocab, "the tuned file carries the base's vocabulary, not the new corpus's")
    p = cli.run("generate", "--weights", "tuned.safetensors", "--prompt", "the ", "--tokens", 8, "--temperature", 0,
                "--quiet")
    check(p.returncode == 0 and p.stdout.startswith("the "), "the tuned file generates (%s)" % p.stderr)
    with open(os.path.join(cli.work, "bad.txt"), "w") as f:
        f.write("the lazy dog sleeps.\n" * 100 + "Zebra\n")
    p = cli.run("train", "--from", "base.safetensors", "--text", "bad.txt", "--steps", 2, "--warmup", 1)
    check_one_line_error(p, 1, "base.safetensors is a character-level model", "bad.txt", "character \"Z\"",
                         "not in the vocabulary")
    # Neither a tokenizer nor characters (the metadata dropped): --tokenizer is the way out.
    header, metadata, data = read_safetensors(os.path.join(cli.work, "base.safetensors"))
    del metadata["vktrain_vocabulary"]
    tensors = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    write_safetensors(os.path.join(cli.work, "bare.safetensors"),
                      [(n, t["dtype"], t["shape"], data[t["data_offsets"][0]:t["data_offsets"][1]]) for n, t in tensors],
                      metadata)
    p = cli.run("train", "--from", "bare.safetensors", "--text", "other.txt", "--steps", 2, "--warmup", 1)
    check_one_line_error(p, 2, "bare.safetensors carries no tokenizer and no character vocabulary", "--tokenizer DIR")


def write_png(path, width, height, rgb):
    """An 8-bit RGB PNG from bytes (zlib only: the command's tests need no imaging library)."""
    import zlib
    raw = b"".join(b"\0" + rgb[y * width * 3:(y + 1) * width * 3] for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def write_colour_folder(root, per_class, seed):
    """Two classes, reddish and bluish 20x20 images with noise."""
    import random
    rnd = random.Random(seed)
    for cls, (r, b) in (("blue", (40, 200)), ("red", (200, 40))):
        for i in range(per_class):
            px = bytearray()
            for _ in range(20 * 20):
                px += bytes([max(0, min(255, r + rnd.randint(-30, 30))), rnd.randint(60, 120),
                             max(0, min(255, b + rnd.randint(-30, 30)))])
            write_png(os.path.join(root, cls, "%02d.png" % i), 20, 20, bytes(px))


def case_train_images(cli):
    """`train --images DIR`: a net on a two-class PNG folder learns it (validation accuracy per epoch); a corrupt file
    stops the run with one line naming it, or with --skip-bad-images is skipped and counted; the weights train on
    with --from; image options without --images and a --from model of another input size are refused."""
    write_colour_folder(os.path.join(cli.work, "train"), 12, 1)
    write_colour_folder(os.path.join(cli.work, "val"), 4, 2)
    with open(os.path.join(cli.work, "train", "red", "zz_bad.png"), "wb") as f:
        f.write(b"this is not a PNG file")
    common = ["--images", "train", "--val-images", "val", "--image-size", "16", "--model",
              "net:conv2d(out=4,kernel_h=3,pad_h=1),relu,max_pool2d", "--batch-size", "8", "--precision", "fp32",
              "--lr", "0.01", "--workers", "2"]
    p = cli.run("train", *common, "--epochs", "1")
    check_last_error(p, 1, "train/red/zz_bad.png", "not a PNG file")
    p = cli.run("train", *common, "--epochs", "4", "--skip-bad-images", "--output", "img.safetensors")
    check(p.returncode == 0, "trains with --skip-bad-images (%s)" % p.stderr)
    epochs = [l for l in p.stdout.splitlines() if l.startswith("epoch ")]
    check(len(epochs) == 4 and all("skipped 1 (first: " in l and "zz_bad.png" in l for l in epochs),
          "four epoch lines, each counting the one skipped file")
    acc = float(re.search(r"val_accuracy ([0-9.]+)", epochs[-1]).group(1))
    check(acc >= 0.75, "validation accuracy %.3f >= 0.75 on reddish vs bluish images" % acc)
    os.remove(os.path.join(cli.work, "train", "red", "zz_bad.png"))
    p = cli.run("train", "--from", "img.safetensors", "--images", "train", "--val-images", "val", "--image-size", "16",
                "--epochs", "1", "--batch-size", "8", "--precision", "fp32", "--lr", "0.001")
    check(p.returncode == 0 and "val_accuracy" in p.stdout, "trains on --from the written weights (%s)" % p.stderr)
    p = cli.run("train", "--from", "img.safetensors", "--images", "train", "--image-size", "24", "--epochs", "1")
    check_last_error(p, 1, "img.safetensors", "[3, 24, 24]")
    p = cli.run("train", "--workers", "2", "--epochs", "1")
    check_one_line_error(p, 2, "--workers applies only with --images DIR")


IMAGE_NET = "net:conv2d(out=4,kernel_h=3,pad_h=1),relu,max_pool2d"


def image_base(cli):
    """Two colour folders and a small conv net trained on them for one epoch (base.safetensors): conv0 and the head
    linear0, no BatchNorm (whose running statistics would change even when frozen)."""
    write_colour_folder(os.path.join(cli.work, "train"), 8, 1)
    write_colour_folder(os.path.join(cli.work, "val"), 4, 2)
    p = cli.run("train", "--images", "train", "--image-size", "12", "--model", IMAGE_NET, "--batch-size", "8",
                "--precision", "fp32", "--epochs", "1", "--workers", "1", "--output", "base.safetensors")
    check(p.returncode == 0, "a base image model (%s)" % p.stderr)
    return ["train", "--from", "base.safetensors", "--images", "train", "--image-size", "12", "--batch-size", "8",
            "--precision", "fp32", "--workers", "1"]


def tensor_bytes(cli, path):
    header, _, data = read_safetensors(os.path.join(cli.work, path))
    return {n: data[h["data_offsets"][0]:h["data_offsets"][1]] for n, h in header.items()}


def tensor_values(cli, path):
    return {n: struct.unpack("<%df" % (len(b) // 4), b) for n, b in tensor_bytes(cli, path).items()}


def case_train_images_freeze(cli):
    """`train --images --from FILE --freeze '*' --train HEAD.`: only the head trains (counts printed at the start);
    the saved file's frozen tensors are byte-identical to the input's; the peak memory line follows the last epoch
    and --report writes the run as JSON."""
    run = image_base(cli)
    names = set(tensor_bytes(cli, "base.safetensors"))
    check(names == {"conv0.weight", "conv0.bias", "linear0.weight", "linear0.bias"}, "conv0 and the head linear0")
    p = cli.run(*run, "--val-images", "val", "--epochs", "2", "--lr", "0.01", "--freeze", "*", "--train", "linear0.",
                "--report", "r.json", "--output", "head.safetensors")
    head = 2 * 6 * 6 * 4 + 2  # linear0: 2 classes from 4 x 6 x 6 features, and its bias
    m = re.search(r"^trainable   (\d+) parameters, frozen (\d+)$", p.stdout, re.M)
    check(p.returncode == 0 and m is not None and int(m.group(1)) == head and int(m.group(2)) == 4 * 3 * 3 * 3 + 4,
          "only the head trains (%s)" % (m.group(0) if m else p.stdout + p.stderr))
    lines = p.stdout.splitlines()
    mem = [i for i, l in enumerate(lines) if re.fullmatch(r"memory  peak device \d+\.\d\d MiB, peak host "
                                                         r"(\d+\.\d\d MiB|n/a)", l)]
    last_epoch = max(i for i, l in enumerate(lines) if l.startswith("epoch 2/2"))
    check(len(mem) == 1 and mem[0] > last_epoch, "one peak memory line after the last epoch")
    before, after = tensor_bytes(cli, "base.safetensors"), tensor_bytes(cli, "head.safetensors")
    check(before["conv0.weight"] == after["conv0.weight"] and before["conv0.bias"] == after["conv0.bias"],
          "the frozen conv0 is saved byte-identical to the input's")
    check(before["linear0.weight"] != after["linear0.weight"], "the head changed")
    r = json.load(open(os.path.join(cli.work, "r.json")))
    check(r["freeze"] == ["*"] and r["train"] == ["linear0."] and r["lr_scales"] == [] and
          r["from"] == "base.safetensors" and r["trainable_parameters"] == head and r["epochs"] == 2,
          "the report's settings")
    check(len(r["history"]) == 2 and all(isinstance(e["train_loss"], float) and e["images_per_second"] > 0 and
                                          0 <= e["waiting_share"] <= 1 and 0 <= e["val_accuracy"] <= 1
                                          for e in r["history"]), "the report's per-epoch history")
    check(r["final_val_accuracy"] == r["history"][-1]["val_accuracy"] and r["peak_device_bytes"] > 0 and
          (r["peak_host_bytes"] is None or r["peak_host_bytes"] > 1 << 20) and r["images_per_second"] > 0,
          "the report's final accuracy and peak memory")

    # The last stage only, and the whole model (the default): counts as expected.
    p = cli.run(*run, "--epochs", "1", "--freeze", "conv0.")
    check(p.returncode == 0 and re.search(r"^trainable   %d parameters, frozen %d$" % (head, 4 * 27 + 4), p.stdout,
                                          re.M), "--freeze conv0. leaves the head")
    p = cli.run(*run, "--epochs", "1", "--report", "r.json")
    check_one_line_error(p, 1, "--report r.json", "already exists")
    p = cli.run(*run, "--epochs", "1", "--freeze", "nothing.")
    check_one_line_error(p, 2, "--freeze nothing.", "no parameter matches 'nothing.'")
    p = cli.run(*run, "--epochs", "1", "--freeze", "*", "--train", "nope")
    check_one_line_error(p, 2, "--train nope", "no parameter matches 'nope'")


def case_train_images_lr_scale(cli):
    """`--lr-scale PATTERN=SCALE`: a tiny scale leaves those weights (nearly) where they were while the rest moves;
    malformed values are one-line usage errors naming the option."""
    run = image_base(cli)
    p = cli.run(*run, "--epochs", "2", "--lr", "0.01", "--lr-scale", "conv0.=1e-6", "--output", "scaled.safetensors")
    check(p.returncode == 0 and "; learning rate conv0. x1e-06" in p.stdout, "trains with --lr-scale (%s)" % p.stderr)
    before, after = tensor_values(cli, "base.safetensors"), tensor_values(cli, "scaled.safetensors")

    def moved(name):
        return max(abs(a - b) for a, b in zip(before[name], after[name]))
    # AdamW moves a weight by about lr x scale per step: 4 steps of 1e-8 at most, against 1e-2 unscaled.
    check(moved("conv0.weight") < 1e-6 and moved("conv0.bias") < 1e-6, "conv0 barely moved (%g)" % moved("conv0.weight"))
    check(moved("linear0.weight") > 1e-3, "the head moved (%g)" % moved("linear0.weight"))
    p = cli.run(*run, "--epochs", "1", "--lr", "0.01", "--lr-scale", "conv0.=1e-6", "--lr-scale", "*=1",
                "--output", "overridden.safetensors")
    check(p.returncode == 0 and max(abs(a - b) for a, b in zip(
        before["conv0.weight"], tensor_values(cli, "overridden.safetensors")["conv0.weight"])) > 1e-3,
        "a later --lr-scale wins where they overlap")

    for value, needles in (("conv0.", ["--lr-scale", "PATTERN=SCALE", "'conv0.'"]),
                           ("=2", ["--lr-scale", "PATTERN=SCALE"]),
                           ("conv0.=0", ["--lr-scale conv0.", "positive number", "'0'"]),
                           ("conv0.=abc", ["--lr-scale conv0.", "positive number", "'abc'"]),
                           ("conv0.=inf", ["--lr-scale conv0.", "'inf'"])):
        p = cli.run(*run, "--epochs", "1", "--lr-scale", value)
        check_one_line_error(p, 2, *needles)
    p = cli.run(*run, "--epochs", "1", "--lr-scale", "nope.=0.5")
    check_one_line_error(p, 2, "--lr-scale nope.", "no parameter matches 'nope.'")
    p = cli.run("train", "--lr-scale", "linear0.=0.5", "--epochs", "1")
    check_one_line_error(p, 2, "--lr-scale applies only with --from FILE or --images DIR")

def case_train_images_freeze_bn(cli):
    """`train --images DIR --freeze-bn`: every BatchNorm keeps its running statistics (and num_batches_tracked) while
    the rest trains, the model line and the written file say so (graph attribute frozen_stats); without --freeze-bn
    they move; --freeze-bn without --images, or on a model without BatchNorm, is one clear line."""
    write_colour_folder(os.path.join(cli.work, "train"), 8, 1)
    write_colour_folder(os.path.join(cli.work, "val"), 2, 2)
    common = ["--images", "train", "--val-images", "val", "--image-size", "12", "--batch-size", "8",
              "--precision", "fp32", "--lr", "0.01", "--workers", "1", "--epochs", "2"]
    net = "net:conv2d(out=4,kernel_h=3,pad_h=1),batch_norm2d,relu,max_pool2d"

    def stats(name):
        header, metadata, data = read_safetensors(os.path.join(cli.work, name))
        graph = json.loads(metadata["vktrain_graph"])
        bn = [n for n in graph["nodes"] if n["op"] == "batch_norm2d"]
        out = {"frozen": [n.get("attrs", {}).get("frozen_stats", 0) for n in bn]}
        for suffix in ("running_mean", "running_var", "num_batches_tracked"):
            t = header[bn[0]["name"] + "." + suffix]
            raw = data[t["data_offsets"][0]:t["data_offsets"][1]]
            fmt = {"F32": "f", "I64": "q"}[t["dtype"]]
            out[suffix] = list(struct.unpack("<%d%s" % (len(raw) // struct.calcsize(fmt), fmt), raw))
        return out

    p = cli.run("train", *common, "--model", net, "--freeze-bn", "--output", "frozen.safetensors")
    check(p.returncode == 0 and "val_accuracy" in p.stdout, "trains with --freeze-bn (%s)" % p.stderr)
    check("batch_norm2d(frozen)" in p.stdout, "the model line shows the frozen BatchNorm")
    s = stats("frozen.safetensors")
    check(s["frozen"] == [1] and s["running_mean"] == [0.0] * 4 and s["running_var"] == [1.0] * 4
          and s["num_batches_tracked"] == [0], "--freeze-bn: running statistics as initialised, frozen_stats 1 (%s)" % s)
    p = cli.run("train", *common, "--model", net, "--output", "free.safetensors")
    check(p.returncode == 0, "trains without --freeze-bn (%s)" % p.stderr)
    s = stats("free.safetensors")
    check(s["frozen"] == [0] and s["running_mean"] != [0.0] * 4 and s["num_batches_tracked"] == [4],
          "without --freeze-bn the running statistics move, 4 batches tracked (%s)" % s)
    p = cli.run("train", "--freeze-bn", "--epochs", "1")
    check_one_line_error(p, 2, "--freeze-bn applies only with --images DIR")
    p = cli.run("train", *common, "--model", "net:conv2d(out=4,kernel_h=3,pad_h=1),relu", "--freeze-bn")
    check_one_line_error(p, 1, "no batch_norm2d node matches '*'", "the model has no batch_norm2d node")


CASES = {name[len("case_"):]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--work", required=True, help="scratch directory (emptied first)")
    parser.add_argument("--case", required=True, choices=sorted(CASES))
    args = parser.parse_args()
    work = os.path.abspath(os.path.join(args.work, args.case))
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    try:
        CASES[args.case](Cli(os.path.abspath(args.binary), work))
    except Skip as e:
        print("SKIP: " + str(e))
        return SKIP
    except Failure as e:
        print("FAIL: " + str(e))
        return 1
    print("PASS: " + args.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
