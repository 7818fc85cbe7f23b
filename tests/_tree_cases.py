"""Shared helpers of the :mod:`funcnn.tree` tests (``test_tree_*.py``).

Node types for the test trees, tree comparison (node types, key order and
array bits included), and ``assert_agree``, which runs one function of
:mod:`mlx.utils` (the oracle) and of :mod:`funcnn.tree` on one input and
demands the same outcome.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import mlx.core as mx
import mlx.utils as mu

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


def with_path(p, *xs):
    return (p, *xs)
