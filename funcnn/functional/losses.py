"""Loss functions (re-exported as ``funcnn.losses``, as ``mlx.nn.losses``)."""

from __future__ import annotations

from typing import Literal, Optional, get_args

import mlx.core as mx

__all__ = ["cross_entropy", "binary_cross_entropy", "l1_loss", "mse_loss", "nll_loss"]

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
    """Binary cross entropy of logits (default) or probabilities against 0/1 targets."""
    if inputs.shape != targets.shape:
        raise ValueError(
            f"Inputs shape {inputs.shape} does not match targets shape {targets.shape}."
        )
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
    """Mean (by default) absolute error."""
    if predictions.shape != targets.shape:
        raise ValueError(
            f"Predictions shape {predictions.shape} does not match "
            f"targets shape {targets.shape}."
        )
    return _reduce(mx.abs(predictions - targets), reduction)


def mse_loss(predictions: mx.array, targets: mx.array, reduction: Reduction = "mean") -> mx.array:
    """Mean (by default) squared error."""
    if predictions.shape != targets.shape:
        raise ValueError(
            f"Predictions shape {predictions.shape} does not match "
            f"targets shape {targets.shape}."
        )
    return _reduce(mx.square(predictions - targets), reduction)


def nll_loss(
    inputs: mx.array, targets: mx.array, axis: int = -1, reduction: Reduction = "none"
) -> mx.array:
    """Negative log likelihood of ``targets`` under log-probabilities ``inputs``."""
    loss = -mx.take_along_axis(inputs, mx.expand_dims(targets, axis), axis).squeeze(axis)
    return _reduce(loss, reduction)
