"""One rank of ``test_distributed_ring.py``: funcnn against mlx.nn on a real 2-rank ring.

Started by :func:`funcnn.parallel.run_ranks`.  Every check runs on every
rank in the same order (each is collective) and records ``{"ok": bool,
"detail": str}``; the last stdout line is ``RESULT`` + JSON of all checks.
A check that raises is recorded as failed and the run goes on; one that
fails between two collectives stalls the other rank, which the launcher's
timeout bounds.
"""

# ruff: noqa: I001  (funcnn must be imported before mlx.core: it picks the BLAS)
from __future__ import annotations

import json
import sys
import traceback
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import funcnn  # before mlx.core: funcnn picks its BLAS at import

import mlx.core as mx
import mlx.nn
import mlx.nn.layers.distributed as mlx_dist
import mlx.nn.utils as mlx_utils
from mlx.utils import tree_flatten as mlx_flatten

import funcnn.functional as F
import funcnn.layers.distributed as dist
from funcnn.parallel import GroupMismatchError, check_group, init_checked
from funcnn.utils import average_gradients, clip_grad_norm_sharded

GROUP = init_checked("ring")
RANK, N = GROUP.rank(), GROUP.size()
CHECKS: dict[str, Callable[[], Any]] = {}


def check(fn: Callable[[], Any]) -> Callable[[], Any]:
    CHECKS[fn.__name__] = fn
    return fn


def same(a: Any, b: Any) -> bool:
    """Bitwise equality of two arrays (dtype and shape included)."""
    return (
        a.dtype == b.dtype and a.shape == b.shape and mx.array_equal(a, b, equal_nan=True).item()
    )


def same_tree(got: Any, want: Any) -> None:
    g, w = funcnn.tree_flatten(got), mlx_flatten(want)
    assert [k for k, _ in g] == [k for k, _ in w], ([k for k, _ in g], [k for k, _ in w])
    for (k, a), (_, b) in zip(g, w):
        assert same(a, b), f"{k} differs"


def data(rank: int, shape: tuple, salt: int = 0) -> mx.array:
    """Rank ``rank``'s input: every rank can recompute every other rank's."""
    return mx.random.normal(shape, key=mx.random.key(1000 * salt + rank))


# --- the group --------------------------------------------------------------------------------


@check
def group_is_checked() -> str:
    assert (N, RANK) == (2, int(__import__("os").environ["MLX_RANK"]))
    total = mx.distributed.all_sum(mx.array([RANK + 1.0]), group=GROUP).item()
    assert total == 3.0, total
    return f"rank {RANK} of {N}"


@check
def check_group_detects_another_job() -> str:
    try:
        check_group(GROUP, token=f"job-of-rank-{RANK}")  # the other rank's differs
    except GroupMismatchError as e:
        msg = str(e)
        other = 1 - RANK
        assert f"rank {other} (127.0.0.1:" in msg and "another job's token" in msg, msg
        return msg
    raise AssertionError("no GroupMismatchError")


# --- gradients ---------------------------------------------------------------------------------


def _grads(rank: int) -> dict:
    return {
        "a": data(rank, (3, 4), 1),
        "b": [data(rank, (5,), 2), data(rank, (2, 2), 3)],
        "c": {"d": data(rank, (7,), 4)},
    }


@check
def average_gradients_matches_mlx() -> str:
    mine, other = _grads(RANK), _grads(1 - RANK)
    # 16 bytes: several buckets; 0: no bucketing; the default: one bucket.
    for size in (32 * 1024**2, 0, 16, 40):
        got = average_gradients(mine, GROUP, all_reduce_size=size)
        want = mlx_utils.average_gradients(mine, GROUP, all_reduce_size=size)
        same_tree(got, want)
        expect = funcnn.tree_map(lambda a, b: (a + b) / 2, mine, other)
        same_tree(got, expect)
    mixed = {"a": mine["a"], "h": mine["c"]["d"].astype(mx.float16)}
    same_tree(average_gradients(mixed, GROUP), mlx_utils.average_gradients(mixed, GROUP))
    return "buckets of 32 MiB, 0, 16, 40 bytes and mixed dtypes: bitwise equal"


@check
def average_gradients_keeps_node_types_and_none() -> str:
    mine, other = _grads(RANK), _grads(1 - RANK)
    tree = OrderedDict(t=(mine["a"], None), frozen=None, c=mine["c"], e=[])
    for size in (32 * 1024**2, 0):
        got = average_gradients(tree, GROUP, all_reduce_size=size)
        assert type(got) is OrderedDict and list(got) == ["t", "frozen", "c", "e"]
        assert type(got["t"]) is tuple and got["t"][1] is None and got["frozen"] is None
        assert got["e"] == []
        assert same(got["t"][0], (mine["a"] + other["a"]) / 2)
        assert same(got["c"]["d"], (mine["c"]["d"] + other["c"]["d"]) / 2)
    try:
        mlx_utils.average_gradients({"a": mine["a"], "frozen": None}, GROUP)
    except (AttributeError, TypeError, ValueError) as e:
        return f"mlx.nn on a None leaf: {type(e).__name__}: {e}"
    raise AssertionError("mlx.nn accepted a None leaf")


@check
def sum_gradients_matches_mlx() -> str:
    x = data(0, (3, 4), 5)  # the same input on both ranks
    w = data(RANK, (3, 4), 6)
    got = mx.grad(lambda v: (F.sum_gradients(GROUP)(v) * w).sum())(x)
    want = mx.grad(lambda v: (mlx_dist.sum_gradients(GROUP)(v) * w).sum())(x)
    assert same(got, want)
    assert same(got, data(0, (3, 4), 6) + data(1, (3, 4), 6))
    assert same(F.sum_gradients(GROUP)(x), x)
    return "gradient is the sum over ranks"


@check
def clip_grad_norm_sharded_matches_mlx() -> str:
    mine = _grads(RANK)
    for max_norm in (0.5, 1e6):
        got, got_norm = clip_grad_norm_sharded(mine, max_norm, GROUP)
        want, want_norm = mlx_utils.clip_grad_norm_sharded(mine, max_norm, GROUP)
        assert same(got_norm, want_norm)
        same_tree(got, want)
    everything = [a for r in range(N) for _, a in funcnn.tree_flatten(_grads(r))]
    full = mx.sqrt(sum((a.square().sum() for a in everything), mx.array(0.0)))
    assert mx.allclose(got_norm, full, rtol=1e-6).item(), (got_norm, full)
    return f"global norm {got_norm.item():.6f}"


# --- tensor-parallel layers ---------------------------------------------------------------------


def _value_and_grads(lib: Any, layer: Any, x: mx.array) -> tuple:
    """Output, input gradient and parameter gradients of a weighted sum of ``layer(x)``."""

    def loss(v: mx.array) -> mx.array:
        y = layer(v)
        return (y * mx.arange(y.size).reshape(y.shape)).sum()

    y = layer(x)
    gx = mx.grad(loss)(x)
    # Quantized layers are frozen: no parameter to differentiate.
    gp = lib.value_and_grad(layer, loss)(x)[1] if layer.trainable_parameters() else {}
    return y, gx, gp


def _same_layers(got: Any, want: Any, x: mx.array) -> None:
    assert type(got).__name__ == type(want).__name__, (type(got), type(want))
    assert repr(got) == repr(want), (repr(got), repr(want))
    same_tree(got.parameters(), want.parameters())
    (y, gx, gp), (y2, gx2, gp2) = _value_and_grads(funcnn, got, x), _value_and_grads(
        mlx.nn, want, x
    )
    assert same(y, y2) and same(gx, gx2)
    same_tree(gp, gp2)


@check
def shard_linear_matches_mlx_and_the_full_layer() -> str:
    done = []
    for sharding in ("all-to-sharded", "sharded-to-all"):
        for bias in (True, False):
            for segments in (1, 2, [0.25, 0.5]):
                mx.random.seed(7)
                full = mlx.nn.Linear(64, 8, bias)
                want = mlx_dist.shard_linear(full, sharding, segments=segments)
                mx.random.seed(7)
                source = funcnn.Linear(64, 8, bias)
                got = dist.shard_linear(source, sharding, segments=segments, group=GROUP)
                assert got.group.size() == 2
                x = data(0, (3, 64), 7)
                if sharding == "sharded-to-all" and segments == 1:
                    xs = x.reshape(3, 2, 32)[:, RANK]
                    _same_layers(got, want, xs)
                    # The ranks together compute the full layer.
                    assert mx.allclose(got(xs), full(x), atol=1e-5).item()
                elif sharding == "all-to-sharded":
                    _same_layers(got, want, x)
                    if segments == 1:
                        parts = mx.distributed.all_gather(got(x)[None], group=GROUP)
                        joined = mx.concatenate([parts[0], parts[1]], axis=-1)
                        assert mx.allclose(joined, full(x), atol=1e-5).item()
                else:
                    _same_layers(got, want, x.reshape(3, 2, 32)[:, RANK])
                done.append(f"{sharding}/{bias}/{segments}")
    return ", ".join(done)


@check
def from_linear_and_direct_layers_match_mlx() -> str:
    x = data(0, (3, 64), 8)
    for cls in ("AllToShardedLinear", "ShardedToAllLinear"):
        xs = x if cls == "AllToShardedLinear" else x.reshape(3, 2, 32)[:, RANK]
        mx.random.seed(9)
        want = getattr(mlx.nn, cls)(64, 8, bias=True, group=GROUP)
        mx.random.seed(9)
        got = getattr(funcnn, cls)(64, 8, bias=True, group=GROUP)
        _same_layers(got, want, xs)
        mx.random.seed(10)
        want = getattr(mlx.nn, cls).from_linear(mlx.nn.Linear(64, 8), segments=2, group=GROUP)
        mx.random.seed(10)
        got = getattr(funcnn, cls).from_linear(funcnn.Linear(64, 8), segments=2, group=GROUP)
        _same_layers(got, want, xs)
    return "constructors (seeded draws) and from_linear"


@check
def shard_inplace_matches_mlx() -> str:
    for sharding, segments in (("all-to-sharded", 1), ("sharded-to-all", 2), ("all-to-sharded", [0.5])):
        mx.random.seed(11)
        want = mlx.nn.MultiHeadAttention(8, 2, bias=True)
        mx.random.seed(11)
        got = funcnn.MultiHeadAttention(8, 2, bias=True)
        mlx_dist.shard_inplace(want, sharding, segments=segments, group=GROUP)
        dist.shard_inplace(got, sharding, segments=segments, group=GROUP)
        same_tree(got.parameters(), want.parameters())
    return "MultiHeadAttention parameters"


@check
def quantized_sharded_layers_match_mlx() -> str:
    done = []
    for sharding in ("all-to-sharded", "sharded-to-all"):
        for mode, bits, group_size in (("affine", 4, 32), ("affine", 8, 32), ("mxfp4", 4, 32)):
            mx.random.seed(3)
            oracle = mlx.nn.QuantizedLinear(128, 8, True, group_size=group_size, bits=bits, mode=mode)
            oracle.bias = data(0, (8,), 9)
            source = funcnn.QuantizedLinear(128, 8, True, group_size=group_size, bits=bits, mode=mode)
            source.update(dict(oracle.parameters()))
            want = mlx_dist.shard_linear(oracle, sharding, group=GROUP)
            got = dist.shard_linear(source, sharding, group=GROUP)
            x = data(0, (3, 128), 10)
            xs = x if sharding == "all-to-sharded" else x.reshape(3, 2, 64)[:, RANK]
            assert got.trainable_parameters() == {}
            _same_layers(got, want, xs)
            done.append(f"{sharding}/{mode}{bits}")
    for cls in ("QuantizedAllToShardedLinear", "QuantizedShardedToAllLinear"):
        mx.random.seed(4)
        want = getattr(mlx.nn, cls)(128, 8, bias=False, group_size=32, bits=8, group=GROUP)
        mx.random.seed(4)
        got = getattr(funcnn, cls)(128, 8, bias=False, group_size=32, bits=8, group=GROUP)
        xs = data(0, (3, 128), 11)
        xs = xs if "AllToSharded" in cls else xs.reshape(3, 2, 64)[:, RANK]
        _same_layers(got, want, xs)
        done.append(cls)
    return ", ".join(done)


# --- fully sharded modules -----------------------------------------------------------------------


@check
def fully_shard_forward_matches_mlx() -> str:
    x = data(0, (3, 8), 12)
    mx.random.seed(13)
    full = mlx.nn.Linear(8, 6)
    y_full = full(x)
    mx.random.seed(13)
    want = mlx.nn.fully_shard(mlx.nn.Linear(8, 6), group=GROUP)
    mx.random.seed(13)
    got = funcnn.fully_shard(funcnn.Linear(8, 6), group=GROUP)
    assert repr(got) == repr(want), (repr(got), repr(want))
    same_tree(got.parameters(), want.parameters())
    assert got.module.weight.shape == (3, 8)
    assert same(got(x), want(x)) and same(got(x), y_full)
    # The functional pair: the same shards and the same output.
    pair = F.fully_sharded_module(F.linear(8, 6), group=GROUP)
    mx.random.seed(13)
    params = pair.init()
    same_tree(params, {"module": dict(want.module.parameters())})
    assert same(pair.apply(params, x), y_full)
    return "forward bitwise equal to mlx.nn and to the unsharded layer"


@check
def fully_shard_backward_on_ring_raises_clearly() -> str:
    x = data(0, (3, 8), 12)
    mx.random.seed(13)
    want = mlx.nn.fully_shard(mlx.nn.Linear(8, 6), group=GROUP)
    mx.random.seed(13)
    got = funcnn.fully_shard(funcnn.Linear(8, 6), group=GROUP)
    # mlx.nn: the call succeeds, mx.eval fails with the backend's terse message.
    _, grads = mlx.nn.value_and_grad(want, lambda v: want(v).sum())(x)
    try:
        mx.eval(grads)
    except RuntimeError as e:
        mlx_msg = str(e)
    else:
        raise AssertionError("mlx.nn's fully sharded backward ran on ring")
    assert "sum_scatter" in mlx_msg
    messages = []
    pair = F.fully_sharded_module(F.linear(8, 6), group=GROUP)
    params = pair.init()
    calls = {
        "module": lambda: funcnn.value_and_grad(got, lambda v: got(v).sum())(x),
        "pair": lambda: mx.grad(lambda p: pair.apply(p, x).sum())(params),
    }
    for name, call in calls.items():
        try:
            call()  # raises here, while the backward pass is built: nothing to evaluate
        except RuntimeError as e:
            msg = str(e)
        else:
            raise AssertionError(f"{name}: no error at the call")
        assert "ring backend" in msg and "average_gradients" in msg, msg
        messages.append(msg)
    # The group is still usable afterwards.
    assert mx.distributed.all_sum(mx.array([1.0]), group=GROUP).item() == 2.0
    return f"mlx.nn at eval: {mlx_msg!r}; funcnn at the call: {messages[0]!r}"


def main() -> None:
    only = sys.argv[1:]
    results = {}
    for name, fn in CHECKS.items():
        if only and name not in only:
            continue
        try:
            results[name] = {"ok": True, "detail": str(fn())}
        except Exception as e:  # noqa: BLE001 - reported to the test, which fails on it
            results[name] = {"ok": False, "detail": f"{type(e).__name__}: {e}\n{traceback.format_exc()}"}
    print("RESULT" + json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
