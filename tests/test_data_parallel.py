"""Exact data parallelism and the in-process emulator (funcnn.parallel.{collectives,data_parallel,emulate}).

Most tests run N virtual ranks in one process (``emulate``); one runs a real
2-rank ring job and compares it with the emulator.
"""

from __future__ import annotations

import itertools
import json
import os
import sys

# isort: off
# funcnn first, as conftest.py does: the real ranks import this module directly, and a
# rank on MLX's reference BLAS would not match the emulator (on OpenBLAS) bit for bit.
import funcnn
import mlx.core as mx

# isort: on
import numpy as np
import pytest

import funcnn.functional as F
import funcnn.optimizers as optim
import funcnn.transforms as T
from funcnn.parallel import collectives as C
from funcnn.parallel.data_parallel import (
    Sums,
    add_sums,
    all_sum_tree,
    check_replicated,
    leaf_mismatch,
    local_sums,
    reduce_sums,
    value_and_grad,
)
from funcnn.parallel.emulate import EmulatedGroup, emulate, stack_shards
from funcnn.tree import tree_flatten, tree_map

MLP = F.sequential(F.linear(5, 16), F.relu(), F.linear(16, 3))
SPLITS = {2: [5, 2], 3: [4, 2, 1]}  # uneven shards of a 7-example global batch


def _data(seed: int = 0, n: int = 7):
    k1, k2 = mx.random.split(mx.random.key(seed))
    return mx.random.normal((n, 5), key=k1), mx.random.randint(0, 3, (n,), key=k2)


def _sum_loss(params, x, y, mask):
    per_example = funcnn.losses.cross_entropy(MLP.apply(params, x), y)
    return (per_example * mask).sum(), mask.sum()


def _mean_loss(params, x, y):
    return funcnn.losses.cross_entropy(MLP.apply(params, x), y, reduction="mean")


def _shards(x, y, sizes):
    bounds = np.cumsum([0, *sizes]).tolist()
    xs, mask = stack_shards([x[a:b] for a, b in itertools.pairwise(bounds)])
    ys, _ = stack_shards([y[a:b] for a, b in itertools.pairwise(bounds)])
    return xs, ys, mask


def _close(a, b, rtol=1e-5, atol=1e-6):
    fa, fb = tree_flatten(a), tree_flatten(b)
    assert [k for k, _ in fa] == [k for k, _ in fb]
    for (k, u), (_, v) in zip(fa, fb):
        np.testing.assert_allclose(np.array(u), np.array(v), rtol=rtol, atol=atol, err_msg=k)


def _equal(a, b):
    fa, fb = tree_flatten(a), tree_flatten(b)
    assert [k for k, _ in fa] == [k for k, _ in fb]
    for (k, u), (_, v) in zip(fa, fb):
        assert u.dtype == v.dtype and mx.array_equal(u, v).item(), k


def _rank(tree, r):
    return tree_map(lambda a: a[r], tree)


# --- collectives -------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3])
def test_emulated_collectives_match_their_definition(n):
    x = mx.random.normal((n, 2, 3), key=mx.random.key(1))
    got = emulate(
        lambda g, v: (C.all_sum(v, g), C.all_gather(v, g), C.all_max(v, g), C.all_min(v, g),
                      C.rank(g), C.size(g) + 0 * v.sum()),
        n, x,
    )
    xn = np.array(x)
    for r in range(n):
        np.testing.assert_allclose(np.array(got[0][r]), xn.sum(0), rtol=1e-6)
        np.testing.assert_array_equal(np.array(got[1][r]), xn.reshape(n * 2, 3))
        np.testing.assert_array_equal(np.array(got[2][r]), xn.max(0))
        np.testing.assert_array_equal(np.array(got[3][r]), xn.min(0))
    assert got[4].tolist() == list(range(n)) and got[5].tolist() == [n] * n


def test_a_replicated_value_is_summed_over_every_rank():
    out = emulate(lambda g, w, x: C.all_sum(w, g) + 0 * x, 3, mx.array(2.0), mx.zeros(3),
                  in_axes=(None, 0))
    assert out.tolist() == [6.0, 6.0, 6.0]
    gathered = emulate(lambda g, w: C.all_gather(w, g), 2, mx.array([1.0, 2.0]), in_axes=None)
    assert gathered.tolist() == [[1.0, 2.0, 1.0, 2.0]] * 2


def test_gradients_of_collectives_follow_mlx():
    # all_sum: the identity (this rank's share); all_gather: this rank's slice of the cotangent.
    x = mx.array([[1.0, 2.0], [3.0, 4.0]])
    g_sum = emulate(lambda g, v: mx.grad(lambda u: (C.all_sum(u, g) ** 2).sum())(v), 2, x)
    np.testing.assert_array_equal(np.array(g_sum), 2 * (np.array(x).sum(0)[None].repeat(2, 0)))
    weights = mx.arange(4.0)
    g_gather = emulate(
        lambda g, v: mx.grad(lambda u: (C.all_gather(u, g) * weights).sum())(v), 2, x
    )
    assert g_gather.tolist() == [[0.0, 1.0], [2.0, 3.0]]
    with pytest.raises(ValueError, match="not differentiable"):
        emulate(lambda g, v: mx.grad(lambda u: C.all_max(u, g).sum())(v), 2, x)


def test_bad_groups_ranks_and_inputs_are_refused():
    with pytest.raises(TypeError, match="expected a group .* got int"):
        C.all_sum(mx.ones(2), 3)
    with pytest.raises(TypeError, match="expected an mlx.core.array, got list"):
        C.all_sum([1.0], EmulatedGroup(2))
    with pytest.raises(ValueError, match="positive int number of ranks, got 0"):
        emulate(lambda g: None, 0)
    with pytest.raises(ValueError, match="positive int size, got 1.5"):
        EmulatedGroup(1.5)
    with pytest.raises(ValueError, match="at least one dimension, got a scalar"):
        emulate(lambda g, v: C.all_gather(v, g), 2, mx.ones(2))
    with pytest.raises(ValueError, match="one trailing shape"):
        stack_shards([mx.ones((2, 3)), mx.ones((1, 4))])
    with pytest.raises(ValueError, match=r"return \(sum, count\), got array"):
        local_sums(lambda p: p.sum())(mx.ones(2))


def test_real_single_process_group_is_the_identity():
    group = mx.distributed.init()
    params = MLP.init(mx.random.key(0))
    x, y = _data()
    loss, grads = value_and_grad(_sum_loss, group)(params, x, y, mx.ones(7))
    want_loss, want = mx.value_and_grad(_mean_loss)(params, x, y)
    _close(grads, want)
    np.testing.assert_allclose(loss.item(), want_loss.item(), rtol=1e-6)
    check_replicated(params, group)


# --- exact data parallelism ----------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3])
def test_uneven_shards_give_the_full_batch_gradient_and_mean_of_means_does_not(n):
    params = MLP.init(mx.random.key(0))
    x, y = _data()
    xs, ys, mask = _shards(x, y, SPLITS[n])
    loss, grads = emulate(value_and_grad(_sum_loss), n, params, xs, ys, mask,
                          in_axes=(None, 0, 0, 0))
    want_loss, want = mx.value_and_grad(_mean_loss)(params, x, y)
    for r in range(n):
        _close(_rank(grads, r), want)
        np.testing.assert_allclose(loss[r].item(), want_loss.item(), rtol=1e-6)
    _equal(_rank(grads, 0), _rank(grads, n - 1))  # every rank holds the same bits

    def mean_of_means(g, p, xr, yr, mr):  # what averaging per-rank mean gradients gives
        def mean(q):
            total, count = _sum_loss(q, xr, yr, mr)
            return total / count

        grads = mx.grad(mean)(p)
        return tree_map(lambda a: C.all_sum(a, g) / n, grads)

    biased = emulate(mean_of_means, n, params, xs, ys, mask, in_axes=(None, 0, 0, 0))
    gap = max(np.abs(np.array(u) - np.array(v)).max()
              for (_, u), (_, v) in zip(tree_flatten(_rank(biased, 0)), tree_flatten(want)))
    assert gap > 1e-3


@pytest.mark.parametrize("n", [2, 3])
def test_bucket_sizes_do_not_change_the_result_and_set_the_number_of_all_reduces(n):
    params = MLP.init(mx.random.key(0))
    xs, ys, mask = _shards(*_data(), SPLITS[n])
    calls: list[int] = []

    class Counting:  # an emulated group that counts its all_sum calls
        def __init__(self, g):
            self.g = g

        def rank(self):
            return self.g.rank()

        def size(self):
            return self.g.size()

        def all_sum(self, v):
            calls.append(v.size)
            return self.g.all_sum(v)

    results = {}
    # float32 bytes: loss + count 8, weight 320, bias 64, weight 192, bias 12
    expected = {0: [1, 1, 80, 16, 48, 3], 1: [1, 1, 80, 16, 48, 3], 64: [82, 16, 48, 3],
                400: [146, 3], 32 * 1024**2: [149]}
    for size, want_calls in expected.items():
        calls.clear()
        step = value_and_grad(_sum_loss, all_reduce_size=size)
        results[size] = emulate(lambda g, *a, step=step: step(Counting(g), *a), n, params, xs, ys, mask,
                                in_axes=(None, 0, 0, 0))
        assert calls == want_calls, size
    for size, got in results.items():
        _equal(got, results[0])


def test_mixed_dtypes_get_a_bucket_each_and_keep_their_dtype():
    tree = {"a": mx.ones((2, 3), mx.float16), "b": mx.ones((2, 2)), "c": None, "d": 4}
    out = emulate(lambda g, t: all_sum_tree(t, g), 2, tree, in_axes=({"a": 0, "b": 0, "c": None,
                                                                      "d": None},))
    assert out["a"].dtype == mx.float16 and out["a"].tolist() == [[2.0] * 3] * 2
    assert out["b"].tolist() == [[2.0, 2.0]] * 2 and out["c"] is None and out["d"] == 4


def test_gradient_accumulation_is_adding_sums():
    n = 3
    params = MLP.init(mx.random.key(0))
    x, y = _data(3, 13)
    xs, ys, mask = _shards(x, y, [6, 4, 3])

    def accumulated(g, p, xr, yr, mr):
        sums = local_sums(_sum_loss)
        total = sums(p, xr[:3], yr[:3], mr[:3])
        total = add_sums(total, sums(p, xr[3:], yr[3:], mr[3:]))  # a second micro-batch
        return reduce_sums(total, g)

    loss, grads = emulate(accumulated, n, params, xs, ys, mask, in_axes=(None, 0, 0, 0))
    one_shot_loss, one_shot = emulate(value_and_grad(_sum_loss), n, params, xs, ys, mask,
                                      in_axes=(None, 0, 0, 0))
    want_loss, want = mx.value_and_grad(_mean_loss)(params, x, y)
    _close(_rank(grads, 1), want)
    _close(grads, one_shot)
    _close(loss, one_shot_loss)
    np.testing.assert_allclose(loss[0].item(), want_loss.item(), rtol=1e-6)
    s = Sums(mx.array(1.0), mx.array(2), {"w": mx.ones(2), "frozen": None})
    assert add_sums(s, s).grads["frozen"] is None and add_sums(s, s).count.item() == 4


# --- compile and optimizers --------------------------------------------------------------


def _train_step(opt):
    grad_fn = value_and_grad(_sum_loss)

    def step(g, params, state, x, y, mask):
        loss, grads = grad_fn(g, params, x, y, mask)
        params, state = opt.update(grads, state, params)
        return loss, params, state

    return step


def test_compiled_step_equals_eager():
    n = 3
    opt = optim.adam(1e-2)
    params = MLP.init(mx.random.key(0))
    state = opt.init(params)
    xs, ys, mask = _shards(*_data(), SPLITS[n])
    step = _train_step(opt)
    axes = (None, None, 0, 0, 0)
    eager = emulate(step, n, params, state, xs, ys, mask, in_axes=axes)
    whole = mx.compile(lambda *a: emulate(step, n, *a, in_axes=axes))(params, state, xs, ys, mask)
    per_rank = emulate(T.compile(step), n, params, state, xs, ys, mask, in_axes=axes)  # group: static
    facade = T.compile(lambda *a: emulate(step, n, *a, in_axes=axes))(params, state, xs, ys, mask)
    for got in (whole, per_rank, facade):
        _equal(got, eager)


def test_a_few_optimizer_steps_equal_single_process_training():
    n = 3
    opt = optim.adam(1e-2)
    params = MLP.init(mx.random.key(0))  # a shared key: replicated by construction
    state = opt.init(params)
    ref_params, ref_state = params, state
    step = mx.compile(lambda *a: emulate(_train_step(opt), n, *a, in_axes=(None, None, 0, 0, 0)))
    for i in range(4):
        x, y = _data(10 + i)
        loss, per_rank, per_rank_state = step(params, state, *_shards(x, y, SPLITS[n]))
        check_replicated(per_rank, EmulatedGroup(n))
        params, state = _rank(per_rank, 0), _rank(per_rank_state, 0)
        ref_loss, grads = mx.value_and_grad(_mean_loss)(ref_params, x, y)
        ref_params, ref_state = opt.update(grads, ref_state, ref_params)
        np.testing.assert_allclose(loss[0].item(), ref_loss.item(), rtol=1e-5)
    _close(params, ref_params, rtol=1e-4, atol=1e-5)


def test_a_module_trains_with_its_frozen_parameters_left_alone():
    model = funcnn.Sequential(funcnn.Linear(5, 4), funcnn.ReLU(), funcnn.Linear(4, 3))
    model.layers[0].freeze()
    x, y = _data()
    xs, ys, mask = _shards(x, y, SPLITS[2])

    def loss(m, xr, yr, mr):
        return (funcnn.losses.cross_entropy(m(xr), yr) * mr).sum(), mr.sum()

    _, grads = emulate(value_and_grad(loss), 2, model, xs, ys, mask, in_axes=(None, 0, 0, 0))
    _, want = T.value_and_grad(lambda m: funcnn.losses.cross_entropy(m(x), y, reduction="mean"))(model)
    assert grads["layers"][0]["weight"] is None
    _close(grads["layers"][2]["weight"][1], want["layers"][2]["weight"])


# --- replication check -------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3])
def test_check_replicated_names_the_perturbed_leaf(n):
    params = MLP.init(mx.random.key(0))
    stacked = tree_map(lambda a: mx.broadcast_to(a[None], (n, *a.shape)), params)
    check_replicated(stacked, EmulatedGroup(n))  # silent
    w = np.array(stacked["layers"][2]["weight"])
    w[n - 1, 1, 2] = np.nextafter(w[n - 1, 1, 2], np.float32(np.inf))  # one ulp on one rank
    stacked["layers"][2]["weight"] = mx.array(w)
    with pytest.raises(ValueError, match=rf"differ across the {n} ranks: layers\.2\.weight$"):
        check_replicated(stacked, EmulatedGroup(n))
    flags = emulate(lambda g, p: leaf_mismatch(p, g), n, stacked)
    assert {k: v.tolist() for k, v in flags.items()} == {
        "layers.0.weight": [False] * n, "layers.0.bias": [False] * n,
        "layers.2.weight": [True] * n, "layers.2.bias": [False] * n,
    }


def test_check_replicated_sees_every_dtype():
    for dtype in (mx.float16, mx.bfloat16, mx.int64, mx.bool_, mx.uint8):
        p = {"a": mx.zeros((2, 3), dtype)}
        check_replicated(p, EmulatedGroup(2))
        p["a"] = mx.concatenate([mx.zeros((1, 3), dtype), mx.ones((1, 3), dtype)])
        with pytest.raises(ValueError, match=": a$"):
            check_replicated(p, EmulatedGroup(2))


# --- a real 2-rank ring run against the emulator ---------------------------------------------


def ring_rank_main() -> None:
    """Entry point of each rank of the real job: one Adam step on its uneven shard."""
    from funcnn.parallel.launch import init_checked

    group = init_checked("ring")
    r = group.rank()
    xs, ys, mask = _shards(*_data(), SPLITS[2])  # this rank's padded shard, as the emulator's
    opt = optim.adam(1e-2)
    params = MLP.init(mx.random.key(0))
    step = _train_step(opt)
    loss, params, _ = mx.compile(lambda *args: step(group, *args))(
        params, opt.init(params), xs[r], ys[r], mask[r]
    )
    check_replicated(params, group)
    out = {k: np.array(v).tolist() for k, v in tree_flatten(params)}
    print("RESULT" + json.dumps({"loss": loss.item(), "params": out}))


def test_the_emulator_gives_what_a_real_ring_gives():
    launch = pytest.importorskip("funcnn.parallel.launch")
    here = os.path.dirname(os.path.abspath(__file__))
    env = {"PYTHONPATH": here + os.pathsep + os.environ.get("PYTHONPATH", "")}
    results = launch.run_ranks("test_data_parallel:ring_rank_main", n=2, env=env, timeout=120,
                               python=sys.executable)
    real = [r.json("RESULT") for r in results]
    assert real[0] == real[1]
    opt = optim.adam(1e-2)
    params = MLP.init(mx.random.key(0))
    # Same per-rank inputs (uneven shards, padded) as the real ranks: the same bits.
    loss, emulated, _ = mx.compile(
        lambda *a: emulate(_train_step(opt), 2, *a, in_axes=(None, None, 0, 0, 0))
    )(params, opt.init(params), *_shards(*_data(), SPLITS[2]))
    for k, v in tree_flatten(emulated):
        np.testing.assert_array_equal(np.array(v[0]), np.array(real[0]["params"][k]), err_msg=k)
    assert loss[0].item() == real[0]["loss"]


def test_rank_key_gives_each_rank_its_own_key_from_a_shared_one():
    shared = mx.random.key(7)
    keys = emulate(lambda g: C.rank_key(shared, g), 3)
    want = mx.random.split(shared, 3)
    assert mx.array_equal(keys, want).item()
    draws = [mx.random.uniform(shape=(4,), key=k) for k in keys]
    assert not mx.array_equal(draws[0], draws[1]).item()
    # One process: the only rank's key, still not the shared key itself.
    single = C.rank_key(shared, mx.distributed.init())
    assert mx.array_equal(single, mx.random.split(shared, 1)[0]).item()
