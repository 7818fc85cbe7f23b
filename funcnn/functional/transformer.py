"""Attention and transformers (MLX's ``layers/transformer.py``).

:func:`attend` is the attention itself, shared by the pure pair
``multi_head_attention`` (which composes four :func:`~funcnn.functional.linear`
pairs) and the facade class (which calls its four ``Linear`` children, so that
a swapped child is the one that runs).

The encoder and decoder blocks and stacks (``transformer_encoder_layer``,
``transformer_encoder``, ``transformer_decoder_layer``, ``transformer_decoder``,
``transformer``) live in :mod:`funcnn.functional._transformer_stack` and are
re-exported here.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import mlx.core as mx

from ._pair import Key, Pair, pair_factory, split_key
from .linear import linear

__all__ = [
    "multi_head_attention", "attend", "create_additive_causal_mask", "projection_shapes",
    "transformer_encoder_layer", "transformer_encoder", "transformer_decoder_layer",
    "transformer_decoder", "transformer", "transformer_encoder_layer_apply",
    "transformer_encoder_apply", "transformer_decoder_layer_apply", "transformer_decoder_apply",
    "transformer_apply",
]

Mask = Optional[Union[mx.array, str]]
_PROJECTIONS = ("query_proj", "key_proj", "value_proj", "out_proj")


def attend(
    queries: mx.array, keys: mx.array, values: mx.array, num_heads: int, mask: Mask = None
) -> mx.array:
    """Scaled dot-product attention of projected ``(B, L, D)`` inputs split into heads.

    ``mask`` may be an additive float array, a boolean array (``True`` keeps
    a position) or ``"causal"``.  Returns ``(B, L, value_dims)``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> x = mx.ones((1, 5, 8))
        >>> F.attend(x, x, x, num_heads=2, mask="causal").shape
        (1, 5, 8)
    """
    queries = mx.unflatten(queries, -1, (num_heads, -1)).transpose(0, 2, 1, 3)
    keys = mx.unflatten(keys, -1, (num_heads, -1)).transpose(0, 2, 1, 3)
    values = mx.unflatten(values, -1, (num_heads, -1)).transpose(0, 2, 1, 3)
    scale = math.sqrt(1 / queries.shape[-1])
    out = mx.fast.scaled_dot_product_attention(queries, keys, values, scale=scale, mask=mask)
    return out.transpose(0, 2, 1, 3).flatten(-2, -1)


def projection_shapes(
    dims: int,
    num_heads: int,
    query_input_dims: Optional[int] = None,
    key_input_dims: Optional[int] = None,
    value_input_dims: Optional[int] = None,
    value_dims: Optional[int] = None,
    value_output_dims: Optional[int] = None,
) -> list[tuple[int, int]]:
    """``(input_dims, output_dims)`` of the query, key, value and output projections.

    Unset dimensions default as in :class:`mlx.nn.MultiHeadAttention` (the
    value input follows the key input); ``dims`` must divide by ``num_heads``.

    Example:
        >>> import funcnn.functional as F
        >>> F.projection_shapes(8, 2, key_input_dims=5)
        [(8, 8), (5, 8), (5, 8), (8, 8)]
    """
    if dims % num_heads != 0:
        raise ValueError(
            "The input feature dimensions should be divisible by the "
            f"number of heads ({dims} % {num_heads}) != 0"
        )
    key_input_dims = key_input_dims or dims
    value_dims = value_dims or dims
    return [
        (query_input_dims or dims, dims),
        (key_input_dims, dims),
        (value_input_dims or key_input_dims, value_dims),
        (value_dims, value_output_dims or dims),
    ]


@pair_factory
def multi_head_attention(
    dims: int,
    num_heads: int,
    query_input_dims: Optional[int] = None,
    key_input_dims: Optional[int] = None,
    value_input_dims: Optional[int] = None,
    value_dims: Optional[int] = None,
    value_output_dims: Optional[int] = None,
    bias: bool = False,
) -> Pair:
    """Multi-head attention (as :class:`mlx.nn.MultiHeadAttention`).

    Parameters are four linear layers, ``query_proj``, ``key_proj``,
    ``value_proj`` and ``out_proj``, initialised in that order.
    ``apply(params, queries, keys, values, mask=None)``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> mha = F.multi_head_attention(8, 2)
        >>> x = mx.ones((1, 5, 8))
        >>> mha.apply(mha.init(mx.random.key(0)), x, x, x, mask="causal").shape
        (1, 5, 8)
    """
    shapes = projection_shapes(
        dims, num_heads, query_input_dims, key_input_dims, value_input_dims, value_dims,
        value_output_dims,
    )
    layers = tuple(linear(i, o, bias=bias) for i, o in shapes)

    def init(key: Key = None) -> dict:
        keys = split_key(key, len(layers))
        return {name: layer.init(k) for name, layer, k in zip(_PROJECTIONS, layers, keys)}

    query_proj, key_proj, value_proj, out_proj = layers

    def apply(
        params: dict, queries: mx.array, keys: mx.array, values: mx.array, mask: Mask = None
    ) -> mx.array:
        out = attend(
            query_proj.apply(params["query_proj"], queries),
            key_proj.apply(params["key_proj"], keys),
            value_proj.apply(params["value_proj"], values),
            num_heads,
            mask,
        )
        return out_proj.apply(params["out_proj"], out)

    return Pair(init, apply, "multi_head_attention")


def create_additive_causal_mask(N: int, dtype: mx.Dtype = mx.float32) -> mx.array:
    """An ``(N, N)`` mask with the dtype's lowest value above the diagonal, ``-0.0`` elsewhere.

    Example:
        >>> import funcnn.functional as F
        >>> (F.create_additive_causal_mask(3) < 0).tolist()[0]
        [False, True, True]
    """
    indices = mx.arange(N)
    mask = indices[:, None] < indices[None]
    return mask.astype(dtype) * mx.finfo(dtype).min


# The stacks compose multi_head_attention (above), so they are imported last.
from ._transformer_stack import (  # noqa: E402
    transformer,
    transformer_apply,
    transformer_decoder,
    transformer_decoder_apply,
    transformer_decoder_layer,
    transformer_decoder_layer_apply,
    transformer_encoder,
    transformer_encoder_apply,
    transformer_encoder_layer,
    transformer_encoder_layer_apply,
)
