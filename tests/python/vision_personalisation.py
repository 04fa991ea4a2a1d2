#!/usr/bin/python3
"""A smoke test of the README's personalisation recipe (bench/vision_recipe.py), small enough for the suite.

  vision_personalisation.py VKTRAIN_BINARY WORK_DIR

Fashion-MNIST classes 5-9 rendered as RGB PNG folders (bench/vision_recipe.py's render) at 32x32, 8 images a class;
a torchvision resnet18 pre-trained by PyTorch on those images for a few seconds (the easy case: the same classes, no
augmentation; its accuracy must reach 0.6), imported with a fresh 5-class head (`vktrain import --arch resnet18
--classes 5`), then `vktrain train --from --images --freeze-bn` per fine-tuning mode the binary supports (full, AdamW
lr 1e-3, in fp32 for 6 epochs and in mixed precision for 2; head-only and last-stage, lr 1e-2, for 1 epoch). Checked: each run succeeds; every tensor the mode freezes, and every BatchNorm
running statistic, is bit for bit the imported file's; every trained tensor moved; the fp32 run's accuracy on the
images is at least 0.35 (chance 0.2); `vktrain export` loads into torchvision with load_state_dict(strict=True) and
PyTorch's accuracy of it equals vktrain's (within one image). Exit 77 without python3-torchvision or the dataset.
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
try:
    import numpy as np
    import torch
    import torchvision
except ImportError:
    print("python3-torchvision is not installed (platforms/debian/setup-test-tools.sh)")
    sys.exit(77)
sys.path.insert(0, os.path.join(ROOT, "bench"))
import vision_recipe as vr  # noqa: E402
from hf_reference import read_safetensors  # noqa: E402 (vision_recipe put tests/python on the path)

SIZE = 32
failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)


def pretrain_easy(folder, path, epochs=8, seed=1):
    """resnet18 (num_classes=5) trained by PyTorch on folder's images without augmentation (AdamW 3e-3, batch 20),
    BatchNorm statistics recomputed over the images, saved as safetensors; its eval-mode accuracy on the images."""
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(num_classes=5)
    data = torchvision.datasets.ImageFolder(folder, transform=vr.eval_transform())
    loader = torch.utils.data.DataLoader(data, batch_size=20, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    start = time.monotonic()
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    # Twenty steps leave the running statistics (momentum 0.1) behind the weights: recompute them as the exact mean
    # over the images, so that the eval-mode model vktrain imports is as good as the training-mode one.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
        for x, _ in torch.utils.data.DataLoader(data, batch_size=len(data)):
            model(x)
    seconds = time.monotonic() - start
    vr.write_safetensors(path, {k: v.detach().numpy() for k, v in model.state_dict().items()}, {"format": "pt"})
    return {"file": path, "accuracy": vr.torch_accuracy(model, folder), "seconds": seconds}


def main():
    # argv: VKTRAIN_BINARY WORK [RUNNER...]: the vktrain commands run through RUNNER (e.g. run-in-root.sh BUILD for
    # the trixie root's Mesa 26.1 with cooperative matrix); PyTorch stays on the host.
    binary, work, runner = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3:]
    if not os.path.isdir(vr.FASHION):
        print("%s is missing (Debian package dataset-fashion-mnist)" % vr.FASHION)
        return 77
    os.makedirs(work, exist_ok=True)
    start = time.monotonic()
    torch.set_num_threads(2)
    vr.SIZE = SIZE  # the recipe's transforms at the test's size
    # Pre-training on the fine-tuning classes themselves (the "easy case"): only that makes a few seconds of PyTorch
    # enough for an accuracy check that can fail.
    sizes = {"pretrain": 0, "pretrain-val": 0, "finetune": 8, "heldout": 0}
    vr.render(work, sizes, seed=1, size=SIZE)
    images = os.path.join(work, "images")
    finetune = os.path.join(images, "finetune")
    pre = pretrain_easy(finetune, os.path.join(work, "resnet18-pretrained.safetensors"))
    check(pre["accuracy"] >= 0.6, "PyTorch pre-training on the fine-tuning classes: accuracy %.3f on its images, "
          "%.1f s" % (pre["accuracy"], pre["seconds"]))

    def vk(*args):
        p = subprocess.run(runner + [binary] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return p.returncode, p.stdout

    base = os.path.join(work, "base.safetensors")
    code, out = vk("import", pre["file"], "--arch", "resnet18", "--classes", "5", "--image-size", str(SIZE),
                   "--output", base, "--force")
    check(code == 0, "import with a fresh 5-class head (%s)" % out.strip()[-300:])
    if code:
        return 1
    before, _ = read_safetensors(base)

    # The easy case is learning the new head on features already trained for these classes: the held-out folder is
    # the training folder (8 images a class), so above-chance accuracy is a check of the pipeline, not of learning.
    common = ["--images", finetune, "--val-images", finetune,
              "--image-size", str(SIZE), "--batch-size", "20", "--seed", "1", "--workers", "1", "--force"]
    modes = ["full", "head", "last-stage"]
    for mode in modes:
        for precision in ("fp32", "mixed") if mode != "last-stage" else ("mixed",):
            tag = "%s-%s" % (mode, precision)
            out_file = os.path.join(work, tag + ".safetensors")
            # AdamW moves every weight by about lr a step whatever its gradient: 3e-3 wrecks the pre-trained backbone
            # in full fine-tuning (measured: accuracy stuck at chance), 1e-3 reached 0.6 in 6 epochs of 2 steps.
            epochs = {("full", "fp32"): "6", ("full", "mixed"): "2"}.get((mode, precision), "1")
            code, out = vk("train", "--from", base, *common, "--epochs", epochs, "--precision", precision,
                           "--output", out_file, *vr.mode_flags("resnet18", mode, 1e-3 if mode == "full" else 1e-2))
            check(code == 0, "%s fine-tuning runs (%s)" % (tag, out.strip()[-400:]))
            if code:
                continue
            per_epoch, device, _, _ = vr.parse_train_output(out)
            acc = per_epoch[-1]["val_accuracy"]
            print("      %s: accuracy per epoch %s on %s" % (tag, [e["val_accuracy"] for e in per_epoch], device))
            after, _ = read_safetensors(out_file)
            frozen = [p for p in vr.backbone_prefixes("resnet18")
                      if mode == "head" or (mode == "last-stage" and p not in vr.LAST_STAGE["resnet18"])]
            same = lambda n: np.array_equal(before[n], after[n])  # noqa: E731
            stats = [n for n in before if n.endswith(("running_mean", "running_var", "num_batches_tracked"))]
            check(all(same(n) for n in stats), "%s: every BatchNorm running statistic unchanged (--freeze-bn)" % tag)
            fixed = [n for n in before if any(n.startswith(p) for p in frozen)]
            # Frozen weights live only on the device, in the storage precision: fp32 saves them bit for bit, mixed
            # precision as their fp16 values (docs/torchvision.md); BatchNorm's running statistics stay fp32.
            kept = lambda n: same(n) or (precision == "mixed" and n not in stats and np.array_equal(  # noqa: E731
                before[n].astype(np.float16).astype(before[n].dtype), after[n]))
            check(all(kept(n) for n in fixed), "%s: the %d frozen tensors unchanged%s" % (
                tag, len(fixed), "" if precision == "fp32" else " (as fp16 values)"))
            trained = [n for n in before if n not in stats and n not in fixed]
            moved = [n for n in trained if not same(n)]
            check(len(moved) == len(trained), "%s: %d of %d trained tensors moved" % (tag, len(moved), len(trained)))
            if epochs == "6":
                check(acc is not None and acc >= 0.35, "%s: accuracy %s on the easy case, at least 0.35 (chance 0.2, "
                      "one class for every image 0.2)" % (tag, acc))
                exported = os.path.join(work, tag + "-torchvision.safetensors")
                code, out = vk("export", out_file, "--output", exported, "--force")
                check(code == 0, "%s: export to torchvision's names (%s)" % (tag, out.strip()[-300:]))
                if code == 0:
                    tv = vr.torchvision_accuracy("resnet18", exported, finetune)
                    check(abs(tv - acc) <= 0.026, "%s: torchvision's accuracy of the export %.3f = vktrain's %.3f "
                          "(within one image)" % (tag, tv, acc))
    print("%.0f s" % (time.monotonic() - start))
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
