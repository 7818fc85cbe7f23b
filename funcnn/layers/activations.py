"""Activations, as ``mlx.nn.layers.activations``: the array functions and the layer classes.

The math is :mod:`funcnn.functional.activations`; the pair factories are in
:mod:`funcnn.functional.activation_layers`.  A class with a setting stores it
under :mod:`mlx.nn`'s name (``axis``, ``lambd``, ``threshold``, or the private
``_negative_slope``, ``_alpha``, ``_approx``) and reads it at every call, so
changing it after construction acts as in :mod:`mlx.nn`.  As there,
``Softmax``, ``LogSoftmax``, ``Softmin`` and ``HardTanh`` take no arguments
(last axis, bounds ``[-1, 1]``): use the functions for other choices.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx

from ..functional import activation_layers as pairs
from ..functional.activations import (
    FUNCTIONS,
    celu,
    celu_apply,
    check_gelu_approx,
    elu,
    elu_apply,
    gelu,
    gelu_apply,
    gelu_approx,
    gelu_fast_approx,
    glu,
    glu_apply,
    hard_shrink,
    hard_shrink_apply,
    hard_tanh,
    hardswish,
    leaky_relu,
    leaky_relu_apply,
    log_sigmoid,
    log_softmax,
    mish,
    prelu,
    prelu_apply,
    relu,
    relu2,
    relu6,
    selu,
    sigmoid,
    silu,
    softmax,
    softmin,
    softplus,
    softshrink,
    softshrink_apply,
    softsign,
    step,
    step_apply,
    tanh,
)
from ._template import adopt
from .base import Module

__all__ = [
    *FUNCTIONS,
    "GLU",
    "Sigmoid",
    "Mish",
    "ReLU",
    "ReLU2",
    "ReLU6",
    "LeakyReLU",
    "ELU",
    "Softmax",
    "Softplus",
    "Softsign",
    "Softshrink",
    "CELU",
    "SiLU",
    "LogSoftmax",
    "LogSigmoid",
    "PReLU",
    "GELU",
    "Tanh",
    "Hardswish",
    "Step",
    "SELU",
    "HardTanh",
    "HardShrink",
    "Softmin",
]


class GLU(Module):
    """Gated linear unit along ``axis`` (the attribute ``axis``): :func:`funcnn.glu`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> layer = nn.GLU()
        >>> layer(mx.ones((3, 4))).shape
        (3, 2)
        >>> layer.axis = 0            # read at every call
        >>> layer(mx.ones((4, 3))).shape
        (2, 3)
    """

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        self.axis = axis

    def __call__(self, x: mx.array) -> mx.array:
        return glu_apply(self, x, axis=self.axis)


class Sigmoid(Module):
    """The logistic function as a layer (:func:`funcnn.sigmoid`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.Sigmoid()(mx.array([0.0])).tolist()
        [0.5]
    """

    def __call__(self, x: mx.array) -> mx.array:
        return sigmoid(x)


class Mish(Module):
    """``x * tanh(softplus(x))`` as a layer (:func:`funcnn.mish`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.Mish()(mx.array([0.0])).tolist()
        [0.0]
    """

    def __call__(self, x: mx.array) -> mx.array:
        return mish(x)


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


class ReLU2(Module):
    """``max(x, 0) ** 2`` as a layer (:func:`funcnn.relu2`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.ReLU2()(mx.array([-1.0, 2.0])).tolist()
        [0.0, 4.0]
    """

    def __call__(self, x: mx.array) -> mx.array:
        return relu2(x)


class ReLU6(Module):
    """``min(max(x, 0), 6)`` as a layer (:func:`funcnn.relu6`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.ReLU6()(mx.array([-1.0, 8.0])).tolist()
        [0.0, 6.0]
    """

    def __call__(self, x: mx.array) -> mx.array:
        return relu6(x)


class LeakyReLU(Module):
    """``max(negative_slope * x, x)`` as a layer (:func:`funcnn.leaky_relu`).

    The slope is the attribute ``_negative_slope``, read at every call.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.LeakyReLU(0.5)(mx.array([-2.0, 2.0])).tolist()
        [-1.0, 2.0]
    """

    def __init__(self, negative_slope: Any = 1e-2) -> None:
        super().__init__()
        self._negative_slope = negative_slope

    def __call__(self, x: mx.array) -> mx.array:
        return leaky_relu_apply(self, x, negative_slope=self._negative_slope)


class ELU(Module):
    """The exponential linear unit as a layer (:func:`funcnn.elu`); ``alpha`` is ``_alpha``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.ELU(2.0)(mx.array([-mx.inf, 1.0])).tolist()
        [-2.0, 1.0]
    """

    def __init__(self, alpha: Any = 1.0) -> None:
        super().__init__()
        self._alpha = alpha

    def __call__(self, x: mx.array) -> mx.array:
        return elu_apply(self, x, alpha=self._alpha)


class Softmax(Module):
    """Softmax over the last axis as a layer (:func:`funcnn.softmax`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.Softmax()(mx.array([[0.0, 0.0]])).tolist()
        [[0.5, 0.5]]
    """

    def __call__(self, x: mx.array) -> mx.array:
        return softmax(x)


class Softplus(Module):
    """``log(1 + exp(x))`` as a layer (:func:`funcnn.softplus`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.Softplus()(mx.array([-mx.inf])).tolist()
        [0.0]
    """

    def __call__(self, x: mx.array) -> mx.array:
        return softplus(x)


class Softsign(Module):
    """``x / (1 + |x|)`` as a layer (:func:`funcnn.softsign`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.Softsign()(mx.array([1.0])).tolist()
        [0.5]
    """

    def __call__(self, x: mx.array) -> mx.array:
        return softsign(x)


class Softshrink(Module):
    """Soft shrinkage by the attribute ``lambd`` as a layer (:func:`funcnn.softshrink`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.Softshrink(1.0)(mx.array([0.5, 3.0])).tolist()
        [0.0, 2.0]
    """

    def __init__(self, lambd: Any = 0.5) -> None:
        super().__init__()
        self.lambd = lambd

    def __call__(self, x: mx.array) -> mx.array:
        return softshrink_apply(self, x, lambd=self.lambd)


class CELU(Module):
    """Continuously differentiable ELU as a layer (:func:`funcnn.celu`); ``alpha`` is ``_alpha``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.CELU(0.5)(mx.array([-mx.inf, 1.0])).tolist()
        [-0.5, 1.0]
    """

    def __init__(self, alpha: Any = 1.0) -> None:
        super().__init__()
        self._alpha = alpha

    def __call__(self, x: mx.array) -> mx.array:
        return celu_apply(self, x, alpha=self._alpha)


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


class LogSoftmax(Module):
    """Log-softmax over the last axis as a layer (:func:`funcnn.log_softmax`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.LogSoftmax()(mx.array([[3.0]])).tolist()
        [[0.0]]
    """

    def __call__(self, x: mx.array) -> mx.array:
        return log_softmax(x)


class LogSigmoid(Module):
    """``log(sigmoid(x))`` as a layer (:func:`funcnn.log_sigmoid`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.LogSigmoid()(mx.array([-1000.0])).tolist()
        [-1000.0]
    """

    def __call__(self, x: mx.array) -> mx.array:
        return log_sigmoid(x)


class PReLU(Module):
    """Parametric ReLU, learning ``num_parameters`` slopes as ``weight`` (:func:`funcnn.prelu`).

    The weight, ``full([num_parameters], init)``, broadcasts against the last
    axis of the input; see :func:`funcnn.functional.prelu`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> layer = nn.PReLU(2, init=0.5)
        >>> layer.weight
        array([0.5, 0.5], dtype=float32)
        >>> layer(mx.array([[-2.0, 2.0]])).tolist()
        [[-1.0, 2.0]]
    """

    def __init__(self, num_parameters: int = 1, init: Any = 0.25) -> None:
        super().__init__()
        adopt(self, pairs.prelu(num_parameters, init).init())

    def __call__(self, x: mx.array) -> mx.array:
        return prelu_apply(self, x)


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


class Tanh(Module):
    """The hyperbolic tangent as a layer (:func:`funcnn.tanh`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.Tanh()(mx.array([0.0])).tolist()
        [0.0]
    """

    def __call__(self, x: mx.array) -> mx.array:
        return tanh(x)


class Hardswish(Module):
    """``x * min(max(x + 3, 0), 6) / 6`` as a layer (:func:`funcnn.hardswish`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.Hardswish()(mx.array([3.0])).tolist()
        [3.0]
    """

    def __call__(self, x: mx.array) -> mx.array:
        return hardswish(x)


class Step(Module):
    """Binary step at the attribute ``threshold`` as a layer (:func:`funcnn.step`).

    The output is ``int32``, whatever the input type, as in MLX.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.Step(1.0)(mx.array([0.5, 1.0]))
        array([0, 1], dtype=int32)
    """

    def __init__(self, threshold: float = 0.0) -> None:
        super().__init__()
        self.threshold = threshold

    def __call__(self, x: mx.array) -> mx.array:
        return step_apply(self, x, threshold=self.threshold)


class SELU(Module):
    """The scaled exponential linear unit as a layer (:func:`funcnn.selu`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.SELU()(mx.array([0.0])).tolist()
        [0.0]
    """

    def __call__(self, x: mx.array) -> mx.array:
        return selu(x)


class HardTanh(Module):
    """Clipping to ``[-1, 1]`` as a layer (:func:`funcnn.hard_tanh` with its default bounds).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.HardTanh()(mx.array([-3.0, 0.5])).tolist()
        [-1.0, 0.5]
    """

    def __call__(self, x: mx.array) -> mx.array:
        return hard_tanh(x)


class HardShrink(Module):
    """Hard shrinkage at the attribute ``lambd`` as a layer (:func:`funcnn.hard_shrink`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.HardShrink(1.0)(mx.array([0.5, 3.0])).tolist()
        [0.0, 3.0]
    """

    def __init__(self, lambd: Any = 0.5) -> None:
        super().__init__()
        self.lambd = lambd

    def __call__(self, x: mx.array) -> mx.array:
        return hard_shrink_apply(self, x, lambd=self.lambd)


class Softmin(Module):
    """Softmin over the last axis as a layer (:func:`funcnn.softmin`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.Softmin()(mx.array([[2.0, 2.0]])).tolist()
        [[0.5, 0.5]]
    """

    def __call__(self, x: mx.array) -> mx.array:
        return softmin(x)
