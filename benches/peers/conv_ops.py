"""PyTorch peer of `cargo bench -p biofeedback-core --bench conv`.

The convolutions of a ResNet-18 step (CIFAR stem, width 64, batch 32) on the CPU with all
cores, per layer shape: the forward conv, the kernel gradient and the input gradient, each as
one call of `aten.convolution_backward` (what autograd runs; oneDNN underneath).

Usage: python benches/peers/conv_ops.py [--reps 10]
Prints the median milliseconds per op and shape (after two warm-up calls).
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = [
    ("3-64 3x3/1 32", 3, 64, 3, 1, 32),
    ("16-16 3x3/1 32", 16, 16, 3, 1, 32),
    ("32-32 3x3/1 16", 32, 32, 3, 1, 16),
    ("64-64 3x3/1 32", 64, 64, 3, 1, 32),
    ("64-128 3x3/2 32", 64, 128, 3, 2, 32),
    ("128-128 3x3/1 16", 128, 128, 3, 1, 16),
    ("128-256 3x3/2 16", 128, 256, 3, 2, 16),
    ("256-512 3x3/2 8", 256, 512, 3, 2, 8),
    ("512-512 3x3/1 4", 512, 512, 3, 1, 4),
    ("64-128 1x1/2 32", 64, 128, 1, 2, 32),
]


def median_ms(fn, reps):
    for _ in range(2):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    print("shape | forward ms | kernel gradient ms | input gradient ms")
    with torch.no_grad():
        for name, ci, co, k, s, side in SHAPES:
            pad = k // 2
            x = torch.randn(args.batch, ci, side, side)
            w = torch.randn(co, ci, k, k)
            y = F.conv2d(x, w, stride=s, padding=pad)
            g = torch.randn_like(y)

            def backward(mask):
                return torch.ops.aten.convolution_backward(
                    g, x, w, None, [s, s], [pad, pad], [1, 1], False, [0, 0], 1, mask
                )

            fwd = median_ms(lambda: F.conv2d(x, w, stride=s, padding=pad), args.reps)
            dw = median_ms(lambda: backward([False, True, False]), args.reps)
            dx = median_ms(lambda: backward([True, False, False]), args.reps)
            print(f"{name} | {fwd:.2f} | {dw:.2f} | {dx:.2f}")


if __name__ == "__main__":
    main()
