"""Positional encodings (MLX's ``layers/positional_encoding.py``): ``rope``."""

from __future__ import annotations

import functools
from typing import Union

import mlx.core as mx

from ._pair import Pair, no_params, pair_factory

__all__ = ["rope", "rope_apply"]


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
