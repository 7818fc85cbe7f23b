"""Loss functions (re-exported as ``funcnn.losses``, as ``mlx.nn.losses``).

Each loss runs :mod:`mlx.nn.losses`' ops in the same order, so values and
gradients are bit-identical, and raises its errors.  Where ``mlx.nn`` (0.32)
breaks its own contract these losses keep the contract instead (each
docstring says where):

* ``smooth_l1_loss`` with ``beta=0`` is the L1 loss with finite gradients
  (``mlx.nn``'s gradient is NaN everywhere: its unused quadratic branch
  divides by zero);
* ``cosine_similarity_loss`` of an all-zero vector has the finite gradient
  of ``x1 . x2 / eps`` (``mlx.nn``'s is NaN: the norm's derivative at zero,
  although ``eps`` replaces the denominator there);
* ``triplet_loss`` with ``p=0`` raises a ``ValueError`` naming ``p``
  (``mlx.nn``: ``ZeroDivisionError`` computing ``1 / p``).
"""

from __future__ import annotations

import math
from typing import Literal, Optional, get_args

import mlx.core as mx

__all__ = [
    "cross_entropy",
    "binary_cross_entropy",
    "l1_loss",
    "mse_loss",
    "nll_loss",
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

Reduction = Literal["none", "mean", "sum"]


def _reduce(loss: mx.array, reduction: Reduction = "none") -> mx.array:
    if reduction not in get_args(Reduction):
        raise ValueError(f"Invalid reduction. Must be one of {get_args(Reduction)}.")
    if reduction == "mean":
        return mx.mean(loss)
    if reduction == "sum":
        return mx.sum(loss)
    return loss


def _weighted(loss: mx.array, weights: mx.array) -> mx.array:
    if weights.shape != loss.shape:
        raise ValueError(
            f"Weights with shape {weights.shape} is not the same as "
            f"output loss with shape {loss.shape}."
        )
    return loss * weights


def _same_shape(what: str, a: mx.array, other: str, b: mx.array) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what} shape {a.shape} does not match {other} shape {b.shape}.")


def cross_entropy(
    logits: mx.array,
    targets: mx.array,
    weights: Optional[mx.array] = None,
    axis: int = -1,
    label_smoothing: float = 0.0,
    reduction: Reduction = "none",
) -> mx.array:
    """Cross entropy of ``logits`` against class indices or probabilities.

    Targets with the logits' shape are probabilities; targets with ``axis``
    removed are class indices.

    Example:
        >>> import mlx.core as mx
        >>> round(cross_entropy(mx.array([[2.0, -1.0]]), mx.array([0])).item(), 4)
        0.0486
    """
    if label_smoothing < 0 or label_smoothing >= 1:
        raise ValueError(f"Label smoothing must be in [0, 1), got {label_smoothing}.")
    as_probs = targets.ndim == logits.ndim
    expected = list(logits.shape)
    if not as_probs:
        expected.pop(axis)
    if targets.shape != tuple(expected):
        raise ValueError(
            f"Targets shape {targets.shape} does not match logits shape {logits.shape}."
        )
    use_fast = (
        mx.default_device() == mx.gpu
        and not as_probs
        and label_smoothing == 0
        and axis in (-1, logits.ndim - 1)
        and mx.issubdtype(logits.dtype, mx.floating)
        and mx.issubdtype(targets.dtype, mx.integer)
    )
    if use_fast:
        loss = mx.fast.cross_entropy(logits, targets).astype(logits.dtype)
    else:
        logits = logits - mx.stop_gradient(mx.max(logits, axis=axis, keepdims=True))
        if as_probs:
            score = mx.sum(logits * targets, axis=axis)
        else:
            score = mx.take_along_axis(logits, mx.expand_dims(targets, axis), axis).squeeze(axis)
        lse = mx.logsumexp(logits, axis=axis)
        if label_smoothing > 0:
            loss = lse - (1 - label_smoothing) * score - logits.mean(axis=axis) * label_smoothing
        else:
            loss = lse - score
    if weights is not None:
        loss = _weighted(loss, weights)
    return _reduce(loss, reduction)


def binary_cross_entropy(
    inputs: mx.array,
    targets: mx.array,
    weights: Optional[mx.array] = None,
    with_logits: bool = True,
    reduction: Reduction = "mean",
) -> mx.array:
    """Binary cross entropy of logits (default) or probabilities against 0/1 targets.

    Probabilities (``with_logits=False``) have their logarithms clipped at
    ``-100``, so exact zeros and ones stay finite.

    Example:
        >>> import mlx.core as mx
        >>> round(binary_cross_entropy(mx.array([0.0, 2.0]), mx.array([0.0, 1.0])).item(), 4)
        0.41
    """
    _same_shape("Inputs", inputs, "targets", targets)
    if with_logits:
        loss = mx.logaddexp(0.0, inputs) - inputs * targets
    else:
        log_p = mx.clip(mx.log(inputs), a_min=-100, a_max=None)
        log_not_p = mx.clip(mx.log(1 - inputs), a_min=-100, a_max=None)
        loss = -(targets * log_p + (1 - targets) * log_not_p)
    if weights is not None:
        loss = _weighted(loss, weights)
    return _reduce(loss, reduction)


def l1_loss(predictions: mx.array, targets: mx.array, reduction: Reduction = "mean") -> mx.array:
    """Mean (by default) absolute error.

    Example:
        >>> import mlx.core as mx
        >>> l1_loss(mx.array([1.0, -2.0]), mx.array([0.0, 0.0])).item()
        1.5
    """
    _same_shape("Predictions", predictions, "targets", targets)
    return _reduce(mx.abs(predictions - targets), reduction)


def mse_loss(predictions: mx.array, targets: mx.array, reduction: Reduction = "mean") -> mx.array:
    """Mean (by default) squared error.

    Example:
        >>> import mlx.core as mx
        >>> mse_loss(mx.array([1.0, -2.0]), mx.array([0.0, 0.0])).item()
        2.5
    """
    _same_shape("Predictions", predictions, "targets", targets)
    return _reduce(mx.square(predictions - targets), reduction)


def nll_loss(
    inputs: mx.array, targets: mx.array, axis: int = -1, reduction: Reduction = "none"
) -> mx.array:
    """Negative log likelihood of ``targets`` under log-probabilities ``inputs``.

    Example:
        >>> import mlx.core as mx
        >>> nll_loss(mx.log(mx.array([[0.5, 0.25, 0.25]])), mx.array([0])).tolist()
        [0.6931471824645996]
    """
    loss = -mx.take_along_axis(inputs, mx.expand_dims(targets, axis), axis).squeeze(axis)
    return _reduce(loss, reduction)


def gaussian_nll_loss(
    inputs: mx.array,
    targets: mx.array,
    vars: mx.array,
    full: bool = False,
    eps: float = 1e-6,
    reduction: Reduction = "mean",
) -> mx.array:
    """Gaussian negative log-likelihood of ``targets``: means ``inputs``, variances ``vars``.

    ``0.5 * (log(v) + (targets - inputs)**2 / v)`` with ``v = max(vars, eps)``;
    ``full`` adds the constant ``0.5 * log(2 * pi)``.  The three arrays must
    have one shape.

    Example:
        >>> import mlx.core as mx
        >>> gaussian_nll_loss(mx.array([0.0]), mx.array([2.0]), mx.array([1.0])).item()
        2.0
    """
    _same_shape("Inputs", inputs, "targets", targets)
    _same_shape("Inputs", inputs, "vars", vars)
    # Clamped, so a zero variance gives a large finite loss rather than inf/NaN.
    vars = mx.maximum(vars, eps)
    loss = 0.5 * (mx.log(vars) + mx.square(targets - inputs) / vars)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


def kl_div_loss(
    inputs: mx.array, targets: mx.array, axis: int = -1, reduction: Reduction = "none"
) -> mx.array:
    """Kullback-Leibler divergence of the predicted from the target distribution, over ``axis``.

    Both are log-probabilities: ``sum(exp(targets) * (targets - inputs), axis)``.

    Example:
        >>> import mlx.core as mx
        >>> logp = mx.log(mx.array([[0.5, 0.5]]))
        >>> kl_div_loss(logp, logp).tolist()
        [0.0]
    """
    loss = mx.sum(mx.exp(targets) * (targets - inputs), axis)
    return _reduce(loss, reduction)


def smooth_l1_loss(
    predictions: mx.array,
    targets: mx.array,
    beta: float = 1.0,
    reduction: Reduction = "mean",
) -> mx.array:
    """Squared error ``0.5 d**2 / beta`` where ``|d| < beta``, else absolute error ``|d| - beta/2``.

    ``d = predictions - targets``; the two arrays must have one shape.  With
    ``beta=0`` (a Python number) it is the L1 loss, with finite gradients
    (``mlx.nn`` gives the same values but NaN gradients).

    Example:
        >>> import mlx.core as mx
        >>> smooth_l1_loss(mx.array([0.5, 3.0]), mx.zeros(2), reduction="none").tolist()
        [0.125, 2.5]
    """
    _same_shape("Predictions", predictions, "targets", targets)
    diff = mx.abs(predictions - targets)
    if not isinstance(beta, mx.array) and beta == 0:
        # No element is below the threshold, and the quadratic branch would
        # divide by zero: its 0/0 poisons the gradient even where unused.
        return _reduce(mx.abs(diff) - 0.5 * beta, reduction)
    loss = mx.where(diff < beta, 0.5 * mx.square(diff) / beta, mx.abs(diff) - 0.5 * beta)
    return _reduce(loss, reduction)


def triplet_loss(
    anchors: mx.array,
    positives: mx.array,
    negatives: mx.array,
    axis: int = -1,
    p: int = 2,
    margin: float = 1.0,
    eps: float = 1e-6,
    reduction: Reduction = "none",
) -> mx.array:
    """``max(||a - pos||_p - ||a - neg||_p + margin, 0)``, distances taken over ``axis``.

    Each distance is ``(sum(|d|**p) + eps) ** (1/p)``.  ``p=0`` is a
    ``ValueError`` (``mlx.nn``: ``ZeroDivisionError``).

    Example:
        >>> import mlx.core as mx
        >>> a, pos, neg = mx.zeros((1, 2)), mx.zeros((1, 2)), mx.ones((1, 2))
        >>> [round(v, 3) for v in triplet_loss(a, pos, neg).tolist()]
        [0.0]
    """
    if not isinstance(p, mx.array) and p == 0:
        raise ValueError(f"triplet_loss: p (the norm degree) must be nonzero, got {p!r}.")
    pos_dist = mx.power(mx.power(mx.abs(anchors - positives), p).sum(axis) + eps, 1.0 / p)
    neg_dist = mx.power(mx.power(mx.abs(anchors - negatives), p).sum(axis) + eps, 1.0 / p)
    loss = mx.maximum(pos_dist - neg_dist + margin, 0)
    return _reduce(loss, reduction)


def hinge_loss(inputs: mx.array, targets: mx.array, reduction: Reduction = "none") -> mx.array:
    """``max(1 - inputs * targets, 0)`` for targets in ``{-1, 1}``.

    Example:
        >>> import mlx.core as mx
        >>> hinge_loss(mx.array([2.0, 0.5, -1.0]), mx.array([1.0, 1.0, 1.0])).tolist()
        [0.0, 0.5, 2.0]
    """
    loss = mx.maximum(1 - inputs * targets, 0)
    return _reduce(loss, reduction)


def huber_loss(
    inputs: mx.array,
    targets: mx.array,
    delta: float = 1.0,
    reduction: Reduction = "none",
) -> mx.array:
    """``0.5 a**2`` if ``|a| <= delta``, else ``delta * (|a| - delta/2)``; ``a = inputs - targets``.

    Example:
        >>> import mlx.core as mx
        >>> huber_loss(mx.array([0.5, 3.0]), mx.zeros(2)).tolist()
        [0.125, 2.5]
    """
    abs_errors = mx.abs(inputs - targets)
    quadratic = mx.minimum(abs_errors, delta)
    linear = abs_errors - quadratic
    loss = 0.5 * quadratic**2 + delta * linear
    return _reduce(loss, reduction)


def log_cosh_loss(inputs: mx.array, targets: mx.array, reduction: Reduction = "none") -> mx.array:
    """``log(cosh(inputs - targets))``, computed without overflow as ``logaddexp(a, -a) - log 2``.

    Example:
        >>> import mlx.core as mx
        >>> log_cosh_loss(mx.array([0.0, 1000.0]), mx.zeros(2)).tolist()
        [0.0, 999.3068237304688]
    """
    errors = inputs - targets
    loss = mx.logaddexp(errors, -errors) - math.log(2)
    return _reduce(loss, reduction)


def _norm(x: mx.array, axis: int) -> mx.array:
    """``mx.linalg.norm(x, axis=axis)`` bit for bit, with a zero (not NaN) gradient at zero.

    The norm is ``sqrt(sum(x**2))``, whose derivative at zero is NaN; fed a
    1 there, the square root's backward pass stays finite and the outer
    ``where`` gives the exact zero.
    """
    sum_sq = mx.sum(mx.square(x), axis=axis)
    # A comparison sends a +0 gradient back, which would turn mlx's -0 into +0.
    zero = mx.stop_gradient(sum_sq) == 0
    return mx.where(zero, 0, mx.sqrt(mx.where(zero, 1, sum_sq)))


def cosine_similarity_loss(
    x1: mx.array,
    x2: mx.array,
    axis: int = 1,
    eps: float = 1e-8,
    reduction: Reduction = "none",
) -> mx.array:
    """The cosine similarity ``x1 . x2 / max(||x1|| ||x2||, eps)`` over ``axis``.

    An all-zero vector gives ``0`` with the finite gradient of
    ``x1 . x2 / eps`` (``mlx.nn``: the same value, but a NaN gradient).

    Example:
        >>> import mlx.core as mx
        >>> cosine_similarity_loss(mx.array([[1.0, 0.0], [0.0, 0.0]]), mx.ones((2, 2))).tolist()
        [0.7071067690849304, 0.0]
    """
    x1_norm = _norm(x1, axis)
    x2_norm = _norm(x2, axis)
    loss = mx.sum(x1 * x2, axis=axis) / mx.maximum(x1_norm * x2_norm, eps)
    return _reduce(loss, reduction)


def margin_ranking_loss(
    inputs1: mx.array,
    inputs2: mx.array,
    targets: mx.array,
    margin: float = 0.0,
    reduction: Reduction = "none",
) -> mx.array:
    """``max(0, -targets * (inputs1 - inputs2) + margin)``: ranks by ``targets`` in ``{-1, 1}``.

    The three arrays must have one shape.

    Example:
        >>> import mlx.core as mx
        >>> x1, x2 = mx.array([2.0, 0.0]), mx.array([1.0, 1.0])
        >>> margin_ranking_loss(x1, x2, mx.array([1, 1])).tolist()
        [0.0, 1.0]
    """
    if not (inputs1.shape == inputs2.shape == targets.shape):
        raise ValueError(
            f"The shapes of the arguments do not match. The provided shapes are "
            f"inputs1.shape={inputs1.shape}, inputs2.shape={inputs2.shape}, and "
            f"targets.shape={targets.shape}."
        )
    loss = mx.maximum(0, -targets * (inputs1 - inputs2) + margin)
    return _reduce(loss, reduction)
