"""Tests of :mod:`funcnn.tree`, with :mod:`mlx.utils` as the oracle.

1. Differential tests on the examples of the reference notes (section 3.4 of
   ``mlx_nn_semantics.md``): the same input goes to ``mlx.utils`` and to
   ``funcnn.tree`` and the results must be equal, node types included.
2. funcnn's documented improvements: where ``mlx.utils`` recurses forever or
   silently builds something else (duplicate keys, a key that is both a leaf
   and a subtree, two keys naming one list index, negative indices), funcnn
   raises ``ValueError`` naming the key; each case also records what
   ``mlx.utils`` does on the same input.  ``tree_map`` keeps node types where
   ``mlx.utils`` rebuilds dict subclasses as plain dicts.
3. ``funcnn.Module`` as a pytree node, against the same-structured
   :mod:`mlx.nn` model built with the same seed.
4. ``tree_partition``/``tree_combine`` and ``tree_stack``/``tree_unstack``.
5. Hypothesis properties on random nested dict/list/tuple trees.
6. optree's dict order in funcnn's namespace versus the global one.
"""

from __future__ import annotations

import ast
import re
import threading
from collections import Counter, OrderedDict, defaultdict, namedtuple
from typing import Any

import mlx.core as mx
import mlx.nn as mnn
import mlx.utils as mu
import optree
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import funcnn
import funcnn.tree as ft

Point = namedtuple("Point", "x y")


class PlainDict(dict):
    """A dict subclass with dict's own constructor: funcnn keeps its type."""


class PlainList(list):
    pass


class PlainTuple(tuple):
    pass


def is_array(x: Any) -> bool:
    return isinstance(x, mx.array)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def assert_same(a: Any, b: Any, *, loose: bool = False, path: str = "") -> None:
    """Assert that two trees are equal, node types, key order and array bits included.

    With ``loose=True`` any two dicts (``OrderedDict``, a Module, ...) compare
    as plain dicts: "equal up to node types".
    """
    where = path or "<root>"
    if isinstance(a, mx.array) or isinstance(b, mx.array):
        assert isinstance(a, mx.array) and isinstance(b, mx.array), (where, a, b)
        assert a.shape == b.shape and a.dtype == b.dtype, (where, a, b)
        assert mx.array_equal(a, b, equal_nan=True).item(), (where, a, b)
        return
    if isinstance(a, dict) and isinstance(b, dict) and loose:
        pass
    else:
        assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, dict):
        assert list(a.keys()) == list(b.keys()), (where, list(a), list(b))
        for k in a:
            assert_same(a[k], b[k], loose=loose, path=f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), (where, a, b)
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, loose=loose, path=f"{path}.{i}")
    else:
        assert a == b, (where, a, b)


def assert_same_flat(a: list, b: list) -> None:
    """Two flat ``(key, leaf)`` lists with the same keys and the very same leaves."""
    assert [k for k, _ in a] == [k for k, _ in b]
    for (k, x), (_, y) in zip(a, b):
        assert x is y or (not is_array(x) and x == y), (k, x, y)


def outcome(fn, *args, **kwargs):
    """``("ok", result)`` or ``("raise", exception type)``."""
    try:
        return "ok", fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001
        return "raise", type(err)


def assert_agree(name: str, *args, loose: bool = False, **kwargs) -> Any:
    """Run ``name`` from mlx.utils and funcnn.tree on one input; demand one outcome."""
    theirs = outcome(getattr(mu, name), *args, **kwargs)
    ours = outcome(getattr(ft, name), *args, **kwargs)
    assert theirs[0] == ours[0], (theirs, ours)
    if theirs[0] == "raise":
        assert theirs[1] is ours[1], (theirs, ours)
    else:
        assert_same(ours[1], theirs[1], loose=loose)
    return ours[1]


# --------------------------------------------------------------------------
# 1. tree_flatten
# --------------------------------------------------------------------------

EXAMPLE = {"b": [1, (2, 3)], "a": {"x": 4, "y": []}, "c": {}, "n": None}


def test_flatten_reference_example():
    expected = [("b.0", 1), ("b.1.0", 2), ("b.1.1", 3), ("a.x", 4), ("n", None)]
    assert ft.tree_flatten(EXAMPLE) == expected
    assert assert_agree("tree_flatten", EXAMPLE) == expected


@pytest.mark.parametrize(
    "prefix, first_key",
    [(".p", "p.b.0"), ("pq", "q.b.0"), ("p", ".b.0"), ("", "b.0"), (".", ".b.0")],
)
def test_flatten_drops_first_char_of_prefix(prefix, first_key):
    flat = assert_agree("tree_flatten", EXAMPLE, prefix=prefix)
    assert flat[0][0] == first_key


@pytest.mark.parametrize(
    "tree, kwargs, expected",
    [
        (5, {}, [("", 5)]),
        (None, {}, [("", None)]),
        (5, {"prefix": ".x"}, [("x", 5)]),
        (5, {"prefix": "pq"}, [("q", 5)]),
        ([], {}, []),
        ({}, {}, []),
        ((), {}, []),
        ({"a": {}, "b": [[], ()]}, {}, []),
        ([None, [None]], {}, [("0", None), ("1.0", None)]),
        ((1, (2,)), {}, [("0", 1), ("1.0", 2)]),
        ({"p": Point(1, [2])}, {}, [("p.0", 1), ("p.1.0", 2)]),
        ({0: "a", 2: "b"}, {}, [("0", "a"), ("2", "b")]),
        (OrderedDict(b=1, a=2), {}, [("b", 1), ("a", 2)]),
        (defaultdict(int, b=1, a=2), {}, [("b", 1), ("a", 2)]),
        (PlainDict(b=PlainList([1]), a=PlainTuple((2,))), {}, [("b.0", 1), ("a.0", 2)]),
        (Counter(b=1, a=2), {}, [("b", 1), ("a", 2)]),
        ({"a": (1, 2), "b": [3]}, {"is_leaf": lambda x: isinstance(x, tuple)},
         [("a", (1, 2)), ("b.0", 3)]),
        ([1, 2], {"is_leaf": lambda x: isinstance(x, list)}, [("", [1, 2])]),
    ],
)
def test_flatten_matches_mlx(tree, kwargs, expected):
    assert assert_agree("tree_flatten", tree, **kwargs) == expected


def test_flatten_array_leaves_are_passed_through():
    w = mx.ones((2, 2))
    flat = ft.tree_flatten({"w": w, "l": [w]})
    assert flat[0][1] is w and flat[1][1] is w
    assert_same_flat(flat, mu.tree_flatten({"w": w, "l": [w]}))


def test_flatten_destination_list_and_dict():
    ours, theirs = [("z", 0)], [("z", 0)]
    assert ft.tree_flatten(EXAMPLE, destination=ours) is ours
    mu.tree_flatten(EXAMPLE, destination=theirs)
    assert ours == theirs and ours[0] == ("z", 0) and len(ours) == 6

    ours, theirs = {"z": 0, "n": 1}, {"z": 0, "n": 1}
    assert ft.tree_flatten(EXAMPLE, destination=ours) is ours
    mu.tree_flatten(EXAMPLE, destination=theirs)
    assert list(ours.items()) == list(theirs.items())
    assert ours["n"] is None  # overwritten, as dict.update does


@pytest.mark.parametrize("destination", [(), set(), "x", 0])
def test_flatten_invalid_destination(destination):
    message = "Destination should be either a list or a dictionary or None"
    with pytest.raises(ValueError, match=message):
        mu.tree_flatten(EXAMPLE, destination=destination)
    with pytest.raises(ValueError, match=message):
        ft.tree_flatten(EXAMPLE, destination=destination)


def test_flatten_mlx_module_as_dict():
    """An mlx.nn module is a dict to both: the names in the reference notes."""
    conv = mnn.Conv2d(1, 1, 3)
    flat = ft.tree_flatten(conv)
    assert [k for k, _ in flat] == [
        "weight", "bias", "padding.0", "padding.1", "stride.0", "stride.1"
    ]
    assert_same_flat(flat, mu.tree_flatten(conv))


# --------------------------------------------------------------------------
# 1. tree_unflatten
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flat, expected",
    [
        ([("", "v")], "v"),
        ({"": "v"}, "v"),
        ([], []),
        ({}, []),
        ([("hello.world", 42)], {"hello": {"world": 42}}),
        ({"hello.world": 42}, {"hello": {"world": 42}}),
        ([("a.0", 1), ("a.1", 2)], {"a": [1, 2]}),
        ([("0", 1), ("3", 2)], [1, {}, {}, 2]),
        ([("3", 2), ("0", 1)], [1, {}, {}, 2]),
        ([("l.1.w", 1)], {"l": [{}, {"w": 1}]}),
        # non-canonical integer keys: int() decides
        ([("01", "a"), ("02", "b")], [{}, "a", "b"]),
        ([(" 1", "a")], [{}, "a"]),
        ([("+1", "a")], [{}, "a"]),
        ([("1_0", "a")], [{}] * 10 + ["a"]),
        # one non-integer key makes a dict, in first-seen order
        ([("1", "a"), ("x", "b"), ("0", "c")], {"1": "a", "x": "b", "0": "c"}),
        ([("", 1), ("a", 2)], {"": 1, "a": 2}),
        ([("0", 1), ("", 2)], {"0": 1, "": 2}),
        # a lone "" component is the value itself, at every level
        ([("a.", 1)], {"a": 1}),
        ([("a..", 1)], {"a": {"": 1}}),
        ([(".", 1)], {"": 1}),
        ([(".a", 1)], {"": {"a": 1}}),
        ([("0.", 1)], [1]),
        ([("a.", 1), ("a.b", 2)], {"a": {"": 1, "b": 2}}),
    ],
)
def test_unflatten_matches_mlx(flat, expected):
    assert_same(assert_agree("tree_unflatten", flat), expected)


def test_unflatten_loses_tuples_and_empty_containers():
    tree = {"t": (1, Point(2, 3)), "e": [], "d": {}, "n": None}
    back = assert_agree("tree_unflatten", ft.tree_flatten(tree))
    assert back == {"t": [1, [2, 3]], "n": None}


def test_unflatten_inverts_flatten():
    w = mx.zeros(3)
    tree = {"layers": [{"w": w, "b": None}, {"w": w}], "cfg": {"k": 3}}
    assert_same(ft.tree_unflatten(ft.tree_flatten(tree)), tree)
    assert_same(ft.tree_unflatten(ft.tree_flatten(tree, destination={})), tree)


# funcnn's ValueErrors, with what mlx.utils does on the same input -------------

DUPLICATES = [
    ([("a", 1), ("a", 2)], "'a'"),
    ([("x.a", 1), ("x.a", 2)], "'x.a'"),
    ([("l.0.w", 1), ("l.1.w", 2), ("l.0.w", 3)], "'l.0.w'"),
    ([("", 1), ("", 2)], "''"),
    ([("a.", 1), ("a.", 2)], "'a.'"),
]


@pytest.mark.parametrize("flat, name", DUPLICATES)
def test_unflatten_duplicate_key(flat, name):
    with pytest.raises(ValueError, match=re.escape(f"Duplicate key {name}")):
        ft.tree_unflatten(flat)
    with pytest.raises(RecursionError):  # mlx.utils recurses forever
        mu.tree_unflatten(flat)


LEAF_AND_SUBTREE = [
    ([("a", 1), ("a.b", 2)], "'a'", {"a": {"": 1, "b": 2}}),
    ([("a.b", 2), ("a", 1)], "'a'", {"a": {"b": 2, "": 1}}),
    ([("m.l.0", 1), ("m.l", 2), ("m.l.1", 3)], "'m.l'", {"m": {"l": {"0": 1, "": 2, "1": 3}}}),
    ([("", 1), (".a", 2)], "''", {"": {"": 1, "a": 2}}),
]


@pytest.mark.parametrize("flat, name, mlx_result", LEAF_AND_SUBTREE)
def test_unflatten_leaf_and_subtree(flat, name, mlx_result):
    with pytest.raises(ValueError, match=re.escape(f"Key {name} is given both as a leaf")):
        ft.tree_unflatten(flat)
    # mlx.utils silently invents a key "" for the leaf
    assert mu.tree_unflatten(flat) == mlx_result


def test_unflatten_leaf_and_subtree_by_empty_component():
    flat = [("a", 1), ("a.", 2)]
    with pytest.raises(ValueError, match="Key 'a' is given both"):
        ft.tree_unflatten(flat)
    with pytest.raises(RecursionError):
        mu.tree_unflatten(flat)


COLLISIONS = [
    ([("1", "a"), ("01", "b")], ["'1'", "'01'"], 1, {"1": "a", "01": "b"}),
    ([("01", "a"), ("1", "b")], ["'01'", "'1'"], 1, {"01": "a", "1": "b"}),
    ([("0", "x"), (" 1", "a"), ("+1", "b")], ["' 1'", "'+1'"], 1, {"0": "x", " 1": "a", "+1": "b"}),
    ([("w.1", "a"), ("w.01", "b")], ["'w.1'", "'w.01'"], 1, {"w": {"1": "a", "01": "b"}}),
    ([("l.2.1", "a"), ("l.2.1_0", "b"), ("l.2.10", "c")], ["'l.2.1_0'", "'l.2.10'"], 10,
     {"l": [{}, {}, {"1": "a", "1_0": "b", "10": "c"}]}),
]


@pytest.mark.parametrize("flat, names, index, mlx_result", COLLISIONS)
def test_unflatten_keys_naming_one_index(flat, names, index, mlx_result):
    message = f"Keys {', '.join(names)} name the same list index {index}."
    with pytest.raises(ValueError, match=re.escape(message)):
        ft.tree_unflatten(flat)
    # mlx.utils (#3877/#3878 guard) falls back to a dict
    assert mu.tree_unflatten(flat) == mlx_result


NEGATIVES = [
    ([("-1", 1), ("0", 2)], "'-1'", [1, 2]),
    ([("-1", 1)], "'-1'", [1]),
    ([("-1", 1), ("2", 2)], "'-1'", [1, {}, 2]),
    ([("w.0", 1), ("w.-2", 2)], "'w.-2'", {"w": [2, 1]}),
]


@pytest.mark.parametrize("flat, name, mlx_result", NEGATIVES)
def test_unflatten_negative_index(flat, name, mlx_result):
    """Decision: funcnn raises; mlx.utils puts negative indices first, shifting the rest.

    (In ``[("-1", 1), ("0", 2)]`` MLX returns ``[1, 2]``, so the value of key
    ``"0"`` lands at index 1.)  ``tree_flatten`` never produces such keys.
    """
    with pytest.raises(ValueError, match=re.escape(f"Key {name} is a negative list index")):
        ft.tree_unflatten(flat)
    assert mu.tree_unflatten(flat) == mlx_result


def test_unflatten_negative_key_in_a_dict_level_is_fine():
    flat = [("-1", 1), ("a", 2)]
    assert assert_agree("tree_unflatten", flat) == {"-1": 1, "a": 2}


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


def with_path(p, *xs):
    return (p, *xs)


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


# --------------------------------------------------------------------------
# 5. Properties
# --------------------------------------------------------------------------

PROPERTY = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

leaves = st.one_of(
    st.integers(-3, 3),
    st.none(),
    st.lists(st.integers(-3, 3), max_size=3).map(lambda v: mx.array(v, dtype=mx.int32)),
)
clean_keys = st.one_of(st.sampled_from(["a", "b", "w", "bias", "x_1"]), st.integers(0, 3))
wild_keys = st.one_of(
    st.sampled_from(["a", "b", "0", "1", "01", "-1", " 1", "+1", "", "a.b", "a.", "1.0"]),
    st.integers(-1, 3),
)


def trees_of(keys, dict_types=(dict,)):
    def extend(children):
        dicts = [st.dictionaries(keys, children, max_size=3).map(t) for t in dict_types]
        return st.one_of(
            st.lists(children, max_size=3),
            st.lists(children, max_size=3).map(tuple),
            *dicts,
        )

    return st.recursive(leaves, extend, max_leaves=12)


clean_trees = trees_of(clean_keys)
wild_trees = trees_of(wild_keys)
typed_trees = trees_of(clean_keys, dict_types=(dict, OrderedDict))


@PROPERTY
@given(wild_trees)
def test_property_flatten_equals_mlx(tree):
    assert_same_flat(ft.tree_flatten(tree), mu.tree_flatten(tree))
    assert_same_flat(ft.tree_flatten(tree, prefix=".p"), mu.tree_flatten(tree, prefix=".p"))


@PROPERTY
@given(clean_trees)
def test_property_roundtrip_equals_mlx(tree):
    flat = ft.tree_flatten(tree)
    assert_same(ft.tree_unflatten(flat), mu.tree_unflatten(flat))
    assert_same(ft.tree_unflatten(dict(flat)), mu.tree_unflatten(dict(flat)))


def _literal(text: str) -> Any:
    return ast.literal_eval(text)


def _names_existing(name: str, keys: list[str]) -> bool:
    return any(k == name or k.startswith(name + ".") for k in keys)


def assert_documented_defect(message: str, keys: list[str]) -> None:
    """The ValueError of tree_unflatten names keys that really have the defect it names."""
    if m := re.fullmatch(r"Duplicate key (.+): each key may appear only once\.", message):
        assert keys.count(_literal(m[1])) >= 2, (message, keys)
    elif m := re.fullmatch(r"Key (.+) is given both as a leaf and as a subtree\.", message):
        name = _literal(m[1])
        assert name in keys and any(k.startswith(name + ".") for k in keys), (message, keys)
    elif m := re.fullmatch(r"Keys (.+) name the same list index (-?\d+)\.", message):
        names = [_literal(n) for n in re.findall(r"'[^']*'", m[1])]
        assert len(names) >= 2 and len(set(names)) == len(names), message
        parents = {n.rpartition(".")[0] for n in names}
        assert len(parents) == 1, message
        assert {int(n.rpartition(".")[2]) for n in names} == {int(m[2])}, message
        assert all(_names_existing(n, keys) for n in names), (message, keys)
    elif m := re.fullmatch(r"Key (.+) is a negative list index; .*", message):
        name = _literal(m[1])
        assert int(name.rpartition(".")[2]) < 0 and _names_existing(name, keys), (message, keys)
    else:
        raise AssertionError(f"undocumented ValueError: {message}")


@PROPERTY
@given(wild_trees)
def test_property_roundtrip_wild_keys(tree):
    """Keys with dots, "01", "-1", "": funcnn equals mlx.utils or raises a documented error."""
    flat = ft.tree_flatten(tree)
    keys = [k for k, _ in flat]
    theirs = outcome(mu.tree_unflatten, flat)
    assert theirs[0] == "ok" or theirs[1] is RecursionError
    try:
        ours = ft.tree_unflatten(flat)
    except ValueError as err:
        assert_documented_defect(str(err), keys)
        return
    assert len(set(keys)) == len(keys)  # duplicates always raise
    assert not any(k.startswith(j + ".") for j in keys for k in keys)  # so do leaf+subtree
    assert theirs[0] == "ok"
    assert_same(ours, theirs[1])


def _superset(tree):
    """A tree containing ``tree``: extra dict keys (in reverse order), longer sequences."""
    if isinstance(tree, dict):
        out = {k: _superset(v) for k, v in reversed(list(tree.items()))}
        out["extra_key"] = 0
        return out
    if isinstance(tree, (list, tuple)):
        return type(tree)([*map(_superset, tree), 99])
    return ("r", tree)  # a subtree where the tree has a leaf


def _leaf_fn(x, *rest):
    return (x * 2 if is_array(x) else (x, "leaf"), *rest)


@PROPERTY
@given(typed_trees)
def test_property_map_equals_mlx(tree):
    assert_same(ft.tree_map(_leaf_fn, tree), mu.tree_map(_leaf_fn, tree), loose=True)
    assert_same(ft.tree_map(lambda x: x, tree), tree)  # node types kept
    rest = _superset(tree)
    assert_same(ft.tree_map(_leaf_fn, tree, rest), mu.tree_map(_leaf_fn, tree, rest), loose=True)
    assert_same(
        ft.tree_map_with_path(with_path, tree, rest, path="p"),
        mu.tree_map_with_path(with_path, tree, rest, path="p"),
        loose=True,
    )
    assert [id(x) for x in ft.tree_reduce(lambda acc, x: acc + [x], tree, [])] == [
        id(x) for x in mu.tree_reduce(lambda acc, x: acc + [x], tree, [])
    ]


@PROPERTY
@given(typed_trees, st.data())
def test_property_partition_combine(tree, data):
    arrays, static = ft.tree_partition(tree, is_array)
    assert_same(ft.tree_combine(arrays, static), tree)
    assert_same(ft.tree_combine(static, arrays), tree)
    assert all(x is None or is_array(x) for x in ft.tree_leaves(arrays))
    assert not any(is_array(x) for x in ft.tree_leaves(static))

    spec = ft.tree_structure(tree)
    bits = data.draw(st.lists(st.booleans(), min_size=spec.num_leaves, max_size=spec.num_leaves))
    chosen, rest = ft.tree_partition(tree, spec.unflatten(bits))
    for bit, x, c, r in zip(bits, ft.tree_leaves(tree), ft.tree_leaves(chosen),
                            ft.tree_leaves(rest)):
        assert (c, r)[not bit] is x and (c, r)[bit] is None
    assert_same(ft.tree_combine(chosen, rest), tree)


@PROPERTY
@given(typed_trees, st.integers(1, 3))
def test_property_stack_unstack(tree, n):
    trees = [ft.tree_map(lambda x, i=i: x + i if is_array(x) else x, tree) for i in range(n)]
    stacked = ft.tree_stack(trees)
    if not any(is_array(x) for x in ft.tree_leaves(tree)):
        assert_same(stacked, tree)
        with pytest.raises(ValueError, match="no array leaves"):
            ft.tree_unstack(stacked)
        return
    back = ft.tree_unstack(stacked)
    assert len(back) == n
    for t, b in zip(trees, back):
        assert_same(b, t)


# --------------------------------------------------------------------------
# 6. optree namespace
# --------------------------------------------------------------------------


def test_optree_dict_order_per_namespace():
    tree = {"b": 1, "a": 2, "c": {"z": 3, "y": 4}}
    assert optree.tree_leaves(tree, namespace=ft.NAMESPACE) == [1, 2, 3, 4]
    assert ft.tree_leaves(tree) == [1, 2, 3, 4]
    # the global namespace keeps optree's sorted keys
    assert optree.tree_leaves(tree) == [2, 1, 4, 3]
    assert optree.tree_leaves(tree, namespace="some-other-namespace") == [2, 1, 4, 3]
    # None: a leaf in funcnn's trees, an empty node in optree's default
    assert ft.tree_leaves([None, 1]) == [None, 1]
    assert optree.tree_leaves([None, 1], namespace=ft.NAMESPACE) == [1]


def test_optree_order_holds_in_other_threads():
    seen = []
    thread = threading.Thread(target=lambda: seen.append(ft.tree_leaves({"b": 1, "a": 2})))
    thread.start()
    thread.join()
    assert seen == [[1, 2]]
