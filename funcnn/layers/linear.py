"""Dense layers, as ``mlx.nn.layers.linear``: :class:`Identity`, :class:`Linear`, :class:`Bilinear`.

The math is :mod:`funcnn.functional.linear`.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import mlx.core as mx

from ..functional.linear import (
    bilinear,
    bilinear_apply,
    identity,
    identity_apply,
    linear,
    linear_apply,
)
from ..functional.quantized import _check_quantize_input
from ._template import adopt
from .base import Module
from .quantized import QQLinear, QuantizedLinear

__all__ = ["Identity", "Linear", "Bilinear"]


class Identity(Module):
    """Returns its input; accepts and ignores any arguments; see :func:`funcnn.functional.identity`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> layer = nn.Identity(64, dropout=0.1)
        >>> layer
        Identity()
        >>> layer(mx.ones(2)).tolist()
        [1.0, 1.0]
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        adopt(self, identity(*args, **kwargs).init())

    def __call__(self, x: mx.array) -> mx.array:
        return identity_apply(self, x)


class Linear(Module):
    """``y = x W^T + b``; see :func:`funcnn.functional.linear`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> layer = nn.Linear(4, 3)
        >>> layer
        Linear(input_dims=4, output_dims=3, bias=True)
        >>> layer(mx.ones((2, 4))).shape
        (2, 3)
    """

    def __init__(self, input_dims: int, output_dims: int, bias: bool = True) -> None:
        super().__init__()
        adopt(self, linear(input_dims, output_dims, bias).init())

    def _extra_repr(self) -> str:
        return (
            f"input_dims={self.weight.shape[1]}, "
            f"output_dims={self.weight.shape[0]}, bias={'bias' in self}"
        )

    def __call__(self, x: mx.array) -> mx.array:
        return linear_apply(self, x)

    def to_quantized(
        self,
        group_size: Optional[int] = None,
        bits: Optional[int] = None,
        mode: str = "affine",
        quantize_input: bool = False,
    ) -> Union[QuantizedLinear, QQLinear]:
        """A quantized copy: a :class:`QuantizedLinear`, or with ``quantize_input`` a :class:`QQLinear`.

        ``quantize_input`` needs the ``"nvfp4"`` or ``"mxfp8"`` mode (and no
        bias).  Used by :func:`funcnn.quantize`.

        Example:
            >>> import funcnn as nn
            >>> nn.Linear(64, 2).to_quantized(bits=8)
            QuantizedLinear(input_dims=64, output_dims=2, bias=True, group_size=64, bits=8, mode=affine)
        """
        if quantize_input:
            _check_quantize_input(mode)
            return QQLinear.from_linear(self, group_size, bits, mode)
        return QuantizedLinear.from_linear(self, group_size, bits, mode)


class Bilinear(Module):
    """``y_o = x2^T W_o x1 + b_o``; see :func:`funcnn.functional.bilinear`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> layer = nn.Bilinear(2, 3, 4)
        >>> layer
        Bilinear(input1_dims=2, input2_dims=3, output_dims=4, bias=True)
        >>> layer(mx.ones((5, 2)), mx.ones((5, 3))).shape
        (5, 4)
    """

    def __init__(
        self, input1_dims: int, input2_dims: int, output_dims: int, bias: bool = True
    ) -> None:
        super().__init__()
        adopt(self, bilinear(input1_dims, input2_dims, output_dims, bias).init())

    def _extra_repr(self) -> str:
        out, in2, in1 = self.weight.shape
        return (
            f"input1_dims={in1}, input2_dims={in2}, output_dims={out}, "
            f"bias={'bias' in self}"
        )

    def __call__(self, x1: mx.array, x2: mx.array) -> mx.array:
        return bilinear_apply(self, x1, x2)
