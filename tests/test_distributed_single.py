"""The functions of ``mlx.nn.layers.distributed`` on a single process, against mlx.nn.

``mx.distributed.init()`` here is a group of size 1.  ``shard_linear``,
``shard_inplace``, ``sum_gradients``, ``fully_shard`` and the pure
``shard_params`` must give exactly what mlx.nn's give (on mlx.nn's own
modules): types, reprs, parameters bit for bit, draws from the global RNG,
outputs and gradients.  The classes themselves are registry entries
(``layer_registry/distributed.py``).
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn
import mlx.nn.layers.distributed as mlx_dist
import numpy as np
import pytest
from _layer_helpers import assert_params_identical, rng_state
from mlx.utils import tree_flatten

import funcnn
import funcnn.functional as F
import funcnn.layers.distributed as dist

GROUP = mx.distributed.init()
X = mx.random.normal((3, 64), key=mx.random.key(0))


def _same_module(got, want, x=X):
    assert type(got).__name__ == type(want).__name__
    assert repr(got) == repr(want)
    assert_params_identical(got.parameters(), want.parameters())
    assert [k for k, _ in tree_flatten(got.trainable_parameters())] == [
        k for k, _ in tree_flatten(want.trainable_parameters())
    ]
    assert mx.array_equal(got(x), want(x)).item()
    g_got = mx.grad(lambda v: (got(v) * mx.arange(got(v).shape[-1])).sum())(x)
    g_want = mx.grad(lambda v: (want(v) * mx.arange(want(v).shape[-1])).sum())(x)
    assert mx.array_equal(g_got, g_want).item()


# --- shard_linear ------------------------------------------------------------------------


@pytest.mark.parametrize("sharding", ["all-to-sharded", "sharded-to-all"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("segments", [1, 2, [0.25, 0.5]], ids=["1", "2", "fractions"])
def test_shard_linear_of_a_linear_matches_mlx(sharding, bias, segments):
    mx.random.seed(7)
    want = mlx_dist.shard_linear(mlx.nn.Linear(64, 8, bias), sharding, segments=segments)
    want_rng = rng_state()
    mx.random.seed(7)
    source = funcnn.Linear(64, 8, bias)
    before = tree_flatten(source.parameters())
    got = dist.shard_linear(source, sharding, segments=segments, group=GROUP)
    np.testing.assert_array_equal(rng_state(), want_rng)  # the new layer's init draws too
    assert all(a is b for (_, a), (_, b) in zip(tree_flatten(source.parameters()), before))
    _same_module(got, want)
    assert got.group.size() == 1


class _QuantizedLinearLike(funcnn.Module):
    """What shard_linear reads of a QuantizedLinear, holding mlx.nn's quantized parameters."""

    def __init__(self, oracle) -> None:
        super().__init__()
        self.group_size, self.bits, self.mode = oracle.group_size, oracle.bits, oracle.mode
        for name, value in oracle.parameters().items():
            setattr(self, name, value)


def _funcnn_quantized(oracle):
    cls = getattr(funcnn, "QuantizedLinear", None)
    if cls is None:  # being written elsewhere: the same attributes and parameters suffice
        return _QuantizedLinearLike(oracle)
    layer = cls(64, 8, bias="bias" in oracle, group_size=oracle.group_size, bits=oracle.bits,
                mode=oracle.mode)
    layer.update(oracle.parameters())
    return layer


@pytest.mark.parametrize("sharding", ["all-to-sharded", "sharded-to-all"])
@pytest.mark.parametrize("mode,bits,bias", [("affine", 4, True), ("affine", 8, False),
                                            ("mxfp4", 4, True)])
def test_shard_linear_of_a_quantized_linear_matches_mlx(sharding, mode, bits, bias):
    group_size = 32 if mode == "mxfp4" else 64
    mx.random.seed(3)
    oracle = mlx.nn.QuantizedLinear(64, 8, bias, group_size=group_size, bits=bits, mode=mode)
    if bias:  # a bias that is not all zeros
        oracle.bias = mx.random.normal((8,), key=mx.random.key(1))
    source = _funcnn_quantized(oracle)
    mx.random.seed(5)
    want = mlx_dist.shard_linear(oracle, sharding)
    want_rng = rng_state()
    mx.random.seed(5)
    got = dist.shard_linear(source, sharding)
    np.testing.assert_array_equal(rng_state(), want_rng)
    assert type(got).__name__.startswith("Quantized")
    assert got.trainable_parameters() == {}
    _same_module(got, want)


def test_shard_linear_errors():
    for lib in (mlx_dist, dist):
        with pytest.raises(ValueError) as err:
            lib.shard_linear(mlx.nn.Linear(2, 2) if lib is mlx_dist else funcnn.Linear(2, 2),
                             "all-to-all")
        assert str(err.value) == (
            "Sharding type sharding='all-to-all' not supported, "
            "choose one of 'all-to-sharded' or 'sharded-to-all'"
        )
    # Not a linear layer: mlx.nn takes the quantized path and fails on a missing ``bits``.
    with pytest.raises(AttributeError):
        mlx_dist.shard_linear(mlx.nn.Embedding(4, 2), "all-to-sharded")
    with pytest.raises(TypeError, match="Linear or QuantizedLinear module, received Embedding"):
        dist.shard_linear(funcnn.Embedding(4, 2), "all-to-sharded")


# --- shard_inplace and shard_params ---------------------------------------------------------


def _mha(lib):
    mx.random.seed(11)
    return lib.MultiHeadAttention(8, 2, bias=True)


def _predicate(path, weight):
    if path.endswith("bias"):
        return None
    return (0, [0.5]) if "query" in path else 1


@pytest.mark.parametrize(
    "sharding,segments",
    [("all-to-sharded", 1), ("sharded-to-all", 2), ("all-to-sharded", [0.25, 0.75]),
     (_predicate, 1)],
    ids=["all-to-sharded", "sharded-to-all-2", "fractions", "callable"],
)
def test_shard_inplace_matches_mlx(sharding, segments):
    want, got = _mha(mlx.nn), _mha(funcnn)
    mlx_dist.shard_inplace(want, sharding, segments=segments)
    assert dist.shard_inplace(got, sharding, segments=segments, group=GROUP) is None
    assert_params_identical(got.parameters(), want.parameters())
    q = mx.random.normal((1, 3, 8), key=mx.random.key(2))
    assert mx.array_equal(got(q, q, q), want(q, q, q)).item()
    # The pure form cuts the same tree and modifies nothing.
    params = _mha(funcnn).parameters()
    before = tree_flatten(params)
    assert_params_identical(F.shard_params(params, sharding, segments=segments),
                            want.parameters())
    assert all(a is b for (_, a), (_, b) in zip(tree_flatten(params), before))


def test_shard_inplace_errors_match_mlx():
    for sharding, error in (("sideways", ValueError), (lambda p, w: "x", ValueError)):
        with pytest.raises(error) as want:
            mlx_dist.shard_inplace(mlx.nn.Linear(2, 2), sharding)
        with pytest.raises(error) as got:
            dist.shard_inplace(funcnn.Linear(2, 2), sharding)
        assert str(got.value) == str(want.value)


# --- sum_gradients ------------------------------------------------------------------------------


def test_sum_gradients_is_the_identity_on_one_process_and_cached():
    f = dist.sum_gradients(GROUP)
    assert f is F.sum_gradients(GROUP) is dist.sum_gradients(GROUP)
    x = mx.arange(4.0)
    assert f(x) is x and mlx_dist.sum_gradients(GROUP)(x) is x
    weights = mx.array([1.0, -2.0, 3.0, 0.5])
    got = mx.grad(lambda v: (f(v) * weights).sum())(x)
    want = mx.grad(lambda v: (mlx_dist.sum_gradients(GROUP)(v) * weights).sum())(x)
    assert got.tolist() == want.tolist() == weights.tolist()


# --- fully_shard and FullyShardedModule -----------------------------------------------------------


def test_fully_shard_returns_the_module_unchanged_on_one_process():
    for lib, fully_shard in ((mlx.nn, mlx_dist.fully_shard), (funcnn, dist.fully_shard)):
        layer = lib.Linear(3, 4)
        before = tree_flatten(layer.parameters())
        assert fully_shard(layer) is layer
        assert fully_shard(layer, group=GROUP, compute_dtype=mx.float16) is layer
        assert all(a is b for (_, a), (_, b) in zip(tree_flatten(layer.parameters()), before))
    assert funcnn.fully_shard is dist.fully_shard


def test_fully_sharded_module_wraps_nested_and_embedding_as_mlx():
    made = {}
    for lib in (mlx.nn, funcnn):
        mx.random.seed(4)
        inner = lib.FullyShardedModule(lib.Linear(3, 3))
        made[lib] = lib.FullyShardedModule(lib.Sequential(lib.Embedding(5, 3), inner))
    got, want = made[funcnn], made[mlx.nn]
    assert repr(got) == repr(want) and got._paths == want._paths == ["layers.0.weight"]
    ids = mx.array([[0, 4, 2]])
    assert mx.array_equal(got(ids), want(ids)).item()
    emb = {lib: lib.FullyShardedModule(lib.Embedding(5, 3)) for lib in (mlx.nn, funcnn)}
    emb[funcnn].update(emb[mlx.nn].parameters())
    x = mx.random.normal((2, 3), key=mx.random.key(3))
    assert mx.array_equal(emb[funcnn].as_linear(x), emb[mlx.nn].as_linear(x)).item()


def test_fully_sharded_module_rejects_a_scalar_parameter_as_mlx():
    messages = []
    for lib in (mlx.nn, funcnn):

        class Scaled(lib.Module):
            def __init__(self):
                super().__init__()
                self.scale = mx.array(2.0)

        with pytest.raises(ValueError) as err:
            lib.FullyShardedModule(Scaled())
        messages.append(str(err.value))
    with pytest.raises(ValueError) as err:
        F.fully_sharded_module(F.Pair(lambda key=None: {"scale": mx.array(2.0)},
                                      lambda p, x: x, "scaled"))
    messages.append(str(err.value))
    assert messages == ["Cannot shard parameter 'scale' because it is a scalar."] * 3


# --- where funcnn does better -------------------------------------------------------------------------


def test_quantized_unfreeze_returns_the_module_and_keeps_it_frozen():
    assert mlx.nn.QuantizedAllToShardedLinear(64, 4).unfreeze() is None
    for cls in (funcnn.QuantizedAllToShardedLinear, funcnn.QuantizedShardedToAllLinear):
        layer = cls(64, 4)
        assert layer.unfreeze() is layer
        assert layer.trainable_parameters() == {}
        assert sorted(layer._no_grad) == ["bias", "biases", "scales", "weight"]


def test_a_group_that_is_not_a_group_is_a_type_error():
    with pytest.raises(AttributeError):  # mlx.nn: "'int' object has no attribute 'size'"
        mlx.nn.AllToShardedLinear(4, 4, group=3)
    for build in (lambda: funcnn.AllToShardedLinear(4, 4, group=3),
                  lambda: F.sharded_to_all_linear(4, 4, group=3),
                  lambda: dist.shard_inplace(funcnn.Linear(2, 2), "all-to-sharded", group=3)):
        with pytest.raises(TypeError, match="Group or None, received 3"):
            build()


def test_fully_sharded_module_drops_state_updates_as_mlx():
    # mlx.nn restores the shards it held before the call, losing BatchNorm's new running
    # statistics; funcnn does the same (keeping them needs the group on the instance, an
    # attribute mlx.nn does not have), and so does the pure pair.
    x = mx.random.normal((4, 3), key=mx.random.key(8))
    for lib in (mlx.nn, funcnn):
        layer = lib.FullyShardedModule(lib.BatchNorm(3))
        layer(x)
        assert layer.module.running_mean.tolist() == [0.0, 0.0, 0.0]
        assert lib.BatchNorm(3).update(layer.module.parameters())(x).shape == (4, 3)
    pair = F.fully_sharded_module(F.batch_norm(3))
    assert not pair.stateful and pair.takes_training
    params = pair.init()
    want = funcnn.FullyShardedModule(funcnn.BatchNorm(3))
    want.update(params)
    assert mx.array_equal(pair.apply(params, x), want(x)).item()
    assert mx.array_equal(pair.apply(params, x, training=False), want.eval()(x)).item()


def test_fully_sharded_module_without_parameters_runs_where_mlx_fails():
    x = mx.random.normal((2, 3), key=mx.random.key(1))
    with pytest.raises(ValueError, match="No arrays provided for concatenation"):
        mlx.nn.FullyShardedModule(mlx.nn.ReLU())(x)
    layer = funcnn.FullyShardedModule(funcnn.ReLU())
    assert layer._paths == [] and mx.array_equal(layer(x), mx.maximum(x, 0)).item()
    pair = F.fully_sharded_module(F.relu())
    assert mx.array_equal(pair.apply(pair.init(), x), mx.maximum(x, 0)).item()


class _ScaledLinear(funcnn.Linear):
    """A user's subclass of Linear (as LoRA-style code writes them)."""


class _MyQuantizedLinear(funcnn.QuantizedLinear):
    """A user's subclass of QuantizedLinear."""


@pytest.mark.parametrize("sharding", ["all-to-sharded", "sharded-to-all"])
def test_shard_linear_accepts_subclasses_of_linear_and_quantized_linear(sharding):
    # mlx.nn dispatches on its own classes; funcnn on isinstance, so subclasses shard too.
    mx.random.seed(11)
    plain = funcnn.Linear(64, 8)
    mx.random.seed(11)
    sub = _ScaledLinear(64, 8)
    mx.random.seed(12)
    want = dist.shard_linear(plain, sharding)
    mx.random.seed(12)
    got = dist.shard_linear(sub, sharding)
    assert type(got) is type(want)
    assert_params_identical(got.parameters(), want.parameters())

    quantized = _MyQuantizedLinear(64, 8, group_size=64, bits=4)
    sharded = dist.shard_linear(quantized, sharding)
    assert type(sharded).__name__.startswith("Quantized")
    x = mx.random.normal((2, 64), key=mx.random.key(0))
    assert mx.array_equal(sharded(x), quantized(x)).item()  # one rank: the whole layer
