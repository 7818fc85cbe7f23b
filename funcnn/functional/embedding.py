"""Lookup tables (MLX's ``layers/embedding.py``): ``embedding``."""

from __future__ import annotations

import math

import mlx.core as mx

from ._pair import Key, Pair, pair_factory

__all__ = ["embedding", "embedding_apply", "embedding_as_linear"]


def embedding_apply(params: dict, x: mx.array) -> mx.array:
    """The rows of ``weight`` at the integer ids ``x``: shape ``x.shape + (dims,)``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.embedding_apply({"weight": mx.eye(3)}, mx.array([2])).tolist()
        [[0.0, 0.0, 1.0]]
    """
    return params["weight"][x]


def embedding_as_linear(params: dict, x: mx.array) -> mx.array:
    """Use an embedding table as an output projection (``x @ weight.T``), for tied weights.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.embedding_as_linear({"weight": mx.ones((5, 2))}, mx.ones((1, 2))).shape
        (1, 5)
    """
    return x @ params["weight"].T


@pair_factory
def embedding(num_embeddings: int, dims: int) -> Pair:
    """A lookup table of ``num_embeddings`` vectors of size ``dims`` (as :class:`mlx.nn.Embedding`).

    ``weight`` ``(num_embeddings, dims)`` is normal with standard deviation
    ``1/sqrt(dims)``; ``apply`` is :func:`embedding_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> emb = F.embedding(10, 4)
        >>> emb.apply(emb.init(mx.random.key(0)), mx.array([[1, 2]])).shape
        (1, 2, 4)
    """
    scale = math.sqrt(1 / dims)

    def init(key: Key = None) -> dict:
        return {"weight": mx.random.normal(shape=(num_embeddings, dims), scale=scale, key=key)}

    return Pair(init, embedding_apply, "embedding")
