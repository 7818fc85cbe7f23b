"""Positional encodings, as ``mlx.nn.layers.positional_encoding``.

:class:`RoPE`, :class:`SinusoidalPositionalEncoding` and :class:`ALiBi`.

The math is :mod:`funcnn.functional.positional_encoding`.
"""

from __future__ import annotations

from typing import Optional, Union

import mlx.core as mx

from ..functional.positional_encoding import (
    alibi_apply,
    create_alibi_matrix,
    create_alibi_slope,
    rope_apply,
    sinusoidal_positional_encoding_apply,
    sinusoidal_sigmas,
)
from .base import Module

__all__ = ["RoPE", "SinusoidalPositionalEncoding", "ALiBi"]


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


class SinusoidalPositionalEncoding(Module):
    """Sinusoidal positional encoding; see :func:`funcnn.functional.sinusoidal_positional_encoding`.

    As in :mod:`mlx.nn`, the frequencies are the private item ``_sigmas``
    (in :attr:`state`, not in :meth:`parameters`); ``_sigmas``, ``scale``
    and ``cos_first`` are read at every call.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> pe = nn.SinusoidalPositionalEncoding(8, cos_first=True)
        >>> pe(mx.arange(5)).shape, list(pe.keys()), pe.parameters()
        ((5, 8), ['_sigmas'], {})
    """

    def __init__(
        self,
        dims: int,
        min_freq: float = 0.0001,
        max_freq: float = 1,
        scale: Optional[float] = None,
        cos_first: bool = False,
        full_turns: bool = False,
    ) -> None:
        super().__init__()
        self._sigmas = sinusoidal_sigmas(dims, min_freq, max_freq, full_turns)
        self.scale = scale if scale is not None else (2 / dims) ** 0.5
        self.cos_first = cos_first

    def __call__(self, x: mx.array) -> mx.array:
        return sinusoidal_positional_encoding_apply(
            self, x, sigmas=self._sigmas, scale=self.scale, cos_first=self.cos_first
        )


class ALiBi(Module):
    """Attention with linear biases; see :func:`funcnn.functional.alibi`.

    The bias is rebuilt at every call (nothing is cached, as in mlx.nn
    0.32.4); the static methods build it, or the slopes alone.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> scores = mx.zeros((1, 2, 3, 3))
        >>> nn.ALiBi()(scores)[0, 1, 2].tolist()
        [-0.0078125, -0.00390625, 0.0]
    """

    @staticmethod
    def create_alibi_matrix(
        q_sequence_length: int,
        k_sequence_length: int,
        num_heads: int,
        offset: int = 0,
        dtype: mx.Dtype = mx.float32,
    ) -> mx.array:
        """The ``(1, heads, q - offset, k)`` bias (:func:`funcnn.functional.create_alibi_matrix`).

        Example:
            >>> import funcnn as nn
            >>> nn.ALiBi.create_alibi_matrix(4, 6, 2, offset=1).shape
            (1, 2, 3, 6)
        """
        return create_alibi_matrix(q_sequence_length, k_sequence_length, num_heads, offset, dtype)

    @staticmethod
    def create_alibi_slope(num_heads: int, dtype: mx.Dtype = mx.float32) -> mx.array:
        """The ``(heads, 1, 1)`` slopes; see :func:`funcnn.functional.create_alibi_slope`.

        Example:
            >>> import funcnn as nn
            >>> nn.ALiBi.create_alibi_slope(2).flatten().tolist()
            [0.0625, 0.00390625]
        """
        return create_alibi_slope(num_heads, dtype)

    def __call__(
        self, attention_scores: mx.array, offset: int = 0, mask: Optional[mx.array] = None
    ) -> mx.array:
        return alibi_apply(self, attention_scores, offset, mask)
