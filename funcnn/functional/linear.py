"""Dense layers: ``linear`` and ``embedding``."""

from __future__ import annotations

import math

import mlx.core as mx

from ._pair import Key, Pair, pair_factory, split_key

__all__ = ["linear", "embedding", "linear_apply"]


def linear_apply(params: dict, x: mx.array) -> mx.array:
    """``x @ weight.T + bias``; the bias is used when ``params`` has one."""
    if "bias" in params:
        return mx.addmm(params["bias"], x, params["weight"].T)
    return x @ params["weight"].T


@pair_factory
def linear(input_dims: int, output_dims: int, bias: bool = True) -> Pair:
    """An affine map ``y = x W^T + b`` (as :class:`mlx.nn.Linear`).

    Parameters: ``weight`` ``(output_dims, input_dims)`` and ``bias``
    ``(output_dims,)``, both uniform on ``[-k, k]`` with ``k = 1/sqrt(input_dims)``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> layer = F.linear(3, 2)
        >>> p = layer.init(mx.random.key(1))
        >>> {k: v.shape for k, v in p.items()}
        {'weight': (2, 3), 'bias': (2,)}
    """
    scale = math.sqrt(1.0 / input_dims)

    def init(key: Key = None) -> dict:
        k_weight, k_bias = split_key(key, 2)
        params = {
            "weight": mx.random.uniform(
                low=-scale, high=scale, shape=(output_dims, input_dims), key=k_weight
            )
        }
        if bias:
            params["bias"] = mx.random.uniform(
                low=-scale, high=scale, shape=(output_dims,), key=k_bias
            )
        return params

    return Pair(init, linear_apply, "linear")


def _embedding_apply(params: dict, x: mx.array) -> mx.array:
    return params["weight"][x]


@pair_factory
def embedding(num_embeddings: int, dims: int) -> Pair:
    """A lookup table of ``num_embeddings`` vectors of size ``dims`` (as :class:`mlx.nn.Embedding`).

    ``weight`` ``(num_embeddings, dims)`` is normal with standard deviation
    ``1/sqrt(dims)``; ``apply(params, ids)`` has shape ``ids.shape + (dims,)``.

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

    return Pair(init, _embedding_apply, "embedding")


def embedding_as_linear(params: dict, x: mx.array) -> mx.array:
    """Use an embedding table as an output projection (``x @ weight.T``), for tied weights."""
    return x @ params["weight"].T
