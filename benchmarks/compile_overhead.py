"""Per-call overhead of compiled calls: ``mx.compile(f)(tree)`` vs ``funcnn.transforms.compile(f)(tree)``.

Two argument trees of 2004 array leaves, shaped like a 125-block transformer:

* ``dict``: nested dicts and lists (what ``mx.compile`` takes natively);
* ``module``: a funcnn Module of 1254 sub-modules (Embedding, 125 blocks of
  MultiHeadAttention + 2 LayerNorm + 2 Linear, LayerNorm, Linear).
  ``mx.compile`` hands it to ``f`` as a plain dict (losing class and
  attributes); funcnn hands ``f`` a Module and keys its cache on the
  attributes too.

The functions are trivial (the first leaf + 1; the sum of four leaves), so
the time is the transform's own overhead: flattening/matching the arguments,
the cache lookup, MLX's compiled call and rebuilding the result.  Nothing is
evaluated.  Rounds alternate between the variants (in rotating order); each
round times ``--calls`` calls; the table shows the median per-call time over
rounds.

Variants: ``mx.compile`` is ``mx.compile(f)(tree)``, the baseline funcnn must
beat; ``capture`` is MLX's documented pattern for compiling with a model's
state, ``mx.compile(lambda: f(tree), inputs=tree, outputs=tree)``, for
reference; ``funcnn`` is ``funcnn.transforms.compile(f)(tree)``.

Usage: ``python benchmarks/compile_overhead.py [--quick] [--rounds N] [--calls N]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import mlx.core as mx

import funcnn as nn
import funcnn.transforms as T

BLOCKS = 125
DIM = 4


def dict_tree() -> dict:
    def linear() -> dict:
        return {"weight": mx.zeros((DIM, DIM)), "bias": mx.zeros((DIM,))}

    return {
        "embed": {"weight": mx.zeros((16, DIM))},
        "layers": [
            {
                "attn": {"q": linear(), "k": linear(), "v": linear(), "o": linear()},
                "ln1": linear(),
                "ln2": linear(),
                "mlp": {"fc1": linear(), "fc2": linear()},
            }
            for _ in range(BLOCKS)
        ],
        "norm": {"weight": mx.zeros((DIM,)), "bias": mx.zeros((DIM,))},
        "head": {"weight": mx.zeros((DIM, DIM))},
    }


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiHeadAttention(DIM, 1, bias=True)
        self.ln1 = nn.LayerNorm(DIM)
        self.ln2 = nn.LayerNorm(DIM)
        self.fc1 = nn.Linear(DIM, DIM)
        self.fc2 = nn.Linear(DIM, DIM)


class Transformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(16, DIM)
        self.layers = [Block() for _ in range(BLOCKS)]
        self.norm = nn.LayerNorm(DIM)
        self.head = nn.Linear(DIM, DIM, bias=False)


# Written against dict access, so that the same function runs on the plain
# dict that mx.compile passes for a Module and on the Module funcnn passes.
def first_plus_one(tree):
    return tree["embed"]["weight"] + 1


def sum_four(tree):
    block = tree["layers"][BLOCKS // 2]
    return tree["embed"]["weight"].sum() + tree["head"]["weight"].sum() + (
        block["ln1"]["weight"].sum() + tree["layers"][-1]["ln2"]["bias"].sum()
    )


def per_call_us(call, tree, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call(tree)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--calls", type=int, default=None)
    opts = parser.parse_args()
    rounds = opts.rounds or (3 if opts.quick else 30)
    calls = opts.calls or (5 if opts.quick else 50)

    trees = {"dict": dict_tree(), "module": Transformer()}
    leaves = {name: len(nn.tree.tree_leaves(t)) for name, t in trees.items()}
    for t in trees.values():
        mx.eval(nn.tree.tree_leaves(t))

    rows = []
    for tree_name, tree in trees.items():
        for fn in (first_plus_one, sum_four):
            captured = mx.compile(lambda fn=fn, tree=tree: fn(tree), inputs=tree, outputs=tree)
            variants = {
                "mx.compile": mx.compile(fn),
                "capture": lambda _, captured=captured: captured(),
                "funcnn": T.compile(fn),
            }
            expected = variants["mx.compile"](tree)
            for call in variants.values():  # trace and check once, outside the timing
                assert mx.array_equal(call(tree), expected).item()
            times: dict[str, list[float]] = {k: [] for k in variants}
            names = list(variants)
            for r in range(rounds):
                for name in names[r % 3 :] + names[: r % 3]:
                    times[name].append(per_call_us(variants[name], tree, calls))
            medians = [statistics.median(times[k]) for k in names]
            rows.append((tree_name, leaves[tree_name], fn.__name__, *medians))

    print(f"per-call overhead, median of {rounds} rounds x {calls} calls (microseconds)")
    header = (
        f"{'tree':<7} {'leaves':>6} {'fn':<15} {'mx.compile':>10} {'capture':>8} {'funcnn':>8} "
        f"{'funcnn/mx.compile':>18} {'funcnn/capture':>15}"
    )
    print(header)
    print("-" * len(header))
    for tree_name, n, fn_name, mlx_us, capture_us, ours_us in rows:
        print(
            f"{tree_name:<7} {n:>6} {fn_name:<15} {mlx_us:>10.1f} {capture_us:>8.1f} "
            f"{ours_us:>8.1f} {ours_us / mlx_us:>18.2f} {ours_us / capture_us:>15.2f}"
        )


if __name__ == "__main__":
    main()
