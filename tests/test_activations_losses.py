"""``funcnn.losses`` against ``mlx.nn.losses`` (the oracle).

Losses are compared bit for bit, values and gradients, including their
``ValueError`` messages.  (The activation functions are in
``test_activations.py``.)
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn
import numpy as np
import pytest
from _bits import assert_identical, normal
from hypothesis import given, settings
from hypothesis import strategies as st

import funcnn
import funcnn.functional as F

LOSSES = ["cross_entropy", "binary_cross_entropy", "l1_loss", "mse_loss", "nll_loss"]


# --- losses ------------------------------------------------------------------------------


def test_losses_exported_like_mlx():
    for name in LOSSES:
        assert getattr(funcnn.losses, name) is getattr(F.losses, name)


def _softmax_targets(seed, *shape, axis=-1):
    return mx.softmax(normal(seed, *shape), axis=axis)


def _same_loss(name, *args, **kwargs):
    """Values and the gradient w.r.t. the first argument equal mlx.nn.losses' bit for bit."""
    got = getattr(funcnn.losses, name)(*args, **kwargs)
    want = getattr(mlx.nn.losses, name)(*args, **kwargs)
    assert_identical(got, want)
    if mx.issubdtype(args[0].dtype, mx.floating):

        def grad_of(fn):
            return mx.grad(lambda a: fn(a, *args[1:], **kwargs).sum())(args[0])

        assert_identical(
            grad_of(getattr(funcnn.losses, name)), grad_of(getattr(mlx.nn.losses, name))
        )
    return got


REDUCTIONS = ["none", "mean", "sum"]


@pytest.mark.parametrize("reduction", REDUCTIONS + [None])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.5])
def test_cross_entropy_indices(reduction, label_smoothing):
    logits = 3 * normal(0, 6, 5)
    targets = mx.array([0, 4, 2, 2, 1, 3])
    kwargs = dict(label_smoothing=label_smoothing)
    if reduction is not None:
        kwargs["reduction"] = reduction
    out = _same_loss("cross_entropy", logits, targets, **kwargs)
    assert out.shape == ((6,) if reduction in (None, "none") else ())


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_probabilities(reduction, label_smoothing):
    logits = 3 * normal(1, 4, 7)
    targets = _softmax_targets(2, 4, 7)
    _same_loss(
        "cross_entropy", logits, targets, label_smoothing=label_smoothing, reduction=reduction
    )
    one_hot = mx.eye(7)[mx.array([1, 0, 6, 3])]
    _same_loss("cross_entropy", logits, one_hot, reduction=reduction)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2, -3])
@pytest.mark.parametrize("as_probs", [False, True])
def test_cross_entropy_axis(axis, as_probs):
    logits = 2 * normal(3, 3, 4, 5)
    if as_probs:
        targets = _softmax_targets(4, 3, 4, 5, axis=axis)
    else:
        shape = list(logits.shape)
        classes = shape.pop(axis)
        targets = mx.random.randint(0, classes, shape, key=mx.random.key(5))
    _same_loss("cross_entropy", logits, targets, axis=axis)
    _same_loss("cross_entropy", logits, targets, axis=axis, label_smoothing=0.3, reduction="sum")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_weights(reduction):
    logits = normal(6, 5, 3)
    weights = mx.abs(normal(7, 5))
    _same_loss(
        "cross_entropy", logits, mx.array([0, 1, 2, 1, 0]), weights=weights, reduction=reduction
    )
    probs = _softmax_targets(8, 5, 3)
    _same_loss(
        "cross_entropy", logits, probs, weights=weights, label_smoothing=0.1, reduction=reduction
    )


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
def test_cross_entropy_half_precision(dtype):
    logits = (3 * normal(9, 6, 5)).astype(dtype)
    out = _same_loss("cross_entropy", logits, mx.array([0, 4, 2, 2, 1, 3]))
    assert out.dtype == dtype
    _same_loss(
        "cross_entropy", logits, _softmax_targets(10, 6, 5).astype(dtype), label_smoothing=0.1
    )


def test_cross_entropy_extreme_logits():
    logits = mx.array([[1000.0, -1000.0, 0.0], [-mx.inf, 0.0, 1.0]])
    _same_loss("cross_entropy", logits, mx.array([1, 2]))
    _same_loss("cross_entropy", logits, mx.array([0, 1]), label_smoothing=0.1)


def _same_error(name, *args, **kwargs):
    with pytest.raises(Exception) as want:
        getattr(mlx.nn.losses, name)(*args, **kwargs)
    with pytest.raises(type(want.value)) as got:
        getattr(funcnn.losses, name)(*args, **kwargs)
    assert str(got.value) == str(want.value)
    return want.value


CE_LOGITS = mx.zeros((4, 3))
ERRORS = [
    (
        "ce_smoothing_negative",
        "cross_entropy",
        (CE_LOGITS, mx.array([0, 1, 2, 0])),
        {"label_smoothing": -0.1},
    ),
    (
        "ce_smoothing_one",
        "cross_entropy",
        (CE_LOGITS, mx.array([0, 1, 2, 0])),
        {"label_smoothing": 1.0},
    ),
    ("ce_index_shape", "cross_entropy", (CE_LOGITS, mx.array([0, 1, 2])), {}),
    ("ce_index_shape_axis", "cross_entropy", (CE_LOGITS, mx.array([0, 1, 2, 0])), {"axis": 0}),
    ("ce_probs_shape", "cross_entropy", (CE_LOGITS, mx.zeros((4, 2))), {}),
    (
        "ce_weights_shape",
        "cross_entropy",
        (CE_LOGITS, mx.array([0, 1, 2, 0])),
        {"weights": mx.ones((3,))},
    ),
    ("ce_reduction", "cross_entropy", (CE_LOGITS, mx.array([0, 1, 2, 0])), {"reduction": "bogus"}),
    ("bce_shape", "binary_cross_entropy", (mx.zeros((4,)), mx.zeros((3,))), {}),
    (
        "bce_weights_shape",
        "binary_cross_entropy",
        (mx.zeros((4,)), mx.zeros((4,))),
        {"weights": mx.ones((2,))},
    ),
    (
        "bce_reduction",
        "binary_cross_entropy",
        (mx.zeros((4,)), mx.zeros((4,))),
        {"reduction": "avg"},
    ),
    ("l1_shape", "l1_loss", (mx.zeros((4,)), mx.zeros((4, 1))), {}),
    ("l1_reduction", "l1_loss", (mx.zeros((4,)), mx.zeros((4,))), {"reduction": "max"}),
    ("mse_shape", "mse_loss", (mx.zeros((2, 3)), mx.zeros((3, 2))), {}),
    ("mse_reduction", "mse_loss", (mx.zeros((4,)), mx.zeros((4,))), {"reduction": "Mean"}),
    ("nll_reduction", "nll_loss", (mx.zeros((4, 3)), mx.array([0, 1, 2, 0])), {"reduction": ""}),
]


@pytest.mark.parametrize("name,args,kwargs", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_loss_errors_match_mlx(name, args, kwargs):
    assert isinstance(_same_error(name, *args, **kwargs), ValueError)


@pytest.mark.parametrize("reduction", REDUCTIONS + [None])
@pytest.mark.parametrize("with_logits", [True, False])
def test_binary_cross_entropy(with_logits, reduction):
    if with_logits:
        inputs = 4 * normal(11, 3, 5)
    else:  # probabilities, including exact 0 and 1 (log clipped at -100)
        inputs = mx.concatenate([mx.sigmoid(normal(11, 3, 3)), mx.array([[0.0, 1.0]] * 3)], axis=1)
    targets = (normal(12, 3, 5) > 0).astype(mx.float32)
    kwargs = {"with_logits": with_logits}
    if reduction is not None:
        kwargs["reduction"] = reduction
    _same_loss("binary_cross_entropy", inputs, targets, **kwargs)
    _same_loss("binary_cross_entropy", inputs, targets, weights=mx.abs(normal(13, 3, 5)), **kwargs)
    soft = mx.sigmoid(normal(14, 3, 5))
    _same_loss("binary_cross_entropy", inputs, soft, **kwargs)


@pytest.mark.parametrize("name", ["l1_loss", "mse_loss"])
@pytest.mark.parametrize("reduction", REDUCTIONS + [None])
def test_l1_mse(name, reduction):
    kwargs = {} if reduction is None else {"reduction": reduction}
    out = _same_loss(name, normal(15, 4, 3), normal(16, 4, 3), **kwargs)
    assert out.shape == ((4, 3) if reduction == "none" else ())
    _same_loss(name, normal(17, 6).astype(mx.float16), normal(18, 6).astype(mx.float16), **kwargs)


@pytest.mark.parametrize("reduction", REDUCTIONS + [None])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_nll_loss(axis, reduction):
    logits = normal(19, 4, 6)
    log_probs = logits - mx.logsumexp(logits, axis=axis, keepdims=True)
    classes = log_probs.shape[axis]
    other = 4 if axis in (-1, 1) else 6
    targets = mx.random.randint(0, classes, (other,), key=mx.random.key(20))
    kwargs = {"axis": axis}
    if reduction is not None:
        kwargs["reduction"] = reduction
    out = _same_loss("nll_loss", log_probs, targets, **kwargs)
    assert out.shape == ((other,) if reduction in (None, "none") else ())


def test_losses_compose_with_transforms():
    logits, targets = normal(21, 3, 4, 5), mx.random.randint(0, 5, (3, 4), key=mx.random.key(22))
    got = mx.vmap(lambda lg, t: funcnn.losses.cross_entropy(lg, t, reduction="sum"))(
        logits, targets
    )
    want = mx.stack(
        [mlx.nn.losses.cross_entropy(logits[i], targets[i], reduction="sum") for i in range(3)]
    )
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-6, atol=1e-6)
    compiled = mx.compile(lambda lg, t: funcnn.losses.cross_entropy(lg, t, label_smoothing=0.1))
    np.testing.assert_allclose(
        np.array(compiled(logits, targets)),
        np.array(mlx.nn.losses.cross_entropy(logits, targets, label_smoothing=0.1)),
        rtol=1e-6,
        atol=1e-6,
    )


@settings(max_examples=15, deadline=None, derandomize=True, database=None)
@given(
    batch=st.lists(st.integers(1, 4), min_size=0, max_size=2),
    classes=st.integers(1, 7),
    as_probs=st.booleans(),
    label_smoothing=st.sampled_from([0.0, 0.25]),
    reduction=st.sampled_from(REDUCTIONS),
    weighted=st.booleans(),
)
def test_hypothesis_cross_entropy(batch, classes, as_probs, label_smoothing, reduction, weighted):
    logits = 3 * normal(23, *batch, classes)
    if as_probs:
        targets = _softmax_targets(24, *batch, classes)
    else:
        targets = mx.random.randint(0, classes, tuple(batch), key=mx.random.key(25))
    weights = mx.abs(normal(26, *batch)) if weighted else None
    _same_loss(
        "cross_entropy",
        logits,
        targets,
        weights=weights,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
