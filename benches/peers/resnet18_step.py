"""PyTorch peer of `cargo bench -p biofeedback-trainer --bench resnet_step` (the `step` bench).

One training step of ResNet-18 with the 32x32 stem (3x3 stride-1 conv, no max-pool; the usual
CIFAR-10 variant), width 64, batch 32, train-mode BatchNorm, softmax cross-entropy, SGD with
Nesterov momentum 0.9 and weight decay 5e-4, on the CPU with all cores: autograd, the usual
PyTorch training step (backprop). Real CIFAR-10 images from the binary batch.

Usage: python benches/peers/resnet18_step.py [--data ../shared/data/cifar10] [--steps 10]
Prints the median seconds per step (after two warm-up steps).
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F


class Basic(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x if self.downsample is None else self.downsample(x)
        return F.relu(out + short)


class ResNet18(nn.Module):
    def __init__(self, width=64, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        blocks, c_in = [], width
        for i in range(4):
            c_out = width << i
            for j in range(2):
                blocks.append(Basic(c_in, c_out, 2 if i > 0 and j == 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.blocks(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def cifar_batch(path: Path, n: int):
    raw = path.read_bytes()[: n * 3073]
    rec = torch.frombuffer(bytearray(raw), dtype=torch.uint8).reshape(n, 3073)
    x = rec[:, 1:].float().div(255).reshape(n, 3, 32, 32)
    return (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True), rec[:, 0].long()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/cifar10")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--width", type=int, default=64)
    args = ap.parse_args()
    torch.manual_seed(1)
    x, y = cifar_batch(Path(args.data) / "data_batch_1.bin", 32)
    net = ResNet18(args.width)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    net.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(2):
        step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads: "
          f"resnet18 width {args.width} batch 32 step median {statistics.median(times):.4f} s "
          f"(min {min(times):.4f}, max {max(times):.4f})")


if __name__ == "__main__":
    main()
