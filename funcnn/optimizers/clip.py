"""Global-norm gradient clipping: a function on gradient trees and an optimizer wrapper.

Both use :func:`mlx.optimizers.clip_grad_norm` for the math: the norm is the
square root of the summed squares of every gradient (float16 summed in
float32), and gradients are scaled by ``min(max_norm / (norm + 1e-6), 1)``.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
from mlx.optimizers import clip_grad_norm as _mlx_clip_grad_norm  # imports mlx.nn

from ..tree import tree_flatten, tree_map_with_path
from ._base import Optimizer

__all__ = ["clip_grad_norm", "clip_by_global_norm"]


def _check(max_norm: float) -> None:
    if max_norm < 0:
        raise ValueError(f"max_norm should be >=0, {max_norm} was provided instead")


def clip_grad_norm(grads: Any, max_norm: float) -> tuple[Any, mx.array]:
    """Rescale ``grads`` so that their global norm is at most ``max_norm``.

    Returns ``(clipped, total_norm)``, where ``total_norm`` is the norm before
    clipping, as :func:`mlx.optimizers.clip_grad_norm` (same values).  Unlike
    it, any funcnn tree works: non-array leaves such as ``None`` are passed
    through and ignored by the norm, and node types are kept.  The norm covers
    every array in ``grads``: give only the trainable gradients (what
    :func:`funcnn.value_and_grad` returns), or use :func:`clip_by_global_norm`,
    which only counts the parameters its optimizer updates.

    Example:
        >>> import mlx.core as mx
        >>> from funcnn.optimizers import clip_grad_norm
        >>> clipped, norm = clip_grad_norm({"a": mx.array([3.0]), "b": [mx.array([4.0])]}, 1.0)
        >>> norm.item(), [round(x, 4) for x in (clipped["a"].item(), clipped["b"][0].item())]
        (5.0, [0.6, 0.8])
    """
    _check(max_norm)
    flat = {k: g for k, g in tree_flatten(grads) if isinstance(g, mx.array)}
    clipped, total_norm = _mlx_clip_grad_norm(flat, max_norm)
    if isinstance(grads, mx.array):
        return clipped[""], total_norm
    return tree_map_with_path(lambda k, g: clipped.get(k, g), grads), total_norm


def clip_by_global_norm(max_norm: float, optimizer: Optimizer) -> Optimizer:
    """``optimizer`` with the gradients it uses clipped to global norm ``max_norm`` first.

    The norm is taken over the gradients of the parameters the step updates
    (trainable, with state), so gradients given for frozen parameters do not
    count.  The state is the same as ``optimizer``'s (clipping keeps none;
    call :func:`clip_grad_norm` yourself to log the norm).  Over MLX, this is
    ``clip_grad_norm(grads, max_norm)`` followed by the optimizer's update.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.optimizers as optim
        >>> opt = optim.clip_by_global_norm(1.0, optim.sgd(learning_rate=1.0))
        >>> opt
        clip_by_global_norm(1.0, sgd(learning_rate=1.0))
        >>> params = {"w": mx.zeros(2)}
        >>> params, _ = opt.update({"w": mx.array([30.0, 40.0])}, opt.init(params), params)
        >>> [round(x, 4) for x in params["w"].tolist()]
        [-0.6, -0.8]
    """
    _check(max_norm)

    def clip(gradients: dict) -> dict:
        return _mlx_clip_grad_norm(gradients, max_norm)[0]

    return optimizer._with_grad_transform(f"clip_by_global_norm({max_norm!r})", clip)
