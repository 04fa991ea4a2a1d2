#!/usr/bin/python3
"""The README's personalisation recipe (issue 24), measured end to end with the vktrain command line.

  /usr/bin/python3 bench/vision_recipe.py VKTRAIN_BINARY [--work DIR] [--results FILE] [--quick] [--device N]
                                          [--models resnet18,mobilenet_v2] [--modes head,last-stage,full]
                                          [--precisions fp32,mixed] [--epochs N] [--heldout N] [--reuse] (--help)

1. Data: Debian's dataset-fashion-mnist (IDX files) rendered as RGB PNG image folders at 64x64 (PIL's bilinear
   upscaling of the 28x28 grey image, the grey copied into R, G and B), one sub-folder per class:
   pretrain/ (classes 0-4, the first 1000 training images of each), pretrain-val/ (classes 0-4, 200 test images of
   each), finetune/ (classes 5-9, 20 training images of each, a seeded choice) and heldout/ (classes 5-9, --heldout
   test images of each, default 100).
2. Pre-training: torchvision's resnet18 and mobilenet_v2 (num_classes=5, random initialisation, seeded) trained by
   PyTorch on the CPU on pretrain/ with the augmentation `vktrain train --images` uses (RandomResizedCrop(64),
   horizontal flip, ImageNet normalisation), AdamW; its accuracy on pretrain-val/ (Resize(73), CenterCrop(64)) and
   time are recorded. The state_dict is saved as safetensors (torchvision's names; what `safetensors.torch.save_file`
   writes).
3. `vktrain import --arch NAME --classes 5 --image-size 64`: the pre-trained backbone with a fresh 5-class head.
4. Fine-tuning on finetune/ (100 images) with `vktrain train --from --images --val-images heldout/`, for each of
   head-only, last-stage and full fine-tuning in fp32 and in mixed precision, plus a baseline: full fine-tuning of
   the same architecture from random weights (no pre-training). Each run records the held-out accuracy after the
   last epoch, training images/s, peak device memory (vktrain's report) and the command's peak resident host memory
   (wait4), and the exported model (`vktrain export`) is loaded into torchvision with load_state_dict(strict=True)
   and evaluated on heldout/ by PyTorch as a cross-check of the accuracy.
A mode whose flags this vktrain does not have (a usage error naming the flag) is recorded as not run, with the
error. Results: bench/results/<date>/vision-recipe.json and .md (a Markdown table, also on stdout). --quick: a few
images a class and one epoch (a smoke test of the recipe, not its numbers; results in WORK).
"""
import argparse
import datetime
import gzip
import json
import os
import platform
import re
import subprocess
import sys
import time

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
from hf_reference import read_safetensors, write_safetensors  # noqa: E402

MIB = 1024.0 * 1024.0
FASHION = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
SIZE = 64
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]

# What each mode trains: the rest is frozen with --freeze (device only, no master copy or optimizer state). Every
# mode keeps BatchNorm's running statistics frozen (--freeze-bn): batches of 20 images estimate them badly.
LAST_STAGE = {"resnet18": ["layer4."], "mobilenet_v2": ["features.%d." % i for i in range(14, 19)]}


def backbone_prefixes(arch):
    if arch == "resnet18":
        return ["conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4."]
    return ["features.%d." % i for i in range(19)]


def mode_flags(arch, mode, lr):
    """vktrain train flags for a mode: --freeze for what stays fixed (nothing in full fine-tuning), --freeze-bn."""
    flags = ["--freeze-bn", "--lr", str(lr)]
    if mode == "head":
        for p in backbone_prefixes(arch):
            flags += ["--freeze", p]
    elif mode == "last-stage":
        for p in backbone_prefixes(arch):
            if p not in LAST_STAGE[arch]:
                flags += ["--freeze", p]
    elif mode != "full":
        raise SystemExit("--modes: unknown mode %r (head, last-stage, full)" % mode)
    return flags


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("binary")
    p.add_argument("--work", default=os.path.join(ROOT, "build", "vision-recipe"))
    p.add_argument("--results", default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default=None, help="vktrain's --device")
    p.add_argument("--models", default="resnet18,mobilenet_v2")
    p.add_argument("--modes", default="head,last-stage,full")
    p.add_argument("--precisions", default="fp32,mixed")
    p.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default 4; --quick 1)")
    p.add_argument("--pretrain-epochs", type=int, default=None, help="PyTorch pre-training epochs (default 2)")
    p.add_argument("--heldout", type=int, default=100, help="held-out test images per class (default 100)")
    p.add_argument("--lrs", default="head=1e-3,last-stage=1e-3,full=1e-3",
                   help="AdamW learning rate per mode (MODE=LR,...; default 1e-3 for each)")
    p.add_argument("--no-baseline", action="store_true", help="skip the from-random-weights baseline")
    p.add_argument("--reuse", action="store_true", help="reuse WORK's images and pre-trained models")
    return p.parse_args()


# ---------------------------------------------------------------------------------------------------------------
# 1. Data

def read_idx(name):
    with gzip.open(os.path.join(FASHION, name), "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(magic & 0xff)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


def render(work, sizes, seed, size=SIZE):
    """Writes the four image folders (size x size RGB PNG); returns {folder: image count}."""
    if not os.path.isdir(FASHION):
        raise SystemExit("%s is missing (Debian package dataset-fashion-mnist)" % FASHION)
    train_x, train_y = read_idx("train-images-idx3-ubyte.gz"), read_idx("train-labels-idx1-ubyte.gz")
    test_x, test_y = read_idx("t10k-images-idx3-ubyte.gz"), read_idx("t10k-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(seed)
    plan = {
        # folder: (images, labels, classes, per class, seeded choice)
        "pretrain": (train_x, train_y, range(0, 5), sizes["pretrain"], False),
        "pretrain-val": (test_x, test_y, range(0, 5), sizes["pretrain-val"], False),
        "finetune": (train_x, train_y, range(5, 10), sizes["finetune"], True),
        "heldout": (test_x, test_y, range(5, 10), sizes["heldout"], False),
    }
    counts = {}
    for folder, (xs, ys, classes, per_class, choose) in plan.items():
        if per_class == 0:
            continue
        n = 0
        for c in classes:
            index = np.flatnonzero(ys == c)
            index = np.sort(rng.choice(index, per_class, replace=False)) if choose else index[:per_class]
            d = os.path.join(work, "images", folder, "%d-%s" % (c, CLASS_NAMES[c]))
            os.makedirs(d, exist_ok=True)
            for i in index:
                img = Image.fromarray(xs[i], "L").resize((size, size), Image.BILINEAR).convert("RGB")
                img.save(os.path.join(d, "%05d.png" % i))
                n += 1
        counts[folder] = n
    return counts


def load_folder(path, transform):
    ds = torchvision.datasets.ImageFolder(path, transform=transform)
    return ds


def eval_transform():
    return T.Compose([T.Resize(SIZE * 8 // 7), T.CenterCrop(SIZE), T.ToTensor(), T.Normalize(MEAN, STD)])


def train_transform():
    return T.Compose([T.RandomResizedCrop(SIZE), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])


def torch_accuracy(model, folder, batch=100):
    ds = load_folder(folder, eval_transform())
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=False)
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += int((model(x).argmax(1) == y).sum())
            total += len(y)
    return correct / total


# ---------------------------------------------------------------------------------------------------------------
# 2. Pre-training in PyTorch

def pretrain(arch, work, epochs, seed, batch=64, lr=1e-3):
    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)(num_classes=5)
    ds = load_folder(os.path.join(work, "images", "pretrain"), train_transform())
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * len(loader))
    start = time.monotonic()
    for epoch in range(epochs):
        model.train()
        loss_sum = n = 0
        for x, y in loader:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss) * len(y)
            n += len(y)
        print("  %s epoch %d/%d  loss %.4f  %.0f s" % (arch, epoch + 1, epochs, loss_sum / n,
                                                       time.monotonic() - start), flush=True)
    seconds = time.monotonic() - start
    acc = torch_accuracy(model, os.path.join(work, "images", "pretrain-val"))
    path = os.path.join(work, "%s-pretrained.safetensors" % arch)
    # What `safetensors.torch.save_file(model.state_dict(), path)` writes (that package is not in Debian).
    write_safetensors(path, {k: v.detach().numpy() for k, v in model.state_dict().items()}, {"format": "pt"})
    return {"arch": arch, "epochs": epochs, "batch_size": batch, "lr": lr, "images": len(ds),
            "val_accuracy": round(acc, 4), "seconds": round(seconds, 1), "images_per_second":
            round(epochs * len(ds) / seconds, 1), "threads": torch.get_num_threads(), "file": path}


# ---------------------------------------------------------------------------------------------------------------
# 3-4. vktrain

class Vktrain:
    def __init__(self, binary, device, log_path):
        self.binary, self.device, self.log_path = binary, device, log_path
        self.log = open(log_path, "w")

    def __call__(self, args, what, may_fail=False):
        """Runs vktrain; returns (exit code, output, seconds, peak RSS bytes). Exit 2 with may_fail: returned."""
        cmd = [self.binary] + args + (["--device", self.device] if self.device is not None and args[0] == "train"
                                      else [])
        print("[%s] %s" % (time.strftime("%H:%M:%S"), what), flush=True)
        self.log.write("$ %s\n" % " ".join(cmd))
        self.log.flush()
        start = time.monotonic()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = p.stdout.read().decode(errors="replace")
        _, status, usage = os.wait4(p.pid, 0)
        seconds = time.monotonic() - start
        code = os.waitstatus_to_exitcode(status)
        self.log.write(out)
        self.log.flush()
        if code != 0 and not (may_fail and code == 2):
            raise SystemExit("vktrain %s exited %d (log %s):\n%s" % (args[0], code, self.log_path, out[-3000:]))
        return code, out, seconds, usage.ru_maxrss * 1024


EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+)\s+train_loss (\S+)\s+images/s (\S+).*?(?:val_accuracy (\S+))?$")


def parse_train_output(out):
    epochs = []
    device = peak_device = peak_host = None
    for line in out.splitlines():
        m = EPOCH_LINE.match(line.strip())
        if m:
            epochs.append({"epoch": int(m.group(1)), "train_loss": float(m.group(3)),
                           "images_per_second": float(m.group(4)),
                           "val_accuracy": float(m.group(5)) if m.group(5) else None})
        elif line.startswith("device"):
            device = line.split(None, 1)[1].strip()
        m = re.search(r"peak device ([\d.]+) MiB, peak host ([\d.]+) MiB", line)
        if m:
            peak_device, peak_host = float(m.group(1)), float(m.group(2))
    return epochs, device, peak_device, peak_host


def torchvision_accuracy(arch, exported, heldout):
    model = getattr(torchvision.models, arch)(num_classes=5)
    tensors, _ = read_safetensors(exported)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}, strict=True)
    return torch_accuracy(model, heldout)


def finetune(vk, a, arch, base, mode, precision, epochs, batch, lr, tag, cross_check):
    work = a.work
    out_file = os.path.join(work, "%s.safetensors" % tag)
    report = os.path.join(work, "%s.json" % tag)
    args = ["train", "--from", base, "--images", os.path.join(work, "images", "finetune"), "--val-images",
            os.path.join(work, "images", "heldout"), "--image-size", str(SIZE), "--epochs", str(epochs),
            "--batch-size", str(batch), "--precision", precision, "--seed", "1", "--workers", "2",
            "--output", out_file, "--report", report, "--force"] + mode_flags(arch, mode, lr)
    code, out, seconds, rss = vk(args, "%s %s %s, %d epochs" % (tag, mode, precision, epochs), may_fail=True)
    if code == 2 and "--report does not apply" in out:
        # A vktrain without the image report: the run still counts, its peak device memory is unknown.
        i = args.index("--report")
        del args[i:i + 2]
        code, out, seconds, rss = vk(args, "  again without --report", may_fail=True)
    row = {"model": arch, "mode": mode, "precision": precision, "pretrained": "random" not in tag,
           "epochs": epochs, "batch_size": batch, "lr": lr, "flags": mode_flags(arch, mode, lr)}
    if code != 0:
        err = [ln for ln in out.splitlines() if ln.startswith("vktrain: error")]
        row.update({"run": False, "why": err[0] if err else out.strip()[-300:]})
        print("  not run: %s" % row["why"], flush=True)
        return row
    epochs_seen, device, peak_device, peak_host = parse_train_output(out)
    r = json.load(open(report)) if os.path.isfile(report) else {}
    if r.get("peak_device_bytes") is not None:
        peak_device = r["peak_device_bytes"] / MIB
    if r.get("peak_host_bytes") is not None:
        peak_host = r["peak_host_bytes"] / MIB
    # images/s: the mean over the epochs after the first (the first builds pipelines and fills the decode queue).
    ips = [e["images_per_second"] for e in epochs_seen[1:]] or [e["images_per_second"] for e in epochs_seen]
    row.update({
        "run": True, "device": device, "heldout_accuracy": epochs_seen[-1]["val_accuracy"],
        "accuracy_per_epoch": [e["val_accuracy"] for e in epochs_seen],
        "train_loss_per_epoch": [e["train_loss"] for e in epochs_seen],
        "images_per_second": round(sum(ips) / len(ips), 1),
        "peak_device_mib": peak_device and round(peak_device, 1), "peak_host_mib": peak_host and round(peak_host, 1),
        "peak_host_rss_mib": round(rss / MIB, 1), "wall_seconds": round(seconds, 1),
    })
    if cross_check:
        exported = os.path.join(work, "%s-torchvision.safetensors" % tag)
        vk(["export", out_file, "--output", exported, "--force"], "export %s to torchvision's names" % tag)
        row["torchvision_heldout_accuracy"] = round(torchvision_accuracy(arch, exported,
                                                                         os.path.join(work, "images", "heldout")), 4)
    print("  held-out accuracy %s, %s images/s, %.0f s" % (row["heldout_accuracy"], row["images_per_second"],
                                                          seconds), flush=True)
    return row


def table(runs):
    lines = ["| model | mode | precision | lr | held-out accuracy | images/s | peak device MiB | peak host MiB | epochs | "
             "wall s |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        name = r["model"] + ("" if r["pretrained"] else " (random init)")
        if not r["run"]:
            lines.append("| %s | %s | %s | %g | not run: %s | | | | | |" % (name, r["mode"], r["precision"], r["lr"],
                                                                        r["why"].replace("|", "/")))
            continue
        fmt = lambda v, f: "n/a" if v is None else f % v  # noqa: E731
        lines.append("| %s | %s | %s | %g | %.3f | %.1f | %s | %s | %d | %.0f |" % (
            name, r["mode"], r["precision"], r["lr"], r["heldout_accuracy"], r["images_per_second"],
            fmt(r["peak_device_mib"], "%.0f"), fmt(r["peak_host_mib"] or r["peak_host_rss_mib"], "%.0f"),
            r["epochs"], r["wall_seconds"]))
    return "\n".join(lines)


def main():
    a = parse()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    a.work = os.path.abspath(a.work)
    os.makedirs(a.work, exist_ok=True)
    start = time.monotonic()
    sizes = ({"pretrain": 60, "pretrain-val": 20, "finetune": 4, "heldout": 20} if a.quick else
             {"pretrain": 1000, "pretrain-val": 200, "finetune": 20, "heldout": a.heldout})
    pre_epochs = a.pretrain_epochs or (1 if a.quick else 2)
    epochs = a.epochs or (1 if a.quick else 4)
    batch = 20
    models = a.models.split(",")

    state_path = os.path.join(a.work, "pretrain.json")
    if a.reuse:
        state = json.load(open(state_path))
    else:
        print("[%s] rendering Fashion-MNIST at %dx%d" % (time.strftime("%H:%M:%S"), SIZE, SIZE), flush=True)
        state = {"images": render(a.work, sizes, seed=1), "pretrain": {}}
        for arch in models:
            print("[%s] pre-training %s in PyTorch" % (time.strftime("%H:%M:%S"), arch), flush=True)
            state["pretrain"][arch] = pretrain(arch, a.work, pre_epochs, seed=1)
            print("  accuracy %.3f on pretrain-val, %.0f s" % (state["pretrain"][arch]["val_accuracy"],
                                                                state["pretrain"][arch]["seconds"]), flush=True)
        json.dump(state, open(state_path, "w"), indent=2)

    vk = Vktrain(a.binary, a.device, os.path.join(a.work, "log.txt"))
    runs = []
    lrs = {"head": 1e-3, "last-stage": 1e-3, "full": 1e-3}
    for item in [i for i in a.lrs.split(",") if i]:
        mode, _, value = item.partition("=")
        if mode not in lrs or not value:
            raise SystemExit("--lrs: expected MODE=LR with MODE head, last-stage or full, got %r" % item)
        lrs[mode] = float(value)
    for arch in models:
        base = os.path.join(a.work, "%s-base.safetensors" % arch)
        vk(["import", state["pretrain"][arch]["file"], "--arch", arch, "--classes", "5", "--image-size", str(SIZE),
            "--seed", "1", "--output", base, "--force"], "import %s with a fresh 5-class head" % arch)
        for mode in [m for m in a.modes.split(",") if m]:
            for precision in a.precisions.split(","):
                runs.append(finetune(vk, a, arch, base, mode, precision, epochs, batch, lrs[mode],
                                     "%s-%s-%s" % (arch, mode, precision), cross_check=True))
        if not a.no_baseline:
            # The same architecture from random weights (torchvision's initialisation through the import), full
            # fine-tuning in fp32: what the pre-training is worth.
            torch.manual_seed(2)
            rnd = getattr(torchvision.models, arch)(num_classes=5)
            src = os.path.join(a.work, "%s-random.pt.safetensors" % arch)
            write_safetensors(src, {k: v.detach().numpy() for k, v in rnd.state_dict().items()}, {"format": "pt"})
            rbase = os.path.join(a.work, "%s-random.safetensors" % arch)
            vk(["import", src, "--arch", arch, "--classes", "5", "--image-size", str(SIZE), "--seed", "1", "--output",
                rbase, "--force"], "import a randomly initialised %s" % arch)
            runs.append(finetune(vk, a, arch, rbase, "full", "fp32", epochs, batch, lrs["full"],
                                 "%s-random-full-fp32" % arch, cross_check=False))

    results = {
        "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "quick": a.quick, "image_size": SIZE, "images": state["images"], "pretrain": state["pretrain"],
        "torch": torch.__version__, "torchvision": torchvision.__version__, "runs": runs,
        "seconds": round(time.monotonic() - start, 1),
    }
    out = a.results or os.path.join(ROOT, "bench", "results", datetime.date.today().isoformat(), "vision-recipe.json")
    if a.quick and a.results is None:
        out = os.path.join(a.work, "vision-recipe-quick.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    json.dump(results, open(out, "w"), indent=2)
    md = table(runs)
    with open(os.path.splitext(out)[0] + ".md", "w") as f:
        f.write(md + "\n")
    for arch, p in state["pretrain"].items():
        print("\npre-trained %s in PyTorch: %d images x %d epochs, accuracy %.3f on classes 0-4's test images, %s s"
              % (arch, p["images"], p["epochs"], p["val_accuracy"], p["seconds"]))
    print("\n" + md + "\n\nresults: %s (%.0f s in all)" % (out, results["seconds"]))


if __name__ == "__main__":
    sys.exit(main())
