"""Tree operations of a 48-layer model: ``mlx.nn.Module`` against the funcnn facade.

The model (issue 5's W5): a list of 48 blocks, each a ``MultiHeadAttention``
(query/key/value/out projections), two ``LayerNorm`` and an MLP of two
``Linear``; 481 modules, 576 arrays.  Widths are small: the operations walk
the tree, array sizes do not matter.

Each row of the table is one operation (:data:`OPERATIONS`), called on both
models in the same process, the two interleaved (which goes first alternates
per round; an operation faster than a millisecond is timed over several calls
per sample); the times are medians over rounds, and ``ratio`` is
``mlx.nn / funcnn`` (above 1: funcnn is faster).  Before timing, every
operation's result is checked to be the same on both: flattened names,
the very same array objects (both models hold the same arrays, loaded from
one list), module paths and classes, and the frozen keys of every module.

Usage: ``python benchmarks/tree_ops.py [--quick] [--rounds N] [--layers N]``

Other scripts may import :func:`build`, :func:`pairs` and :data:`OPERATIONS`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import funcnn as fnn  # before mlx.core: funcnn picks MLX's BLAS at import
import mlx.core as mx
import mlx.nn as mnn
from mlx.utils import tree_flatten, tree_unflatten

SEED = 0


def build(nn: Any, layers: int = 48, dims: int = 64) -> Any:
    """The W5 model on ``nn`` (``mlx.nn`` or ``funcnn``): ``layers`` blocks of width ``dims``."""

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = nn.MultiHeadAttention(dims, 4)
            self.ln1 = nn.LayerNorm(dims)
            self.ln2 = nn.LayerNorm(dims)
            self.linear1 = nn.Linear(dims, 4 * dims)
            self.linear2 = nn.Linear(4 * dims, dims)

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = [Block() for _ in range(layers)]

    return Model()


class Pairs(list):
    """``(name, array)`` pairs of a model's parameters; ``tree`` is the same, nested."""

    tree: dict


def pairs(model: Any) -> Pairs:
    """Fresh (evaluated) copies of ``model``'s parameters, as :class:`Pairs`."""
    flat = Pairs((k, mx.array(v)) for k, v in tree_flatten(model.parameters()))
    mx.eval([v for _, v in flat])
    flat.tree = tree_unflatten(list(flat))
    return flat


def _collect(model: Any, fn: Callable) -> list:
    found: list = []
    model.apply_to_modules(lambda k, m: found.append(fn(k, m)))
    return found


# name -> callable(model, flat); ``flat`` comes from :func:`pairs`.
OPERATIONS: dict[str, Callable[[Any, Pairs], Any]] = {
    "parameters": lambda m, flat: m.parameters(),
    "trainable_parameters": lambda m, flat: m.trainable_parameters(),
    "update": lambda m, flat: m.update(flat.tree),
    "freeze": lambda m, flat: m.freeze(),
    "unfreeze": lambda m, flat: m.unfreeze(),
    "load_weights": lambda m, flat: m.load_weights(flat),
    "children": lambda m, flat: m.children(),
    "modules": lambda m, flat: m.modules(),
    "named_modules": lambda m, flat: m.named_modules(),
    "leaf_modules": lambda m, flat: m.leaf_modules(),
    "apply_to_modules": lambda m, flat: _collect(m, lambda k, _: k),
}


# ----------------------------------------------------------------------
# Checking that both libraries give the same result
# ----------------------------------------------------------------------


def _fingerprint(model: Any, result: Any) -> Any:
    """What must agree between the libraries after an operation (arrays by identity)."""
    module_types = (fnn.Module, mnn.Module)

    def leaf(x: Any) -> Any:
        if isinstance(x, mx.array):
            return ("array", id(x))
        if isinstance(x, module_types):
            return ("module", type(x).__name__, x is model)
        if isinstance(x, tuple):
            return tuple(leaf(v) for v in x)
        return x

    if isinstance(result, module_types):  # update, freeze, ...: the model itself
        result = ("self", result is model)
    elif isinstance(result, (dict, list)):
        is_module = lambda x: isinstance(x, module_types)  # noqa: E731
        result = [(k, leaf(v)) for k, v in tree_flatten(result, is_leaf=is_module)]
    frozen = [(k, sorted(m._no_grad)) for k, m in model.named_modules()]
    params = [(k, id(v)) for k, v in tree_flatten(model.parameters())]
    return result, frozen, params


def check(models: dict, flat: Pairs) -> None:
    """Assert that every operation gives the same result on both models."""
    for name, op in OPERATIONS.items():
        seen = {lib: _fingerprint(m, op(m, flat)) for lib, m in models.items()}
        first, second = seen.values()
        assert first == second, f"{name}: mlx.nn and funcnn differ"
    # The same again with frozen biases (trainable_parameters skips them).
    for m in models.values():
        m.freeze(keys=["bias"])
    seen = [_fingerprint(m, m.trainable_parameters()) for m in models.values()]
    assert seen[0] == seen[1], "trainable_parameters with frozen biases differ"
    for m in models.values():
        m.unfreeze()


# ----------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------


def _calls_per_sample(models: dict, flat: Pairs, target: float) -> dict:
    """Calls per timed sample, per operation: enough for ``target`` seconds (min 1).

    Fast operations are timed over several calls so that the timer's own cost
    does not count; both libraries make the same number of calls.
    """
    counts = {}
    for name, op in OPERATIONS.items():
        fastest = float("inf")
        for model in models.values():
            op(model, flat)  # warm up
            start = time.perf_counter()
            op(model, flat)
            fastest = min(fastest, time.perf_counter() - start)
        counts[name] = max(1, int(target / max(fastest, 1e-9)))
    return counts


def measure(models: dict, flat: Pairs, rounds: int, target: float = 1e-3) -> dict:
    """Median seconds per call, ``{op: {library: seconds}}``; libraries interleaved."""
    counts = _calls_per_sample(models, flat, target)
    times: dict = {op: {lib: [] for lib in models} for op in OPERATIONS}
    order = list(models.items())
    for r in range(rounds):
        for name, op in OPERATIONS.items():
            n = counts[name]
            for lib, model in order if r % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                for _ in range(n):
                    op(model, flat)
                times[name][lib].append((time.perf_counter() - start) / n)
    return {op: {lib: statistics.median(ts) for lib, ts in t.items()} for op, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 layers, 20 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 200)")
    parser.add_argument("--layers", type=int, default=None, help="blocks (default 48)")
    args = parser.parse_args()
    layers = args.layers or (8 if args.quick else 48)
    rounds = args.rounds or (20 if args.quick else 200)

    models = {}
    for lib, nn in (("mlx.nn", mnn), ("funcnn", fnn)):
        mx.random.seed(SEED)
        models[lib] = build(nn, layers)
    flat = pairs(models["mlx.nn"])
    for m in models.values():  # both hold the very same arrays from here on
        m.load_weights(flat)
    check(models, flat)

    result = measure(models, flat, rounds)
    print(f"{layers} blocks, {len(flat)} arrays; median of {rounds} rounds, ms per call")
    print(f"{'operation':<22}{'mlx.nn':>10}{'funcnn':>10}{'ratio':>8}")
    for name, t in result.items():
        theirs, ours = t["mlx.nn"] * 1e3, t["funcnn"] * 1e3
        print(f"{name:<22}{theirs:>10.3f}{ours:>10.3f}{theirs / ours:>8.2f}")


if __name__ == "__main__":
    main()
