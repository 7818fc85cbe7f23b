"""Tensor parallelism from specs (funcnn.parallel.tensor_parallel).

In-process with the emulator for 2 and 4 virtual ranks, plus one real 2-rank
ring run.  Sharding, gathering and resharding only move data, so they are
checked bit for bit; a sharded block sums its row-parallel partial products
in another order than one process, so its outputs and gradients are compared
to float32 round-off (``rtol=1e-5, atol=1e-6``); the real ring run gives the emulator's
bits.
"""

from __future__ import annotations

# isort: off
# funcnn first, as conftest.py does: the real ranks import this module directly.
import funcnn  # noqa: F401
import mlx.core as mx

# isort: on
import json
import os
import sys

import numpy as np
import pytest

import funcnn.functional as F
from funcnn.optimizers import clip_grad_norm as full_clip_grad_norm
from funcnn.parallel.emulate import EmulatedGroup, emulate
from funcnn.parallel.tensor_parallel import (
    Replicated,
    Shard,
    clip_grad_norm,
    copy_to_parallel,
    gather,
    gather_arrays,
    megatron_spec,
    parallel_encoder_layer_apply,
    parallel_mlp_apply,
    reduce_from_parallel,
    reshard_arrays,
    shard,
    shard_arrays,
    spec_from_patterns,
)
from funcnn.tree import tree_flatten, tree_map

RTOL, ATOL = 1e-5, 1e-6


def _params():
    k = iter(mx.random.split(mx.random.key(3), 6))
    return {
        "qkv": {"weight": mx.random.normal((24, 4), key=next(k)), "bias": mx.random.normal((24,), key=next(k))},
        "conv": mx.random.normal((8, 3, 4, 12), key=next(k)),
        "fused": mx.random.normal((2, 16), key=next(k)),
        "norm": [mx.random.normal((5,), key=next(k)), None],
        "step": mx.array([7], mx.int32),
    }


SPECS = {
    "rows": {"qkv.*": Shard(0), "conv": Shard(0), "fused": Shard(1)},
    "segments": {"qkv.*": Shard(0, segments=3), "conv": Shard(-1, segments=3),
                 "fused": Shard(1, segments=[4, 8])},
    "inner_axis": {"qkv.weight": Shard(1), "conv": Shard(2), "fused": Shard(-1, 2)},
}


def _equal(a, b):
    fa, fb = tree_flatten(a), tree_flatten(b)
    assert [k for k, _ in fa] == [k for k, _ in fb]
    for (k, u), (_, v) in zip(fa, fb):
        if u is None:
            assert v is None, k
            continue
        assert u.dtype == v.dtype and u.shape == v.shape and mx.array_equal(u, v).item(), k


def _close(a, b):
    fa, fb = tree_flatten(a), tree_flatten(b)
    assert [k for k, _ in fa] == [k for k, _ in fb]
    for (k, u), (_, v) in zip(fa, fb):
        np.testing.assert_allclose(np.array(u), np.array(v), rtol=RTOL, atol=ATOL, err_msg=k)


def _rank(tree, r):
    return tree_map(lambda a: a if a is None else a[r], tree)


def _numpy_shard(x, s, n, r):
    """Reference layout (mlx.nn's shard_inplace): split into segments, each split over ranks."""
    x = np.array(x)
    axis = s.axis % x.ndim
    bounds = (np.split(x, s.segments, axis=axis) if isinstance(s.segments, int)
              else np.split(x, list(s.segments), axis=axis))
    return np.concatenate([np.split(b, n, axis=axis)[r] for b in bounds], axis=axis)


# --- specs ------------------------------------------------------------------------------------


def test_spec_from_patterns_takes_the_first_match_and_defaults():
    p = _params()
    spec = spec_from_patterns(p, {"qkv.bias": Replicated(), "qkv.*": Shard(0), "*": None},
                              default=Shard(0))
    assert spec["qkv"] == {"weight": Shard(0), "bias": Replicated()}
    assert spec["conv"] is None and spec["norm"] == [None, None]
    spec = spec_from_patterns(p, {"*.weight": Shard(1)})
    assert spec["qkv"] == {"weight": Shard(1), "bias": Replicated()} and spec["step"] == Replicated()


def test_spec_errors_name_the_problem():
    p = _params()
    with pytest.raises(ValueError, match=r"patterns matching no array: \['qkv.wieght'\]"):
        spec_from_patterns(p, {"qkv.wieght": Shard(0)})
    with pytest.raises(TypeError, match="expected a spec leaf .* got int"):
        spec_from_patterns(p, {"conv": 0})
    with pytest.raises(ValueError, match="positive int or split points, got 0"):
        Shard(0, segments=0)
    with pytest.raises(ValueError, match=r"increasing positive int split points, got \[4, 2\]"):
        Shard(0, segments=[4, 2])
    with pytest.raises(TypeError, match="int axis, got 0.5"):
        Shard(0.5)
    g = EmulatedGroup(2)
    with pytest.raises(ValueError, match="qkv.weight: cannot shard a segment of size 3"):
        shard(p, spec_from_patterns(p, {"qkv.weight": Shard(0, segments=8)}), g)
    with pytest.raises(ValueError, match="conv: cannot split an axis of size 12 into 5"):
        shard(p, spec_from_patterns(p, {"conv": Shard(3, segments=5)}), g)
    with pytest.raises(ValueError, match="conv: Shard axis 4 is out of range"):
        shard(p, spec_from_patterns(p, {"conv": Shard(4)}), g)
    with pytest.raises(ValueError, match="split points \\[4, 24\\] are out of range"):
        shard(p, spec_from_patterns(p, {"qkv.bias": Shard(0, segments=[4, 24])}), g)
    with pytest.raises(ValueError, match="does not match the tree's structure"):
        shard(p, {"qkv": Shard(0)}, g)
    with pytest.raises(TypeError, match="expected a group .* got str"):
        gather(p, spec_from_patterns(p, {}), "ring")
    with pytest.raises(ValueError, match="positive int number of ranks, got 0"):
        reshard_arrays([p], spec_from_patterns(p, {}), 0)


def test_a_spec_in_another_key_order_still_matches():
    p = {"a": mx.arange(4.0), "b": mx.arange(2.0)}
    out = shard_arrays(p, {"b": Replicated(), "a": Shard(0)}, 2)
    assert out[1]["a"].tolist() == [2.0, 3.0] and out[1]["b"].tolist() == [0.0, 1.0]


# --- shard / gather / reshard -----------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 4])
@pytest.mark.parametrize("name", list(SPECS))
def test_shard_then_gather_is_the_identity_bit_for_bit(n, name):
    p = _params()
    spec = spec_from_patterns(p, SPECS[name])
    shards = emulate(lambda g, q: shard(q, spec, g), n, p, in_axes=None)
    offline = shard_arrays(p, spec, n)
    flat_spec = dict(tree_flatten(spec))
    for r in range(n):
        _equal(_rank(shards, r), offline[r])
        for k, v in tree_flatten(offline[r]):
            s = flat_spec[k]
            want = _numpy_shard(dict(tree_flatten(p))[k], s, n, r) if isinstance(s, Shard) else None
            if want is not None:
                np.testing.assert_array_equal(np.array(v), want, err_msg=k)
                assert v.shape[s.axis] * n == dict(tree_flatten(p))[k].shape[s.axis]
    full = emulate(lambda g, s: gather(s, spec, g), n, shards)
    for r in range(n):
        _equal(_rank(full, r), p)
    _equal(gather_arrays(offline, spec), p)


def test_segments_follow_shard_params_on_one_process():
    # On one process the layout code of funcnn.functional.shard_params is the reference.
    p = {"weight": mx.arange(24.0).reshape(6, 4)}
    group = mx.distributed.init()
    got = shard(p, {"weight": Shard(0, segments=3)}, group)
    _equal(got, F.shard_params(p, lambda path, w: (0, 3), group=group))


def test_reshard_two_four_one_bit_for_bit():
    p = _params()
    spec = spec_from_patterns(p, SPECS["segments"])
    two = shard_arrays(p, spec, 2)
    four = reshard_arrays(two, spec, 4)
    for got, want in zip(four, shard_arrays(p, spec, 4)):
        _equal(got, want)
    (one,) = reshard_arrays(four, spec, 1)
    _equal(one, p)
    # A gathered checkpoint (one tree) loads on 2 ranks as the 4-rank run left it.
    for got, want in zip(reshard_arrays([one], spec, 2), two):
        _equal(got, want)
    with pytest.raises(ValueError, match="rank 1's tree does not match"):
        gather_arrays([two[0], {"other": mx.ones(1)}], spec)


def test_gradients_flow_through_gather():
    p = {"w": mx.arange(8.0).reshape(2, 4)}
    spec = {"w": Shard(1, segments=2)}
    weights = mx.arange(8.0).reshape(2, 4) + 1
    shards = shard_arrays(p, spec, 2)
    stacked = {"w": mx.stack([s["w"] for s in shards])}
    grads = emulate(lambda g, s: mx.grad(lambda s: (gather(s, spec, g)["w"] * weights).sum())(s),
                    2, stacked)
    for r, want in enumerate(shard_arrays({"w": weights}, spec, 2)):
        _equal({"w": grads["w"][r]}, want)


# --- the Megatron edges -------------------------------------------------------------------------


def test_copy_and_reduce_have_the_megatron_gradients():
    w = mx.array([[1.0, 2.0], [3.0, 5.0]])

    def per_rank(g, wr, x):
        copy_out, copy_grad = mx.vjp(lambda v: copy_to_parallel(v, g) * wr, [x], [mx.ones(2)])
        red_out, red_grad = mx.vjp(lambda v: reduce_from_parallel(v * wr, g), [x], [mx.ones(2)])
        return copy_out[0], copy_grad[0], red_out[0], red_grad[0]

    copy_out, copy_grad, red_out, red_grad = emulate(per_rank, 2, w, mx.ones(2), in_axes=(0, None))
    assert copy_out.tolist() == w.tolist()
    assert copy_grad.tolist() == [[4.0, 7.0]] * 2  # summed over the ranks
    assert red_out.tolist() == [[4.0, 7.0]] * 2
    assert red_grad.tolist() == w.tolist()  # this rank's own


BLOCK = {"dims": 16, "num_heads": 4, "mlp_dims": 32}


def _block_case(norm_first):
    block = F.transformer_encoder_layer(**BLOCK, norm_first=norm_first)
    params = block.init(mx.random.key(0))
    x = mx.random.normal((2, 5, 16), key=mx.random.key(1))
    target = mx.random.normal((2, 5, 16), key=mx.random.key(2))
    mask = F.create_additive_causal_mask(5)
    return block, params, x, target, mask


@pytest.mark.parametrize("n,norm_first", [(2, True), (2, False), (4, True)])
def test_a_sharded_transformer_block_gives_the_single_process_outputs_and_gradients(n, norm_first):
    block, params, x, target, mask = _block_case(norm_first)
    spec = megatron_spec(params)

    def full_loss(p):
        y = block.apply(p, x, mask, training=False)
        return ((y - target) ** 2).mean(), y

    (loss, y), grads = mx.value_and_grad(full_loss)(params)

    def per_rank(g, p):
        local = shard(p, spec, g)

        def loss_fn(q):
            out = parallel_encoder_layer_apply(q, x, mask, num_heads=BLOCK["num_heads"], group=g,
                                               norm_first=norm_first)
            return ((out - target) ** 2).mean(), out

        (l, out), local_grads = mx.value_and_grad(loss_fn)(local)
        return l, out, gather(local_grads, spec, g), local_grads

    l, out, full_grads, local_grads = emulate(per_rank, n, params, in_axes=None)
    for r in range(n):
        np.testing.assert_allclose(l[r].item(), loss.item(), rtol=RTOL)
        _close(out[r], y)
        _close(_rank(full_grads, r), grads)
    # Each rank's gradient is its shard of the full gradient: heads and MLP rows split.
    assert local_grads["attention"]["query_proj"]["weight"].shape == (n, 16 // n, 16)
    assert local_grads["linear2"]["weight"].shape == (n, 16, 32 // n)


def test_the_mlp_without_copy_to_parallel_would_lose_gradient():
    p = F.sequential(F.linear(4, 8), F.relu(), F.linear(8, 4)).init(mx.random.key(0))
    p = {"linear1": p["layers"][0], "linear2": p["layers"][2]}
    spec = megatron_spec(p)
    x = mx.random.normal((3, 4), key=mx.random.key(1))

    def full(v):
        return F.linear_apply(p["linear2"], mx.maximum(F.linear_apply(p["linear1"], v), 0)).sum()

    want = mx.grad(full)(x)
    got = emulate(lambda g, q: mx.grad(lambda v: parallel_mlp_apply(shard(q, spec, g), v, g).sum())(x),
                  2, p, in_axes=None)
    _close(got[0], want)
    _close(got[1], want)
    assert not np.allclose(np.array(got[0]), 0.5 * np.array(want))  # not just one rank's share


def test_heads_must_divide_by_the_ranks():
    _, params, x, _, mask = _block_case(True)
    with pytest.raises(ValueError, match="cannot split 4 attention heads across 3 ranks"):
        emulate(lambda g, p: parallel_encoder_layer_apply(p, x, mask, num_heads=4, group=g), 3,
                params, in_axes=None)


# --- clipping -------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 4])
def test_clip_grad_norm_equals_the_single_process_norm(n):
    block, params, x, target, mask = _block_case(True)
    spec = megatron_spec(params)
    grads = mx.grad(lambda p: ((block.apply(p, x, mask, training=False) - target) ** 2).sum())(params)
    want_clipped, want_norm = full_clip_grad_norm(grads, 0.5)
    assert want_norm.item() > 0.5  # so the clipping does something
    local = shard_arrays(grads, spec, n)
    stacked = tree_map(lambda *a: mx.stack(a), *local)
    clipped, norm = emulate(lambda g, gr: clip_grad_norm(gr, 0.5, spec, g), n, stacked)
    np.testing.assert_allclose(np.array(norm), [want_norm.item()] * n, rtol=RTOL)
    _close(gather_arrays([_rank(clipped, r) for r in range(n)], spec), want_clipped)
    # Summing every leaf over the ranks (clip_grad_norm_sharded's rule) would count the
    # replicated layer norms n times.
    naive = sum((a.astype(mx.float32) ** 2).sum().item() for r in range(n)
                for _, a in tree_flatten(local[r]))
    assert naive > want_norm.item() ** 2 * (1 + 1e-3)


# --- one real 2-rank ring run ------------------------------------------------------------------


def ring_rank_main() -> None:
    """One rank of the real job: the sharded block's loss and gathered gradients."""
    from funcnn.parallel.launch import init_checked

    group = init_checked("ring")
    _, params, x, target, mask = _block_case(True)
    spec = megatron_spec(params)

    def loss_fn(q):
        out = parallel_encoder_layer_apply(q, x, mask, num_heads=BLOCK["num_heads"], group=group)
        return ((out - target) ** 2).mean()

    loss, local = mx.value_and_grad(loss_fn)(shard(params, spec, group))
    full = gather(local, spec, group)
    _, norm = clip_grad_norm(local, 0.5, spec, group)
    out = {k: np.array(v).tolist() for k, v in tree_flatten(full)}
    print("RESULT" + json.dumps({"loss": loss.item(), "norm": norm.item(), "grads": out}))


def test_a_real_ring_gives_what_the_emulator_gives():
    launch = pytest.importorskip("funcnn.parallel.launch")
    here = os.path.dirname(os.path.abspath(__file__))
    env = {"PYTHONPATH": here + os.pathsep + os.environ.get("PYTHONPATH", "")}
    results = launch.run_ranks("test_tensor_parallel:ring_rank_main", n=2, env=env, timeout=120,
                               python=sys.executable)
    real = [r.json("RESULT") for r in results]
    assert real[0] == real[1]
    _, params, x, target, mask = _block_case(True)
    spec = megatron_spec(params)

    def per_rank(g, p):
        def loss_fn(q):
            out = parallel_encoder_layer_apply(q, x, mask, num_heads=BLOCK["num_heads"], group=g)
            return ((out - target) ** 2).mean()

        loss, local = mx.value_and_grad(loss_fn)(shard(p, spec, g))
        return loss, gather(local, spec, g), clip_grad_norm(local, 0.5, spec, g)[1]

    loss, grads, norm = emulate(per_rank, 2, params, in_axes=None)
    # Same per-rank ops and a two-term sum in each all_sum: the same bits.
    assert real[0]["loss"] == loss[0].item() and real[0]["norm"] == norm[0].item()
    for k, v in tree_flatten(grads):
        np.testing.assert_array_equal(np.array(real[0]["grads"][k]), np.array(v[0]), err_msg=k)
