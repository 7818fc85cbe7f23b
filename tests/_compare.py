"""Shared helpers of the differential ``funcnn.Module`` tests (``test_module_*.py``).

Every test builds the *same* structure with both namespaces (``funcnn`` and
``mlx.nn``, passed in as ``nn``), runs the identical code on both and compares
what comes out: flattened keys, array values and dtypes, trainable key sets,
``named_modules()`` paths and class names, exception types and messages.
``same(run)`` is the workhorse; ``describe`` makes results of the two
namespaces comparable.  Also the models and arrays used by more than one file.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as mnn  # the oracle; the library itself never imports it
from mlx.utils import tree_flatten

import funcnn as fnn

NAMESPACES = (fnn, mnn)
MODULE_TYPES = (fnn.Module, mnn.Module)


# ----------------------------------------------------------------------
# Differential helpers
# ----------------------------------------------------------------------


def describe(x):
    """A namespace-independent, comparable description of ``x``."""
    if isinstance(x, mx.array):
        return ("array", str(x.dtype), tuple(x.shape), x.tolist())
    if isinstance(x, MODULE_TYPES):
        return ("module", type(x).__name__, [(k, describe(v)) for k, v in x.items()])
    if isinstance(x, dict):
        return ("dict", [(k, describe(v)) for k, v in x.items()])
    if isinstance(x, list):
        return ("list", [describe(v) for v in x])
    if isinstance(x, tuple):
        return ("tuple", [describe(v) for v in x])
    if isinstance(x, (set, frozenset)):
        return ("set", sorted((describe(v) for v in x), key=repr))
    if isinstance(x, BaseException):
        return ("raised", _builtin_type(x).__name__, str(x))
    if callable(x):
        return ("callable", getattr(x, "__name__", type(x).__name__))
    return x


def _builtin_type(err: BaseException) -> type:
    """The nearest built-in exception class: funcnn's own errors subclass the
    ones mlx.nn raises (``MismatchError`` is a ``ValueError``), which is what
    compatibility means for ``except`` clauses."""
    return next(c for c in type(err).__mro__ if c.__module__ == "builtins")


def outcome(fn, *args, **kwargs):
    """``("ok", result)`` or the raised exception (described by type and message)."""
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as err:  # noqa: BLE001 - we compare whatever is raised
        return err


def both(fn, seed=0):
    """``[fn(funcnn), fn(mlx.nn)]``, each run after ``mx.random.seed(seed)``."""
    results = []
    for nn in NAMESPACES:
        mx.random.seed(seed)
        results.append(fn(nn))
    return results


def same(fn, seed=0, more_errors=False):
    """Run ``fn`` with both namespaces, assert equal descriptions, return funcnn's result.

    With ``more_errors``, a funcnn message may go on after mlx.nn's: strict
    ``load_weights`` reports every problem, mlx.nn only the first.
    """
    ours, theirs = both(fn, seed)
    ours_d, theirs_d = describe(ours), describe(theirs)
    if more_errors:
        ours_d = _trim_messages(ours_d, theirs_d)
    assert ours_d == theirs_d
    return ours


def _trim_messages(ours, theirs):
    """``ours`` with each error message cut to ``theirs`` where it starts with it."""
    if isinstance(ours, tuple) and isinstance(theirs, tuple) and len(ours) == len(theirs):
        if (len(ours) == 3 and ours[0] == "raised" and ours[:2] == theirs[:2]
                and ours[2].startswith(theirs[2])):
            return theirs
        return tuple(_trim_messages(a, b) for a, b in zip(ours, theirs))
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        return [_trim_messages(a, b) for a, b in zip(ours, theirs)]
    return ours


def keys_of(tree, is_leaf=None):
    return [k for k, _ in tree_flatten(tree, is_leaf=is_leaf)]


def trainable_keys(model):
    return keys_of(model.trainable_parameters())


def no_grad_table(model):
    return [(k, type(m).__name__, sorted(m._no_grad, key=repr)) for k, m in model.named_modules()]


def module_paths(model):
    return [(k, type(m).__name__) for k, m in model.named_modules()]


def shapes(tree):
    return [(k, tuple(v.shape)) for k, v in tree_flatten(tree)]


def mlp3(nn):
    return nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), nn.Linear(3, 1, bias=False))


def assert_same_params(a, b):
    fa, fb = tree_flatten(a.parameters()), tree_flatten(b.parameters())
    assert [k for k, _ in fa] == [k for k, _ in fb]
    for (k, x), (_, y) in zip(fa, fb):
        assert x.dtype == y.dtype and x.shape == y.shape, k
        assert mx.array_equal(x, y).item(), k


# ----------------------------------------------------------------------
# Shared models and arrays
# ----------------------------------------------------------------------


def doc_model(nn):
    """The model of reference section 1.1."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = mx.zeros((2,))
            self._hidden = mx.ones((2,))
            self.n = 3
            self.t = (1, 2)
            self.l = [mx.ones((1,)), 5, "s"]
            self.d = {"a": mx.ones((1,)), "_b": mx.ones((1,)), "c": None}
            self.empty = []
            self.sub = nn.Linear(2, 2)

    return M()


# One array object, shared by the update and load_weights cases.
A = mx.full((1,), 4.0)
