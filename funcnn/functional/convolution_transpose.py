"""Transposed convolutions over channels-last inputs (MLX's ``layers/convolution_transpose.py``).

``conv_transpose1d`` (NLC), ``conv_transpose2d`` (NHWC) and
``conv_transpose3d`` (NDHWC); the math is the ``*_apply`` functions, whose
settings are the attributes :mod:`mlx.nn` reads on every call (``stride``,
``padding``, ``dilation``, ``output_padding``).  As in :mod:`mlx.nn` there
are no groups.  Along each spatial axis the output has
``(L - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1``
positions.  Weight layout, init and bias are those of
:mod:`funcnn.functional.convolution`, whose helpers this module uses.
"""

from __future__ import annotations

import functools

import mlx.core as mx

from ._pair import Pair, pair_factory
from .convolution import (
    IntOrTuple,
    _check_kernel_int,
    _conv_init,
    _kernel_tuple,
    _with_bias,
    as_tuple,
)

__all__ = [
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "conv_transpose1d_apply",
    "conv_transpose2d_apply",
    "conv_transpose3d_apply",
]


def conv_transpose1d_apply(
    params: dict,
    x: mx.array,
    *,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    output_padding: int = 0,
) -> mx.array:
    """``mx.conv_transpose1d(x, weight, ...) + bias`` over ``(N, L, C_in)`` inputs.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> w = mx.ones((2, 3, 4))
        >>> F.conv_transpose1d_apply({"weight": w}, mx.ones((1, 5, 4)), stride=2).shape
        (1, 11, 2)
    """
    y = mx.conv_transpose1d(x, params["weight"], stride, padding, dilation, output_padding)
    return _with_bias(params, y)


def conv_transpose2d_apply(
    params: dict,
    x: mx.array,
    *,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    output_padding: IntOrTuple = 0,
) -> mx.array:
    """``mx.conv_transpose2d(x, weight, ...) + bias`` over ``(N, H, W, C_in)`` inputs.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> w = mx.ones((2, 3, 3, 4))
        >>> x = mx.ones((1, 4, 4, 4))
        >>> F.conv_transpose2d_apply({"weight": w}, x, stride=2, padding=1, output_padding=1).shape
        (1, 8, 8, 2)
    """
    y = mx.conv_transpose2d(x, params["weight"], stride, padding, dilation, output_padding)
    return _with_bias(params, y)


def conv_transpose3d_apply(
    params: dict,
    x: mx.array,
    *,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    output_padding: IntOrTuple = 0,
) -> mx.array:
    """``mx.conv_transpose3d(x, weight, ...) + bias`` over ``(N, D, H, W, C_in)`` inputs.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> w = mx.ones((2, 2, 2, 2, 3))
        >>> F.conv_transpose3d_apply({"weight": w}, mx.ones((1, 2, 3, 4, 3)), stride=2).shape
        (1, 4, 6, 8, 2)
    """
    y = mx.conv_transpose3d(x, params["weight"], stride, padding, dilation, output_padding)
    return _with_bias(params, y)


@pair_factory
def conv_transpose1d(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    output_padding: int = 0,
    bias: bool = True,
) -> Pair:
    """A 1-D transposed convolution of ``(N, L, C_in)`` inputs (``mlx.nn.ConvTranspose1d``).

    ``weight`` ``(out, kernel_size, in)`` is uniform on ``[-k, k]``,
    ``k = sqrt(1 / (in * kernel_size))``; ``bias`` starts at zero.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> up = F.conv_transpose1d(4, 2, 3, stride=2, padding=1, output_padding=1)
        >>> up.apply(up.init(mx.random.key(0)), mx.ones((2, 5, 4))).shape
        (2, 10, 2)
    """
    _check_kernel_int(kernel_size)
    init = _conv_init((out_channels, kernel_size, in_channels), bias)
    apply = functools.partial(
        conv_transpose1d_apply, stride=stride, padding=padding, dilation=dilation,
        output_padding=output_padding,
    )
    return Pair(init, apply, "conv_transpose1d")


def _conv_transpose_nd(
    n: int,
    apply_fn,
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrTuple,
    stride: IntOrTuple,
    padding: IntOrTuple,
    dilation: IntOrTuple,
    output_padding: IntOrTuple,
    bias: bool,
) -> Pair:
    kernel_size = _kernel_tuple(kernel_size, n)
    # ``dilation`` stays as given: mlx.nn expands the other three only.
    stride, padding, output_padding = (as_tuple(v, n) for v in (stride, padding, output_padding))
    init = _conv_init((out_channels, *kernel_size, in_channels), bias)
    apply = functools.partial(
        apply_fn, stride=stride, padding=padding, dilation=dilation,
        output_padding=output_padding,
    )
    return Pair(init, apply, f"conv_transpose{n}d")


@pair_factory
def conv_transpose2d(
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    output_padding: IntOrTuple = 0,
    bias: bool = True,
) -> Pair:
    """A 2-D transposed convolution of ``(N, H, W, C_in)`` inputs (``mlx.nn.ConvTranspose2d``).

    ``weight`` ``(out, kh, kw, in)`` is uniform on ``[-k, k]``,
    ``k = sqrt(1 / (in * kh * kw))``; ``bias`` starts at zero.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> up = F.conv_transpose2d(3, 2, (3, 2), stride=(2, 1))
        >>> up.apply(up.init(mx.random.key(0)), mx.ones((1, 4, 4, 3))).shape
        (1, 9, 5, 2)
    """
    return _conv_transpose_nd(
        2, conv_transpose2d_apply, in_channels, out_channels, kernel_size, stride, padding,
        dilation, output_padding, bias,
    )


@pair_factory
def conv_transpose3d(
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    output_padding: IntOrTuple = 0,
    bias: bool = True,
) -> Pair:
    """A 3-D transposed convolution of ``(N, D, H, W, C_in)`` inputs (``mlx.nn.ConvTranspose3d``).

    ``weight`` ``(out, kd, kh, kw, in)`` is uniform on ``[-k, k]``,
    ``k = sqrt(1 / (in * kd * kh * kw))``; ``bias`` starts at zero.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> up = F.conv_transpose3d(3, 2, 2, stride=2)
        >>> up.apply(up.init(mx.random.key(0)), mx.ones((1, 2, 3, 3, 3))).shape
        (1, 4, 6, 6, 2)
    """
    return _conv_transpose_nd(
        3, conv_transpose3d_apply, in_channels, out_channels, kernel_size, stride, padding,
        dilation, output_padding, bias,
    )
