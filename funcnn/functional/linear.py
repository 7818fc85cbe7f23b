"""Dense layers (MLX's ``layers/linear.py``): ``identity``, ``linear``, ``bilinear``."""

from __future__ import annotations

import math
from typing import Any

import mlx.core as mx

from ._pair import Key, Pair, no_params, pair_factory, split_key

__all__ = ["identity", "identity_apply", "linear", "linear_apply", "bilinear", "bilinear_apply"]


def identity_apply(params: dict, x: Any) -> Any:
    """``x`` itself (the very object, as :class:`mlx.nn.Identity` returns it).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> x = mx.ones(3)
        >>> F.identity_apply({}, x) is x
        True
    """
    return x


@pair_factory
def identity(*args: Any, **kwargs: Any) -> Pair:
    """A layer that returns its input, whatever its arguments (as :class:`mlx.nn.Identity`).

    The arguments are accepted and ignored; there are no parameters.  ``apply``
    is :func:`identity_apply`.  Handy as a
    placeholder where a configuration turns a layer off.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> layer = F.identity(64, dropout=0.1)
        >>> layer.init(), layer.apply({}, mx.ones(2)).tolist()
        ({}, [1.0, 1.0])
    """
    return Pair(no_params, identity_apply, "identity")


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


def _uniform_weight_and_bias(weight_shape: tuple, bias: bool, scale: float):
    """``init`` drawing ``weight`` then (optionally) ``bias`` uniform on ``[-scale, scale]``."""

    def init(key: Key = None) -> dict:
        k_weight, k_bias = split_key(key, 2)
        params = {
            "weight": mx.random.uniform(low=-scale, high=scale, shape=weight_shape, key=k_weight)
        }
        if bias:
            params["bias"] = mx.random.uniform(
                low=-scale, high=scale, shape=(weight_shape[0],), key=k_bias
            )
        return params

    return init


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
    init = _uniform_weight_and_bias((output_dims, input_dims), bias, scale)
    return Pair(init, linear_apply, "linear")


def _check_features(name: str, x: mx.array, dims: int, setting: str) -> None:
    # mlx.nn lets a wrong feature size reach a reshape, whose error names
    # neither the input nor the expected size.  (A scalar reshapes as one
    # feature: mlx.nn takes it where the size is 1, and so do we.)
    if (x.shape[-1] if x.ndim else 1) != dims:
        raise ValueError(
            f"Bilinear: {name} must have {setting}={dims} features on its last axis, "
            f"received an array of shape {x.shape}."
        )


def bilinear_apply(params: dict, x1: mx.array, x2: mx.array) -> mx.array:
    """``y[..., o] = x2 . (weight[o] @ x1) + bias[o]``; the bias is used when ``params`` has one.

    ``weight`` is ``(output_dims, input2_dims, input1_dims)``; ``x1`` is
    ``(..., input1_dims)`` and ``x2`` ``(..., input2_dims)`` with the same
    leading axes, which the output keeps.  A wrong feature size is a
    ``ValueError`` naming it.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> w = mx.ones((4, 3, 2))
        >>> F.bilinear_apply({"weight": w}, mx.ones((5, 2)), mx.ones((5, 3))).shape
        (5, 4)
    """
    out, in2, in1 = params["weight"].shape
    _check_features("x1", x1, in1, "input1_dims")
    _check_features("x2", x2, in2, "input2_dims")
    lead = x1.shape[:-1]
    x1 = x1.reshape(-1, in1)
    x2 = x2.reshape(-1, 1, in2)
    # First contract x1 with every (output, input2) row of the weight in one
    # matmul, then each output's (input2,) vector with x2: MLX's order.
    y = x1 @ params["weight"].reshape(out * in2, in1).T
    y = y.reshape(-1, out, in2).swapaxes(-2, -1)
    y = (x2 @ y).squeeze(1)
    y = y.reshape(*lead, out)
    if "bias" in params:
        y = y + params["bias"]
    return y


@pair_factory
def bilinear(input1_dims: int, input2_dims: int, output_dims: int, bias: bool = True) -> Pair:
    """A bilinear form of two inputs, ``y_o = x2^T W_o x1 + b_o`` (as :class:`mlx.nn.Bilinear`).

    Parameters: ``weight`` ``(output_dims, input2_dims, input1_dims)`` and
    ``bias`` ``(output_dims,)``, both uniform on ``[-k, k]`` with
    ``k = 1/sqrt(input1_dims)``.  ``apply(params, x1, x2)`` is
    :func:`bilinear_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> layer = F.bilinear(2, 3, 4)
        >>> p = layer.init(mx.random.key(0))
        >>> {k: v.shape for k, v in p.items()}
        {'weight': (4, 3, 2), 'bias': (4,)}
        >>> layer.apply(p, mx.ones((6, 5, 2)), mx.ones((6, 5, 3))).shape
        (6, 5, 4)
    """
    scale = math.sqrt(1.0 / input1_dims)
    init = _uniform_weight_and_bias((output_dims, input2_dims, input1_dims), bias, scale)
    return Pair(init, bilinear_apply, "bilinear")
