"""Transposed convolutions, as ``mlx.nn.layers.convolution_transpose``.

:class:`ConvTranspose1d`, :class:`ConvTranspose2d`, :class:`ConvTranspose3d`.
The math is :mod:`funcnn.functional.convolution_transpose`; each call passes
the attributes ``stride``, ``padding``, ``dilation`` and ``output_padding`` as
they are then.  As in MLX, the 2-D and 3-D layers store their expanded
``padding``, ``stride`` and ``output_padding`` tuples as items, ``dilation``
as given.
"""

from __future__ import annotations

from typing import Union

import mlx.core as mx

from ..functional.convolution import as_tuple
from ..functional.convolution_transpose import (
    conv_transpose1d,
    conv_transpose1d_apply,
    conv_transpose2d,
    conv_transpose2d_apply,
    conv_transpose3d,
    conv_transpose3d_apply,
)
from ._template import adopt
from .base import Module

__all__ = ["ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]


class ConvTranspose1d(Module):
    """1-D transposed convolution of NLC inputs; see :func:`funcnn.functional.conv_transpose1d`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> up = nn.ConvTranspose1d(4, 2, 3, stride=2)
        >>> up(mx.ones((1, 5, 4))).shape
        (1, 11, 2)
        >>> up.output_padding = 1     # read at every call, as in mlx.nn
        >>> up(mx.ones((1, 5, 4))).shape
        (1, 12, 2)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        output_padding: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        pair = conv_transpose1d(
            in_channels, out_channels, kernel_size, stride, padding, dilation, output_padding,
            bias,
        )
        adopt(self, pair.init())
        self.padding = padding
        self.dilation = dilation
        self.stride = stride
        self.output_padding = output_padding

    def _extra_repr(self) -> str:
        return (
            f"{self.weight.shape[-1]}, {self.weight.shape[0]}, "
            f"kernel_size={self.weight.shape[1]}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, "
            f"output_padding={self.output_padding}, bias={'bias' in self}"
        )

    def __call__(self, x: mx.array) -> mx.array:
        return conv_transpose1d_apply(
            self, x, stride=self.stride, padding=self.padding, dilation=self.dilation,
            output_padding=self.output_padding,
        )


class ConvTranspose2d(Module):
    """2-D transposed convolution of NHWC inputs; see :func:`funcnn.functional.conv_transpose2d`.

    ``padding``, ``stride`` and ``output_padding`` are stored as 2-tuple
    items (part of :attr:`state`, not parameters), ``dilation`` as given.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> up = nn.ConvTranspose2d(3, 2, (3, 5), stride=2, padding=1, output_padding=1)
        >>> up(mx.ones((1, 4, 4, 3))).shape
        (1, 8, 10, 2)
        >>> up
        ConvTranspose2d(3, 2, kernel_size=(3, 5), stride=(2, 2), padding=(1, 1), ...)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Union[int, tuple],
        stride: Union[int, tuple] = 1,
        padding: Union[int, tuple] = 0,
        dilation: Union[int, tuple] = 1,
        output_padding: Union[int, tuple] = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        pair = conv_transpose2d(
            in_channels, out_channels, kernel_size, stride, padding, dilation, output_padding,
            bias,
        )
        adopt(self, pair.init())
        self.padding = as_tuple(padding, 2)
        self.stride = as_tuple(stride, 2)
        self.dilation = dilation
        self.output_padding = as_tuple(output_padding, 2)

    def _extra_repr(self) -> str:
        return (
            f"{self.weight.shape[-1]}, {self.weight.shape[0]}, "
            f"kernel_size={self.weight.shape[1:3]}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, "
            f"output_padding={self.output_padding}, bias={'bias' in self}"
        )

    def __call__(self, x: mx.array) -> mx.array:
        return conv_transpose2d_apply(
            self, x, stride=self.stride, padding=self.padding, dilation=self.dilation,
            output_padding=self.output_padding,
        )


class ConvTranspose3d(Module):
    """3-D transposed convolution of NDHWC inputs; see :func:`funcnn.functional.conv_transpose3d`.

    ``padding``, ``stride`` and ``output_padding`` are stored as 3-tuple
    items (part of :attr:`state`, not parameters), ``dilation`` as given.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> up = nn.ConvTranspose3d(3, 2, 2, stride=2)
        >>> up(mx.ones((1, 2, 3, 4, 3))).shape
        (1, 4, 6, 8, 2)
        >>> sorted(up.keys())
        ['bias', 'output_padding', 'padding', 'stride', 'weight']
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Union[int, tuple],
        stride: Union[int, tuple] = 1,
        padding: Union[int, tuple] = 0,
        dilation: Union[int, tuple] = 1,
        output_padding: Union[int, tuple] = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        pair = conv_transpose3d(
            in_channels, out_channels, kernel_size, stride, padding, dilation, output_padding,
            bias,
        )
        adopt(self, pair.init())
        self.padding = as_tuple(padding, 3)
        self.stride = as_tuple(stride, 3)
        self.dilation = dilation
        self.output_padding = as_tuple(output_padding, 3)

    def _extra_repr(self) -> str:
        return (
            f"{self.weight.shape[-1]}, {self.weight.shape[0]}, "
            f"kernel_size={self.weight.shape[1:4]}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, "
            f"output_padding={self.output_padding}, bias={'bias' in self}"
        )

    def __call__(self, x: mx.array) -> mx.array:
        return conv_transpose3d_apply(
            self, x, stride=self.stride, padding=self.padding, dilation=self.dilation,
            output_padding=self.output_padding,
        )
