"""Convolutions, as ``mlx.nn.layers.convolution``: ``Conv1d``, ``Conv2d``, ``Conv3d``.

The math is :mod:`funcnn.functional.convolution`; each call passes the
attributes ``stride``, ``padding``, ``dilation`` and ``groups`` as they are
then (MLX stores the expanded ``padding``/``stride`` tuples of ``Conv2d`` and
``Conv3d`` as items).
"""

from __future__ import annotations

from typing import Union

import mlx.core as mx

from ..functional.convolution import (
    as_tuple,
    conv1d,
    conv1d_apply,
    conv2d,
    conv2d_apply,
    conv3d,
    conv3d_apply,
)
from ._template import adopt
from .base import Module

__all__ = ["Conv1d", "Conv2d", "Conv3d"]


class Conv1d(Module):
    """1-D convolution over ``(N, L, C)`` inputs; see :func:`funcnn.functional.conv1d`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> conv = nn.Conv1d(4, 6, 3)
        >>> conv(mx.ones((2, 10, 4))).shape
        (2, 8, 6)
        >>> conv.padding = 1          # read at every call, as in mlx.nn
        >>> conv(mx.ones((2, 10, 4))).shape
        (2, 10, 6)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        pair = conv1d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        adopt(self, pair.init())
        self.padding = padding
        self.dilation = dilation
        self.stride = stride
        self.groups = groups

    def _extra_repr(self) -> str:
        return (
            f"{self.weight.shape[-1] * self.groups}, {self.weight.shape[0]}, "
            f"kernel_size={self.weight.shape[1]}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, "
            f"groups={self.groups}, bias={'bias' in self}"
        )

    def __call__(self, x: mx.array) -> mx.array:
        return conv1d_apply(
            self, x, stride=self.stride, padding=self.padding, dilation=self.dilation,
            groups=self.groups,
        )


class Conv2d(Module):
    """2-D convolution over ``(N, H, W, C)`` inputs; see :func:`funcnn.functional.conv2d`.

    As in MLX, ``padding`` and ``stride`` are stored as tuple items (part of
    :attr:`state`, not parameters).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.Conv2d(3, 8, 3, stride=2, padding=1)(mx.ones((1, 8, 8, 3))).shape
        (1, 4, 4, 8)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Union[int, tuple],
        stride: Union[int, tuple] = 1,
        padding: Union[int, tuple] = 0,
        dilation: Union[int, tuple] = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        pair = conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        adopt(self, pair.init())
        self.padding = as_tuple(padding, 2)
        self.stride = as_tuple(stride, 2)
        self.dilation = dilation
        self.groups = groups

    def _extra_repr(self) -> str:
        return (
            f"{self.weight.shape[-1] * self.groups}, {self.weight.shape[0]}, "
            f"kernel_size={self.weight.shape[1:3]}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, "
            f"groups={self.groups}, bias={'bias' in self}"
        )

    def __call__(self, x: mx.array) -> mx.array:
        return conv2d_apply(
            self, x, stride=self.stride, padding=self.padding, dilation=self.dilation,
            groups=self.groups,
        )


class Conv3d(Module):
    """3-D convolution of ``(N, D, H, W, C)`` inputs; see :func:`funcnn.functional.conv3d`.

    As in MLX there are no groups, and ``padding`` and ``stride`` are stored
    as tuple items (part of :attr:`state`, not parameters).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> conv = nn.Conv3d(2, 4, 3, padding=1)
        >>> conv(mx.ones((1, 4, 5, 6, 2))).shape
        (1, 4, 5, 6, 4)
        >>> conv
        Conv3d(2, 4, kernel_size=(3, 3, 3), stride=(1, 1, 1), padding=(1, 1, 1), dilation=1, ...)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Union[int, tuple],
        stride: Union[int, tuple] = 1,
        padding: Union[int, tuple] = 0,
        dilation: Union[int, tuple] = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        pair = conv3d(in_channels, out_channels, kernel_size, stride, padding, dilation, bias)
        adopt(self, pair.init())
        self.padding = as_tuple(padding, 3)
        self.stride = as_tuple(stride, 3)
        self.dilation = dilation

    def _extra_repr(self) -> str:
        return (
            f"{self.weight.shape[-1]}, {self.weight.shape[0]}, "
            f"kernel_size={self.weight.shape[1:4]}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, bias={'bias' in self}"
        )

    def __call__(self, x: mx.array) -> mx.array:
        return conv3d_apply(
            self, x, stride=self.stride, padding=self.padding, dilation=self.dilation
        )
