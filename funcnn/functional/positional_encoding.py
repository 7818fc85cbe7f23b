"""Rotary positional encoding: ``rope``."""

from __future__ import annotations

from typing import Union

import mlx.core as mx

from ._pair import Pair, no_params, pair_factory

__all__ = ["rope"]


@pair_factory
def rope(dims: int, traditional: bool = False, base: float = 10000, scale: float = 1.0) -> Pair:
    """Rotary positional encoding of the first ``dims`` features (as :class:`mlx.nn.RoPE`).

    Positions run along axis ``-2``, starting at ``offset`` (an int or an
    array).  ``traditional`` rotates adjacent pairs ``(x[0::2], x[1::2])``;
    otherwise the halves ``(x[:dims/2], x[dims/2:dims])``.  No parameters.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> r = F.rope(8)
        >>> r.apply({}, mx.ones((1, 5, 8)), offset=3).shape
        (1, 5, 8)
    """

    def apply(params: dict, x: mx.array, offset: Union[int, mx.array] = 0) -> mx.array:
        return mx.fast.rope(
            x, dims, traditional=traditional, base=base, scale=scale, offset=offset
        )

    return Pair(no_params, apply, "rope")
