"""Convolutions over channels-last inputs (MLX's ``layers/convolution.py``).

``conv1d`` (NLC) and ``conv2d`` (NHWC); the math is :func:`conv1d_apply` and
:func:`conv2d_apply`, whose settings are the attributes :mod:`mlx.nn` reads on
every call (``stride``, ``padding``, ``dilation``, ``groups``).
"""

from __future__ import annotations

import functools
import math
from typing import Union

import mlx.core as mx

from ._pair import Key, Pair, pair_factory

__all__ = ["conv1d", "conv2d", "conv1d_apply", "conv2d_apply"]

IntOrTuple = Union[int, tuple]


def _with_bias(params: dict, y: mx.array) -> mx.array:
    return y + params["bias"] if "bias" in params else y


def conv1d_apply(
    params: dict,
    x: mx.array,
    *,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
) -> mx.array:
    """``mx.conv1d(x, weight, ...) + bias`` over ``(N, L, C_in)`` inputs.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.conv1d_apply({"weight": mx.ones((1, 3, 2))}, mx.ones((1, 5, 2)), padding=1).shape
        (1, 5, 1)
    """
    return _with_bias(params, mx.conv1d(x, params["weight"], stride, padding, dilation, groups))


def conv2d_apply(
    params: dict,
    x: mx.array,
    *,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
) -> mx.array:
    """``mx.conv2d(x, weight, ...) + bias`` over ``(N, H, W, C_in)`` inputs.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> w = mx.ones((4, 3, 3, 2))
        >>> F.conv2d_apply({"weight": w}, mx.ones((1, 8, 8, 2)), stride=2).shape
        (1, 3, 3, 4)
    """
    return _with_bias(params, mx.conv2d(x, params["weight"], stride, padding, dilation, groups))


def _check_groups(in_channels: int, groups: int) -> None:
    if in_channels % groups != 0:
        raise ValueError(
            f"The number of input channels ({in_channels}) must be "
            f"divisible by the number of groups ({groups})"
        )


def _conv_init(weight_shape: tuple, bias: bool):
    """``init`` of a convolution: ``weight`` ``(out, *kernel, in/groups)`` uniform, ``bias`` zeros."""
    scale = math.sqrt(1 / math.prod(weight_shape[1:]))

    def init(key: Key = None) -> dict:
        params = {"weight": mx.random.uniform(low=-scale, high=scale, shape=weight_shape, key=key)}
        if bias:
            params["bias"] = mx.zeros((weight_shape[0],))
        return params

    return init


@pair_factory
def conv1d(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
    bias: bool = True,
) -> Pair:
    """A 1-D convolution over ``(N, L, C_in)`` inputs (as :class:`mlx.nn.Conv1d`).

    ``weight`` ``(out, kernel_size, in/groups)`` is uniform on ``[-k, k]``,
    ``k = sqrt(1 / (in/groups * kernel_size))``; ``bias`` starts at zero.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> conv = F.conv1d(4, 6, 3, padding=1)
        >>> conv.apply(conv.init(mx.random.key(0)), mx.ones((2, 10, 4))).shape
        (2, 10, 6)
    """
    _check_groups(in_channels, groups)
    init = _conv_init((out_channels, kernel_size, in_channels // groups), bias)
    apply = functools.partial(
        conv1d_apply, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    return Pair(init, apply, "conv1d")


def as_tuple(x: IntOrTuple, n: int) -> tuple:
    """``x`` repeated ``n`` times if it is an int (MLX's expansion of kernel/stride/padding)."""
    return (x,) * n if isinstance(x, int) else x


@pair_factory
def conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    bias: bool = True,
) -> Pair:
    """A 2-D convolution over ``(N, H, W, C_in)`` inputs (as :class:`mlx.nn.Conv2d`).

    ``weight`` ``(out, kh, kw, in/groups)`` is uniform on ``[-k, k]``,
    ``k = sqrt(1 / (in/groups * kh * kw))``; ``bias`` starts at zero.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> conv = F.conv2d(3, 8, 3, stride=2, padding=1)
        >>> conv.apply(conv.init(mx.random.key(0)), mx.ones((1, 8, 8, 3))).shape
        (1, 4, 4, 8)
    """
    _check_groups(in_channels, groups)
    kernel_size, stride, padding = (as_tuple(v, 2) for v in (kernel_size, stride, padding))
    init = _conv_init((out_channels, *kernel_size, in_channels // groups), bias)
    apply = functools.partial(
        conv2d_apply, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    return Pair(init, apply, "conv2d")
