"""Activations, as ``mlx.nn.layers.activations``: the array functions and the layer classes.

The math is :mod:`funcnn.functional.activations`; the pair factories are in
:mod:`funcnn.functional.activation_layers`.
"""

from __future__ import annotations

import mlx.core as mx

from ..functional.activations import (
    check_gelu_approx,
    gelu,
    gelu_apply,
    gelu_approx,
    gelu_fast_approx,
    relu,
    silu,
)
from .base import Module

__all__ = [
    "relu",
    "silu",
    "gelu",
    "gelu_approx",
    "gelu_fast_approx",
    "ReLU",
    "SiLU",
    "GELU",
]


class ReLU(Module):
    """``max(x, 0)`` as a layer (:func:`funcnn.relu`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.ReLU()(mx.array([-1.0, 2.0])).tolist()
        [0.0, 2.0]
    """

    def __call__(self, x: mx.array) -> mx.array:
        return relu(x)


class SiLU(Module):
    """``x * sigmoid(x)`` as a layer (:func:`funcnn.silu`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.SiLU()(mx.array([0.0])).tolist()
        [0.0]
    """

    def __call__(self, x: mx.array) -> mx.array:
        return silu(x)


class GELU(Module):
    """GELU as a layer; ``approx`` is ``"none"``, ``"precise"``/``"tanh"`` or ``"fast"``.

    The approximation is the attribute ``_approx``, read at every call
    (:func:`~funcnn.functional.activations.gelu_apply`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.GELU("tanh")(mx.array([0.0, 1.0])).tolist()
        [0.0, 0.8411920070648193]
    """

    def __init__(self, approx: str = "none") -> None:
        super().__init__()
        self._approx = approx
        check_gelu_approx(approx)

    def __call__(self, x: mx.array) -> mx.array:
        return gelu_apply(self, x, approx=self._approx)
