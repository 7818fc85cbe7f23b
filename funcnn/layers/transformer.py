"""Attention and transformers, as ``mlx.nn.layers.transformer``: :class:`MultiHeadAttention`.

The shared math is :func:`funcnn.functional.transformer.attend`.
"""

from __future__ import annotations

from typing import Optional, Union

import mlx.core as mx

from ..functional.transformer import attend, projection_shapes
from ..functional.transformer import create_additive_causal_mask as _causal_mask
from .base import Module
from .linear import Linear

__all__ = ["MultiHeadAttention"]


class MultiHeadAttention(Module):
    """Multi-head attention; see :func:`funcnn.functional.multi_head_attention`.

    The projections are :class:`~funcnn.Linear` children (``query_proj``,
    ``key_proj``, ``value_proj``, ``out_proj``) that the call calls, so a
    projection replaced with :meth:`Module.update_modules` (a LoRA or quantized
    layer) is the one that runs.  ``num_heads`` is read at every call.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> mha = nn.MultiHeadAttention(8, 2)
        >>> x = mx.ones((1, 5, 8))
        >>> mha(x, x, x, mask="causal").shape
        (1, 5, 8)
    """

    def __init__(
        self,
        dims: int,
        num_heads: int,
        query_input_dims: Optional[int] = None,
        key_input_dims: Optional[int] = None,
        value_input_dims: Optional[int] = None,
        value_dims: Optional[int] = None,
        value_output_dims: Optional[int] = None,
        bias: bool = False,
    ) -> None:
        super().__init__()
        query, key, value, out = projection_shapes(
            dims, num_heads, query_input_dims, key_input_dims, value_input_dims, value_dims,
            value_output_dims,
        )
        self.num_heads = num_heads
        self.query_proj = Linear(*query, bias=bias)
        self.key_proj = Linear(*key, bias=bias)
        self.value_proj = Linear(*value, bias=bias)
        self.out_proj = Linear(*out, bias=bias)

    def __call__(
        self,
        queries: mx.array,
        keys: mx.array,
        values: mx.array,
        mask: Optional[Union[mx.array, str]] = None,
    ) -> mx.array:
        queries = self.query_proj(queries)
        keys = self.key_proj(keys)
        values = self.value_proj(values)
        return self.out_proj(attend(queries, keys, values, self.num_heads, mask))

    @staticmethod
    def create_additive_causal_mask(N: int, dtype: mx.Dtype = mx.float32) -> mx.array:
        """An ``(N, N)`` additive causal mask (see :func:`funcnn.functional.create_additive_causal_mask`)."""
        return _causal_mask(N, dtype)
