"""The activation layers as pairs, for :func:`funcnn.functional.sequential`.

The math is in :mod:`funcnn.functional.activations` (the array functions,
named as in :mod:`mlx.nn`, and the ``*_apply`` functions of the layers with
settings); the pair factories here are named after the layer classes
(``LeakyReLU`` -> ``leaky_relu(negative_slope)``), so they live in a module of
their own.  Every pair is parameter-free except :func:`prelu`'s (``weight``).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

import mlx.core as mx

from . import activations as act
from ._pair import Key, Pair, no_params, pair_factory

__all__ = [
    "glu",
    "sigmoid",
    "mish",
    "relu",
    "relu2",
    "relu6",
    "leaky_relu",
    "elu",
    "softmax",
    "softplus",
    "softsign",
    "softshrink",
    "celu",
    "silu",
    "log_softmax",
    "log_sigmoid",
    "prelu",
    "gelu",
    "tanh",
    "hardswish",
    "step",
    "selu",
    "hard_tanh",
    "hard_shrink",
    "softmin",
]


def _activation(fn: Callable[[mx.array], mx.array], name: str) -> Pair:
    def apply(params: dict, x: mx.array) -> mx.array:
        return fn(x)

    return Pair(no_params, apply, name)


@pair_factory
def glu(axis: int = -1) -> Pair:
    """GLU as a pair (as :class:`mlx.nn.GLU`).

    ``apply`` is :func:`~funcnn.functional.activations.glu_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.glu(axis=0).apply({}, mx.ones((4, 3))).shape
        (2, 3)
    """
    return Pair(no_params, functools.partial(act.glu_apply, axis=axis), "glu")


@pair_factory
def sigmoid() -> Pair:
    """:func:`funcnn.sigmoid` as a pair (as :class:`mlx.nn.Sigmoid`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.sigmoid().apply({}, mx.array([0.0])).tolist()
        [0.5]
    """
    return _activation(act.sigmoid, "sigmoid")


@pair_factory
def mish() -> Pair:
    """:func:`funcnn.mish` as a pair (as :class:`mlx.nn.Mish`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.mish().apply({}, mx.array([0.0])).tolist()
        [0.0]
    """
    return _activation(act.mish, "mish")


@pair_factory
def relu() -> Pair:
    """:func:`funcnn.relu` as a pair (as :class:`mlx.nn.ReLU`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.relu().apply({}, mx.array([-1.0, 1.0])).tolist()
        [0.0, 1.0]
    """
    return _activation(act.relu, "relu")


@pair_factory
def relu2() -> Pair:
    """:func:`funcnn.relu2` as a pair (as :class:`mlx.nn.ReLU2`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.relu2().apply({}, mx.array([-1.0, 2.0])).tolist()
        [0.0, 4.0]
    """
    return _activation(act.relu2, "relu2")


@pair_factory
def relu6() -> Pair:
    """:func:`funcnn.relu6` as a pair (as :class:`mlx.nn.ReLU6`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.relu6().apply({}, mx.array([-1.0, 7.0])).tolist()
        [0.0, 6.0]
    """
    return _activation(act.relu6, "relu6")


@pair_factory
def leaky_relu(negative_slope: Any = 1e-2) -> Pair:
    """LeakyReLU as a pair (as :class:`mlx.nn.LeakyReLU`).

    ``apply`` is :func:`~funcnn.functional.activations.leaky_relu_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.leaky_relu(0.5).apply({}, mx.array([-2.0, 2.0])).tolist()
        [-1.0, 2.0]
    """
    return Pair(
        no_params,
        functools.partial(act.leaky_relu_apply, negative_slope=negative_slope),
        "leaky_relu",
    )


@pair_factory
def elu(alpha: Any = 1.0) -> Pair:
    """ELU as a pair (as :class:`mlx.nn.ELU`).

    ``apply`` is :func:`~funcnn.functional.activations.elu_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.elu(2.0).apply({}, mx.array([-mx.inf, 1.0])).tolist()
        [-2.0, 1.0]
    """
    return Pair(no_params, functools.partial(act.elu_apply, alpha=alpha), "elu")


@pair_factory
def softmax() -> Pair:
    """:func:`funcnn.softmax` on the last axis as a pair (as :class:`mlx.nn.Softmax`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.softmax().apply({}, mx.array([1.0, 1.0])).tolist()
        [0.5, 0.5]
    """
    return _activation(act.softmax, "softmax")


@pair_factory
def softplus() -> Pair:
    """:func:`funcnn.softplus` as a pair (as :class:`mlx.nn.Softplus`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.softplus().apply({}, mx.array([-mx.inf])).tolist()
        [0.0]
    """
    return _activation(act.softplus, "softplus")


@pair_factory
def softsign() -> Pair:
    """:func:`funcnn.softsign` as a pair (as :class:`mlx.nn.Softsign`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.softsign().apply({}, mx.array([1.0])).tolist()
        [0.5]
    """
    return _activation(act.softsign, "softsign")


@pair_factory
def softshrink(lambd: Any = 0.5) -> Pair:
    """Softshrink as a pair (as :class:`mlx.nn.Softshrink`).

    ``apply`` is :func:`~funcnn.functional.activations.softshrink_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.softshrink(1.0).apply({}, mx.array([0.5, 3.0])).tolist()
        [0.0, 2.0]
    """
    return Pair(no_params, functools.partial(act.softshrink_apply, lambd=lambd), "softshrink")


@pair_factory
def celu(alpha: Any = 1.0) -> Pair:
    """CELU as a pair (as :class:`mlx.nn.CELU`).

    ``apply`` is :func:`~funcnn.functional.activations.celu_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.celu(0.5).apply({}, mx.array([-mx.inf])).tolist()
        [-0.5]
    """
    return Pair(no_params, functools.partial(act.celu_apply, alpha=alpha), "celu")


@pair_factory
def silu() -> Pair:
    """:func:`funcnn.silu` as a pair (as :class:`mlx.nn.SiLU`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.silu().apply({}, mx.array([0.0])).tolist()
        [0.0]
    """
    return _activation(act.silu, "silu")


@pair_factory
def log_softmax() -> Pair:
    """:func:`funcnn.log_softmax` on the last axis as a pair (as :class:`mlx.nn.LogSoftmax`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.log_softmax().apply({}, mx.array([[5.0]])).tolist()
        [[0.0]]
    """
    return _activation(act.log_softmax, "log_softmax")


@pair_factory
def log_sigmoid() -> Pair:
    """:func:`funcnn.log_sigmoid` as a pair (as :class:`mlx.nn.LogSigmoid`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.log_sigmoid().apply({}, mx.array([-1000.0])).tolist()
        [-1000.0]
    """
    return _activation(act.log_sigmoid, "log_sigmoid")


_INT32_RANGE = "[-2147483648, 2147483647]"


def _prelu_weight(num_parameters: int, init: Any) -> mx.array:
    """``mx.full([num_parameters], init)``, as :class:`mlx.nn.PReLU` makes its weight.

    For a ``num_parameters`` that is not an integer (or does not fit in 64
    bits), :func:`mlx.core.full` lets a bare ``RuntimeError: std::bad_cast``
    escape, which says nothing of the argument; that one case gets an error
    naming it.
    """
    try:
        return mx.full([num_parameters], init)
    except RuntimeError as error:
        if "bad_cast" not in str(error):
            raise
        try:
            count = operator.index(num_parameters)
        except TypeError:
            raise TypeError(
                f"PReLU: num_parameters must be an int, received {num_parameters!r} "
                f"of type {type(num_parameters).__name__}."
            ) from None
        if not -(2**31) <= count < 2**31:
            raise OverflowError(
                f"Integer value {count} is outside the supported range {_INT32_RANGE}."
            ) from None
        raise


@pair_factory
def prelu(num_parameters: int = 1, init: Any = 0.25) -> Pair:
    """PReLU as a pair (as :class:`mlx.nn.PReLU`), with ``weight = full([num_parameters], init)``.

    ``apply`` is :func:`~funcnn.functional.activations.prelu_apply`; the
    weight broadcasts against the last axis of the input.  The weight takes
    the type of ``init`` (an int ``init`` makes an ``int32`` weight, as in
    MLX).  Its init draws nothing from the random state.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> layer = F.prelu(2, 0.5)
        >>> params = layer.init()
        >>> params
        {'weight': array([0.5, 0.5], dtype=float32)}
        >>> layer.apply(params, mx.array([-2.0, 2.0])).tolist()
        [-1.0, 2.0]
    """
    _prelu_weight(num_parameters, init)  # mlx.nn's constructor errors, raised here

    def init_params(key: Key = None) -> dict:
        return {"weight": _prelu_weight(num_parameters, init)}

    return Pair(init_params, act.prelu_apply, "prelu")


@pair_factory
def gelu(approx: str = "none") -> Pair:
    """GELU as a pair (as :class:`mlx.nn.GELU`).

    ``apply`` is :func:`~funcnn.functional.activations.gelu_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.gelu("tanh").apply({}, mx.array([0.0])).tolist()
        [0.0]
    """
    act.check_gelu_approx(approx)
    return Pair(no_params, functools.partial(act.gelu_apply, approx=approx), "gelu")


@pair_factory
def tanh() -> Pair:
    """:func:`funcnn.tanh` as a pair (as :class:`mlx.nn.Tanh`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.tanh().apply({}, mx.array([0.0])).tolist()
        [0.0]
    """
    return _activation(act.tanh, "tanh")


@pair_factory
def hardswish() -> Pair:
    """:func:`funcnn.hardswish` as a pair (as :class:`mlx.nn.Hardswish`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.hardswish().apply({}, mx.array([3.0])).tolist()
        [3.0]
    """
    return _activation(act.hardswish, "hardswish")


@pair_factory
def step(threshold: float = 0.0) -> Pair:
    """Step as a pair (as :class:`mlx.nn.Step`).

    ``apply`` is :func:`~funcnn.functional.activations.step_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.step(1.0).apply({}, mx.array([0.5, 1.0])).tolist()
        [0, 1]
    """
    return Pair(no_params, functools.partial(act.step_apply, threshold=threshold), "step")


@pair_factory
def selu() -> Pair:
    """:func:`funcnn.selu` as a pair (as :class:`mlx.nn.SELU`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.selu().apply({}, mx.array([0.0])).tolist()
        [0.0]
    """
    return _activation(act.selu, "selu")


@pair_factory
def hard_tanh() -> Pair:
    """:func:`funcnn.hard_tanh` with its bounds ``[-1, 1]`` as a pair (as :class:`mlx.nn.HardTanh`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.hard_tanh().apply({}, mx.array([-3.0, 0.5])).tolist()
        [-1.0, 0.5]
    """
    return _activation(act.hard_tanh, "hard_tanh")


@pair_factory
def hard_shrink(lambd: Any = 0.5) -> Pair:
    """HardShrink as a pair (as :class:`mlx.nn.HardShrink`).

    ``apply`` is :func:`~funcnn.functional.activations.hard_shrink_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.hard_shrink(1.0).apply({}, mx.array([0.5, 3.0])).tolist()
        [0.0, 3.0]
    """
    return Pair(no_params, functools.partial(act.hard_shrink_apply, lambd=lambd), "hard_shrink")


@pair_factory
def softmin() -> Pair:
    """:func:`funcnn.softmin` on the last axis as a pair (as :class:`mlx.nn.Softmin`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.softmin().apply({}, mx.array([2.0, 2.0])).tolist()
        [0.5, 0.5]
    """
    return _activation(act.softmin, "softmin")
