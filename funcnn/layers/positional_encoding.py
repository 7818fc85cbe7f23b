"""Positional encodings, as ``mlx.nn.layers.positional_encoding``: :class:`RoPE`.

The math is :mod:`funcnn.functional.positional_encoding`.
"""

from __future__ import annotations

from typing import Union

import mlx.core as mx

from ..functional.positional_encoding import rope_apply
from .base import Module

__all__ = ["RoPE"]


class RoPE(Module):
    """Rotary positional encoding; see :func:`funcnn.functional.rope`.

    ``dims``, ``traditional``, ``base`` and ``scale`` are read at every call.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> rope = nn.RoPE(8)
        >>> rope
        RoPE(8, traditional=False)
        >>> rope(mx.ones((1, 5, 8)), offset=2).shape
        (1, 5, 8)
    """

    def __init__(
        self, dims: int, traditional: bool = False, base: float = 10000, scale: float = 1.0
    ) -> None:
        super().__init__()
        self.dims = dims
        self.traditional = traditional
        self.base = base
        self.scale = scale

    def _extra_repr(self) -> str:
        return f"{self.dims}, traditional={self.traditional}"

    def __call__(self, x: mx.array, offset: Union[int, mx.array] = 0) -> mx.array:
        return rope_apply(
            self, x, offset, dims=self.dims, traditional=self.traditional, base=self.base,
            scale=self.scale,
        )
