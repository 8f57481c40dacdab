"""PyTorch peer of our image-folder loader benchmark: torchvision ImageFolder + DataLoader.

The usual ImageNet input pipeline of the PyTorch examples, on the CPU:
- train (default): ImageFolder(DIR/train) with RandomResizedCrop(224) (scale (0.08, 1),
  antialiased), RandomHorizontalFlip(), ToTensor(), Normalize(ImageNet mean/std), shuffled;
- --eval: ImageFolder(DIR/val) with Resize(256), CenterCrop(224), ToTensor(), Normalize, in order.
DataLoader(batch_size, num_workers=N, prefetch_factor=2 when N > 0, persistent_workers=False),
torch.set_num_threads(1). Reads whatever folder it is given, e.g. one made by
benches/make_jpeg_folder.py (the files are then in the page cache: a warm-cache figure).

It draws --warmup batches first (worker start-up, first reads), then times --batches batches and
prints one Markdown table row (--header adds the header first):

    | torchvision ImageFolder + DataLoader | 2 | 123.4 |

If the split holds fewer batches than asked for, the loader is iterated again (a new epoch, its
worker start-up included in the time). Versions, and whether Pillow uses libjpeg-turbo or is
Pillow-SIMD, go to stderr.

Usage:
    python3 benches/peers/image_folder_loader.py DIR [--workers 1] [--batch-size 64]
        [--batches 50] [--warmup 3] [--image-size 224] [--split train] [--eval] [--header]

Needs torch, torchvision and Pillow (CPU is enough).
"""

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

import PIL
import PIL.features
import torch
import torchvision
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NAME = "torchvision ImageFolder + DataLoader"


def describe_env() -> str:
    version = PIL.__version__
    simd = ".post" in version  # Pillow-SIMD releases are numbered X.Y.Z.postN
    turbo = PIL.features.check_feature("libjpeg_turbo")
    jpeg = PIL.features.version("libjpeg_turbo") if turbo else PIL.features.version("jpg")
    return (
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"Pillow {version} ({'Pillow-SIMD' if simd else 'not Pillow-SIMD'}), "
        f"{'libjpeg-turbo' if turbo else 'libjpeg (not libjpeg-turbo)'} {jpeg}, "
        f"image backend {torchvision.get_image_backend()}, "
        f"start method {multiprocessing.get_start_method()}, "
        f"torch threads {torch.get_num_threads()}, python {sys.version.split()[0]}"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path, help="folder holding train/ and val/ (ImageFolder layout)")
    ap.add_argument("--workers", type=int, default=1, help="DataLoader worker processes (0: in process)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--batches", type=int, default=50, help="batches timed")
    ap.add_argument("--warmup", type=int, default=3, help="batches drawn before timing")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--split", default=None, help="subfolder to read (default: train, or val with --eval)")
    ap.add_argument("--eval", action="store_true", help="Resize+CenterCrop on the val split, not shuffled")
    ap.add_argument("--header", action="store_true", help="print the table header first")
    args = ap.parse_args(argv)
    if args.workers < 0 or args.batch_size < 1 or args.batches < 1 or args.warmup < 0:
        ap.error("--workers and --warmup must be >= 0, --batch-size and --batches >= 1")

    torch.set_num_threads(1)
    print(describe_env(), file=sys.stderr)

    size = args.image_size
    normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    if args.eval:
        split = args.split or "val"
        transform = transforms.Compose([
            transforms.Resize(round(size * 256 / 224), antialias=True),  # 256 for 224
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            normalize,
        ])
    else:
        split = args.split or "train"
        transform = transforms.Compose([
            transforms.RandomResizedCrop(size, antialias=True),  # scale (0.08, 1.0)
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            normalize,
        ])

    t0 = time.perf_counter()
    dataset = datasets.ImageFolder(str(args.dir / split), transform)
    print(f"{args.dir / split}: {len(dataset)} images in {len(dataset.classes)} classes "
          f"(scanned in {time.perf_counter() - t0:.2f} s); {'eval' if args.eval else 'train'} "
          f"transform, batch {args.batch_size}, workers {args.workers}", file=sys.stderr)
    if len(dataset) < args.batch_size:
        print(f"{args.dir / split} holds fewer images than one batch", file=sys.stderr)
        return 2

    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=not args.eval,
        num_workers=args.workers,
        prefetch_factor=2 if args.workers > 0 else None,
        persistent_workers=False,
        drop_last=True,  # every timed batch is full
    )

    it = iter(loader)
    epochs = 1

    def next_batch():
        nonlocal it, epochs
        try:
            return next(it)
        except StopIteration:
            it = iter(loader)
            epochs += 1
            return next(it)

    for _ in range(args.warmup):
        next_batch()
    images = 0
    t0 = time.perf_counter()
    for _ in range(args.batches):
        x, _y = next_batch()
        images += x.shape[0]
    elapsed = time.perf_counter() - t0
    del it

    rate = images / elapsed
    print(f"{images} images in {elapsed:.2f} s ({rate:.1f} images/s, "
          f"{1e3 * elapsed / args.batches:.1f} ms/batch, {epochs} epoch(s) started)", file=sys.stderr)
    if args.header:
        print("| loader | workers | images/s |")
        print("|---|---:|---:|")
    name = NAME + (" (eval)" if args.eval else "")
    print(f"| {name} | {args.workers} | {rate:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
