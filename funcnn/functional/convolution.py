"""Convolutions over channels-last inputs: ``conv1d`` (NLC) and ``conv2d`` (NHWC)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Union

import mlx.core as mx

from ._pair import Key, Pair, pair_factory

__all__ = ["conv1d", "conv2d"]

IntOrPair = Union[int, tuple]


def _check_groups(in_channels: int, groups: int) -> None:
    if in_channels % groups != 0:
        raise ValueError(
            f"The number of input channels ({in_channels}) must be "
            f"divisible by the number of groups ({groups})"
        )


def _conv_pair(
    name: str,
    conv: Callable,
    weight_shape: tuple,
    bias: bool,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: int,
) -> Pair:
    """A convolution pair; ``weight_shape`` is ``(out, *kernel, in/groups)``."""
    fan_in = math.prod(weight_shape[1:])
    scale = math.sqrt(1 / fan_in)

    def init(key: Key = None) -> dict:
        params = {"weight": mx.random.uniform(low=-scale, high=scale, shape=weight_shape, key=key)}
        if bias:
            params["bias"] = mx.zeros((weight_shape[0],))
        return params

    def apply(params: dict, x: mx.array) -> mx.array:
        y = conv(x, params["weight"], stride, padding, dilation, groups)
        if "bias" in params:
            y = y + params["bias"]
        return y

    return Pair(init, apply, name)


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
    shape = (out_channels, kernel_size, in_channels // groups)
    return _conv_pair("conv1d", mx.conv1d, shape, bias, stride, padding, dilation, groups)


def _pair_of(x: IntOrPair) -> tuple:
    return (x, x) if isinstance(x, int) else x


@pair_factory
def conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
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
    kernel_size, stride, padding = map(_pair_of, (kernel_size, stride, padding))
    shape = (out_channels, *kernel_size, in_channels // groups)
    return _conv_pair("conv2d", mx.conv2d, shape, bias, stride, padding, dilation, groups)
