#!/usr/bin/env python3
"""Image folders (issue 24, data) against PIL and torchvision, through tests/images/image_probe.cpp.

Writes an ImageFolder tree with Debian's python3-pil: PNG in modes L, LA, RGB, RGBA, P (with and without
transparency), 1, I;16 (16-bit grey) and an interlaced RGB; JPEG at quality 90 baseline (4:2:0), progressive, 4:4:4
and greyscale; sizes that make the resize scale non-integral, upscaling and downscaling. Checks:
- classes and (label, path) of every sample equal torchvision.datasets.ImageFolder's;
- every decoded pixel equals PIL's Image.open(p).convert("RGB") (16-bit grey: PIL's 16-bit values >> 8, since PIL's
  own convert("RGB") of mode I clips at 255);
- the eval transform equals torchvision's Resize, CenterCrop, ToTensor, Normalize on that RGB image (max |diff| printed;
  the tolerance is 1e-6, the result is expected bit-exact);
- corrupt, truncated and misnamed files give one-line errors naming the file; an empty class, a folder with no images
  and a folder without class folders are errors too;
- the loader's shuffled batches are identical with 0 and 3 threads (eval and train), and skip_bad_images skips and
  lists exactly the bad files.

usage: image_folder.py IMAGE_PROBE WORK_DIR
"""
import os
import shutil
import subprocess
import sys

try:
    import numpy as np
    import torch
    from PIL import Image
    from torchvision import datasets, transforms
except ImportError as e:
    print("python3-pil / python3-torchvision missing (platforms/debian/setup-test-tools.sh): %s" % e)
    sys.exit(77)

probe, work = sys.argv[1], sys.argv[2]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
rng = np.random.default_rng(24)
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def smooth(w, h, channels):
    """A smooth gradient plus noise: resampling differences show, JPEG stays realistic."""
    y, x = np.mgrid[0:h, 0:w]
    planes = []
    for c in range(channels):
        base = 127 + 100 * np.sin(x / (3.0 + c) + c) * np.cos(y / (4.0 + c))
        planes.append(np.clip(base + rng.integers(-20, 21, size=(h, w)), 0, 255))
    return np.stack(planes, axis=-1).astype(np.uint8)


def write_adam7(path, rgb):
    """An interlaced (Adam7) 8-bit RGB PNG; PIL cannot write one."""
    import struct
    import zlib
    h, w, _ = rgb.shape
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = rgb[y0::dy, x0::dx]
        if sub.shape[0] and sub.shape[1]:
            raw += b"".join(b"\0" + row.tobytes() for row in sub)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def write_images(root):
    """class -> list of (filename, writer)."""
    os.makedirs(root)
    made = {}

    def save(cls, name, img, **kw):
        d = os.path.join(root, cls, os.path.dirname(name))
        os.makedirs(d, exist_ok=True)
        img.save(os.path.join(root, cls, name), **kw)

    save("cat", "rgb.png", Image.fromarray(smooth(37, 53, 3), "RGB"))
    save("cat", "grey.png", Image.fromarray(smooth(64, 48, 1)[:, :, 0], "L"))
    save("cat", "rgba.png", Image.fromarray(smooth(50, 30, 4), "RGBA"))
    save("cat", "la.png", Image.fromarray(smooth(31, 29, 2), "LA"))
    pal = Image.fromarray(smooth(45, 40, 3), "RGB").quantize(colors=50)
    save("cat", "palette.png", pal)
    pal_t = pal.copy()
    pal_t.info["transparency"] = 3
    save("cat", "palette_transparent.png", pal_t, transparency=3)
    save("cat", "bits.png", Image.fromarray(smooth(33, 35, 1)[:, :, 0] > 127))
    g16 = (smooth(40, 44, 1)[:, :, 0].astype(np.uint16) * 257 + rng.integers(0, 257, size=(44, 40))).astype(np.uint16)
    save("cat", "sixteen.png", Image.fromarray(g16, "I;16"))
    write_adam7(os.path.join(root, "cat", "interlaced.png"), smooth(29, 23, 3))
    save("dog", "baseline.jpg", Image.fromarray(smooth(300, 200, 3), "RGB"), quality=90)
    save("dog", "progressive.JPEG", Image.fromarray(smooth(123, 77, 3), "RGB"), quality=90, progressive=True)
    save("dog", "sub/full_chroma.jpeg", Image.fromarray(smooth(96, 97, 3), "RGB"), quality=90, subsampling=0)
    save("dog", "sub-a/grey.jpg", Image.fromarray(smooth(70, 90, 1)[:, :, 0], "L"), quality=90)
    save("dog", "big.png", Image.fromarray(smooth(400, 260, 3), "RGB"))
    with open(os.path.join(root, "dog", "notes.txt"), "w") as f:
        f.write("not an image, ignored as torchvision ignores it\n")
    # a class with a name that sorts between the others, and a hidden-looking class name (torchvision keeps both)
    save("cat_b", "small.png", Image.fromarray(smooth(5, 3, 3), "RGB"))


root = os.path.join(work, "good")
write_images(root)

# ---- decode and eval transform, two sizes (downscale and upscale) ----
for resize, crop in [(256, 224), (32, 28)]:
    out = os.path.join(work, "out-%d" % resize)
    os.makedirs(out)
    r = subprocess.run([probe, "folder", root, out, str(resize), str(crop)], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("FAIL: image_probe folder: " + r.stderr)
    ref = datasets.ImageFolder(root)
    classes = open(os.path.join(out, "classes.txt")).read().split("\n")[:-1]
    if classes != ref.classes:
        fail("classes %s, torchvision %s" % (classes, ref.classes))
    samples = [(p, int(l)) for l, p in (line.split("\t") for line in open(os.path.join(out, "samples.tsv")).read().split("\n")[:-1])]
    if samples != ref.samples:
        fail("samples differ from torchvision's:\n  %s\n  %s" % (samples, ref.samples))
    tf = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(crop), transforms.ToTensor(),
                             transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    worst = 0.0
    for i, (path, _) in enumerate(ref.samples):
        base = os.path.join(out, str(i))
        if os.path.exists(base + ".err"):
            fail("%s: %s" % (path, open(base + ".err").read()))
            continue
        raw = open(base + ".rgb", "rb").read()
        w, h = np.frombuffer(raw[:8], dtype=np.uint32)
        got = np.frombuffer(raw[8:], dtype=np.uint8).reshape(h, w, 3)
        img = Image.open(path)
        if img.mode in ("I", "I;16"):
            grey = (np.array(img).astype(np.uint32) >> 8).astype(np.uint8)
            want = np.repeat(grey[:, :, None], 3, axis=2)
        else:
            want = np.array(img.convert("RGB"))
        if got.shape != want.shape or not np.array_equal(got, want):
            n = np.count_nonzero(got != want) if got.shape == want.shape else -1
            fail("%s (%s): decoded pixels differ from PIL's (%d values; shape %s vs %s)" % (path, img.mode, n, got.shape, want.shape))
            continue
        t = np.fromfile(base + ".eval", dtype=np.float32).reshape(3, crop, crop)
        expect = tf(Image.fromarray(want, "RGB")).numpy()
        d = float(np.abs(t - expect).max())
        worst = max(worst, d)
        if d > 1e-6:
            bad = np.argwhere(np.abs(t - expect) > 1e-6)
            fail("%s: eval transform (Resize(%d), CenterCrop(%d)) differs from torchvision's by %g at %d values, first %s"
                 % (path, resize, crop, d, len(bad), bad[0].tolist()))
    print("resize %d crop %d: %d images, decoded pixels equal PIL's, eval transform max |diff| vs torchvision %g"
          % (resize, crop, len(ref.samples), worst))

# ---- bad files: one-line errors naming the file ----
bad = os.path.join(work, "bad")
os.makedirs(os.path.join(bad, "a"))
good_png = open(os.path.join(root, "cat", "rgb.png"), "rb").read()
good_jpg = open(os.path.join(root, "dog", "baseline.jpg"), "rb").read()
prog_jpg = open(os.path.join(root, "dog", "progressive.JPEG"), "rb").read()
idat = good_png.index(b"IDAT")
corrupt_png = bytearray(good_png)
corrupt_png[idat + 20] ^= 0xFF  # inside the IDAT data: its CRC no longer matches
sof = good_jpg.index(b"\xff\xc0")
bad_precision = good_jpg[: sof + 4] + b"\x07" + good_jpg[sof + 5 :]  # SOF0's sample precision: 7 bits
cases = {
    "0_ok.png": (good_png, None),
    "1_truncated.png": (good_png[: len(good_png) // 2], "truncated PNG file"),
    "2_crc.png": (bytes(corrupt_png), "corrupt PNG file: IDAT: "),
    "3_text.png": (b"hello, not an image\n", "not a PNG file"),
    "4_truncated.jpg": (good_jpg[: len(good_jpg) // 2], "truncated JPEG file"),
    "5_truncated_progressive.jpg": (prog_jpg[: len(prog_jpg) * 2 // 3], "truncated JPEG file"),
    "6_empty.jpg": (b"", "empty file"),
    "7_bad_precision.jpg": (bad_precision, "corrupt JPEG file: Unsupported JPEG data precision 7"),
    "8_image.bmp": (b"BM" + bytes(60), "unsupported image format \"bmp\""),
    "9_png_named.jpg": (good_png, None),  # decoded by content, as PIL does
}
for name, (data, _) in cases.items():
    open(os.path.join(bad, "a", name), "wb").write(data)
out = os.path.join(work, "out-bad")
os.makedirs(out)
r = subprocess.run([probe, "folder", bad, out, "32", "28"], capture_output=True, text=True)
if r.returncode != 0:
    sys.exit("FAIL: image_probe folder (bad files): " + r.stderr)
names = [os.path.basename(l.split("\t")[1]) for l in open(os.path.join(out, "samples.tsv")).read().split("\n")[:-1]]
for i, name in enumerate(names):
    path = os.path.join(bad, "a", name)
    expect = cases[name][1]
    err_file = os.path.join(out, "%d.err" % i)
    err = open(err_file).read() if os.path.exists(err_file) else None
    if expect is None:
        if err is not None:
            fail("%s: unexpected error: %s" % (name, err))
        continue
    if err is None:
        fail("%s: decoded, expected an error containing %r" % (name, expect))
    elif not err.startswith(path + ": ") or expect not in err or "\n" in err:
        fail("%s: error %r should be one line starting with the path and containing %r" % (name, err, expect))
    else:
        print("  %s -> %s" % (name, err))
    # PIL refuses them too (the misnamed bmp aside, which PIL reads as a broken BMP)
    try:
        Image.open(path).convert("RGB")
        fail("%s: PIL decoded a file vktrain refuses" % name)
    except Exception:
        pass

# ---- folder errors ----
def folder_error(path, expect):
    r = subprocess.run([probe, "folder", path, out, "32", "28"], capture_output=True, text=True)
    msg = r.stderr.strip()
    if r.returncode != 1 or expect not in msg or "\n" in msg or not msg.startswith(path):
        fail("folder %s: expected one line starting with the path and containing %r, got exit %d: %r"
             % (path, expect, r.returncode, r.stderr))
    else:
        print("  %s -> %s" % (os.path.basename(path), msg))

empty_class = os.path.join(work, "empty-class")
os.makedirs(os.path.join(empty_class, "a"))
os.makedirs(os.path.join(empty_class, "b"))
shutil.copy(os.path.join(root, "cat", "rgb.png"), os.path.join(empty_class, "a", "x.png"))
open(os.path.join(empty_class, "b", "readme.txt"), "w").write("no images")
folder_error(empty_class, "class folder b holds no image files")
no_images = os.path.join(work, "no-images")
os.makedirs(os.path.join(no_images, "a"))
os.makedirs(os.path.join(no_images, "b"))
folder_error(no_images, "no image files in any class folder")
flat = os.path.join(work, "flat")
os.makedirs(flat)
shutil.copy(os.path.join(root, "cat", "rgb.png"), os.path.join(flat, "x.png"))
folder_error(flat, "no class folders")
folder_error(os.path.join(work, "missing"), "no such folder")

# ---- the loader: thread-count independence, skip count ----
for mode in ["eval", "train"]:
    runs = []
    for threads in ["0", "3"]:
        r = subprocess.run([probe, "batches", root, "4", threads, "7", mode, "24", "fail"], capture_output=True, text=True)
        if r.returncode != 0:
            fail("batches %s threads %s: %s" % (mode, threads, r.stderr))
        runs.append(r.stdout)
    if runs[0] != runs[1] or not runs[0]:
        fail("%s batches differ between 0 and 3 threads:\n%s\n%s" % (mode, runs[0], runs[1]))
    else:
        print("%s: %d batches identical with 0 and 3 decoding threads" % (mode, runs[0].count("batch ")))
r = subprocess.run([probe, "batches", bad, "3", "2", "1", "eval", "16", "fail"], capture_output=True, text=True)
if r.returncode != 1 or "a/" not in r.stderr:
    fail("a bad file without skipping should fail naming it, got exit %d: %r" % (r.returncode, r.stderr))
r = subprocess.run([probe, "batches", bad, "3", "2", "1", "eval", "16", "skip"], capture_output=True, text=True)
skipped = sorted(os.path.basename(l.split("\t")[0][len("skipped "):]) for l in r.stdout.splitlines() if l.startswith("skipped "))
want_skipped = sorted(n for n, (_, e) in cases.items() if e is not None)
kept = sum(int(l.split()[1]) for l in r.stdout.splitlines() if l.startswith("batch "))
if r.returncode != 0 or skipped != want_skipped or kept != len(cases) - len(want_skipped):
    fail("skip_bad_images: exit %d, skipped %s (want %s), kept %d: %s" % (r.returncode, skipped, want_skipped, kept, r.stderr))
else:
    print("skip_bad_images: %d files skipped and listed, %d kept" % (len(skipped), kept))

if failures:
    sys.exit("%d failure(s)" % len(failures))
print("image folders: all checks passed")
