"""Attention and transformers, as ``mlx.nn.layers.transformer``.

:class:`MultiHeadAttention`, the blocks :class:`TransformerEncoderLayer` and
:class:`TransformerDecoderLayer`, the stacks :class:`TransformerEncoder` and
:class:`TransformerDecoder`, and :class:`Transformer`.  Each holds child
Modules under :mod:`mlx.nn`'s names and calls them through the shared math of
:mod:`funcnn.functional.transformer` (``attend``, ``transformer_*_apply``), so
a child replaced with :meth:`Module.update_modules` is the one that runs.  The
settings ``activation``, ``norm_first`` and ``checkpoint`` are read at every
call, as in :mod:`mlx.nn`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional, Union

import mlx.core as mx

from ..functional._transformer_stack import mlp_width
from ..functional.activations import relu
from ..functional.transformer import (
    attend,
    projection_shapes,
    transformer_apply,
    transformer_decoder_apply,
    transformer_decoder_layer_apply,
    transformer_encoder_apply,
    transformer_encoder_layer_apply,
)
from ..functional.transformer import create_additive_causal_mask as _causal_mask
from .base import Module
from .dropout import Dropout
from .linear import Linear
from .normalization import LayerNorm

__all__ = [
    "MultiHeadAttention",
    "TransformerEncoderLayer",
    "TransformerEncoder",
    "TransformerDecoderLayer",
    "TransformerDecoder",
    "Transformer",
]

Mask = Optional[Union[mx.array, str]]


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


class TransformerEncoderLayer(Module):
    """A transformer encoder block; see :func:`funcnn.functional.transformer_encoder_layer`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> block = nn.TransformerEncoderLayer(8, 2, mlp_dims=16, norm_first=False)
        >>> list(block.keys())
        ['attention', 'ln1', 'ln2', 'linear1', 'linear2', 'dropout1', 'dropout2']
        >>> block(mx.ones((2, 3, 8)), None).shape
        (2, 3, 8)
    """

    def __init__(
        self,
        dims: int,
        num_heads: int,
        mlp_dims: Optional[int] = None,
        dropout: float = 0.0,
        activation: Callable[[Any], Any] = relu,
        norm_first: bool = True,
    ) -> None:
        super().__init__()
        mlp_dims = mlp_width(dims, mlp_dims)
        self.attention = MultiHeadAttention(dims, num_heads)
        self.ln1 = LayerNorm(dims)
        self.ln2 = LayerNorm(dims)
        self.linear1 = Linear(dims, mlp_dims)
        self.linear2 = Linear(mlp_dims, dims)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = activation
        self.norm_first = norm_first

    def __call__(self, x: mx.array, mask: Mask) -> mx.array:
        return transformer_encoder_layer_apply(
            self, x, mask, activation=self.activation, norm_first=self.norm_first
        )


class TransformerEncoder(Module):
    """Encoder blocks and a final layer norm; see :func:`funcnn.functional.transformer_encoder`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> encoder = nn.TransformerEncoder(2, 8, 2, mlp_dims=16, checkpoint=True)
        >>> len(encoder.layers), encoder(mx.ones((1, 3, 8)), "causal").shape
        (2, (1, 3, 8))
    """

    def __init__(
        self,
        num_layers: int,
        dims: int,
        num_heads: int,
        mlp_dims: Optional[int] = None,
        dropout: float = 0.0,
        activation: Callable[[Any], Any] = relu,
        norm_first: bool = True,
        checkpoint: bool = False,
    ) -> None:
        super().__init__()
        self.layers = [
            TransformerEncoderLayer(dims, num_heads, mlp_dims, dropout, activation, norm_first)
            for _ in range(num_layers)
        ]
        self.ln = LayerNorm(dims)
        self.checkpoint = checkpoint

    def __call__(self, x: mx.array, mask: Mask) -> mx.array:
        return transformer_encoder_apply(self, x, mask, checkpoint=self.checkpoint)


class TransformerDecoderLayer(Module):
    """A transformer decoder block; see :func:`funcnn.functional.transformer_decoder_layer`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> block = nn.TransformerDecoderLayer(8, 2, mlp_dims=16)
        >>> block(mx.ones((1, 3, 8)), mx.ones((1, 4, 8)), "causal", None).shape
        (1, 3, 8)
    """

    def __init__(
        self,
        dims: int,
        num_heads: int,
        mlp_dims: Optional[int] = None,
        dropout: float = 0.0,
        activation: Callable[[Any], Any] = relu,
        norm_first: bool = True,
    ) -> None:
        super().__init__()
        mlp_dims = mlp_width(dims, mlp_dims)
        self.self_attention = MultiHeadAttention(dims, num_heads)
        self.cross_attention = MultiHeadAttention(dims, num_heads)
        self.ln1 = LayerNorm(dims)
        self.ln2 = LayerNorm(dims)
        self.ln3 = LayerNorm(dims)
        self.linear1 = Linear(dims, mlp_dims)
        self.linear2 = Linear(mlp_dims, dims)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = activation
        self.norm_first = norm_first

    def __call__(
        self, x: mx.array, memory: mx.array, x_mask: Mask, memory_mask: Mask
    ) -> mx.array:
        return transformer_decoder_layer_apply(
            self, x, memory, x_mask, memory_mask,
            activation=self.activation, norm_first=self.norm_first,
        )


class TransformerDecoder(Module):
    """Decoder blocks and a final layer norm; see :func:`funcnn.functional.transformer_decoder`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> decoder = nn.TransformerDecoder(1, 8, 2, mlp_dims=16)
        >>> decoder(mx.ones((1, 3, 8)), mx.ones((1, 4, 8)), None, None).shape
        (1, 3, 8)
    """

    def __init__(
        self,
        num_layers: int,
        dims: int,
        num_heads: int,
        mlp_dims: Optional[int] = None,
        dropout: float = 0.0,
        activation: Callable[[Any], Any] = relu,
        norm_first: bool = True,
        checkpoint: bool = False,
    ) -> None:
        super().__init__()
        self.layers = [
            TransformerDecoderLayer(dims, num_heads, mlp_dims, dropout, activation, norm_first)
            for _ in range(num_layers)
        ]
        self.ln = LayerNorm(dims)
        self.checkpoint = checkpoint

    def __call__(
        self, x: mx.array, memory: mx.array, x_mask: Mask, memory_mask: Mask
    ) -> mx.array:
        return transformer_decoder_apply(
            self, x, memory, x_mask, memory_mask, checkpoint=self.checkpoint
        )


class Transformer(Module):
    """An encoder-decoder transformer; see :func:`funcnn.functional.transformer`.

    ``custom_encoder``/``custom_decoder``, when not ``None`` (an empty Module
    counts), are stored as ``encoder``/``decoder`` instead of the default stacks.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> model = nn.Transformer(8, 2, 1, 1, mlp_dims=16)
        >>> list(model.keys())
        ['encoder', 'decoder']
        >>> model(mx.ones((1, 5, 8)), mx.ones((1, 3, 8)), None, "causal", None).shape
        (1, 3, 8)
    """

    def __init__(
        self,
        dims: int = 512,
        num_heads: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        mlp_dims: Optional[int] = None,
        dropout: float = 0.0,
        activation: Callable[[Any], Any] = relu,
        custom_encoder: Optional[Any] = None,
        custom_decoder: Optional[Any] = None,
        norm_first: bool = True,
        checkpoint: bool = False,
    ) -> None:
        super().__init__()
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            self.encoder = TransformerEncoder(
                num_encoder_layers, dims, num_heads, mlp_dims, dropout, activation, norm_first,
                checkpoint,
            )
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            self.decoder = TransformerDecoder(
                num_decoder_layers, dims, num_heads, mlp_dims, dropout, activation, norm_first,
                checkpoint,
            )

    def __call__(
        self, src: mx.array, tgt: mx.array, src_mask: Mask, tgt_mask: Mask, memory_mask: Mask
    ) -> mx.array:
        return transformer_apply(self, src, tgt, src_mask, tgt_mask, memory_mask)
