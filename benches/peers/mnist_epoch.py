"""PyTorch peer of `cargo bench -p biofeedback-trainer --bench mnist_epoch`.

One MNIST epoch of a 784-500-10 ReLU MLP, batch 128, softmax cross-entropy, SGD with momentum
0.9 and weight decay 5e-4 (the shipped configs), on the CPU with all cores:
- bp: autograd and torch.optim.SGD (the usual PyTorch training step);
- fa, kp: the feedback path through a custom autograd Function that sends the error back
  through B (as peer libraries such as BioTorch do); kp also gives B the weight's gradient.

Usage: python benches/peers/mnist_epoch.py [--data ../shared/data/mnist] [--epochs 3]
Prints the median seconds per epoch (after one warm-up epoch) for each rule.
"""

import argparse
import gzip
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def read_idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


class FeedbackLinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, feedback):
        ctx.save_for_backward(x, feedback)
        return x @ weight + bias

    @staticmethod
    def backward(ctx, grad):
        x, feedback = ctx.saved_tensors
        grad_w = x.t() @ grad
        return grad @ feedback.t(), grad_w, grad.sum(0), None


class Layer(torch.nn.Module):
    def __init__(self, d_in, d_out, rule):
        super().__init__()
        bound = (6.0 / d_in) ** 0.5
        self.weight = torch.nn.Parameter(torch.empty(d_in, d_out).uniform_(-bound, bound))
        self.bias = torch.nn.Parameter(torch.zeros(d_out))
        self.rule = rule
        if rule in ("fa", "kp"):
            self.feedback = torch.nn.Parameter(
                torch.empty(d_in, d_out).uniform_(-bound, bound), requires_grad=False
            )

    def forward(self, x):
        if self.rule == "bp":
            return x @ self.weight + self.bias
        return FeedbackLinearFn.apply(x, self.weight, self.bias, self.feedback)


def epoch(layers, opt, x_train, y_train, rule, batch=128):
    perm = torch.randperm(len(x_train))
    for i in range(0, len(x_train), batch):
        idx = perm[i : i + batch]
        h = torch.relu(layers[0](x_train[idx]))
        loss = torch.nn.functional.cross_entropy(layers[1](h), y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if rule == "kp":
            for layer in layers:
                layer.feedback.grad = layer.weight.grad
        opt.step()


def main():
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(here / "../../../shared/data/mnist"))
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    data = Path(args.data)
    x = torch.from_numpy(read_idx(data / "train-images-idx3-ubyte.gz").reshape(-1, 784).copy())
    x_train = x.float() / 255.0
    y_train = torch.from_numpy(read_idx(data / "train-labels-idx1-ubyte.gz").astype(np.int64))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for rule in ("bp", "fa", "kp"):
        torch.manual_seed(1)
        layers = torch.nn.ModuleList([Layer(784, 500, rule), Layer(500, 10, rule)])
        groups = [
            {"params": [l.weight for l in layers]},
            {"params": [l.bias for l in layers], "weight_decay": 0.0},
        ]
        if rule == "kp":
            for l in layers:
                l.feedback.requires_grad_(True)
            groups.append({"params": [l.feedback for l in layers]})
        opt = torch.optim.SGD(groups, lr=0.2, momentum=0.9, weight_decay=5e-4)
        epoch(layers, opt, x_train, y_train, rule)  # warm-up
        times = []
        for _ in range(args.epochs):
            start = time.perf_counter()
            epoch(layers, opt, x_train, y_train, rule)
            times.append(time.perf_counter() - start)
        print(f"{rule}: median {statistics.median(times):.3f} s/epoch over {len(times)} epochs")


if __name__ == "__main__":
    main()
