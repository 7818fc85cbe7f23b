"""Convolutions over channels-last inputs (MLX's ``layers/convolution.py``).

``conv1d`` (NLC), ``conv2d`` (NHWC) and ``conv3d`` (NDHWC); the math is
:func:`conv1d_apply`, :func:`conv2d_apply` and :func:`conv3d_apply`, whose
settings are the attributes :mod:`mlx.nn` reads on every call (``stride``,
``padding``, ``dilation`` and, except in 3-D, ``groups``).  The transposed
convolutions (:mod:`funcnn.functional.convolution_transpose`) share the
helpers of this module.
"""

from __future__ import annotations

import functools
import math
import operator
from typing import Union

import mlx.core as mx

from ._pair import Key, Pair, pair_factory

__all__ = ["conv1d", "conv2d", "conv3d", "conv1d_apply", "conv2d_apply", "conv3d_apply"]

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


def conv3d_apply(
    params: dict,
    x: mx.array,
    *,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
) -> mx.array:
    """``mx.conv3d(x, weight, ...) + bias`` over ``(N, D, H, W, C_in)`` inputs.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> w = mx.ones((4, 2, 2, 2, 3))
        >>> F.conv3d_apply({"weight": w}, mx.ones((1, 5, 6, 4, 3)), padding=(1, 0, 0)).shape
        (1, 6, 5, 3, 4)
    """
    return _with_bias(params, mx.conv3d(x, params["weight"], stride, padding, dilation))


def _check_groups(in_channels: int, groups: int) -> None:
    if in_channels % groups != 0:
        raise ValueError(
            f"The number of input channels ({in_channels}) must be "
            f"divisible by the number of groups ({groups})"
        )


def _conv_init(weight_shape: tuple, bias: bool):
    """A convolution's ``init``: ``weight`` ``(out, *kernel, in/groups)`` uniform, ``bias`` 0."""
    scale = math.sqrt(1 / math.prod(weight_shape[1:]))

    def init(key: Key = None) -> dict:
        params = {"weight": mx.random.uniform(low=-scale, high=scale, shape=weight_shape, key=key)}
        if bias:
            params["bias"] = mx.zeros((weight_shape[0],))
        return params

    return init


def as_tuple(x: IntOrTuple, n: int) -> tuple:
    """``x`` repeated ``n`` times if it is an int, else ``x`` (MLX's expansion of stride/padding).

    Example:
        >>> from funcnn.functional.convolution import as_tuple
        >>> as_tuple(2, 3), as_tuple((1, 2), 2)
        ((2, 2, 2), (1, 2))
    """
    return (x,) * n if isinstance(x, int) else x


def _check_kernel_int(kernel_size: int) -> None:
    """A 1-D ``kernel_size`` is one integer (mlx.nn fails on others with unrelated messages)."""
    try:
        operator.index(kernel_size)
    except TypeError:
        raise TypeError(f"kernel_size must be an int, got {kernel_size!r}.") from None


def _kernel_tuple(kernel_size: IntOrTuple, n: int) -> tuple:
    """``kernel_size`` as ``n`` sizes, or an error naming what was received.

    mlx.nn indexes the sizes unchecked: too few raise a bare ``IndexError``
    ("tuple index out of range"), too many build a weight its own call rejects.
    """
    sizes = as_tuple(kernel_size, n)
    if not isinstance(sizes, (tuple, list)):
        raise TypeError(
            f"kernel_size must be an int or a tuple of {n} ints, got {kernel_size!r}."
        )
    if len(sizes) != n:
        raise ValueError(
            f"kernel_size must be an int or a tuple of {n} ints, got {kernel_size!r} "
            f"({len(sizes)} sizes)."
        )
    return sizes


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
    _check_kernel_int(kernel_size)
    init = _conv_init((out_channels, kernel_size, in_channels // groups), bias)
    apply = functools.partial(
        conv1d_apply, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    return Pair(init, apply, "conv1d")


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
    kernel_size = _kernel_tuple(kernel_size, 2)
    stride, padding = as_tuple(stride, 2), as_tuple(padding, 2)
    init = _conv_init((out_channels, *kernel_size, in_channels // groups), bias)
    apply = functools.partial(
        conv2d_apply, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    return Pair(init, apply, "conv2d")


@pair_factory
def conv3d(
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    bias: bool = True,
) -> Pair:
    """A 3-D convolution over ``(N, D, H, W, C_in)`` inputs (as :class:`mlx.nn.Conv3d`).

    ``weight`` ``(out, kd, kh, kw, in)`` is uniform on ``[-k, k]``,
    ``k = sqrt(1 / (in * kd * kh * kw))``; ``bias`` starts at zero.  As in
    :mod:`mlx.nn` there are no groups in 3-D.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> conv = F.conv3d(2, 4, (1, 3, 3), padding=(0, 1, 1))
        >>> conv.apply(conv.init(mx.random.key(0)), mx.ones((1, 3, 6, 6, 2))).shape
        (1, 3, 6, 6, 4)
    """
    kernel_size = _kernel_tuple(kernel_size, 3)
    stride, padding = as_tuple(stride, 3), as_tuple(padding, 3)
    init = _conv_init((out_channels, *kernel_size, in_channels), bias)
    apply = functools.partial(conv3d_apply, stride=stride, padding=padding, dilation=dilation)
    return Pair(init, apply, "conv3d")
