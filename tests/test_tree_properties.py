"""Hypothesis properties of :mod:`funcnn.tree` on random nested dict/list/tuple trees.

``tree_flatten``, ``tree_unflatten`` (clean and wild keys), ``tree_map``,
``tree_map_with_path`` and ``tree_reduce`` equal :mod:`mlx.utils` or raise a
documented ``ValueError``; ``tree_partition``/``tree_combine`` and
``tree_stack``/``tree_unstack`` round-trip.
"""

from __future__ import annotations

import ast
import re
from collections import OrderedDict
from typing import Any

import mlx.core as mx
import mlx.utils as mu
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import funcnn.tree as ft
from _tree_cases import assert_same, assert_same_flat, is_array, outcome, with_path


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
