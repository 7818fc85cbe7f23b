"""Activation functions on arrays (MLX's ``layers/activations.py``).

They are re-exported where :mod:`mlx.nn` has them (``funcnn.relu``,
``funcnn.layers.activations.relu``); the pair factories of the activation
layers (``F.relu()``, ``F.gelu(approx)``, ...) are in
:mod:`funcnn.functional.activation_layers`, because a pair factory and an
array function cannot share a name in one module.

Like MLX's, they are compiled with ``shapeless=True``: the element-wise
chain fuses into one kernel, Python scalars are accepted (``relu(3.0)``),
and results agree bit for bit with :mod:`mlx.nn`'s functions.
"""

from __future__ import annotations

import math
from functools import partial

import mlx.core as mx

__all__ = ["relu", "silu", "gelu", "gelu_approx", "gelu_fast_approx", "gelu_apply"]

_compiled = partial(mx.compile, shapeless=True)


@_compiled
def relu(x: mx.array) -> mx.array:
    """``max(x, 0)``; integer inputs stay integer.

    Example:
        >>> import mlx.core as mx
        >>> relu(mx.array([-1.0, 2.0])).tolist()
        [0.0, 2.0]
    """
    return mx.maximum(x, 0)


@_compiled
def silu(x: mx.array) -> mx.array:
    """``x * sigmoid(x)`` (the swish function)."""
    return x * mx.sigmoid(x)


@_compiled
def gelu(x: mx.array) -> mx.array:
    """The exact Gaussian error linear unit ``x * (1 + erf(x / sqrt(2))) / 2``."""
    return x * (1 + mx.erf(x / math.sqrt(2))) / 2


@_compiled
def gelu_approx(x: mx.array) -> mx.array:
    """The tanh approximation of :func:`gelu` (max abs error about 5e-4)."""
    return 0.5 * x * (1 + mx.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


@_compiled
def gelu_fast_approx(x: mx.array) -> mx.array:
    """``x * sigmoid(1.702 x)``.

    MLX documents an error below 0.015 against :func:`gelu`; measured on
    ``[-6, 6]`` it is about 0.020 (this function matches MLX's exactly).
    """
    return x * mx.sigmoid(1.702 * x)


GELU_APPROXIMATIONS = ["none", "precise", "tanh", "fast"]


def check_gelu_approx(approx: str) -> None:
    """mlx.nn's check of ``GELU(approx)``, shared by the pair factory and the class."""
    if approx not in GELU_APPROXIMATIONS:
        raise ValueError(
            f"The approximation should be in {GELU_APPROXIMATIONS} but '{approx}' was given"
        )


def gelu_apply(params: dict, x: mx.array, *, approx: str = "none") -> mx.array:
    """The GELU variant :class:`mlx.nn.GELU` picks for ``approx`` (read at every call).

    ``"none"``: :func:`gelu`; ``"precise"`` or ``"tanh"``: :func:`gelu_approx`;
    anything else: :func:`gelu_fast_approx`, as in MLX (the layer's
    constructor is where ``approx`` is checked).

    Example:
        >>> import mlx.core as mx
        >>> gelu_apply({}, mx.array([0.0, 1.0]), approx="tanh").tolist()
        [0.0, 0.8411920070648193]
    """
    if approx == "none":
        return gelu(x)
    if approx in ("precise", "tanh"):
        return gelu_approx(x)
    return gelu_fast_approx(x)
