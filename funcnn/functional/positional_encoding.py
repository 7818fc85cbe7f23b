"""Positional encodings (MLX's ``layers/positional_encoding.py``).

``rope``, ``sinusoidal_positional_encoding`` and ``alibi``; none has
parameters.  ALiBi's bias builders (:func:`create_alibi_matrix`,
:func:`create_alibi_slope`) are the static methods of the facade class.
"""

from __future__ import annotations

import functools
import math
from typing import Optional, Union

import mlx.core as mx

from ._pair import Pair, no_params, pair_factory

__all__ = [
    "rope",
    "rope_apply",
    "sinusoidal_positional_encoding",
    "sinusoidal_positional_encoding_apply",
    "sinusoidal_sigmas",
    "alibi",
    "alibi_apply",
    "create_alibi_matrix",
    "create_alibi_slope",
]


def rope_apply(
    params: dict,
    x: mx.array,
    offset: Union[int, mx.array] = 0,
    *,
    dims: int,
    traditional: bool = False,
    base: float = 10000,
    scale: float = 1.0,
) -> mx.array:
    """Rotate the first ``dims`` features of ``x`` by position (``mx.fast.rope``).

    Positions run along axis ``-2``, starting at ``offset`` (an int or an
    array).  ``traditional`` rotates adjacent pairs ``(x[0::2], x[1::2])``;
    otherwise the halves ``(x[:dims/2], x[dims/2:dims])``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.rope_apply({}, mx.ones((1, 4, 8)), 2, dims=8, base=100).shape
        (1, 4, 8)
    """
    return mx.fast.rope(x, dims, traditional=traditional, base=base, scale=scale, offset=offset)


@pair_factory
def rope(dims: int, traditional: bool = False, base: float = 10000, scale: float = 1.0) -> Pair:
    """Rotary positional encoding (as :class:`mlx.nn.RoPE`); no parameters.

    ``apply(params, x, offset=0)`` is :func:`rope_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> r = F.rope(8)
        >>> r.apply({}, mx.ones((1, 5, 8)), offset=3).shape
        (1, 5, 8)
    """
    apply = functools.partial(rope_apply, dims=dims, traditional=traditional, base=base, scale=scale)
    return Pair(no_params, apply, "rope")


# --- sinusoidal encoding ----------------------------------------------------------


def sinusoidal_sigmas(
    dims: int, min_freq: float = 0.0001, max_freq: float = 1, full_turns: bool = False
) -> mx.array:
    """The ``dims // 2`` angular frequencies, geometric from ``max_freq`` down to ``min_freq``.

    ``full_turns`` multiplies them by ``2 pi``.  This is the array
    :class:`mlx.nn.SinusoidalPositionalEncoding` keeps as its private item
    ``_sigmas``; ``dims`` must be positive and even.

    Example:
        >>> import funcnn.functional as F
        >>> [round(s, 4) for s in F.sinusoidal_sigmas(6, min_freq=0.01).tolist()]
        [1.0, 0.1, 0.01]
    """
    if dims <= 0 or dims % 2 != 0:
        raise ValueError(
            f"[SinusoidalPositionalEncoding] dims must be positive and even but got {dims}."
        )
    # One frequency pair: the interpolation 1 - i / (n - 1) below would divide by zero.
    if dims == 2:
        one_zero = mx.array([1.0])
    else:
        one_zero = 1 - mx.arange(0, dims // 2) / (dims // 2 - 1)
    log_min, log_max = math.log(min_freq), math.log(max_freq)
    sigmas = mx.exp(one_zero * (log_max - log_min) + log_min)
    if full_turns:
        sigmas = sigmas * (2 * math.pi)
    return sigmas


def sinusoidal_positional_encoding_apply(
    params: dict,
    x: mx.array,
    *,
    sigmas: mx.array,
    scale: float,
    cos_first: bool = False,
) -> mx.array:
    """``scale * [sin(x * sigmas), cos(x * sigmas)]`` along a new last axis.

    ``x`` holds positions of any shape; the result has shape
    ``(*x.shape, 2 * len(sigmas))``.  ``cos_first`` puts the cosines first;
    a ``scale`` of exactly 1 skips the multiplication (as :mod:`mlx.nn` does).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> y = F.sinusoidal_positional_encoding_apply(
        ...     {}, mx.array([0.0]), sigmas=mx.array([1.0]), scale=1.0)
        >>> y.tolist()
        [[0.0, 1.0]]
    """
    y = x[..., None] * sigmas
    cosy = mx.cos(y)
    siny = mx.sin(y)
    y = mx.concatenate([cosy, siny] if cos_first else [siny, cosy], axis=-1)
    if scale != 1:
        y = y * scale
    return y


@pair_factory
def sinusoidal_positional_encoding(
    dims: int,
    min_freq: float = 0.0001,
    max_freq: float = 1,
    scale: Optional[float] = None,
    cos_first: bool = False,
    full_turns: bool = False,
) -> Pair:
    """Sinusoidal positional encoding (as :class:`mlx.nn.SinusoidalPositionalEncoding`).

    No parameters: the frequencies (:func:`sinusoidal_sigmas`) are constants
    bound into ``apply``, as :mod:`mlx.nn` keeps them out of
    ``parameters()``.  ``scale`` defaults to ``sqrt(2 / dims)``.
    ``apply(params, x)`` is :func:`sinusoidal_positional_encoding_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> pe = F.sinusoidal_positional_encoding(8)
        >>> pe.apply(pe.init(), mx.arange(5)).shape
        (5, 8)
    """
    sigmas = sinusoidal_sigmas(dims, min_freq, max_freq, full_turns)
    apply = functools.partial(
        sinusoidal_positional_encoding_apply,
        sigmas=sigmas,
        scale=scale if scale is not None else (2 / dims) ** 0.5,
        cos_first=cos_first,
    )
    return Pair(no_params, apply, "sinusoidal_positional_encoding")


# --- ALiBi -------------------------------------------------------------------------


def _slopes(n: int) -> list[float]:
    # Heads beyond the largest power of two take every other slope of the next power.
    if math.log2(n).is_integer():
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]
    closest_power_of_2 = 2 ** math.floor(math.log2(n))
    return _slopes(closest_power_of_2) + _slopes(2 * closest_power_of_2)[0::2][
        : n - closest_power_of_2
    ]


def create_alibi_slope(num_heads: int, dtype: mx.Dtype = mx.float32) -> mx.array:
    """The per-head ALiBi slopes, shape ``(num_heads, 1, 1)``.

    A geometric sequence ``2**(-8 / n), 2**(-16 / n), ...`` for a power of two
    ``n``; other head counts interleave the sequences of the neighbouring
    powers of two.

    Example:
        >>> import funcnn.functional as F
        >>> F.create_alibi_slope(4).flatten().tolist()
        [0.25, 0.0625, 0.015625, 0.00390625]
    """
    out = mx.array(_slopes(num_heads), dtype=dtype)
    return mx.expand_dims(out, axis=(-1, -2))


def create_alibi_matrix(
    q_sequence_length: int,
    k_sequence_length: int,
    num_heads: int,
    offset: int = 0,
    dtype: mx.Dtype = mx.float32,
) -> mx.array:
    """The ALiBi bias ``-|i - j| * slope[h]``, shape ``(1, num_heads, q - offset, k)``.

    Query positions run from ``offset`` to ``q_sequence_length - 1``, key
    positions from ``0`` to ``k_sequence_length - 1``.

    Example:
        >>> import funcnn.functional as F
        >>> F.create_alibi_matrix(3, 3, 1, offset=1)[0, 0].tolist()
        [[-0.00390625, 0.0, -0.00390625], [-0.0078125, -0.00390625, 0.0]]
    """
    x1 = mx.arange(offset, q_sequence_length)
    x2 = mx.arange(0, k_sequence_length)
    distance_matrix = -mx.abs(mx.expand_dims(x1[:, None] - x2[None, :], axis=(0, 1)))
    alibi_slope = create_alibi_slope(num_heads=num_heads, dtype=dtype)
    return (distance_matrix * alibi_slope).astype(dtype)


def alibi_apply(
    params: dict,
    attention_scores: mx.array,
    offset: int = 0,
    mask: Optional[mx.array] = None,
) -> mx.array:
    """``attention_scores + (alibi_matrix + mask)`` for ``(B, heads, L_q, L_k)`` scores.

    The bias (:func:`create_alibi_matrix`) is built at every call, in the
    scores' dtype, for queries at positions ``offset .. offset + L_q - 1``;
    nothing is cached (mlx.nn 0.32.4 caches nothing either).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.alibi_apply({}, mx.zeros((1, 2, 1, 3)), offset=2)[0, :, 0].tolist()
        [[-0.125, -0.0625, 0.0], [-0.0078125, -0.00390625, 0.0]]
    """
    alibi_mask = create_alibi_matrix(
        q_sequence_length=attention_scores.shape[-2] + offset,
        k_sequence_length=attention_scores.shape[-1],
        num_heads=attention_scores.shape[1],
        offset=offset,
        dtype=attention_scores.dtype,
    )
    if mask is not None:
        alibi_mask = alibi_mask + mask
    return attention_scores + alibi_mask


@pair_factory
def alibi() -> Pair:
    """Attention with linear biases (as :class:`mlx.nn.ALiBi`); no parameters.

    ``apply(params, attention_scores, offset=0, mask=None)`` is :func:`alibi_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> layer = F.alibi()
        >>> layer.apply(layer.init(), mx.zeros((2, 4, 5, 5))).shape
        (2, 4, 5, 5)
    """
    return Pair(no_params, alibi_apply, "alibi")
