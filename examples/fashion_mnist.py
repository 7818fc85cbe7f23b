"""Train a small CNN on Fashion-MNIST with a pure, compiled training step.

The network is one ``funcnn.functional`` pair (stride-2 convolutions, layer
norm, ReLU, two linear layers), the optimizer is ``funcnn.optimizers.adamw``
with a warm-up + cosine learning-rate schedule, and one training step

    step(params, opt_state, x, y) -> (loss, params, opt_state)

is a pure function of plain trees of arrays, compiled once.  ``FashionCNN`` is
the same network written as an ``nn.Module`` with ``funcnn`` as ``nn``: its
parameters have the same names, so the trained ``params`` (or the saved
``.safetensors`` file) load straight into it.

The data comes from installed packages only: Debian's ``dataset-fashion-mnist``
(60k/10k 28x28 images) or, with ``--dataset digits``, scikit-learn's bundled
8x8 digits.  A missing data set is a one-line message with the command that
installs it (exit status 2).

    python examples/fashion_mnist.py                   # 4 epochs: 0.911 (seed 1: 0.909)
    python examples/fashion_mnist.py --quick           # CI: 6k/2k images, 2 epochs: 0.84
    python examples/fashion_mnist.py --dataset digits  # 30 epochs: 0.978

Measured on 2 CPU cores (MLX's Linux CPU build, with the OpenBLAS funcnn loads):
about 37 s and 1,700 images/s per Fashion-MNIST epoch, 2.5 minutes in all
(with MLX's reference BLAS: 80 s, 780 images/s, 6 minutes); --quick about 10 s.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional

import funcnn  # noqa: F401  (first: so MLX's matmuls use OpenBLAS, see funcnn.blas_info)
import mlx.core as mx
import numpy as np
from tqdm import tqdm

import funcnn as nn
import funcnn.functional as F
import funcnn.optimizers as optim
from funcnn.transforms import compile as compile_pure
from funcnn.tree import tree_flatten

from datasets import FASHION_MNIST_DIR, DataMissing, digits, fashion_mnist

NUM_CLASSES = 10
CHANNELS = (16, 32)  # the two stride-2 convolutions
HIDDEN = 128
EVAL_BATCH = 1000  # one fixed evaluation shape (the test set is padded up to it)

# Defaults per data set (each flag overrides its entry).  --quick keeps the
# CI run short: a subset of Fashion-MNIST, fewer epochs on digits.
DEFAULTS = {
    "fashion_mnist": {"epochs": 4, "batch_size": 128, "learning_rate": 2e-3},
    "digits": {"epochs": 30, "batch_size": 64, "learning_rate": 2e-3},
}
QUICK = {
    "fashion_mnist": {"epochs": 2, "train_size": 6000, "test_size": 2000},
    "digits": {"epochs": 15},
}
WEIGHT_DECAY = 0.01
WARMUP_FRACTION = 0.05  # of all steps, linear from learning_rate / warmup up to learning_rate


# --- the model: a pure pair, and the same network as a Module ---------------


def _conv_out(size: int) -> int:
    """Output size of a 3x3 convolution with stride 2 and padding 1."""
    return (size + 2 * 1 - 3) // 2 + 1


def flatten(x: mx.array) -> mx.array:
    """``(N, H, W, C) -> (N, H * W * C)``: a plain callable, so it holds no parameters."""
    return x.reshape(x.shape[0], -1)


def _flat_dims(image_shape: tuple[int, int, int]) -> int:
    height, width, _ = image_shape
    return _conv_out(_conv_out(height)) * _conv_out(_conv_out(width)) * CHANNELS[1]


def build_model(image_shape: tuple[int, int, int], num_classes: int = NUM_CLASSES) -> F.Pair:
    """The CNN as a pure pair, for NHWC images of ``image_shape`` ``(H, W, C)``.

    There are no pooling layers: two 3x3 stride-2 convolutions halve the
    resolution twice (28x28 -> 14x14 -> 7x7; digits: 8x8 -> 4x4 -> 2x2), each
    followed by layer norm over the channels and ReLU.  Parameters are
    ``{"layers": [...]}`` as in ``nn.Sequential`` (``"layers.0.weight"``).
    """
    c1, c2 = CHANNELS
    return F.sequential(
        F.conv2d(image_shape[2], c1, 3, stride=2, padding=1),
        F.layer_norm(c1),
        F.relu(),
        F.conv2d(c1, c2, 3, stride=2, padding=1),
        F.layer_norm(c2),
        F.relu(),
        flatten,
        F.linear(_flat_dims(image_shape), HIDDEN),
        F.relu(),
        F.linear(HIDDEN, num_classes),
    )


class FashionCNN(nn.Module):
    """:func:`build_model`'s network as a Module (``funcnn`` as ``nn``), with the same names.

    ``FashionCNN(shape).update(params)`` takes the pure parameters as they are;
    ``load_weights`` takes the ``.safetensors`` file this script saves.
    """

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int = NUM_CLASSES):
        super().__init__()
        c1, c2 = CHANNELS
        self.layers = [
            nn.Conv2d(image_shape[2], c1, 3, stride=2, padding=1),
            nn.LayerNorm(c1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1),
            nn.LayerNorm(c2),
            nn.ReLU(),
            flatten,
            nn.Linear(_flat_dims(image_shape), HIDDEN),
            nn.ReLU(),
            nn.Linear(HIDDEN, num_classes),
        ]

    def __call__(self, x: mx.array) -> mx.array:
        for layer in self.layers:
            x = layer(x)
        return x


# --- optimizer, steps ---------------------------------------------------------


def make_schedule(learning_rate: float, total_steps: int, lib: Any = optim) -> Callable:
    """Linear warm-up, then cosine decay to zero over the remaining steps.

    ``lib`` is :mod:`funcnn.optimizers` or :mod:`mlx.optimizers`: both have
    ``linear_schedule``, ``cosine_decay`` and ``join_schedules`` with the same
    signatures and math.
    """
    warmup = max(1, int(total_steps * WARMUP_FRACTION))
    return lib.join_schedules(
        [
            lib.linear_schedule(learning_rate / warmup, learning_rate, warmup),
            lib.cosine_decay(learning_rate, max(1, total_steps - warmup)),
        ],
        [warmup],
    )


def make_optimizer(learning_rate: float, total_steps: int) -> optim.Optimizer:
    return optim.adamw(make_schedule(learning_rate, total_steps), weight_decay=WEIGHT_DECAY)


def make_train_step(model: F.Pair, opt: optim.Optimizer, traces: Counter) -> Callable:
    """``step(params, opt_state, x, y) -> (loss, params, opt_state)``, compiled.

    ``funcnn.transforms.compile`` takes and returns any pytree; here both are
    plain trees of arrays (``mx.compile`` would take them too).  The body runs
    only while MLX traces it, so ``traces["train_step"]`` counts compilations:
    one, as long as every batch has the same shape.
    """

    def loss_fn(params, x, y):
        return nn.losses.cross_entropy(model.apply(params, x), y, reduction="mean")

    def step(params, opt_state, x, y):
        traces["train_step"] += 1
        loss, grads = mx.value_and_grad(loss_fn)(params, x, y)
        params, opt_state = opt.update(grads, opt_state, params)
        return loss, params, opt_state

    return compile_pure(step)


def make_eval_step(model: F.Pair, traces: Counter) -> Callable:
    """``evaluate(params, x, y, valid) -> (correct, summed loss)`` over the rows where ``valid``."""

    def evaluate(params, x, y, valid):
        traces["eval_step"] += 1
        logits = model.apply(params, x)
        losses = nn.losses.cross_entropy(logits, y)
        correct = mx.argmax(logits, axis=1) == y
        # where, not multiply: padded rows must not leak into the sums in any way.
        return mx.sum(mx.where(valid, correct, 0)), mx.sum(mx.where(valid, losses, 0.0))

    return compile_pure(evaluate)


# --- data ---------------------------------------------------------------------


def load_data(args: argparse.Namespace) -> tuple[np.ndarray, ...]:
    """``(x_train, y_train, x_test, y_test)`` as NHWC float32 / int32 arrays (quick: a subset)."""
    if args.dataset == "digits":
        data = digits(seed=args.seed)
    else:
        data = fashion_mnist(Path(args.data_dir))
    x_train, y_train, x_test, y_test = data
    if args.quick:
        sizes = QUICK[args.dataset]
        n_train = sizes.get("train_size", len(x_train))
        n_test = sizes.get("test_size", len(x_test))
        x_train, y_train = x_train[:n_train], y_train[:n_train]
        x_test, y_test = x_test[:n_test], y_test[:n_test]
    return x_train, y_train, x_test, y_test


def train_batches(
    x: mx.array, y: mx.array, batch_size: int, rng: np.random.Generator
) -> Iterator[tuple[mx.array, mx.array]]:
    """Shuffled batches of exactly ``batch_size`` images.

    The last partial batch is dropped: a batch of another shape would make
    MLX trace and compile the step again (and padding it would need a mask in
    the loss).  The order is reshuffled every epoch, so the few images left
    out (96 of Fashion-MNIST's 60000) differ from epoch to epoch.
    """
    order = rng.permutation(x.shape[0])
    for start in range(0, x.shape[0] - batch_size + 1, batch_size):
        ids = mx.array(order[start : start + batch_size])
        yield x[ids], y[ids]


def evaluate(
    eval_step: Callable, params: Any, x: mx.array, y: mx.array, batch_size: int = EVAL_BATCH
) -> tuple[float, float]:
    """``(accuracy, mean loss)`` over all of ``x``.

    The set is padded with blank images up to a multiple of ``batch_size`` so
    that every call has the same shape (one compilation); a ``valid`` mask
    keeps the padding out of the counts.
    """
    n = x.shape[0]
    pad = -n % batch_size
    valid = mx.arange(n + pad) < n
    if pad:
        x = mx.concatenate([x, mx.zeros((pad, *x.shape[1:]), x.dtype)])
        y = mx.concatenate([y, mx.zeros((pad,), y.dtype)])
    correct, loss = mx.array(0), mx.array(0.0)
    for start in range(0, n + pad, batch_size):
        part = slice(start, start + batch_size)
        c, s = eval_step(params, x[part], y[part], valid[part])
        correct, loss = correct + c, loss + s
    mx.eval(correct, loss)
    return correct.item() / n, loss.item() / n


# --- training -----------------------------------------------------------------


def fit(args: argparse.Namespace, data: tuple[np.ndarray, ...], log: Callable = print):
    """Train on ``data``; returns ``(params, metrics)``.

    Initial parameters come from ``mx.random.key(args.seed)`` and the batch
    order from ``np.random.default_rng(args.seed)``: a run is reproducible, and
    another training loop can replay exactly the same start and batches.
    """
    x_train, y_train, x_test, y_test = (mx.array(a) for a in data)
    image_shape = tuple(x_train.shape[1:])
    model = build_model(image_shape)
    params = model.init(mx.random.key(args.seed))
    steps_per_epoch = x_train.shape[0] // args.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"--batch-size {args.batch_size} exceeds the {x_train.shape[0]} images")
    opt = make_optimizer(args.learning_rate, steps_per_epoch * args.epochs)
    opt_state = opt.init(params)
    traces: Counter = Counter()
    step = make_train_step(model, opt, traces)
    eval_step = make_eval_step(model, traces)
    rng = np.random.default_rng(args.seed)

    per_epoch = ("train_loss", "test_accuracy", "test_loss", "epoch_seconds")
    metrics: dict[str, Any] = {key: [] for key in per_epoch}
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        tic = time.perf_counter()
        total = mx.array(0.0)
        bar = tqdm(
            train_batches(x_train, y_train, args.batch_size, rng),
            total=steps_per_epoch,
            desc=f"Epoch {epoch}",
            unit="batch",
            leave=False,
            disable=not args.progress,
            dynamic_ncols=True,
        )
        for i, (x, y) in enumerate(bar, start=1):
            loss, params, opt_state = step(params, opt_state, x, y)
            total = total + loss
            mx.eval(total, params, opt_state)
            if args.progress:
                bar.set_postfix(loss=f"{total.item() / i:.3f}", refresh=False)
        bar.close()
        train_seconds = time.perf_counter() - tic
        accuracy, test_loss = evaluate(eval_step, params, x_test, y_test)
        seconds = time.perf_counter() - tic  # the whole epoch, evaluation included
        train_loss = total.item() / steps_per_epoch
        throughput = steps_per_epoch * args.batch_size / train_seconds  # training only
        metrics["train_loss"].append(train_loss)
        metrics["test_accuracy"].append(accuracy)
        metrics["test_loss"].append(test_loss)
        metrics["epoch_seconds"].append(seconds)
        log(
            f"Epoch {epoch}: train loss {train_loss:.3f}, test accuracy {accuracy:.3f}, "
            f"{seconds:.1f} s, {throughput:.0f} im/s"
        )
    metrics.update(
        test_accuracy_final=metrics["test_accuracy"][-1],
        test_loss_final=metrics["test_loss"][-1],
        seconds=time.perf_counter() - start,
        traces=dict(traces),
        image_shape=image_shape,
    )
    return params, metrics


def save_weights(params: Any, path: Path, metadata: Optional[dict] = None) -> Path:
    """Save ``params`` by their dotted names (``"layers.0.weight"``) as ``.safetensors``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(path), tree_flatten(params, destination={}), metadata=metadata or {})
    return path


def train(args: argparse.Namespace) -> dict:
    """Load the data, train, print the final metrics, save the weights; returns the metrics.

    Raises :class:`DataMissing` (one line naming the install command) when the
    data set is not installed.
    """
    data = load_data(args)
    print(
        f"{args.dataset}: {len(data[0])} train / {len(data[2])} test images "
        f"{'x'.join(map(str, data[0].shape[1:]))}; {args.epochs} epochs, batch "
        f"{args.batch_size}, adamw lr {args.learning_rate:g} (warm-up + cosine), seed {args.seed}"
    )
    params, metrics = fit(args, data, log=tqdm.write)
    n_params = sum(p.size for _, p in tree_flatten(params))
    print(
        f"Final: test accuracy {metrics['test_accuracy_final']:.4f}, test loss "
        f"{metrics['test_loss_final']:.4f}, {args.epochs} epochs in {metrics['seconds']:.1f} s"
    )
    out = save_weights(
        params,
        args.out,
        {
            "dataset": args.dataset,
            "image_shape": ",".join(map(str, metrics["image_shape"])),
            "test_accuracy": f"{metrics['test_accuracy_final']:.4f}",
        },
    )
    print(f"Saved {n_params} parameters to {out}")
    metrics["weights"] = out
    metrics["params"] = params
    return metrics


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DEFAULTS), default="fashion_mnist")
    parser.add_argument("--epochs", type=int, help="default: 4 (fashion_mnist), 30 (digits)")
    parser.add_argument("--batch-size", type=int, help="default: 128 (fashion_mnist), 64 (digits)")
    parser.add_argument("--learning-rate", type=float, help="peak learning rate (default: 2e-3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run for CI: 6k/2k Fashion-MNIST images for 2 epochs; 15 epochs of digits",
    )
    parser.add_argument(
        "--out", type=Path, help="weights file (default: <dataset>_cnn.safetensors, here)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=FASHION_MNIST_DIR,
        help=f"where Fashion-MNIST's .gz files are (default: {FASHION_MNIST_DIR})",
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )
    args = parser.parse_args(argv)
    if args.out is not None and args.out.suffix != ".safetensors":
        parser.error(f"--out must end in .safetensors, got {str(args.out)!r}")
    for name in ("epochs", "batch_size", "learning_rate"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    settings = dict(DEFAULTS[args.dataset])
    if args.quick:
        settings["epochs"] = QUICK[args.dataset]["epochs"]
    for name, value in settings.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.out is None:
        args.out = Path(f"{args.dataset}_cnn.safetensors")
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
