"""Normalisation (MLX's ``layers/normalization.py``).

Pairs ``layer_norm``, ``rms_norm``, ``group_norm``, ``instance_norm`` and
``batch_norm``; their math is the ``*_apply`` functions, whose keyword
settings are the attributes :mod:`mlx.nn` reads on every call.

``batch_norm`` is the one stateful pair of this family: with
``track_running_stats`` its parameters hold ``running_mean`` and
``running_var`` (under :mod:`mlx.nn`'s names, so checkpoints interchange) and
its ``apply`` returns ``(output, updates)``; see :mod:`funcnn.functional`.
"""

from __future__ import annotations

import functools
import math

import mlx.core as mx

from ._pair import Key, Pair, pair_factory

__all__ = [
    "layer_norm",
    "rms_norm",
    "group_norm",
    "instance_norm",
    "batch_norm",
    "layer_norm_apply",
    "rms_norm_apply",
    "group_norm_apply",
    "instance_norm_apply",
    "batch_norm_apply",
]

_RUNNING = ("running_mean", "running_var")


def _check_eps(layer: str, eps: float) -> None:
    if eps <= 0.0:
        raise ValueError(f"[{layer}] 'eps' must be positive but got {eps}.")


def _affine(params: dict, x: mx.array) -> mx.array:
    # mlx.nn's ``(self.weight * x + self.bias) if "weight" in self else x``.
    return params["weight"] * x + params["bias"] if "weight" in params else x


def _scale_shift_init(dims: int, affine: bool, bias_first: bool = False):
    def init(key: Key = None) -> dict:
        if not affine:
            return {}
        if bias_first:
            return {"bias": mx.zeros((dims,)), "weight": mx.ones((dims,))}
        return {"weight": mx.ones((dims,)), "bias": mx.zeros((dims,))}

    return init


# --------------------------------------------------------------------------
# LayerNorm, RMSNorm
# --------------------------------------------------------------------------


def layer_norm_apply(params: dict, x: mx.array, *, eps: float = 1e-5) -> mx.array:
    """Normalise the last axis to zero mean and unit (biased) variance, then scale and shift.

    ``weight`` and ``bias`` are used when ``params`` has them.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> y = F.layer_norm_apply({}, mx.array([[1.0, 3.0]]), eps=1e-5)
        >>> [round(v, 3) for v in y.tolist()[0]]
        [-1.0, 1.0]
    """
    weight = params["weight"] if "weight" in params else None
    shift = params["bias"] if "bias" in params else None
    return mx.fast.layer_norm(x, weight, shift, eps)


@pair_factory
def layer_norm(dims: int, eps: float = 1e-5, affine: bool = True, bias: bool = True) -> Pair:
    """Layer normalisation over the last axis (as :class:`mlx.nn.LayerNorm`).

    With ``affine``: ``weight`` (ones) scales and, with ``bias``, ``bias``
    (zeros) shifts.  ``apply`` is :func:`layer_norm_apply`.

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

    return Pair(init, functools.partial(layer_norm_apply, eps=eps), "layer_norm")


def rms_norm_apply(params: dict, x: mx.array, *, eps: float = 1e-5) -> mx.array:
    """``x * rsqrt(mean(x**2) + eps) * weight`` over the last axis (accumulated in float32).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.rms_norm_apply({"weight": mx.ones(2)}, mx.array([3.0, 4.0]), eps=1e-9).shape
        (2,)
    """
    return mx.fast.rms_norm(x, params["weight"], eps)


@pair_factory
def rms_norm(dims: int, eps: float = 1e-5) -> Pair:
    """Root-mean-square normalisation of the last axis (as :class:`mlx.nn.RMSNorm`).

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

    return Pair(init, functools.partial(rms_norm_apply, eps=eps), "rms_norm")


# --------------------------------------------------------------------------
# GroupNorm
# --------------------------------------------------------------------------


def _interleaved_groups(x: mx.array, num_groups: int, eps: float) -> mx.array:
    # MLX's default grouping: channel c belongs to group c % num_groups.
    batch, *rest, dims = x.shape
    x = x.reshape(batch, -1, num_groups)
    mean = mx.mean(x, axis=1, keepdims=True)
    var = mx.var(x, axis=1, keepdims=True)
    x = (x - mean) * mx.rsqrt(var + eps)
    return x.reshape(batch, *rest, dims)


def _contiguous_groups(x: mx.array, num_groups: int, eps: float) -> mx.array:
    # PyTorch's grouping: contiguous blocks of dims // num_groups channels.
    batch, *rest, dims = x.shape
    group_size = dims // num_groups
    x = x.reshape(batch, -1, num_groups, group_size)
    x = x.transpose(0, 2, 1, 3).reshape(batch, num_groups, -1)
    x = mx.fast.layer_norm(x, None, None, eps)
    x = x.reshape(batch, num_groups, -1, group_size)
    return x.transpose(0, 2, 1, 3).reshape(batch, *rest, dims)


def group_norm_apply(
    params: dict,
    x: mx.array,
    *,
    num_groups: int,
    eps: float = 1e-5,
    pytorch_compatible: bool = False,
) -> mx.array:
    """Normalise channels-last ``x`` over its spatial axes and groups of channels.

    By default channel ``c`` belongs to group ``c % num_groups`` (MLX's
    interleaved grouping); ``pytorch_compatible`` uses contiguous blocks.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.group_norm_apply({}, mx.ones((2, 3, 4)), num_groups=2).shape
        (2, 3, 4)
    """
    normalize = _contiguous_groups if pytorch_compatible else _interleaved_groups
    return _affine(params, normalize(x, num_groups, eps))


@pair_factory
def group_norm(
    num_groups: int,
    dims: int,
    eps: float = 1e-5,
    affine: bool = True,
    pytorch_compatible: bool = False,
) -> Pair:
    """Group normalisation, channels last (as :class:`mlx.nn.GroupNorm`).

    With ``affine``, parameters are ``bias`` then ``weight`` (MLX's order).
    ``apply`` is :func:`group_norm_apply`.

    Example:
        >>> import funcnn.functional as F
        >>> list(F.group_norm(2, 4).init())
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
    apply = functools.partial(
        group_norm_apply, num_groups=num_groups, eps=eps, pytorch_compatible=pytorch_compatible
    )
    return Pair(_scale_shift_init(dims, affine, bias_first=True), apply, "group_norm")


# --------------------------------------------------------------------------
# InstanceNorm
# --------------------------------------------------------------------------


def instance_norm_apply(params: dict, x: mx.array, *, eps: float = 1e-5) -> mx.array:
    """Normalise each example's channels over its spatial axes (``(N, ..., C)``, ndim >= 3).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.instance_norm_apply({}, mx.ones((2, 4, 4, 3))).shape
        (2, 4, 4, 3)
    """
    if x.ndim < 3:
        raise ValueError(
            f"InstanceNorm expects inputs with at least 3 dimensions"
            f" (N, ..., C) but the input has {x.ndim} dimensions."
        )
    batch, features = x.shape[0], x.shape[-1]
    spatial = x.shape[1:-1]
    channels_first = mx.transpose(x, (0, x.ndim - 1, *range(1, x.ndim - 1)))
    x = mx.fast.layer_norm(channels_first.reshape(batch, features, -1), None, None, eps)
    x = mx.transpose(x.reshape(batch, features, *spatial), (0, *range(2, len(spatial) + 2), 1))
    return _affine(params, x)


@pair_factory
def instance_norm(dims: int, eps: float = 1e-5, affine: bool = False) -> Pair:
    """Instance normalisation (as :class:`mlx.nn.InstanceNorm`); affine is off by default.

    Example:
        >>> import funcnn.functional as F
        >>> F.instance_norm(3).init(), list(F.instance_norm(3, affine=True).init())
        ({}, ['weight', 'bias'])
    """
    _check_eps("InstanceNorm", eps)
    apply = functools.partial(instance_norm_apply, eps=eps)
    return Pair(_scale_shift_init(dims, affine), apply, "instance_norm")


# --------------------------------------------------------------------------
# BatchNorm
# --------------------------------------------------------------------------


def batch_norm_apply(
    params: dict,
    x: mx.array,
    *,
    eps: float = 1e-5,
    momentum: float = 0.1,
    track_running_stats: bool = True,
    training: bool = True,
) -> tuple[mx.array, dict]:
    """Batch normalisation of ``x`` (2-4 dims, channels last): ``(output, updates)``.

    Training normalises with the batch statistics over every axis but the
    last (biased variance) and, with ``track_running_stats``, returns the new
    running statistics in ``updates``: ``(1 - momentum) * running +
    momentum * batch_stat``, the variance unbiased (``ddof=1``), as MLX does.
    Otherwise the running statistics normalise (or, without them, the batch
    statistics) and ``updates`` is ``{}``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> params = F.batch_norm(2).init()
        >>> y, updates = F.batch_norm_apply(params, mx.array([[1.0, 2.0], [3.0, 6.0]]))
        >>> updates["running_mean"].tolist()
        [0.20000000298023224, 0.4000000059604645]
    """
    if x.ndim < 2 or x.ndim > 4:
        raise ValueError(f"Expected input tensor to have 2, 3 or 4 dimensions, but got {x.ndim}")
    if training and math.prod(x.shape[:-1]) == 1:
        raise ValueError("BatchNorm training requires more than one value per channel.")
    axes = tuple(range(x.ndim - 1))
    mean, var = mx.mean(x, axis=axes), mx.var(x, axis=axes)
    updates = {}
    if training and track_running_stats:
        mu = momentum
        unbiased = mx.var(x, axis=axes, ddof=1)
        updates = {
            "running_mean": (1 - mu) * params["running_mean"] + mu * mean,
            "running_var": (1 - mu) * params["running_var"] + mu * unbiased,
        }
    elif track_running_stats:
        mean, var = params["running_mean"], params["running_var"]
    return _affine(params, (x - mean) * mx.rsqrt(var + eps)), updates


def _batch_norm_trainable(params: dict) -> dict:
    return {k: k not in _RUNNING for k in params}


@pair_factory
def batch_norm(
    num_features: int,
    eps: float = 1e-5,
    momentum: float = 0.1,
    affine: bool = True,
    track_running_stats: bool = True,
) -> Pair:
    """Batch normalisation (as :class:`mlx.nn.BatchNorm`): stateful, mode-dependent.

    Parameters: ``weight``/``bias`` with ``affine``; with
    ``track_running_stats`` also ``running_mean`` (zeros) and ``running_var``
    (ones), which ``trainable`` marks ``False``.  ``apply(params, x,
    training=True)`` is :func:`batch_norm_apply`; it returns ``(output,
    updates)`` when the pair tracks running statistics (``stateful``), else
    just the output.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> bn = F.batch_norm(3)
        >>> params = bn.init()
        >>> y, updates = bn.apply(params, mx.random.normal((8, 3), key=mx.random.key(0)))
        >>> params = F.merge_updates(params, updates)       # the new running statistics
        >>> y, updates = bn.apply(params, y, training=False)
        >>> bn.stateful, updates
        (True, {})
    """
    _check_eps("BatchNorm", eps)
    scale_shift = _scale_shift_init(num_features, affine)

    def init(key: Key = None) -> dict:
        params = scale_shift()
        if track_running_stats:
            params["running_mean"] = mx.zeros((num_features,))
            params["running_var"] = mx.ones((num_features,))
        return params

    apply = functools.partial(
        batch_norm_apply, eps=eps, momentum=momentum, track_running_stats=track_running_stats
    )
    if not track_running_stats:
        apply = functools.partial(_output_only, apply)
    return Pair(
        init,
        apply,
        "batch_norm",
        takes_training=True,
        stateful=track_running_stats,
        trainable=_batch_norm_trainable,
    )


def _output_only(apply, params: dict, x: mx.array, *, training: bool = True) -> mx.array:
    return apply(params, x, training=training)[0]
