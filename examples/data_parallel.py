"""Train examples/fashion_mnist.py's CNN data-parallel over several processes.

The model, optimizer, batches and evaluation are imported from
``fashion_mnist.py``; what changes is the training step.  Every rank draws
the same shuffled global batches (same seed), keeps its own slice of each
(``[B*r//n, B*(r+1)//n)``: uneven slices are fine) and computes the loss
*sum* and count of its slice.  :func:`funcnn.parallel.value_and_grad` adds
the sums, counts and gradients of all ranks in one bucketed all-reduce and
divides once, so every rank gets the exact gradient of the global batch's
mean loss and applies the same AdamW update.  Parameters start replicated
(every rank initialises from ``mx.random.key(seed)``) and stay so;
:func:`funcnn.parallel.check_replicated` verifies it at the end.  The step is
compiled once per rank; rank 0 prints and saves the ``.safetensors`` file,
which loads into ``fashion_mnist.FashionCNN`` or the pure ``build_model``.

    python examples/data_parallel.py --ranks 2 [--quick]     # launches itself
    mlx.launch -n 2 --backend ring -p PORT python examples/data_parallel.py [--quick]
    python examples/data_parallel.py --ranks 1                # one process, same code
    python examples/data_parallel.py --ranks 2 --quick --compare 5

With ``--ranks N`` the script starts N copies of itself through
:func:`funcnn.parallel.run_ranks` (free ports, a timeout, every rank's exit
status) and prints rank 0's output; a copy that finds ``MLX_RANK`` set is a
rank and joins the ring group (:func:`funcnn.parallel.init_checked`), which
is also how it runs under ``mlx.launch`` (pick a free port: ``mlx.launch``
exits 0 even when a rank fails, so read its output).  ``--compare N`` stops
after N steps and has rank 0 replay them in one process twice: adding the
slices' sums as the ranks do (bit-identical), and with fashion_mnist.py's
full-batch step (equal to float32 round-off, measured below).

Measured on 2 CPU cores otherwise idle (seed 0, default 4 epochs, global batch
128 = 64 + 64, 468 steps per epoch): 2 ranks reach test accuracy 0.9112 in 84 s
(33-47 ms/step), one process (``--ranks 1``) 0.9113 in 114 s (58-61 ms/step):
one MLX CPU process keeps about one core busy, two ranks use both, so 2 ranks
step 1.3-1.8x faster here (with other jobs on the cores, 0.1-0.4x was seen: slower).
Each step all-reduces 828,080 bytes (207,018 float32 gradients, the loss sum
and the count) in one ``all_sum``.  ``--compare``: bit-identical to one
process adding the two slices' sums; vs the full-batch single-process step,
max |parameter difference| 8.6e-6 after 1 step, 3.5e-5 after 2 and 1e-2
after 5 (AdamW turns round-off in near-zero gradients into full-size steps),
and the trajectories drift apart (0.3 after 4 epochs) at the same accuracy.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

# isort: off
import funcnn  # first: so MLX's matmuls use OpenBLAS (see funcnn.blas_info)
import mlx.core as mx
# isort: on
import numpy as np

import funcnn as nn
import funcnn.functional as F
import funcnn.optimizers as optim
import funcnn.parallel as par
from funcnn.transforms import compile as compile_pure
from funcnn.tree import tree_flatten

sys.path.insert(0, str(Path(__file__).resolve().parent))  # fashion_mnist.py, datasets.py
import fashion_mnist as fm
from datasets import DataMissing

QUICK_EPOCHS = 1  # --quick: fashion_mnist.py's 6k/2k subset, for one epoch
LAUNCH_TIMEOUT = 3600.0  # seconds for the whole job (--quick: QUICK_TIMEOUT)
QUICK_TIMEOUT = 300.0


# --- sharding -------------------------------------------------------------------


def shard_bounds(total: int, size: int, rank: int) -> tuple[int, int]:
    """This rank's ``[lo, hi)`` of ``total`` items split over ``size`` ranks (sizes differ by <= 1).

    Example:
        >>> [shard_bounds(10, 3, r) for r in range(3)]
        [(0, 3), (3, 6), (6, 10)]
    """
    if not 0 <= rank < size:
        raise ValueError(f"rank must be in [0, {size}), got {rank}")
    return total * rank // size, total * (rank + 1) // size


def make_dp_train_step(model: F.Pair, opt: optim.Optimizer, group: Any, traces: Counter) -> Callable:
    """``step(params, opt_state, x, y) -> (global mean loss, params, opt_state)``, compiled.

    ``x, y`` are this rank's slice of the global batch.  The loss is a
    ``(sum, count)`` pair, so the all-reduced gradient is that of the global
    batch's mean loss whatever the slices' sizes.

    Example:
        >>> model = fm.build_model((8, 8, 1))
        >>> params = model.init(mx.random.key(0))
        >>> opt = fm.make_optimizer(1e-3, 10)
        >>> step = make_dp_train_step(model, opt, mx.distributed.init(), Counter())
        >>> x, y = mx.zeros((4, 8, 8, 1)), mx.array([0, 1, 2, 3])
        >>> loss, params, state = step(params, opt.init(params), x, y)
        >>> loss.shape
        ()
    """

    def loss_sums(params: Any, x: mx.array, y: mx.array) -> tuple[mx.array, int]:
        logits = model.apply(params, x)
        return nn.losses.cross_entropy(logits, y, reduction="sum"), x.shape[0]

    grad_fn = par.value_and_grad(loss_sums, group)

    def step(params: Any, opt_state: Any, x: mx.array, y: mx.array) -> tuple:
        traces["train_step"] += 1
        loss, grads = grad_fn(params, x, y)
        params, opt_state = opt.update(grads, opt_state, params)
        return loss, params, opt_state

    return compile_pure(step)


def all_reduced_bytes(params: Any) -> int:
    """Bytes each rank all-reduces per step: every gradient, plus the loss sum and the count.

    Example:
        >>> all_reduced_bytes({"w": mx.zeros((3, 2)), "b": mx.zeros(2)})
        40
    """
    return sum(v.nbytes for _, v in tree_flatten(params) if isinstance(v, mx.array)) + 2 * 4


def evaluate_sharded(
    eval_step: Callable, params: Any, x: mx.array, y: mx.array, group: Any
) -> tuple[float, float]:
    """``(accuracy, mean loss)`` over the whole test set, each rank evaluating its slice.

    Example:
        >>> model = fm.build_model((8, 8, 1))
        >>> eval_step = fm.make_eval_step(model, Counter())
        >>> acc, loss = evaluate_sharded(eval_step, model.init(mx.random.key(0)),
        ...     mx.zeros((5, 8, 8, 1)), mx.zeros(5, mx.int32), mx.distributed.init())
        >>> 0.0 <= acc <= 1.0 and loss > 0
        True
    """
    lo, hi = shard_bounds(x.shape[0], group.size(), group.rank())
    correct, loss_sum = 0.0, 0.0
    if hi > lo:
        accuracy, loss = fm.evaluate(eval_step, params, x[lo:hi], y[lo:hi])
        # fm.evaluate divides by the count; undo it (the count of correct answers is exact).
        correct, loss_sum = round(accuracy * (hi - lo)), loss * (hi - lo)
    totals = par.all_sum(mx.array([correct, loss_sum], mx.float32), group)
    n = x.shape[0]
    return totals[0].item() / n, totals[1].item() / n


# --- training on one rank -------------------------------------------------------------


def _max_abs_diff(a: Any, b: Any) -> float:
    pairs = zip(tree_flatten(a), tree_flatten(b))
    return max(mx.max(mx.abs(u - v)).item() for (_, u), (_, v) in pairs)


def _reference(
    args: argparse.Namespace, x: mx.array, y: mx.array, steps: int, total_steps: int, size: int
) -> dict[str, tuple[Any, list[float]]]:
    """Replay ``steps`` steps in this one process: ``{name: (params, losses)}``.

    ``"full batch"`` is ``fm.make_train_step`` on the whole global batch (the
    single-process run); ``"slices"`` computes each rank's loss and gradient
    sums one slice after the other and adds them, the arithmetic the ranks do.
    """
    model = fm.build_model(tuple(x.shape[1:]))
    bounds = [shard_bounds(args.batch_size, size, r) for r in range(size)]
    local = par.local_sums(
        lambda p, xb, yb: (
            nn.losses.cross_entropy(model.apply(p, xb), yb, reduction="sum"), xb.shape[0]
        )
    )

    def sliced(params: Any, opt_state: Any, xb: mx.array, yb: mx.array) -> tuple:
        sums = [local(params, xb[lo:hi], yb[lo:hi]) for lo, hi in bounds]
        total = sums[0]
        for more in sums[1:]:
            total = par.add_sums(total, more)
        count = total.count.astype(mx.float32)
        grads = funcnn.tree_map(lambda g: (g / count).astype(g.dtype), total.grads)
        params, opt_state = opt.update(grads, opt_state, params)
        return total.loss / count, params, opt_state

    out = {}
    for name in ("full batch", "slices"):
        params = model.init(mx.random.key(args.seed))
        opt = fm.make_optimizer(args.learning_rate, total_steps)
        opt_state = opt.init(params)
        step = fm.make_train_step(model, opt, Counter()) if name == "full batch" else sliced
        losses = []
        batches = fm.train_batches(x, y, args.batch_size, np.random.default_rng(args.seed))
        for _, (xb, yb) in zip(range(steps), batches):
            loss, params, opt_state = step(params, opt_state, xb, yb)
            mx.eval(loss, params, opt_state)
            losses.append(loss.item())
        out[name] = (params, losses)
    return out


def fit_rank(args: argparse.Namespace, data: tuple[np.ndarray, ...], group: Any, log: Callable):
    """Train this rank; returns ``(params, metrics)`` (the same params on every rank)."""
    rank, size = group.rank(), group.size()
    x_train, y_train, x_test, y_test = (mx.array(a) for a in data)
    image_shape = tuple(x_train.shape[1:])
    if args.batch_size < size:
        raise ValueError(f"--batch-size {args.batch_size} is smaller than the {size} ranks")
    steps_per_epoch = x_train.shape[0] // args.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"--batch-size {args.batch_size} exceeds the {x_train.shape[0]} images")
    total_steps = steps_per_epoch * args.epochs
    model = fm.build_model(image_shape)
    params = model.init(mx.random.key(args.seed))  # the same key on every rank: replicated
    opt = fm.make_optimizer(args.learning_rate, total_steps)
    opt_state = opt.init(params)
    traces: Counter = Counter()
    step = make_dp_train_step(model, opt, group, traces)
    eval_step = fm.make_eval_step(model, traces)
    lo, hi = shard_bounds(args.batch_size, size, rank)
    shards = [b - a for a, b in (shard_bounds(args.batch_size, size, r) for r in range(size))]
    comm = all_reduced_bytes(params)
    log(
        f"{size} rank(s): global batch {args.batch_size} = {' + '.join(map(str, shards))}; "
        f"{comm} bytes all-reduced per step"
    )
    rng = np.random.default_rng(args.seed)  # the same order on every rank
    limit = args.compare or total_steps
    metrics: dict[str, Any] = {"train_loss": [], "test_accuracy": [], "ms_per_step": [], "losses": []}
    done = 0
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        tic = time.perf_counter()
        total, n_steps = mx.array(0.0), 0
        for x, y in fm.train_batches(x_train, y_train, args.batch_size, rng):
            if done == limit:
                break
            loss, params, opt_state = step(params, opt_state, x[lo:hi], y[lo:hi])
            total = total + loss
            mx.eval(total, params, opt_state)
            if args.compare:
                metrics["losses"].append(loss.item())
            done, n_steps = done + 1, n_steps + 1
        train_seconds = time.perf_counter() - tic
        if args.compare:
            break
        accuracy, _ = evaluate_sharded(eval_step, params, x_test, y_test, group)
        seconds = time.perf_counter() - tic
        train_loss = total.item() / n_steps
        ms = 1000 * train_seconds / n_steps
        metrics["train_loss"].append(train_loss)
        metrics["test_accuracy"].append(accuracy)
        metrics["ms_per_step"].append(ms)
        log(
            f"Epoch {epoch}: train loss {train_loss:.3f}, test accuracy {accuracy:.3f}, "
            f"{seconds:.1f} s, {n_steps * args.batch_size / train_seconds:.0f} im/s, "
            f"{ms:.1f} ms/step"
        )
    par.check_replicated(params, group)
    metrics.update(
        steps=done,
        seconds=time.perf_counter() - start,
        traces=dict(traces),
        image_shape=image_shape,
        bytes_per_step=comm,
        total_steps=total_steps,
    )
    log(f"Replicated: parameters bit-identical on all {size} rank(s); {dict(traces)} traces")
    if args.compare and rank == 0:
        refs = _reference(args, x_train, y_train, done, total_steps, size)
        for name, (ref, ref_losses) in refs.items():
            diff = _max_abs_diff(params, ref)
            loss_diff = max(abs(a - b) for a, b in zip(metrics["losses"], ref_losses))
            metrics[f"compare {name}"] = (diff, loss_diff)
            log(
                f"Compare ({name}): after {done} steps, {size} rank(s) vs one process: "
                f"max |param diff| {diff:.3g}, max |loss diff| {loss_diff:.3g}"
            )
    return params, metrics


def run_rank(args: argparse.Namespace) -> None:
    """The body of one rank (or of the only process): train, check, print and save on rank 0."""
    if "MLX_RANK" in os.environ:
        group = par.init_checked("ring")
    else:
        group = mx.distributed.init()
    if args.ranks is not None and group.size() != args.ranks:
        raise SystemExit(f"--ranks {args.ranks} but the group has {group.size()} ranks")
    rank = group.rank()

    def log(line: str) -> None:
        if rank == 0:
            print(line, flush=True)

    data = fm.load_data(args)
    log(
        f"{args.dataset}: {len(data[0])} train / {len(data[2])} test images; "
        f"{args.epochs} epoch(s), adamw lr {args.learning_rate:g}, seed {args.seed}"
    )
    params, metrics = fit_rank(args, data, group, log)
    if not args.compare:
        log(
            f"Final: test accuracy {metrics['test_accuracy'][-1]:.4f}, "
            f"{metrics['steps']} steps in {metrics['seconds']:.1f} s"
        )
    if rank == 0:
        meta = {
            "dataset": args.dataset,
            "image_shape": ",".join(map(str, metrics["image_shape"])),
            "ranks": str(group.size()),
            "steps": str(metrics["steps"]),
        }
        out = fm.save_weights(params, args.out, meta)
        n_params = sum(p.size for _, p in tree_flatten(params))
        log(f"Saved {n_params} parameters to {out}")


# --- the command line -----------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """This script's flags, plus every flag of ``fashion_mnist.py`` (parsed by it).

    Example:
        >>> args = parse_args(["--ranks", "2", "--quick"])
        >>> args.ranks, args.epochs, args.out.name
        (2, 1, 'fashion_mnist_cnn_dp.safetensors')
    """
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Also every flag of examples/fashion_mnist.py: --dataset, --epochs, "
        "--batch-size, --learning-rate, --seed, --quick, --out, --data-dir.",
    )
    parser.add_argument(
        "--ranks", type=int, help="launch this many local ranks (default: 1, or the launcher's)"
    )
    parser.add_argument(
        "--compare", type=int, default=0, metavar="N",
        help="stop after N steps and compare with one process on the same global batches",
    )
    parser.add_argument("--timeout", type=float, help="seconds for the whole job (--ranks N)")
    own, rest = parser.parse_known_args(argv)
    if own.ranks is not None and own.ranks < 1:
        parser.error(f"--ranks must be positive, got {own.ranks}")
    if own.compare < 0:
        parser.error(f"--compare must be >= 0, got {own.compare}")
    explicit_epochs = any(a == "--epochs" or a.startswith("--epochs=") for a in rest)
    explicit_out = any(a == "--out" or a.startswith("--out=") for a in rest)
    args = fm.parse_args([*rest, "--no-progress"])
    if args.quick and not explicit_epochs and args.dataset == "fashion_mnist":
        args.epochs = QUICK_EPOCHS
    if not explicit_out:
        args.out = Path(f"{args.dataset}_cnn_dp.safetensors")
    for name, value in vars(own).items():
        setattr(args, name, value)
    if args.timeout is None:
        args.timeout = QUICK_TIMEOUT if args.quick else LAUNCH_TIMEOUT
    return args


def launch(args: argparse.Namespace, argv: list[str]) -> int:
    """Start ``args.ranks`` copies of this script as a ring job; print rank 0's output."""
    fm.load_data(args)  # a missing data set: one line here, not one per rank
    try:
        results = par.run_ranks(__file__, args.ranks, args=argv, timeout=args.timeout)
    except par.RankError as err:
        print(str(err), file=sys.stderr)
        return 1
    sys.stdout.write(results[0].stdout)
    return 0


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        if "MLX_RANK" not in os.environ and (args.ranks or 1) > 1:
            sys.exit(launch(args, argv))
        run_rank(args)
    except DataMissing as err:
        print(err, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
