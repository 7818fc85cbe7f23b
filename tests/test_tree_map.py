"""Tests of ``tree_map``, ``tree_map_with_path`` and ``tree_reduce`` in :mod:`funcnn.tree`.

Differential tests against :mod:`mlx.utils` on the examples of the reference
notes (section 3.4 of ``mlx_nn_semantics.md``), node types included; where
``mlx.utils`` rebuilds dict subclasses as plain dicts, funcnn's ``tree_map``
keeps their types (a documented improvement).
"""

from __future__ import annotations

from collections import Counter, OrderedDict, defaultdict

import mlx.core as mx
import mlx.nn as mnn
import mlx.utils as mu
import pytest

import funcnn.tree as ft
from _tree_cases import PlainDict, PlainList, PlainTuple, Point, assert_agree, assert_same, outcome, with_path


# --------------------------------------------------------------------------
# 1. tree_map
# --------------------------------------------------------------------------


def pair(*xs):
    return xs


@pytest.mark.parametrize(
    "tree, rest",
    [
        # rest trees may be supersets
        ({"x": 1, "y": [2, 3]}, [{"x": 10, "y": [20, 30, 40], "z": 5}]),
        ({"a": 1, "b": 2}, [{"b": 20, "a": 10}]),  # matched by key, not order
        ({"a": {"x": 1, "y": 2}}, [{"a": {"y": 5, "x": 6}}]),
        ({"a": 1, "b": 2}, [OrderedDict([("b", 20), ("a", 10)])]),
        ({"a": 1, "b": 2}, [defaultdict(int, {"b": 20})]),  # missing -> default
        ({"x": 1}, [{"x": [1, 2]}]),  # a subtree where the tree has a leaf
        ({"x": None}, [{"x": [1, 2]}]),  # None is a leaf
        ([1, {"a": 2}], [{0: 5, 1: {"a": 3}}]),
        ([1, 2], [(3, 4)]),
        ([1, 2], [(3, 4), [5, 6, 7]]),
        (3, [4]),
        (3, []),
        # missing keys and short lists fail as in mlx.utils
        ({"x": 1, "y": [2, 3]}, [{"x": 10}]),
        ({"x": 1, "y": [2, 3]}, [{"x": 10, "y": [1]}]),
        ({"x": 1}, [5]),
    ],
)
def test_map_superset_rest(tree, rest):
    assert_agree("tree_map", pair, tree, *rest)


def test_map_missing_key_is_a_keyerror():
    with pytest.raises(KeyError, match="y"):
        ft.tree_map(pair, {"x": 1, "y": 2}, {"x": 1})
    with pytest.raises(KeyError, match="y"):
        mu.tree_map(pair, {"x": 1, "y": 2}, {"x": 1})


@pytest.mark.parametrize(
    "tree, rest",
    [
        (Point(1, [2, None]), []),
        (Point(1, 2), [Point(3, 4)]),
        (Point(1, 2), [(3, 4)]),
        ((1, 2), [Point(3, 4)]),
        ({"p": Point((1,), {"q": Point(2, 3)})}, []),
        ({"a": {}, "b": [], "c": (), "d": Point([], {})}, []),
        (PlainList([1, PlainTuple((2, 3))]), []),
    ],
)
def test_map_keeps_sequence_types_as_mlx(tree, rest):
    assert_agree("tree_map", pair if rest else (lambda x: x), tree, *rest)


def test_map_passes_none_and_respects_is_leaf():
    assert assert_agree("tree_map", str, {"a": None, "b": [None]}) == {"a": "None", "b": ["None"]}
    is_seq = lambda x: isinstance(x, (list, tuple))  # noqa: E731
    assert assert_agree("tree_map", len, {"a": [1, 2], "b": (3,)}, is_leaf=is_seq) == {"a": 2, "b": 1}
    assert assert_agree("tree_map", len, [1, 2], is_leaf=is_seq) == 2


def test_map_arrays():
    tree = {"w": mx.arange(3), "l": [mx.ones((2, 2)), None]}
    out = assert_agree("tree_map", lambda x: x if x is None else x * 2, tree)
    assert out["w"].tolist() == [0, 2, 4]


def test_map_keeps_dict_subclasses_where_mlx_returns_dicts():
    for tree in [OrderedDict(b=1, a=2), PlainDict(b=1, a=[2])]:
        ours, theirs = ft.tree_map(lambda x: x, tree), mu.tree_map(lambda x: x, tree)
        assert type(ours) is type(tree) and type(theirs) is dict
        assert_same(ours, theirs, loose=True)
    tree = defaultdict(list, b=1)
    ours = ft.tree_map(lambda x: x + 1, tree)
    assert type(ours) is defaultdict and ours.default_factory is list and ours == {"b": 2}


def test_map_dict_subclasses_with_own_constructor_become_dicts():
    """Counter and mlx.nn modules cannot be rebuilt from items: plain dicts, as in MLX."""
    counter = Counter(a=1, b=2)
    assert_same(assert_agree("tree_map", lambda x: x * 10, counter), {"a": 10, "b": 20})

    mx.random.seed(0)
    model = mnn.Sequential(mnn.Linear(2, 3), mnn.ReLU())
    out = assert_agree("tree_map", lambda x: x, model)
    assert type(out) is dict and type(out["layers"][0]) is dict
    assert out["layers"][0]["weight"] is model.layers[0].weight


# tree_map_with_path ----------------------------------------------------------


@pytest.mark.parametrize(
    "tree, rest, kwargs, expected",
    [
        ({"model": [{"w": 0, "b": 1}, (0, 1)]}, [], {},
         {"model": [{"w": ("model.0.w", 0), "b": ("model.0.b", 1)},
                    (("model.1.0", 0), ("model.1.1", 1))]}),
        ({"model": [0]}, [], {"path": "root"}, {"model": [("root.model.0", 0)]}),
        ([5], [], {"path": ""}, [("0", 5)]),
        (5, [], {}, (None, 5)),
        (5, [], {"path": ""}, ("", 5)),
        (5, [], {"path": "x"}, ("x", 5)),
        (Point(1, 2), [], {"path": 0}, Point(("0", 1), ("1", 2))),
        ([1], [], {"path": 7}, [("7.0", 1)]),
        ({"a": [1]}, [{"a": [2, 3], "b": 1}], {}, {"a": [("a.0", 1, 2)]}),
        ({"a": 1, "b": 2}, [{"b": 20, "a": 10}], {}, {"a": ("a", 1, 10), "b": ("b", 2, 20)}),
        ({"a": [1], "b": None}, [], {"is_leaf": lambda x: isinstance(x, list)},
         {"a": ("a", [1]), "b": ("b", None)}),
    ],
)
def test_map_with_path(tree, rest, kwargs, expected):
    assert_same(assert_agree("tree_map_with_path", with_path, tree, *rest, **kwargs), expected)


def test_map_with_path_missing_key():
    assert outcome(ft.tree_map_with_path, with_path, {"a": 1}, {"b": 2}) == ("raise", KeyError)
    assert outcome(mu.tree_map_with_path, with_path, {"a": 1}, {"b": 2}) == ("raise", KeyError)


# tree_reduce -----------------------------------------------------------------


def add(a, b):
    return a + b


@pytest.mark.parametrize(
    "args, kwargs, expected",
    [
        ((add, {"a": [1, 2, 3], "b": [4, 5]}), {}, 15),
        ((add, {"a": [1, 2, 3], "b": [4, 5]}, 10), {}, 25),
        ((add, [0, 1, 2]), {}, 3),
        ((add, {}), {}, None),
        ((add, {}, 7), {}, 7),
        ((add, 5), {}, 5),
        ((add, 5, 1), {}, 6),
        ((lambda acc, x: acc + [x], [None, 1, None], []), {}, [None, 1, None]),
        # quirk kept from mlx: a None accumulator restarts from the next leaf
        ((pair, [None, 1, None]), {}, (1, None)),
        ((pair, [1, None, 2]), {}, ((1, None), 2)),
        ((lambda acc, x: acc + len(x), {"a": [1, 2], "b": (3,)}, 0),
         {"is_leaf": lambda x: isinstance(x, (list, tuple))}, 3),
        ((lambda acc, x: acc + len(x), [1, 2]), {"is_leaf": lambda x: isinstance(x, list)}, [1, 2]),
        ((lambda acc, x: acc + len(x), [1, 2], 1), {"is_leaf": lambda x: isinstance(x, list)}, 3),
        ((lambda acc, x: acc + x.sum(), {"w": mx.ones(3), "b": [mx.ones(2)]}, mx.array(0.0)),
         {}, mx.array(5.0)),
    ],
)
def test_reduce(args, kwargs, expected):
    assert_same(assert_agree("tree_reduce", *args, **kwargs), expected)
