"""Dropout (MLX's ``layers/dropout.py``): ``dropout``, ``dropout2d``, ``dropout3d``.

Stochastic and mode-dependent pairs without parameters:
``apply(params, x, key=None, training=True)``.  Without a key the mask comes
from MLX's global random state with exactly :mod:`mlx.nn`'s draw
(``mx.random.bernoulli(1 - p, shape)``), so the same ``mx.random.seed`` gives
the same mask; with a key the mask is a function of the key and the global
state is left alone.  In evaluation mode, or with ``p == 0``, ``apply``
returns its input itself.

The math functions take the keep probability ``1 - p`` because that is what
:mod:`mlx.nn` stores (``_p_1``) and draws with: computing ``1 - p`` once, as
MLX does, keeps masks and scales bit-identical.
"""

from __future__ import annotations

import functools
from typing import Optional

import mlx.core as mx

from ._pair import Key, Pair, no_params, pair_factory

__all__ = [
    "dropout",
    "dropout2d",
    "dropout3d",
    "dropout_apply",
    "dropout2d_apply",
    "dropout3d_apply",
]


def keep_probability(p: float) -> float:
    """``1 - p``, once ``p`` is checked to be in ``[0, 1)`` (mlx.nn's error otherwise).

    Shared by the pair factories and the layer classes, which store it as ``_p_1``.
    """
    if p < 0 or p >= 1:
        raise ValueError(f"The dropout probability {p} is not in [0, 1)")
    return 1 - p


def _drop(x: mx.array, keep: float, mask_shape: list, key: Optional[mx.array]) -> mx.array:
    mask = mx.random.bernoulli(keep, mask_shape, key=key)
    return (mask * x) * (1 / keep)


def dropout_apply(
    params: dict, x: mx.array, *, keep: float, key: Key = None, training: bool = True
) -> mx.array:
    """Zero each element with probability ``1 - keep``, scaling the rest by ``1 / keep``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> y = F.dropout_apply({}, mx.ones(1000), keep=0.75, key=mx.random.key(0))
        >>> len(set(y.tolist())), 700 < (y > 0).sum().item() < 800     # 0 and 1 / 0.75
        (2, True)
    """
    if keep == 1 or not training:
        return x
    return _drop(x, keep, x.shape, key)


def _channel_dropout(
    x: mx.array, keep: float, key: Key, training: bool, ndims: tuple[int, int], spatial: int
) -> mx.array:
    if x.ndim not in ndims:
        raise ValueError(
            f"Received input with {x.ndim} dimensions. "
            f"Expected {ndims[0]} or {ndims[1]} dimensions."
        )
    if keep == 1 or not training:
        return x
    mask_shape = list(x.shape)
    for axis in range(2, 2 + spatial):  # the spatial axes, before channels
        mask_shape[-axis] = 1
    return _drop(x, keep, mask_shape, key)


def dropout2d_apply(
    params: dict, x: mx.array, *, keep: float, key: Key = None, training: bool = True
) -> mx.array:
    """Zero whole channels of ``(N, H, W, C)`` or ``(H, W, C)`` inputs with probability ``1 - keep``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> y = F.dropout2d_apply({}, mx.ones((1, 4, 4, 8)), keep=0.5, key=mx.random.key(1))
        >>> bool(((y == 0).all(axis=(1, 2)) | (y != 0).all(axis=(1, 2))).all())   # per channel
        True
    """
    return _channel_dropout(x, keep, key, training, (3, 4), 2)


def dropout3d_apply(
    params: dict, x: mx.array, *, keep: float, key: Key = None, training: bool = True
) -> mx.array:
    """Zero whole channels of ``(N, D, H, W, C)`` or ``(D, H, W, C)`` inputs.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.dropout3d_apply({}, mx.ones((2, 2, 2, 2, 3)), keep=0.5, training=False).shape
        (2, 2, 2, 2, 3)
    """
    return _channel_dropout(x, keep, key, training, (4, 5), 3)


def _dropout_pair(apply, p: float, name: str) -> Pair:
    keep = keep_probability(p)
    return Pair(
        no_params,
        functools.partial(apply, keep=keep),
        name,
        takes_key=True,
        takes_training=True,
    )


@pair_factory
def dropout(p: float = 0.5) -> Pair:
    """Element-wise dropout (as :class:`mlx.nn.Dropout`); ``apply`` is :func:`dropout_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> drop = F.dropout(0.5)
        >>> x = mx.ones((2, 4))
        >>> drop.apply({}, x, training=False) is x
        True
        >>> bool(mx.array_equal(drop.apply({}, x, key=mx.random.key(3)),
        ...                     drop.apply({}, x, key=mx.random.key(3))))
        True
    """
    return _dropout_pair(dropout_apply, p, "dropout")


@pair_factory
def dropout2d(p: float = 0.5) -> Pair:
    """Channel-wise dropout of 2-D feature maps (as :class:`mlx.nn.Dropout2d`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.dropout2d(0.2).apply({}, mx.ones((1, 3, 3, 4)), key=mx.random.key(0)).shape
        (1, 3, 3, 4)
    """
    return _dropout_pair(dropout2d_apply, p, "dropout2d")


@pair_factory
def dropout3d(p: float = 0.5) -> Pair:
    """Channel-wise dropout of 3-D feature maps (as :class:`mlx.nn.Dropout3d`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.dropout3d(0.2).apply({}, mx.ones((2, 2, 2, 4)), key=mx.random.key(0)).shape
        (2, 2, 2, 4)
    """
    return _dropout_pair(dropout3d_apply, p, "dropout3d")
