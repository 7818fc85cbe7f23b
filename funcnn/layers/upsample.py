"""Upsampling, as ``mlx.nn.layers.upsample``: :class:`Upsample` and the ``upsample_*`` functions.

The math is :mod:`funcnn.functional.upsample`.  :class:`Upsample` stores
``scale_factor`` (a float attribute, or a tuple of floats, which is an item as
in :mod:`mlx.nn`), ``mode``, ``align_corners`` and ``antialias``, and passes
all four to :func:`funcnn.functional.upsample_apply` on every call.
"""

from __future__ import annotations

from typing import Literal, Tuple, Union

import mlx.core as mx

from ..functional.upsample import (
    upsample_apply,
    upsample_cubic,
    upsample_linear,
    upsample_nearest,
    upsample_settings,
)
from .base import Module

__all__ = ["upsample_nearest", "upsample_linear", "upsample_cubic", "Upsample"]


class Upsample(Module):
    """Spatial resampling of ``(N, *spatial, C)`` inputs; see :func:`funcnn.functional.upsample`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> x = mx.arange(1, 5).reshape((1, 2, 2, 1))
        >>> nn.Upsample(scale_factor=2, mode="nearest")(x).squeeze().tolist()[1]
        [1, 1, 2, 2]
        >>> up = nn.Upsample(scale_factor=2, mode="linear")
        >>> up
        Upsample(scale_factor=2.0, mode='linear', align_corners=False)
        >>> up(x).squeeze().tolist()[0]
        [1.0, 1.25, 1.75, 2.0]
    """

    def __init__(
        self,
        scale_factor: Union[float, Tuple],
        mode: Literal["nearest", "linear", "cubic"] = "nearest",
        align_corners: bool = False,
        antialias: bool = False,
    ) -> None:
        super().__init__()
        self.scale_factor = upsample_settings(scale_factor, mode, align_corners, antialias)
        self.mode = mode
        self.align_corners = align_corners
        self.antialias = antialias

    def _extra_repr(self) -> str:
        text = (
            f"scale_factor={self.scale_factor}, mode={self.mode!r}, "
            f"align_corners={self.align_corners}"
        )
        return text + ", antialias=True" if self.antialias else text

    def __call__(self, x: mx.array) -> mx.array:
        return upsample_apply(
            self,
            x,
            scale_factor=self.scale_factor,
            mode=self.mode,
            align_corners=self.align_corners,
            antialias=self.antialias,
        )
