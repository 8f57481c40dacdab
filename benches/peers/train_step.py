"""PyTorch peer of `biofeedback bench`: training throughput of the same step on the same device.

The step: torchvision-shaped ResNet-18 or ResNet-50 (ImageNet stem: 7x7/2 conv + 3x3/2
max-pool; or the CIFAR stem: 3x3/1 conv, no pool), or a CIFAR ResNet-20/32/44/56 (3 stages,
1x1 projection shortcuts, as `biofeedback bench --model resnet20` builds it; pass
--stem cifar --width 16), train-mode BatchNorm, softmax
cross-entropy, SGD with Nesterov momentum 0.9 and weight decay 1e-4, on one fixed synthetic
batch (N(0, 1) images, cyclic labels), after warm-up; the steps are timed in blocks that end by
reading the loss (so the GPU queue is drained), as `biofeedback bench` does. Eager fp32; with
--tf32 the CUDA matmuls and convolutions may use TF32 (say so when quoting it). Backprop only:
PyTorch has no feedback rules.

Usage (same flags as the bench):
    python3 benches/peers/train_step.py --device cuda --model resnet18 --image-size 224 \
        --batch-size 256 --steps 50 [--warmup 5] [--rounds 5] [--stem imagenet] [--width 64] \
        [--classes 1000] [--tf32] [--channels-last] [--header]
Prints one Markdown row: | PyTorch <version> <mode> | s/step | img/s | img/s range |
"""

import argparse
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Basic(nn.Module):
    expansion = 1

    def __init__(self, c_in, c, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.down = None
        if stride != 1 or c_in != c:
            self.down = nn.Sequential(nn.Conv2d(c_in, c, 1, stride, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.down is None else self.down(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in, c, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, 4 * c, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * c)
        self.down = None
        if stride != 1 or c_in != 4 * c:
            self.down = nn.Sequential(
                nn.Conv2d(c_in, 4 * c, 1, stride, bias=False), nn.BatchNorm2d(4 * c)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.down is None else self.down(x)))


class ResNet(nn.Module):
    def __init__(self, block, layers, width, classes, stem):
        super().__init__()
        if stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(3, width, 7, 2, 3, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.MaxPool2d(3, 2, 1),
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
            )
        blocks, c_in = [], width
        for i, n in enumerate(layers):
            c = width << i
            for j in range(n):
                blocks.append(block(c_in, c, 2 if i > 0 and j == 0 else 1))
                c_in = c * block.expansion
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--model",
        choices=["resnet18", "resnet50", "resnet20", "resnet32", "resnet44", "resnet56"],
        default="resnet18",
    )
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--stem", choices=["imagenet", "cifar"], default="imagenet")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls and convolutions")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--header", action="store_true")
    a = p.parse_args()

    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    torch.backends.cudnn.benchmark = True
    device = torch.device(a.device)
    torch.manual_seed(1)
    if a.model == "resnet18":
        block, layers = Basic, [2, 2, 2, 2]
    elif a.model == "resnet50":
        block, layers = Bottleneck, [3, 4, 6, 3]
    else:  # the CIFAR ResNets: 3 stages of (depth - 2) / 6 basic blocks, projection shortcuts
        block, layers = Basic, [(int(a.model[6:]) - 2) // 6] * 3
    model = ResNet(block, layers, a.width, a.classes, a.stem).to(device)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = torch.randn(a.batch_size, 3, a.image_size, a.image_size, device=device)
    x = x.contiguous(memory_format=fmt)
    y = torch.arange(a.batch_size, device=device) % a.classes
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True, weight_decay=1e-4)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(a.warmup):
        step()
    step().item()
    rounds = max(1, min(a.rounds, a.steps))
    per_round = -(-a.steps // rounds)
    rates, per_step = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(per_round):
            loss = step()
        loss.item()
        seconds = time.perf_counter() - start
        rates.append(a.batch_size * per_round / seconds)
        per_step.append(seconds / per_round)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    mode = ("TF32 allowed" if a.tf32 else "eager fp32") + (", channels-last" if a.channels_last else "")
    print(f"torch {torch.__version__} on {name}, {mode}", file=sys.stderr)
    if a.header:
        print("| peer | s/step | img/s | img/s range |")
        print("|---|---:|---:|---:|")
    print(
        f"| PyTorch {torch.__version__} bp, {mode} | {statistics.median(per_step):.4f} | "
        f"{statistics.median(rates):.1f} | {min(rates):.1f}-{max(rates):.1f} |"
    )


if __name__ == "__main__":
    main()
