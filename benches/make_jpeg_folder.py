"""Make a synthetic ImageNet-style folder of full-size JPEGs for the loader benchmarks.

Layout (as torchvision.datasets.ImageFolder and our loader read it):

    OUT_DIR/train/n00000000/n00000000_0.JPEG ...   (--classes x --per-class)
    OUT_DIR/val/n00000000/ILSVRC2012_val_00000001.JPEG ...   (--classes x --val-per-class)

Class folders are wnid-like: "n" and 8 digits. Each image is a smooth random colour field
(a few bicubic-upsampled gradients), a mid-frequency texture and per-pixel noise, so a JPEG
encoder sees something like a photo: at quality 90 and about 500x375 the files come to roughly
50-150 KB (real ImageNet training photos average about 110 KB). Each side varies by up to
+-20% around --size and about a quarter of the images are portrait, so the resize paths of a
loader see different shapes.

Every image is a pure function of (--seed, split, class, index), so the output does not depend
on the number of jobs, and an interrupted run resumes where it stopped (files are written under
a temporary name and renamed). When OUT_DIR already holds the requested folder (a marker file,
.make_jpeg_folder.json, with the same parameters and the right file counts) it returns at once.

Usage:
    python3 benches/make_jpeg_folder.py OUT_DIR [--classes 100] [--per-class 200]
        [--val-per-class 10] [--size 500x375] [--quality 90] [--seed 1] [--jobs 2] [--force]

Needs numpy and Pillow.
"""

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

MARKER = ".make_jpeg_folder.json"
SPLITS = {"train": 0, "val": 1}
NOISE_SIGMA = (12.0, 26.0)  # per-image range of the per-pixel noise; sets the file size


def wnid(k: int) -> str:
    return f"n{k:08d}"


def file_name(split: str, cls: int, idx: int, val_per_class: int) -> str:
    if split == "train":
        return f"{wnid(cls)}_{idx}.JPEG"
    # ImageNet numbers its validation images 1..50000 across all classes.
    return f"ILSVRC2012_val_{cls * val_per_class + idx + 1:08d}.JPEG"


def make_image(rng: np.random.Generator, base_w: int, base_h: int) -> Image.Image:
    w = max(16, int(round(base_w * rng.uniform(0.8, 1.2))))
    h = max(16, int(round(base_h * rng.uniform(0.8, 1.2))))
    if rng.random() < 0.25:
        w, h = h, w  # portrait

    # Smooth random colour field: a coarse random grid upsampled bicubically, plus a
    # finer one, like large objects and shading.
    gw, gh = int(rng.integers(3, 8)), int(rng.integers(3, 8))
    coarse = Image.fromarray(rng.integers(0, 256, (gh, gw, 3), dtype=np.uint8))
    img = np.asarray(coarse.resize((w, h), Image.BICUBIC), dtype=np.float32)

    # Mid-frequency texture (edges, detail): a grid of cells 2-8 px wide, upsampled.
    cell = float(rng.uniform(2.0, 8.0))
    tw, th = max(2, int(w / cell)), max(2, int(h / cell))
    tex = Image.fromarray(rng.integers(0, 256, (th, tw, 3), dtype=np.uint8))
    tex = np.asarray(tex.resize((w, h), Image.BILINEAR), dtype=np.float32)
    img *= float(rng.uniform(0.6, 0.85))
    img += (tex - 128.0) * float(rng.uniform(0.25, 0.5))

    # Per-pixel noise, mostly luminance (what survives chroma subsampling), like sensor
    # noise and fine texture; its strength sets most of the file size.
    sigma = float(rng.uniform(*NOISE_SIGMA))
    noise = rng.standard_normal((h, w, 1), dtype=np.float32)
    noise *= sigma
    img += noise
    img += 40.0
    np.clip(img, 0.0, 255.0, out=img)
    return Image.fromarray(img.astype(np.uint8), "RGB")


def work(task):
    """Write one class's images of one split; returns (count, bytes)."""
    out, split, cls, count, val_per_class, base_w, base_h, quality, seed = task
    folder = Path(out) / split / wnid(cls)
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for idx in range(count):
        path = folder / file_name(split, cls, idx, val_per_class)
        if path.exists():
            total += path.stat().st_size
            continue
        rng = np.random.default_rng([seed, SPLITS[split], cls, idx])
        img = make_image(rng, base_w, base_h)
        tmp = path.with_name(path.name + ".tmp")
        img.save(tmp, "JPEG", quality=quality)
        os.replace(tmp, path)
        total += path.stat().st_size
    return count, total


def count_files(out: Path, split: str, classes: int) -> int:
    n = 0
    for cls in range(classes):
        folder = out / split / wnid(cls)
        if folder.is_dir():
            n += sum(1 for e in os.scandir(folder) if e.name.endswith(".JPEG"))
    return n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--per-class", type=int, default=200, help="training images per class")
    ap.add_argument("--val-per-class", type=int, default=10, help="validation images per class")
    ap.add_argument("--size", default="500x375", help="mean WIDTHxHEIGHT (each side varies +-20%%)")
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (at most 2)")
    ap.add_argument("--force", action="store_true",
                    help="regenerate even if OUT_DIR holds a folder not made with these parameters")
    args = ap.parse_args(argv)

    try:
        base_w, base_h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        ap.error(f"--size must be WIDTHxHEIGHT, not {args.size!r}")
    if args.classes < 1 or args.per_class < 0 or args.val_per_class < 0:
        ap.error("--classes must be >= 1, the per-class counts >= 0")

    out: Path = args.out_dir
    params = {
        "version": 1,
        "classes": args.classes,
        "per_class": args.per_class,
        "val_per_class": args.val_per_class,
        "size": [base_w, base_h],
        "quality": args.quality,
        "seed": args.seed,
    }
    want = {"train": args.per_class, "val": args.val_per_class}
    marker = out / MARKER

    old = None
    if marker.is_file():
        try:
            old = json.loads(marker.read_text())
        except ValueError:
            old = None
    if old is not None and old.get("params") == params:
        if all(count_files(out, s, args.classes) == args.classes * n for s, n in want.items()):
            print(f"{out}: already has {args.classes} classes x {args.per_class} train + "
                  f"{args.val_per_class} val images ({old.get('mean_kb', '?')} KB mean); nothing to do",
                  file=sys.stderr)
            return 0
    elif old is not None or args.force:
        # Made by us with other parameters (or --force): start again.
        for split in SPLITS:
            shutil.rmtree(out / split, ignore_errors=True)
        marker.unlink(missing_ok=True)
    elif any((out / s).exists() for s in SPLITS):
        print(f"{out} already has train/ or val/ not made by this script (no {MARKER}); "
              "use --force to replace them", file=sys.stderr)
        return 2

    out.mkdir(parents=True, exist_ok=True)
    tasks = [
        (str(out), split, cls, n, args.val_per_class, base_w, base_h, args.quality, args.seed)
        for split, n in want.items() if n > 0
        for cls in range(args.classes)
    ]
    total_images = sum(t[3] for t in tasks)
    jobs = max(1, min(2, args.jobs))
    print(f"{out}: writing {total_images} JPEGs ({args.classes} classes, {jobs} processes)",
          file=sys.stderr)
    t0 = time.perf_counter()
    done = 0
    total_bytes = 0
    next_report = 0.1
    with multiprocessing.Pool(jobs) as pool:
        for n, b in pool.imap_unordered(work, tasks):
            done += n
            total_bytes += b
            if total_images and done / total_images >= next_report:
                el = time.perf_counter() - t0
                print(f"  {done}/{total_images} images, {el:.0f} s", file=sys.stderr)
                while done / total_images >= next_report:
                    next_report += 0.1
    elapsed = time.perf_counter() - t0
    mean_kb = round(total_bytes / max(1, total_images) / 1000.0, 1)
    marker.write_text(json.dumps({"params": params, "images": total_images,
                                  "bytes": total_bytes, "mean_kb": mean_kb}, indent=1) + "\n")
    print(f"{out}: {total_images} images, {total_bytes / 1e6:.1f} MB, {mean_kb} KB mean, "
          f"{elapsed:.1f} s ({total_images / max(elapsed, 1e-9):.0f} images/s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
