"""Train MLX's quick-start MLP on scikit-learn's bundled digits, twice.

Once through the Module facade, written exactly as with ``mlx.nn``, and once
through the pure ``(init, apply)`` pairs with an explicit parameter tree; both
runs print their test accuracy.  The data ships inside scikit-learn: nothing
is downloaded.

    python examples/quickstart.py [--epochs 30] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import funcnn  # noqa: F401  (first: so MLX's matmuls use OpenBLAS, see funcnn.blas_info)
import mlx.core as mx
import mlx.optimizers as optim
import numpy as np

import funcnn as nn
import funcnn.functional as F
from funcnn.tree import tree_map


def load_digits(seed: int, test_fraction: float = 0.2):
    from sklearn.datasets import load_digits as sk_digits

    digits = sk_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return (mx.array(x[train]), mx.array(y[train])), (mx.array(x[test]), mx.array(y[test]))


def batches(x: mx.array, y: mx.array, batch_size: int, rng: np.random.Generator):
    # Full batches only: one batch shape, so the compiled step is traced once.
    order = mx.array(rng.permutation(x.shape[0]))
    for start in range(0, x.shape[0] - batch_size + 1, batch_size):
        ids = order[start : start + batch_size]
        yield x[ids], y[ids]


# --- the facade: the quick-start code from the MLX docs, with funcnn as nn ---


class MLP(nn.Module):
    def __init__(self, num_layers: int, input_dim: int, hidden_dim: int, output_dim: int):
        super().__init__()
        sizes = [input_dim] + [hidden_dim] * num_layers + [output_dim]
        self.layers = [nn.Linear(i, o) for i, o in zip(sizes[:-1], sizes[1:])]

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = mx.maximum(layer(x), 0.0)
        return self.layers[-1](x)


def train_facade(data, args) -> float:
    (x_train, y_train), (x_test, y_test) = data
    mx.random.seed(args.seed)
    model = MLP(args.num_layers, x_train.shape[1], args.hidden_dim, 10)
    mx.eval(model.parameters())

    def loss_fn(model, x, y):
        return mx.mean(nn.losses.cross_entropy(model(x), y))

    loss_and_grad_fn = nn.value_and_grad(model, loss_fn)
    optimizer = optim.SGD(learning_rate=args.learning_rate)
    rng = np.random.default_rng(args.seed)
    for epoch in range(args.epochs):
        for x, y in batches(x_train, y_train, args.batch_size, rng):
            loss, grads = loss_and_grad_fn(model, x, y)
            optimizer.update(model, grads)
            mx.eval(model.parameters(), optimizer.state)
    return mx.mean(mx.argmax(model(x_test), axis=1) == y_test).item()


# --- the pure path: a pair, an explicit parameter tree, a compiled step ---


def train_pure(data, args) -> float:
    (x_train, y_train), (x_test, y_test) = data
    sizes = [x_train.shape[1]] + [args.hidden_dim] * args.num_layers + [10]
    layers = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        layers += [F.linear(i, o), F.relu()]
    mlp = F.sequential(*layers[:-1])
    params = mlp.init(mx.random.key(args.seed))

    def loss_fn(params, x, y):
        return mx.mean(nn.losses.cross_entropy(mlp.apply(params, x), y))

    @mx.compile
    def step(params, x, y):
        loss, grads = mx.value_and_grad(loss_fn)(params, x, y)
        return loss, tree_map(lambda p, g: p - args.learning_rate * g, params, grads)

    rng = np.random.default_rng(args.seed)
    for epoch in range(args.epochs):
        for x, y in batches(x_train, y_train, args.batch_size, rng):
            loss, params = step(params, x, y)
            mx.eval(params)
    return mx.mean(mx.argmax(mlp.apply(params, x_test), axis=1) == y_test).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--hidden-dim", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = load_digits(args.seed)
    print(f"digits: {data[0][0].shape[0]} train / {data[1][0].shape[0]} test images")
    for name, train in (("facade (funcnn as nn)", train_facade), ("pure pairs", train_pure)):
        start = time.perf_counter()
        accuracy = train(data, args)
        print(f"{name:22s} test accuracy {accuracy:.4f}  ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
