"""Normalisation layers: ``layer_norm``, ``rms_norm``, ``group_norm``."""

from __future__ import annotations

import mlx.core as mx

from ._pair import Key, Pair, pair_factory

__all__ = ["layer_norm", "rms_norm", "group_norm"]


def _check_eps(layer: str, eps: float) -> None:
    if eps <= 0.0:
        raise ValueError(f"[{layer}] 'eps' must be positive but got {eps}.")


@pair_factory
def layer_norm(dims: int, eps: float = 1e-5, affine: bool = True, bias: bool = True) -> Pair:
    """Normalise the last axis to zero mean and unit (biased) variance (as :class:`mlx.nn.LayerNorm`).

    With ``affine``: ``weight`` (ones) scales and, with ``bias``, ``bias``
    (zeros) shifts.  ``apply`` uses whichever of the two ``params`` holds.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> ln = F.layer_norm(4)
        >>> ln.apply(ln.init(), mx.arange(8.0).reshape(2, 4)).shape
        (2, 4)
    """
    _check_eps("LayerNorm", eps)

    def init(key: Key = None) -> dict:
        params = {}
        if affine:
            params["weight"] = mx.ones((dims,))
            if bias:
                params["bias"] = mx.zeros((dims,))
        return params

    def apply(params: dict, x: mx.array) -> mx.array:
        weight = params["weight"] if "weight" in params else None
        shift = params["bias"] if "bias" in params else None
        return mx.fast.layer_norm(x, weight, shift, eps)

    return Pair(init, apply, "layer_norm")


@pair_factory
def rms_norm(dims: int, eps: float = 1e-5) -> Pair:
    """Scale the last axis by its inverse root mean square (as :class:`mlx.nn.RMSNorm`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> norm = F.rms_norm(4)
        >>> norm.init()["weight"].tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    _check_eps("RMSNorm", eps)

    def init(key: Key = None) -> dict:
        return {"weight": mx.ones((dims,))}

    def apply(params: dict, x: mx.array) -> mx.array:
        return mx.fast.rms_norm(x, params["weight"], eps)

    return Pair(init, apply, "rms_norm")


@pair_factory
def group_norm(
    num_groups: int,
    dims: int,
    eps: float = 1e-5,
    affine: bool = True,
    pytorch_compatible: bool = False,
) -> Pair:
    """Normalise channels-last inputs over groups of channels (as :class:`mlx.nn.GroupNorm`).

    By default channel ``c`` belongs to group ``c % num_groups`` (MLX's
    interleaved grouping); ``pytorch_compatible=True`` uses contiguous blocks
    as PyTorch does.  With ``affine``, parameters are ``bias`` then ``weight``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> gn = F.group_norm(2, 4)
        >>> list(gn.init())
        ['bias', 'weight']
    """
    _check_eps("GroupNorm", eps)
    if num_groups <= 0:
        raise ValueError(f"The number of groups ({num_groups}) must be a positive integer.")
    if dims <= 0:
        raise ValueError(f"The number of features ({dims}) must be a positive integer.")
    if dims % num_groups != 0:
        raise ValueError(
            f"The number of features ({dims}) must be evenly divisible"
            f" by the number of groups ({num_groups})."
        )

    def init(key: Key = None) -> dict:
        if not affine:
            return {}
        return {"bias": mx.zeros((dims,)), "weight": mx.ones((dims,))}

    def interleaved(x: mx.array) -> mx.array:
        batch, *rest, channels = x.shape
        x = x.reshape(batch, -1, num_groups)
        mean = mx.mean(x, axis=1, keepdims=True)
        var = mx.var(x, axis=1, keepdims=True)
        x = (x - mean) * mx.rsqrt(var + eps)
        return x.reshape(batch, *rest, channels)

    def contiguous(x: mx.array) -> mx.array:
        batch, *rest, channels = x.shape
        group_size = channels // num_groups
        x = x.reshape(batch, -1, num_groups, group_size)
        x = x.transpose(0, 2, 1, 3).reshape(batch, num_groups, -1)
        x = mx.fast.layer_norm(x, None, None, eps)
        x = x.reshape(batch, num_groups, -1, group_size)
        return x.transpose(0, 2, 1, 3).reshape(batch, *rest, channels)

    normalize = contiguous if pytorch_compatible else interleaved

    def apply(params: dict, x: mx.array) -> mx.array:
        x = normalize(x)
        return params["weight"] * x + params["bias"] if "weight" in params else x

    return Pair(init, apply, "group_norm")
