"""Tests of ``tree_flatten``/``tree_unflatten`` in :mod:`funcnn.tree`, with :mod:`mlx.utils` as the oracle.

1. Differential tests on the examples of the reference notes (section 3.4 of
   ``mlx_nn_semantics.md``): the same input goes to ``mlx.utils`` and to
   ``funcnn.tree`` and the results must be equal, node types included.
2. funcnn's documented improvements: where ``mlx.utils`` recurses forever or
   silently builds something else (duplicate keys, a key that is both a leaf
   and a subtree, two keys naming one list index, negative indices), funcnn
   raises ``ValueError`` naming the key; each case also records what
   ``mlx.utils`` does on the same input.
6. optree's dict order in funcnn's namespace versus the global one.

(Numbers as in the sections of the ``test_tree_*.py`` files.)
"""

from __future__ import annotations

import re
import threading
from collections import Counter, OrderedDict, defaultdict

import mlx.core as mx
import mlx.nn as mnn
import mlx.utils as mu
import optree
import pytest

import funcnn.tree as ft
from _tree_cases import PlainDict, PlainList, PlainTuple, Point, assert_agree, assert_same, assert_same_flat


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
