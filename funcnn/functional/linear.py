"""Dense layers (MLX's ``layers/linear.py``): ``linear``."""

from __future__ import annotations

import math

import mlx.core as mx

from ._pair import Key, Pair, pair_factory, split_key

__all__ = ["linear", "linear_apply"]


def linear_apply(params: dict, x: mx.array) -> mx.array:
    """``x @ weight.T + bias``; the bias is used when ``params`` has one.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.linear_apply({"weight": mx.ones((2, 3))}, mx.ones(3)).tolist()
        [3.0, 3.0]
    """
    if "bias" in params:
        return mx.addmm(params["bias"], x, params["weight"].T)
    return x @ params["weight"].T


@pair_factory
def linear(input_dims: int, output_dims: int, bias: bool = True) -> Pair:
    """An affine map ``y = x W^T + b`` (as :class:`mlx.nn.Linear`).

    Parameters: ``weight`` ``(output_dims, input_dims)`` and ``bias``
    ``(output_dims,)``, both uniform on ``[-k, k]`` with ``k = 1/sqrt(input_dims)``.
    ``apply`` is :func:`linear_apply`.

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
