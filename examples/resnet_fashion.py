"""A small ResNet on Fashion-MNIST, written for ``mlx.nn`` and run with ``import funcnn as nn``.

Everything below the imports is ordinary MLX code: ``nn.Module`` classes with
``BatchNorm``, ``MaxPool2d``, ``AvgPool2d`` and ``Dropout``, ``nn.value_and_grad``,
an ``mlx.optimizers`` optimizer, and the training step compiled with
``mx.compile`` capturing ``model.state``, the optimizer state and the random
state -- the pattern MLX documents.  Swap the ``nn`` import for
``import mlx.nn as nn`` and it is an mlx.nn program again
(``tests/test_resnet_fashion.py`` trains it both ways from the same seed and
batches and compares).

    python examples/resnet_fashion.py            # 3 epochs on 60k images
    python examples/resnet_fashion.py --quick    # CI: 4k/1k images, 2 epochs

The network: a 3x3 stem and three residual blocks (16, 32, 64 channels) with
BatchNorm, max pooling after the stem and the first block (28 -> 14 -> 7),
global average pooling, dropout and a linear classifier.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional

import funcnn as nn  # first: funcnn picks MLX's BLAS at import (see funcnn.blas_info)
import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten

from datasets import FASHION_MNIST_DIR, DataMissing, fashion_mnist

CHANNELS = (16, 32, 64)
QUICK = {"epochs": 2, "train_size": 4000, "test_size": 1000}


class ResidualBlock(nn.Module):
    """``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``; a 1x1 projection when widths differ."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm(out_channels)
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm(out_channels)
            )
        else:
            self.shortcut = nn.Identity()

    def __call__(self, x: mx.array) -> mx.array:
        y = nn.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return nn.relu(y + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, dropout: float = 0.2):
        super().__init__()
        c1, c2, c3 = CHANNELS
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1, bias=False), nn.BatchNorm(c1), nn.ReLU()
        )
        self.blocks = [ResidualBlock(c1, c1), ResidualBlock(c1, c2), ResidualBlock(c2, c3)]
        self.pool = nn.MaxPool2d(2)
        self.head_pool = nn.AvgPool2d(7)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c3, num_classes)

    def __call__(self, x: mx.array) -> mx.array:
        x = self.pool(self.stem(x))  # 28x28 -> 14x14
        x = self.pool(self.blocks[0](x))  # -> 7x7
        x = self.blocks[2](self.blocks[1](x))
        x = self.head_pool(x)  # -> 1x1
        return self.classifier(self.dropout(x.reshape(x.shape[0], -1)))


def loss_fn(model: nn.Module, x: mx.array, y: mx.array) -> mx.array:
    return nn.losses.cross_entropy(model(x), y, reduction="mean")


def make_step(model: nn.Module, optimizer: optim.Optimizer, traces: list):
    """The documented MLX pattern: a compiled step that captures all state it changes."""
    optimizer.init(model.trainable_parameters())  # before capture, so the state's shape is fixed
    state = [model.state, optimizer.state, mx.random.state]
    loss_and_grad = nn.value_and_grad(model, loss_fn)

    def step(x, y):
        traces.append(1)  # runs only while tracing
        loss, grads = loss_and_grad(model, x, y)
        optimizer.update(model, grads)
        return loss

    return mx.compile(step, inputs=state, outputs=state), state


def accuracy(model: nn.Module, x: mx.array, y: mx.array, batch_size: int = 500) -> float:
    model.eval()
    correct = 0
    for start in range(0, x.shape[0], batch_size):
        logits = model(x[start : start + batch_size])
        correct += mx.sum(mx.argmax(logits, axis=1) == y[start : start + batch_size]).item()
    model.train()
    return correct / x.shape[0]


def load(args: argparse.Namespace):
    x_train, y_train, x_test, y_test = fashion_mnist(Path(args.data_dir))
    if args.quick:
        x_train, y_train = x_train[: QUICK["train_size"]], y_train[: QUICK["train_size"]]
        x_test, y_test = x_test[: QUICK["test_size"]], y_test[: QUICK["test_size"]]
    return tuple(mx.array(a) for a in (x_train, y_train, x_test, y_test))


def train(args: argparse.Namespace, log=print) -> dict:
    """Train, evaluate after every epoch, save the weights; returns the metrics."""
    x_train, y_train, x_test, y_test = load(args)
    mx.random.seed(args.seed)
    model = ResNet()
    mx.eval(model.parameters())
    steps_per_epoch = x_train.shape[0] // args.batch_size
    schedule = optim.cosine_decay(args.learning_rate, steps_per_epoch * args.epochs)
    optimizer = optim.AdamW(learning_rate=schedule, weight_decay=0.01)
    traces: list = []
    step, state = make_step(model, optimizer, traces)
    rng = np.random.default_rng(args.seed)
    log(
        f"fashion_mnist: {x_train.shape[0]} train / {x_test.shape[0]} test images; "
        f"{args.epochs} epochs, batch {args.batch_size}, AdamW lr {args.learning_rate:g} "
        f"(cosine), seed {args.seed}"
    )
    metrics: dict = {"test_accuracy": [], "epoch_seconds": []}
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        tic = time.perf_counter()
        order = mx.array(rng.permutation(x_train.shape[0]))
        total = mx.array(0.0)
        for i in range(steps_per_epoch):
            ids = order[i * args.batch_size : (i + 1) * args.batch_size]
            total = total + step(x_train[ids], y_train[ids])
            mx.eval(state, total)
        acc = accuracy(model, x_test, y_test)
        seconds = time.perf_counter() - tic
        metrics["test_accuracy"].append(acc)
        metrics["epoch_seconds"].append(seconds)
        log(
            f"Epoch {epoch}: train loss {total.item() / steps_per_epoch:.3f}, "
            f"test accuracy {acc:.3f}, {seconds:.1f} s, "
            f"{steps_per_epoch * args.batch_size / seconds:.0f} im/s"
        )
    metrics.update(seconds=time.perf_counter() - start, traces=len(traces))
    model.save_weights(str(args.out))
    n_params = sum(v.size for _, v in tree_flatten(model.parameters()))
    log(
        f"Final: test accuracy {metrics['test_accuracy'][-1]:.4f} after {args.epochs} epochs "
        f"in {metrics['seconds']:.1f} s ({metrics['traces']} trace of the step); "
        f"saved {n_params} parameters to {args.out}"
    )
    metrics["model"] = model
    return metrics


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="CI: 4k/1k images, 2 epochs")
    parser.add_argument("--out", type=Path, default=Path("resnet_fashion.safetensors"))
    parser.add_argument("--data-dir", type=Path, default=FASHION_MNIST_DIR)
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs = QUICK["epochs"]
    if args.out.suffix != ".safetensors":
        parser.error(f"--out must end in .safetensors, got {str(args.out)!r}")
    return args


def main(argv: Optional[list[str]] = None) -> None:
    args = parse_args(argv)
    try:
        train(args)
    except DataMissing as err:
        print(err, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
