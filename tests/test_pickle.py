"""Layers and pairs pickle as mlx.nn modules do (every registry entry), and pairs refuse modules."""

from __future__ import annotations

import pickle

import mlx.core as mx
import pytest
from layer_registry import FACADE, FUNCTIONAL, LAYERS, MLX, make

import funcnn as nn
import funcnn.functional as F


def _pickles(obj) -> bool:
    try:
        pickle.dumps(obj)
    except TypeError:
        return False
    return True


def _same_arrays(a, b) -> bool:
    fa, fb = nn.tree_flatten(a), nn.tree_flatten(b)
    return [k for k, _ in fa] == [k for k, _ in fb] and all(
        mx.array_equal(x, y).item() for (_, x), (_, y) in zip(fa, fb)
    )


@pytest.mark.parametrize("case", LAYERS, ids=[c.id for c in LAYERS])
def test_facade_pickles_exactly_when_mlx_nn_does(case):
    mx.random.seed(3)
    oracle, layer = make(case, MLX), make(case, FACADE)
    # mlx.nn cannot pickle plain MLX functions held in a Sequential (mx.tanh); neither can we.
    assert _pickles(layer) == _pickles(oracle)
    if not _pickles(oracle):
        return
    copy = pickle.loads(pickle.dumps(layer))
    assert type(copy) is type(layer) and repr(copy) == repr(layer)
    assert _same_arrays(copy.parameters(), layer.parameters())
    inputs = case.inputs(0)
    mx.random.seed(5)  # the same dropout masks; BatchNorm's statistics change alike
    out_copy = copy(*inputs)
    mx.random.seed(5)
    assert _same_arrays(out_copy, layer(*inputs))
    assert _same_arrays(copy.parameters(), layer.parameters())


@pytest.mark.parametrize("case", LAYERS, ids=[c.id for c in LAYERS])
def test_pair_pickles_as_its_factory_call(case):
    pair = make(case, FUNCTIONAL)
    if not _pickles(pair):
        pytest.skip("holds a plain MLX function, which pickle cannot store")
    copy = pickle.loads(pickle.dumps(pair))
    key = mx.random.key(5)
    params = pair.init(key)
    assert _same_arrays(copy.init(key), params)
    assert (copy.takes_key, copy.takes_training, copy.stateful) == (
        pair.takes_key, pair.takes_training, pair.stateful)
    inputs = case.inputs(0)
    kwargs = {"key": mx.random.key(6)} if pair.takes_key else {}
    assert _same_arrays(copy.apply(params, *inputs, **kwargs), pair.apply(params, *inputs, **kwargs))


def test_pair_without_a_factory_says_how_to_pickle_it():
    hand_made = F.Pair(lambda key=None: {}, lambda params, x: x, "identity")
    with pytest.raises(TypeError, match="pair_factory"):
        pickle.dumps(hand_made)


def test_pair_factory_records_the_call():
    @F.pair_factory
    def scale(factor: float) -> F.Pair:
        return F.Pair(lambda key=None: {}, lambda params, x: factor * x, "scale")

    assert scale(2.0).recipe[1:] == ((2.0,), {})
    assert scale.__name__ == "scale"


@pytest.mark.parametrize("module", [nn.Linear(2, 2), nn.ReLU()], ids=["Linear", "ReLU"])
def test_sequential_pair_refuses_modules_whose_parameters_it_cannot_see(module):
    with pytest.raises(TypeError, match="layer 1 is a .* module.*F.linear"):
        F.sequential(F.linear(2, 2), module)
