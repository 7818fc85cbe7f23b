"""Dense layers, as ``mlx.nn.layers.linear``: :class:`Linear`; math in :mod:`funcnn.functional.linear`."""

from __future__ import annotations

import mlx.core as mx

from ..functional.linear import linear, linear_apply
from ._template import adopt
from .base import Module

__all__ = ["Linear"]


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
