"""Lookup tables, as ``mlx.nn.layers.embedding``: :class:`Embedding`.

The math is :mod:`funcnn.functional.embedding`.
"""

from __future__ import annotations

from typing import Optional

import mlx.core as mx

from ..functional.embedding import embedding, embedding_apply, embedding_as_linear
from ._template import adopt
from .base import Module
from .quantized import QuantizedEmbedding

__all__ = ["Embedding"]


class Embedding(Module):
    """A lookup table of ``num_embeddings`` vectors; see :func:`funcnn.functional.embedding`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> emb = nn.Embedding(10, 4)
        >>> emb(mx.array([[1, 2, 3]])).shape, emb.as_linear(mx.ones((1, 4))).shape
        ((1, 3, 4), (1, 10))
    """

    def __init__(self, num_embeddings: int, dims: int) -> None:
        super().__init__()
        adopt(self, embedding(num_embeddings, dims).init())

    def _extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, {self.weight.shape[1]}"

    def __call__(self, x: mx.array) -> mx.array:
        return embedding_apply(self, x)

    def as_linear(self, x: mx.array) -> mx.array:
        """The table as an output projection, ``x @ weight.T`` (tied input and output embeddings).

        See :func:`funcnn.functional.embedding_as_linear`.

        Example:
            >>> import mlx.core as mx
            >>> import funcnn as nn
            >>> emb = nn.Embedding(3, 2)
            >>> emb.weight = mx.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
            >>> emb.as_linear(mx.array([[2.0, 3.0]])).tolist()
            [[2.0, 3.0, 5.0]]
        """
        return embedding_as_linear(self, x)

    def to_quantized(
        self,
        group_size: Optional[int] = None,
        bits: Optional[int] = None,
        mode: str = "affine",
        quantize_input: bool = False,
    ) -> QuantizedEmbedding:
        """A :class:`QuantizedEmbedding` holding this table quantized (``quantize_input`` refused).

        Used by :func:`funcnn.quantize`.

        Example:
            >>> import funcnn as nn
            >>> nn.Embedding(10, 32).to_quantized(mode="mxfp4")
            QuantizedEmbedding(10, 32, group_size=32, bits=4, mode=mxfp4)
        """
        if quantize_input:
            raise ValueError("Quantized input is not supported.")
        return QuantizedEmbedding.from_embedding(self, group_size, bits, mode)
