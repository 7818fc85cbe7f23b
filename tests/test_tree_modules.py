"""Tests of :mod:`funcnn.tree` on modules, partition/combine and stack/unstack.

3. ``funcnn.Module`` as a pytree node, against the same-structured
   :mod:`mlx.nn` model built with the same seed.
4. ``tree_partition``/``tree_combine`` and ``tree_stack``/``tree_unstack``.
"""

from __future__ import annotations

import re

import mlx.core as mx
import mlx.nn as mnn
import mlx.utils as mu
import optree
import pytest

import funcnn
import funcnn.tree as ft
from _tree_cases import assert_same, assert_same_flat, is_array


# --------------------------------------------------------------------------
# 3. Modules as pytree nodes
# --------------------------------------------------------------------------


def make_model_class(nn):
    """One model class written against ``nn`` in (mlx.nn, funcnn)."""

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = [nn.Linear(3, 4), nn.Linear(4, 2, bias=False)]
            self.conv = nn.Conv2d(1, 2, 3)
            self.conv1 = nn.Conv1d(2, 2, 3)
            self.norms = {"ln": nn.LayerNorm(2), "rms": nn.RMSNorm(2), "gn": nn.GroupNorm(2, 4)}
            self.seq = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.GELU(), nn.SiLU())
            self.emb = nn.Embedding(5, 2)
            self.mha = nn.MultiHeadAttention(4, 2)
            self.rope = nn.RoPE(4)
            self._private = mx.arange(2)
            self.scale = 2.0  # a plain attribute

        def __call__(self, x):
            for layer in self.layers:
                x = layer(x)
            return self.seq(x)

    return Model


MODEL_CLASSES = {mnn: make_model_class(mnn), funcnn: make_model_class(funcnn)}


def build_model(nn, seed=0):
    mx.random.seed(seed)
    return MODEL_CLASSES[nn]()


@pytest.fixture
def models():
    return build_model(mnn), build_model(funcnn)


def test_module_flattens_like_mlx_module(models):
    theirs, ours = models
    flat = ft.tree_flatten(ours)
    expected = mu.tree_flatten(theirs)
    assert [k for k, _ in flat] == [k for k, _ in expected]
    for (k, x), (_, y) in zip(flat, expected):
        assert type(x) is type(y), k
        if is_array(x):
            assert x.shape == y.shape and x.dtype == y.dtype, k
            assert mx.array_equal(x, y).item(), k
        else:
            assert x == y, k
    # and mlx.utils reads the funcnn module (a dict) the same way
    assert_same_flat(mu.tree_flatten(ours), flat)
    # the funcnn flattener on the mlx.nn model agrees with mlx.utils
    assert_same_flat(ft.tree_flatten(theirs), expected)


def test_module_parameters_and_leaves(models):
    theirs, ours = models
    assert [k for k, _ in ft.tree_flatten(ours.parameters())] == [
        k for k, _ in mu.tree_flatten(theirs.parameters())
    ]
    assert ft.tree_leaves(ours) == [x for _, x in ft.tree_flatten(ours)]
    children = ft.tree_flatten(ours, is_leaf=funcnn.Module.is_module)
    assert [k for k, _ in children] == [
        k for k, _ in mu.tree_flatten(theirs, is_leaf=mnn.Module.is_module)
    ]
    assert all(type(m).__name__ == type(n).__name__ for (_, m), (_, n) in zip(
        children, mu.tree_flatten(theirs, is_leaf=mnn.Module.is_module)))


def _double(x):
    return x * 2 if is_array(x) else x


@pytest.mark.parametrize(
    "mapper",
    [
        pytest.param(lambda f, t: ft.tree_map(f, t), id="funcnn.tree_map"),
        pytest.param(lambda f, t: optree.tree_map(f, t, namespace="funcnn"), id="optree"),
        pytest.param(
            lambda f, t: optree.tree_map(f, t, namespace="funcnn", none_is_leaf=True),
            id="optree-none-is-leaf",
        ),
        pytest.param(lambda f, t: ft.tree_map_with_path(lambda _, x: f(x), t), id="with_path"),
    ],
)
def test_map_over_module_rebuilds_the_module(models, mapper):
    _, model = models
    model.layers[0].freeze(keys=["bias"])
    model.eval()
    before = ft.tree_flatten(model)

    new = mapper(_double, model)

    # same classes all the way down, same attributes, fresh _no_grad sets
    assert type(new) is type(model)
    for (k, m), (_, n) in zip(
        ft.tree_flatten(model, is_leaf=funcnn.Module.is_module),
        ft.tree_flatten(new, is_leaf=funcnn.Module.is_module),
    ):
        if isinstance(m, funcnn.Module):
            assert type(n) is type(m), k
            assert n.training is m.training is False, k
            assert n._no_grad == m._no_grad, k
            assert n._no_grad is not m._no_grad, k
            assert set(vars(n)) == set(vars(m)), k
    assert new.scale == 2.0 and new.training is False
    assert new.layers[0]._no_grad == {"bias"}
    assert new.conv.padding == model.conv.padding
    assert new.norms["ln"].eps == model.norms["ln"].eps

    # values mapped, original untouched
    for (k, x), (_, y) in zip(before, ft.tree_flatten(new)):
        if is_array(x):
            assert mx.array_equal(y, x * 2).item(), k
    assert_same_flat(ft.tree_flatten(model), before)

    # the new module is usable and independent
    x = mx.ones((1, 3))
    assert new(x).shape == model(x).shape
    new.layers[0].unfreeze()
    assert model.layers[0]._no_grad == {"bias"}


def test_map_over_two_modules(models):
    """Two modules of one class and keys have one structure (not compared by identity)."""
    _, a = models
    b = build_model(funcnn, seed=1)
    for summed in [
        ft.tree_map(lambda x, y: x + y if is_array(x) else x, a, b),
        optree.tree_map(lambda x, y: x + y if is_array(x) else x, a, b, namespace="funcnn"),
    ]:
        assert type(summed) is type(a)
        assert mx.array_equal(summed.layers[0].weight, a.layers[0].weight + b.layers[0].weight).item()
    # a plain dict of parameters as the second tree
    out = ft.tree_map(lambda p, g: p - g, a.parameters(), a.parameters())
    assert type(out) is dict and mx.all(out["layers"][0]["weight"] == 0).item()


def test_module_structures():
    spec = ft.tree_structure(funcnn.Linear(2, 3))
    assert spec == ft.tree_structure(funcnn.Linear(2, 3))
    assert spec == ft.tree_structure(funcnn.Linear(5, 7))  # shapes are leaves' business
    assert spec != ft.tree_structure(funcnn.Linear(2, 3, bias=False))
    assert spec != ft.tree_structure({"weight": 0, "bias": 0})
    assert spec != ft.tree_structure(funcnn.Sequential(funcnn.ReLU()))
    assert spec.num_leaves == 2
    rebuilt = spec.unflatten([mx.zeros((3, 2)), mx.ones(3)])
    assert type(rebuilt) is funcnn.Linear and rebuilt(mx.ones((1, 2))).tolist() == [[1, 1, 1]]


def test_map_over_mlx_model_gives_dicts(models):
    theirs, _ = models
    assert_same(ft.tree_map(_double, theirs), mu.tree_map(_double, theirs))


# --------------------------------------------------------------------------
# 4. partition / combine
# --------------------------------------------------------------------------


def test_partition_combine_dict():
    w = mx.ones(2)
    tree = {"w": w, "n": 3, "l": [None, w, "s"], "t": (1.5,)}
    arrays, static = ft.tree_partition(tree, is_array)
    assert_same(arrays, {"w": w, "n": None, "l": [None, w, None], "t": (None,)})
    assert_same(static, {"w": None, "n": 3, "l": [None, None, "s"], "t": (1.5,)})
    assert_same(ft.tree_combine(arrays, static), tree)
    assert_same(ft.tree_combine(static, arrays), tree)

    mask = {"w": False, "n": True, "l": [True, 0, 1], "t": (False,)}
    chosen, rest = ft.tree_partition(tree, mask)
    assert_same(chosen, {"w": None, "n": 3, "l": [None, None, "s"], "t": (None,)})
    assert_same(ft.tree_combine(chosen, rest), tree)


def test_partition_with_is_leaf():
    tree = {"a": (1, 2), "b": [3]}
    is_tuple = lambda x: isinstance(x, tuple)  # noqa: E731
    chosen, rest = ft.tree_partition(tree, is_tuple, is_leaf=is_tuple)
    assert chosen == {"a": (1, 2), "b": [None]} and rest == {"a": None, "b": [3]}
    assert ft.tree_combine(chosen, rest, is_leaf=is_tuple) == tree
    assert ft.tree_partition(tree, {"a": False, "b": [True]}, is_leaf=is_tuple) == (
        {"a": None, "b": [3]}, {"a": (1, 2), "b": [None]})


def test_combine_takes_first_non_none():
    assert ft.tree_combine({"a": 1, "b": None, "c": None}, {"a": 2, "b": 3, "c": None},
                           {"a": 4, "b": 5, "c": 6}) == {"a": 1, "b": 3, "c": 6}
    assert ft.tree_combine({"a": 1}) == {"a": 1}


def test_partition_combine_module(models):
    _, model = models
    model.eval()
    arrays, static = ft.tree_partition(model, is_array)
    for half in (arrays, static):
        assert type(half) is type(model) and half.training is False
        assert type(half.layers[0]) is funcnn.Linear
    assert static.layers[0]["weight"] is None and static.scale == 2.0
    assert arrays.conv["padding"] == (None, None) and static.conv["padding"] == (0, 0)
    back = ft.tree_combine(arrays, static)
    assert type(back) is type(model)
    assert_same_flat(ft.tree_flatten(back), ft.tree_flatten(model))
    x = mx.ones((1, 3))
    assert mx.array_equal(back(x), model(x)).item()

    # a mask tree made by mapping the predicate over the model is a Module too
    mask = ft.tree_map(is_array, model)
    chosen, rest = ft.tree_partition(model, mask)
    assert_same_flat(ft.tree_flatten(chosen), ft.tree_flatten(arrays))
    assert_same_flat(ft.tree_flatten(ft.tree_combine(chosen, rest)), ft.tree_flatten(model))


def test_partition_and_combine_errors():
    with pytest.raises(ValueError, match="the mask must have the structure of the tree"):
        ft.tree_partition({"a": 1, "b": [2]}, {"a": True, "b": True})
    with pytest.raises(ValueError, match="the mask must have the structure of the tree"):
        ft.tree_partition(funcnn.Linear(2, 2), ft.tree_map(is_array, funcnn.Linear(2, 2, bias=False)))
    with pytest.raises(ValueError, match="tree_combine: tree 1 has structure"):
        ft.tree_combine({"a": 1}, {"b": 1})
    static = ft.tree_partition(funcnn.Sequential(funcnn.Linear(2, 2)), is_array)[1]
    with pytest.raises(ValueError, match="tree_combine: tree 1 has structure"):
        ft.tree_combine(static, funcnn.Linear(2, 2))
    with pytest.raises(ValueError, match="at least one tree"):
        ft.tree_combine()


# --------------------------------------------------------------------------
# 4. stack / unstack
# --------------------------------------------------------------------------


def test_stack_unstack_dict():
    trees = [{"w": mx.full((2, 3), i), "cfg": (3, None), "l": [mx.array(float(i))]}
             for i in range(4)]
    stacked = ft.tree_stack(trees)
    assert stacked["w"].shape == (4, 2, 3) and stacked["l"][0].shape == (4,)
    assert stacked["cfg"] == (3, None)
    back = ft.tree_unstack(stacked)
    assert len(back) == 4
    for t, b in zip(trees, back):
        assert_same(b, t)


def test_stack_unstack_axis():
    trees = [{"w": mx.arange(6).reshape(2, 3) + 10 * i} for i in range(3)]
    stacked = ft.tree_stack(trees, axis=1)
    assert stacked["w"].shape == (2, 3, 3)
    for t, b in zip(trees, ft.tree_unstack(stacked, axis=1)):
        assert_same(b, t)
    for t, b in zip(trees, ft.tree_unstack(ft.tree_stack(trees, axis=-1), axis=-1)):
        assert_same(b, t)


def test_stack_unstack_modules_ensemble():
    mx.random.seed(1)
    members = [funcnn.Sequential(funcnn.Linear(2, 3), funcnn.ReLU(), funcnn.Linear(3, 1))
               for _ in range(3)]
    members[0].eval()
    stacked = ft.tree_stack(members)
    assert type(stacked) is funcnn.Sequential and stacked.training is False
    assert stacked.layers[0].weight.shape == (3, 3, 2)
    x = mx.ones((5, 2))
    for member, back in zip(members, ft.tree_unstack(stacked)):
        assert type(back) is funcnn.Sequential and type(back.layers[2]) is funcnn.Linear
        assert mx.array_equal(back(x), member(x)).item()


def test_stack_errors():
    with pytest.raises(ValueError, match="at least one tree"):
        ft.tree_stack([])
    with pytest.raises(ValueError, match=r"tree_stack: tree 1 has structure .*\{'b': \*\}"):
        ft.tree_stack([{"a": mx.zeros(2)}, {"b": mx.zeros(2)}])
    with pytest.raises(ValueError, match="tree_stack: tree 2 has structure"):
        ft.tree_stack([[mx.zeros(1)], [mx.zeros(1)], (mx.zeros(1),)])
    with pytest.raises(ValueError, match="tree_stack: tree 1 has structure"):
        ft.tree_stack([funcnn.Linear(2, 2), funcnn.Linear(2, 2, bias=False)])
    with pytest.raises(ValueError, match=re.escape(
            "tree_stack: the arrays at 'a.0' have different shapes: [(2,), (3,)].")):
        ft.tree_stack([{"a": [mx.zeros(2)]}, {"a": [mx.zeros(3)]}])
    with pytest.raises(ValueError, match="the leaf at 'a.0' is an array in some trees"):
        ft.tree_stack([{"a": [mx.zeros(2)]}, {"a": [3]}])
    with pytest.raises(ValueError, match="the leaf at 'a.0' is an array in some trees"):
        ft.tree_stack([{"a": [3]}, {"a": [mx.zeros(2)]}])
    with pytest.raises(ValueError, match=re.escape("non-array leaves at 'k' differ between trees: [3, 4]")):
        ft.tree_stack([{"k": 3}, {"k": 4}])


def test_unstack_errors():
    with pytest.raises(ValueError, match=re.escape("got {'a': 2, 'b.0': 3}")):
        ft.tree_unstack({"a": mx.zeros(2), "b": [mx.zeros(3)]})
    with pytest.raises(ValueError, match=re.escape("the array at 'b' has shape (), which has no axis 0")):
        ft.tree_unstack({"a": mx.zeros(2), "b": mx.array(1.0)})
    with pytest.raises(ValueError, match="has no axis 2"):
        ft.tree_unstack({"a": mx.zeros((2, 2))}, axis=2)
    with pytest.raises(ValueError, match="no array leaves"):
        ft.tree_unstack({"a": 1, "b": None})


def test_unstack_empty_arrays():
    """MLX cannot index arrays with zero elements; unstack must still work."""
    back = ft.tree_unstack({"e": mx.zeros((2, 0, 3)), "n": 1})
    assert [b["e"].shape for b in back] == [(0, 3), (0, 3)] and back[1]["n"] == 1
    assert ft.tree_unstack({"e": mx.zeros((0, 4))}) == []
