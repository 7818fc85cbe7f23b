"""The losses beyond cross entropy/L1/MSE/NLL against ``mlx.nn.losses`` (the oracle), bit for bit.

For each of ``gaussian_nll_loss``, ``kl_div_loss``, ``smooth_l1_loss``,
``triplet_loss``, ``hinge_loss``, ``huber_loss``, ``log_cosh_loss``,
``cosine_similarity_loss`` and ``margin_ranking_loss``: values and the
gradients with respect to every floating-point argument equal mlx.nn's in
their bits, for every reduction, dtype, non-default argument, edge value and
broadcast; the validation errors have mlx.nn's types and messages.

Where funcnn deliberately does better (``smooth_l1_loss`` with ``beta=0``,
``cosine_similarity_loss`` of a zero vector, ``triplet_loss`` with ``p=0``)
a test shows mlx.nn's behaviour beside ours.
"""

from __future__ import annotations

import inspect
import math

import mlx.core as mx
import mlx.nn
import numpy as np
import pytest
from _bits import assert_identical, normal
from hypothesis import given, settings
from hypothesis import strategies as st

import funcnn
import funcnn.functional as F

NEW_LOSSES = [
    "gaussian_nll_loss",
    "kl_div_loss",
    "smooth_l1_loss",
    "triplet_loss",
    "hinge_loss",
    "huber_loss",
    "log_cosh_loss",
    "cosine_similarity_loss",
    "margin_ranking_loss",
]
REDUCTIONS = ["none", "mean", "sum", None]  # None: the loss's default
FLOATS = [mx.float32, mx.float16, mx.bfloat16]


def log_softmax(x: mx.array, axis: int = -1) -> mx.array:
    return x - mx.logsumexp(x, axis=axis, keepdims=True)


def signs(seed: int, *shape: int, dtype=mx.float32) -> mx.array:
    return mx.where(normal(seed, *shape) > 0, 1, -1).astype(dtype)


def _floating(a) -> bool:
    return isinstance(a, mx.array) and mx.issubdtype(a.dtype, mx.floating)


def _grads(fn, args, kwargs):
    """Gradients of a non-uniformly weighted sum of ``fn(*args)`` w.r.t. its float arguments."""
    argnums = tuple(i for i, a in enumerate(args) if _floating(a))
    if not argnums:
        return []

    def scalar(*diff):
        full = list(args)
        for i, d in zip(argnums, diff):
            full[i] = d
        out = fn(*full, **kwargs)
        weights = 1.0 + mx.abs(normal(99, *out.shape)).astype(out.dtype)
        return (out * weights).sum()

    grads = mx.grad(scalar, argnums=tuple(range(len(argnums))))(*(args[i] for i in argnums))
    return list(grads)


def same(name, *args, **kwargs):
    """funcnn's value and gradients equal mlx.nn's bit for bit; returns funcnn's value."""
    ours, theirs = getattr(funcnn.losses, name), getattr(mlx.nn.losses, name)
    got = ours(*args, **kwargs)
    assert_identical(got, theirs(*args, **kwargs), "value")
    for i, (g, w) in enumerate(zip(_grads(ours, args, kwargs), _grads(theirs, args, kwargs))):
        assert_identical(g, w, f"gradient {i}")
    return got


def numbered(cases):
    return [f"{name}-{i}" for i, (name, _) in enumerate(cases)]


def same_error(name, *args, **kwargs):
    with pytest.raises(Exception) as want:
        getattr(mlx.nn.losses, name)(*args, **kwargs)
    with pytest.raises(type(want.value)) as got:
        getattr(funcnn.losses, name)(*args, **kwargs)
    assert str(got.value) == str(want.value)
    return want.value


# Typical arguments of each loss (seeded; ``dtype`` for the float arrays).
def example(name, seed=0, dtype=mx.float32, shape=(4, 5)):
    n = lambda k: normal(seed + k, *shape, dtype=dtype)  # noqa: E731
    log_probs = lambda k: log_softmax(n(k), axis=-1)  # noqa: E731
    return {
        "gaussian_nll_loss": lambda: (n(0), n(1), mx.abs(n(2))),
        "kl_div_loss": lambda: (log_probs(0), log_probs(1)),
        "smooth_l1_loss": lambda: (2 * n(0), n(1)),
        "triplet_loss": lambda: (n(0), n(1), n(2)),
        "hinge_loss": lambda: (n(0), signs(seed + 1, *shape, dtype=dtype)),
        "huber_loss": lambda: (2 * n(0), n(1)),
        "log_cosh_loss": lambda: (3 * n(0), n(1)),
        "cosine_similarity_loss": lambda: (n(0), n(1)),
        "margin_ranking_loss": lambda: (n(0), n(1), signs(seed + 2, *shape, dtype=dtype)),
    }[name]()


# --- exports and signatures -------------------------------------------------------------


@pytest.mark.parametrize("name", NEW_LOSSES)
def test_exported_with_mlx_signature(name):
    fn = getattr(funcnn.losses, name)
    assert fn is getattr(F.losses, name)
    assert name in F.losses.__all__ and name in funcnn.losses.__all__

    def sig(f):
        return [(p.name, p.kind, p.default) for p in inspect.signature(f).parameters.values()]

    assert sig(fn) == sig(getattr(mlx.nn.losses, name))
    assert fn.__doc__ and ">>>" in fn.__doc__


# --- every reduction, every dtype -------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS, ids=str)
@pytest.mark.parametrize("name", NEW_LOSSES)
def test_reductions(name, reduction):
    kwargs = {} if reduction is None else {"reduction": reduction}
    out = same(name, *example(name), **kwargs)
    default = inspect.signature(getattr(mlx.nn.losses, name)).parameters["reduction"].default
    reduced = (reduction or default) != "none"
    reduces_axis = name in ("kl_div_loss", "triplet_loss", "cosine_similarity_loss")
    assert out.shape == (() if reduced else (4,) if reduces_axis else (4, 5))


@pytest.mark.parametrize("reduction", ["max", "Mean", "", "avg"])
@pytest.mark.parametrize("name", NEW_LOSSES)
def test_invalid_reduction(name, reduction):
    err = same_error(name, *example(name), reduction=reduction)
    assert isinstance(err, ValueError)


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("name", NEW_LOSSES)
def test_dtypes(name, dtype):
    for reduction in ("none", "sum"):
        out = same(name, *example(name, 3, dtype), reduction=reduction)
        assert out.dtype == dtype


# Integer arrays where the loss takes labels or targets (mlx.nn promotes them).
INTEGER_ARGS = [
    ("hinge_loss", lambda: (normal(0, 6), signs(1, 6, dtype=mx.int32))),
    ("margin_ranking_loss", lambda: (normal(0, 6), normal(1, 6), signs(2, 6, dtype=mx.int32))),
    ("margin_ranking_loss",
     lambda: (mx.arange(6), mx.arange(6)[::-1], signs(2, 6, dtype=mx.int32))),
    ("smooth_l1_loss", lambda: (normal(0, 6), mx.arange(-3, 3))),
    ("smooth_l1_loss", lambda: (mx.arange(6), mx.arange(-3, 3))),
    ("huber_loss", lambda: (normal(0, 6), mx.arange(-3, 3))),
    ("huber_loss", lambda: (mx.arange(6) * 3, mx.arange(-3, 3))),
    ("log_cosh_loss", lambda: (normal(0, 6), mx.arange(-3, 3))),
    ("gaussian_nll_loss", lambda: (normal(0, 6), mx.arange(6), mx.arange(6))),
    ("triplet_loss",
     lambda: (mx.arange(6).reshape(2, 3), normal(1, 2, 3), mx.ones((2, 3), mx.int32))),
    ("cosine_similarity_loss", lambda: (mx.arange(6).reshape(2, 3), normal(1, 2, 3))),
    ("kl_div_loss", lambda: (log_softmax(normal(0, 2, 3)), mx.zeros((2, 3), mx.int32))),
]


@pytest.mark.parametrize("name,args", INTEGER_ARGS, ids=numbered(INTEGER_ARGS))
def test_integer_arrays(name, args):
    for reduction in ("none", "mean"):
        same(name, *args(), reduction=reduction)


# --- non-default arguments ------------------------------------------------------------------


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("eps", [1e-6, 0.5, 1, 0.0])
def test_gaussian_nll_full_and_eps(full, eps):
    inputs, targets = normal(0, 3, 4), normal(1, 3, 4)
    # Variances below, at and above eps (and zero, negative): the clamp decides.
    vars = mx.array([[0.0, -1.0, 1e-7, 0.2], [0.5, 1.0, 4.0, 1e-6], [2.0, 0.3, 1e-3, 9.0]])
    for reduction in ("none", "mean", "sum"):
        same("gaussian_nll_loss", inputs, targets, vars, full=full, eps=eps, reduction=reduction)
    ones = mx.ones_like(vars)
    with_const = funcnn.losses.gaussian_nll_loss(inputs, targets, ones, full=True, eps=eps)
    without = funcnn.losses.gaussian_nll_loss(inputs, targets, ones, full=False, eps=eps)
    assert abs((with_const - without).item() - 0.5 * math.log(2 * math.pi)) < 1e-5


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2, -3])
def test_axis(axis):
    shape = (3, 4, 5)
    x1, x2, x3 = (normal(s, *shape) for s in (10, 11, 12))
    out = same("kl_div_loss", log_softmax(x1, axis=axis), log_softmax(x2, axis=axis), axis=axis)
    kept = tuple(d for i, d in enumerate(shape) if i != axis % 3)
    assert out.shape == kept
    same("triplet_loss", x1, x2, x3, axis=axis)
    same("cosine_similarity_loss", x1, x2, axis=axis, reduction="mean")


@pytest.mark.parametrize("axis", [(1, 2), (0, 2), [0, 1], None], ids=str)
def test_several_axes(axis):
    # mx.linalg.norm over several axes (or all) is the Frobenius norm: the same bits.
    x1, x2, x3 = (normal(s, 3, 4, 5) for s in (13, 14, 15))
    same("cosine_similarity_loss", x1, x2, axis=axis)
    same("kl_div_loss", log_softmax(x1), log_softmax(x2), axis=axis, reduction="sum")
    same("triplet_loss", x1, x2, x3, axis=axis, reduction="mean")


@pytest.mark.parametrize("p", [1, 2, 3, 1.5, 0.5, -1, 2.0])
@pytest.mark.parametrize("eps", [1e-6, 0.0, 1, 0.25])
def test_triplet_p_eps(p, eps):
    a, pos, neg = normal(20, 3, 6), normal(21, 3, 6), normal(22, 3, 6)
    same("triplet_loss", a, pos, neg, p=p, eps=eps)
    same("triplet_loss", a, pos, neg, p=p, eps=eps, reduction="sum")


@pytest.mark.parametrize("margin", [0.0, 1.0, 2, -0.5, 0, mx.array(0.3)], ids=repr)
def test_margins(margin):
    a, pos, neg = normal(23, 4, 3), normal(24, 4, 3), normal(25, 4, 3)
    same("triplet_loss", a, pos, neg, margin=margin)
    same("margin_ranking_loss", normal(26, 5), normal(27, 5), signs(28, 5), margin=margin)
    same("margin_ranking_loss", normal(26, 5), normal(27, 5), signs(28, 5, dtype=mx.int32),
         margin=margin, reduction="mean")


@pytest.mark.parametrize("delta", [1.0, 0.5, 2, 0, 0.0, 1e-3, 100.0, -1.0, mx.array(0.7)], ids=repr)
def test_huber_delta(delta):
    inputs, targets = 3 * normal(30, 4, 5), normal(31, 4, 5)
    same("huber_loss", inputs, targets, delta=delta)
    same("huber_loss", inputs, targets, delta=delta, reduction="mean")


@pytest.mark.parametrize("beta", [1.0, 0.5, 2, 1e-3, 100.0, -1.0, mx.array(0.7)], ids=repr)
def test_smooth_l1_beta(beta):
    predictions, targets = 2 * normal(32, 4, 5), normal(33, 4, 5)
    same("smooth_l1_loss", predictions, targets, beta=beta)
    same("smooth_l1_loss", predictions, targets, beta=beta, reduction="none")


@pytest.mark.parametrize("eps", [1e-8, 0.0, 1, 10.0])
def test_cosine_eps(eps):
    x1, x2 = normal(34, 3, 4), 0.5 * normal(35, 3, 4)
    same("cosine_similarity_loss", x1, x2, eps=eps)
    same("cosine_similarity_loss", x1, x2, axis=0, eps=eps, reduction="sum")


# --- edge values --------------------------------------------------------------------------------

EDGES = mx.array([0.0, -0.0, -3.0, 2.5, 1e-30, -1e-30, 1e4, -1e4, 3e38, -3e38])
EDGES_INF_NAN = mx.array([mx.inf, -mx.inf, mx.nan, 0.0, 1.0, -1.0, mx.inf, mx.nan, 1e30, -2.0])


def _edge_args(name, values):
    other = values[::-1]
    if name == "gaussian_nll_loss":
        return values, other, mx.abs(values)
    if name in ("kl_div_loss", "triplet_loss", "cosine_similarity_loss"):
        rows = values.reshape(2, 5)
        return (rows, other.reshape(2, 5), mx.ones((2, 5))) if name == "triplet_loss" else (
            rows, other.reshape(2, 5))
    if name == "margin_ranking_loss":
        return values, other, mx.where(values > 0, 1.0, -1.0)
    return values, other


# (Zero vectors of cosine_similarity_loss: test_cosine_similarity_of_a_zero_vector.)
EDGE_CASES = [
    pytest.param(name, values, id=f"{name}-{label}")
    for name in NEW_LOSSES
    for label, values in [("finite", EDGES), ("inf_nan", EDGES_INF_NAN), ("zeros", mx.zeros(10))]
    if (name, label) != ("cosine_similarity_loss", "zeros")
]


@pytest.mark.parametrize("name,values", EDGE_CASES)
def test_edge_values(name, values):
    for reduction in ("none", "sum"):
        same(name, *_edge_args(name, values), reduction=reduction)
    for dtype in (mx.float16, mx.bfloat16):  # overflows to inf in half precision
        args = [a.astype(dtype) if _floating(a) else a for a in _edge_args(name, values)]
        same(name, *args, reduction="none")


def test_large_magnitudes_stay_finite_where_mlx_is():
    big = mx.array([1e3, -1e3, 5e4, 1e30])
    assert_identical(same("log_cosh_loss", big, mx.zeros(4)), big.abs() - math.log(2))
    huber = same("huber_loss", big, mx.zeros(4), delta=2.0)
    assert mx.isfinite(huber).all().item()


# --- broadcasting (the losses without a shape check) --------------------------------------------

BROADCASTS = [
    ("hinge_loss", lambda: (normal(0, 4, 5), signs(1, 5))),
    ("hinge_loss", lambda: (normal(0, 4, 1), signs(1, 1, 5))),
    ("huber_loss", lambda: (normal(0, 4, 5), normal(1, 1, 5))),
    ("log_cosh_loss", lambda: (normal(0, 3, 1, 2), normal(1, 4, 2))),
    ("kl_div_loss", lambda: (log_softmax(normal(0, 3, 5)), log_softmax(normal(1, 5)))),
    ("triplet_loss", lambda: (normal(0, 4, 3), normal(1, 3), normal(2, 2, 1, 3))),
    ("cosine_similarity_loss", lambda: (normal(0, 4, 3), normal(1, 1, 3))),
    ("hinge_loss", lambda: (normal(0, 4), 1)),  # a Python-scalar target
    ("huber_loss", lambda: (normal(0, 4), 0.5)),
]


@pytest.mark.parametrize("name,args", BROADCASTS, ids=numbered(BROADCASTS))
def test_broadcasting(name, args):
    for reduction in ("none", "mean"):
        same(name, *args(), reduction=reduction)


# --- validation errors ----------------------------------------------------------------------------

ERRORS = [
    ("gaussian_targets", "gaussian_nll_loss", (mx.zeros(4), mx.zeros(3), mx.ones(4)), {}),
    ("gaussian_vars", "gaussian_nll_loss", (mx.zeros(4), mx.zeros(4), mx.ones((4, 1))), {}),
    ("gaussian_both", "gaussian_nll_loss", (mx.zeros(4), mx.zeros(2), mx.ones(3)), {}),
    ("smooth_l1_shape", "smooth_l1_loss", (mx.zeros((2, 3)), mx.zeros((3,))), {}),
    ("smooth_l1_shape_beta0", "smooth_l1_loss", (mx.zeros(2), mx.zeros(3)), {"beta": 0}),
    ("margin_targets", "margin_ranking_loss", (mx.zeros(3), mx.zeros(3), mx.ones(2)), {}),
    ("margin_inputs", "margin_ranking_loss", (mx.zeros((3, 1)), mx.zeros(3), mx.ones(3)), {}),
    # The shape error comes first, as in mlx.nn.
    ("gaussian_shape_and_reduction", "gaussian_nll_loss", (mx.zeros(4), mx.zeros(3), mx.ones(4)),
     {"reduction": "bogus"}),
]


@pytest.mark.parametrize("name,args,kwargs", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_validation_errors(name, args, kwargs):
    err = same_error(name, *args, **kwargs)
    assert isinstance(err, ValueError) and "shape" in str(err)


def test_mlx_core_errors_pass_through():
    # Incompatible shapes and a missing axis fail in mlx.core, identically.
    same_error("hinge_loss", mx.zeros(3), mx.zeros(2))
    same_error("cosine_similarity_loss", mx.ones(3), mx.ones(3))  # axis=1 of a vector
    same_error("kl_div_loss", mx.zeros((2, 3)), mx.zeros((2, 3)), axis=2)


# --- where funcnn does better ---------------------------------------------------------------------


def test_smooth_l1_with_beta_zero_is_l1_with_finite_gradients():
    predictions, targets = mx.array([0.0, 0.5, -2.0, 3.0]), mx.array([0.0, 0.0, 0.0, 1.0])
    ours, theirs = funcnn.losses.smooth_l1_loss, mlx.nn.losses.smooth_l1_loss
    for beta in (0, 0.0):
        for reduction in ("none", "mean", "sum"):
            assert_identical(ours(predictions, targets, beta=beta, reduction=reduction),
                             theirs(predictions, targets, beta=beta, reduction=reduction))
        assert_identical(ours(predictions, targets, beta=beta, reduction="none"),
                         funcnn.losses.l1_loss(predictions, targets, reduction="none"))
        want = mx.grad(lambda p: theirs(p, targets, beta=beta))(predictions)
        assert mx.isnan(want).all().item(), "mlx.nn fixed it: compare with same()"
        got = mx.grad(lambda p: ours(p, targets, beta=beta))(predictions)
        l1 = mx.grad(lambda p: funcnn.losses.l1_loss(p, targets))(predictions)
        assert_identical(got, l1)
        assert got.tolist() == [0.0, 0.25, -0.25, 0.25]


def test_cosine_similarity_of_a_zero_vector():
    x1 = mx.array([[0.0, 0.0, 0.0], [1.0, 2.0, -1.0], [0.0, 0.0, 0.0]])
    x2 = mx.array([[1.0, 1.0, 0.0], [0.5, 0.0, 2.0], [0.0, 0.0, 0.0]])
    ours, theirs = funcnn.losses.cosine_similarity_loss, mlx.nn.losses.cosine_similarity_loss
    for reduction in ("none", "mean", "sum"):
        assert_identical(ours(x1, x2, reduction=reduction), theirs(x1, x2, reduction=reduction))
    want = mx.grad(lambda a: theirs(a, x2).sum())(x1)
    got = mx.grad(lambda a: ours(a, x2).sum())(x1)
    assert mx.isnan(want[0]).all().item(), "mlx.nn fixed it: compare with same()"
    assert mx.isfinite(got).all().item()
    # Rows without a zero vector: mlx.nn's bits; a zero vector's gradient is x2 / eps.
    assert_identical(got[1], want[1])
    assert got[0].tolist() == (x2[0] / 1e-8).tolist()
    assert got[2].tolist() == [0.0, 0.0, 0.0]


def test_triplet_loss_with_p_zero_names_p():
    a = mx.ones((2, 3))
    with pytest.raises(ZeroDivisionError):
        mlx.nn.losses.triplet_loss(a, a, a, p=0)
    for p in (0, 0.0):
        with pytest.raises(ValueError, match=rf"p \(the norm degree\) must be nonzero, got {p!r}"):
            funcnn.losses.triplet_loss(a, a, a, p=p)


# --- transforms and random inputs -----------------------------------------------------------------


@pytest.mark.parametrize("name", NEW_LOSSES)
def test_vmap_and_compile(name):
    args = example(name, 40, shape=(3, 4, 5))
    kwargs = {"axis": -1} if name == "cosine_similarity_loss" else {}
    fn = lambda *a: getattr(funcnn.losses, name)(*a, reduction="sum", **kwargs)  # noqa: E731
    got = mx.vmap(fn)(*args)
    want = mx.stack([getattr(mlx.nn.losses, name)(*(a[i] for a in args), reduction="sum", **kwargs)
                     for i in range(3)])
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-5, atol=1e-5)
    assert_identical(mx.compile(fn)(*args), fn(*args))


ELEMENTWISE = ["smooth_l1_loss", "hinge_loss", "huber_loss", "log_cosh_loss", "margin_ranking_loss"]


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(
    name=st.sampled_from(ELEMENTWISE),
    shape=st.lists(st.integers(1, 4), min_size=0, max_size=3),
    scale=st.sampled_from([1e-3, 1.0, 50.0, 1e20]),
    setting=st.floats(0.01, 10.0),
    seed=st.integers(0, 2**16),
)
def test_random_inputs_and_settings(name, shape, scale, setting, seed):
    args = [scale * normal(seed, *shape), scale * normal(seed + 1, *shape)]
    kwargs = {}
    if name == "margin_ranking_loss":
        args.append(signs(seed + 2, *shape))
        kwargs["margin"] = setting
    elif name in ("smooth_l1_loss", "huber_loss"):
        kwargs["beta" if name == "smooth_l1_loss" else "delta"] = setting
    same(name, *args, reduction="none", **kwargs)
