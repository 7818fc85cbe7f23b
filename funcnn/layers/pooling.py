"""Pooling, as ``mlx.nn.layers.pooling``: max and average pooling over 1, 2 or 3 spatial axes.

The math is :mod:`funcnn.functional.pooling`.  Each layer stores what
:mod:`mlx.nn` stores -- the items ``_kernel_size``, ``_stride``, ``_padding``
and ``_axes`` (so they are in :attr:`~funcnn.Module.state`) and the plain
attributes ``_pooling_function`` and ``_padding_value`` -- and passes all six
to the math on every call, so changing one after construction acts as in
:mod:`mlx.nn`.  (As in :mod:`mlx.nn`, ``stride=None`` stores the very list of
``_kernel_size`` as ``_stride``.)
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union

import mlx.core as mx

from ..functional.pooling import (
    avg_pool1d_apply,
    avg_pool2d_apply,
    avg_pool3d_apply,
    max_pool1d_apply,
    max_pool2d_apply,
    max_pool3d_apply,
    pool_axes,
    pool_settings,
)
from .base import Module

__all__ = ["MaxPool1d", "AvgPool1d", "MaxPool2d", "AvgPool2d", "MaxPool3d", "AvgPool3d"]

_MAX_PAD = -float("inf")


def _store(
    layer: Module,
    pooling_function: Callable,
    padding_value: float,
    n: int,
    kernel_size: Any,
    stride: Any,
    padding: Any,
) -> None:
    """Check the arguments (``mlx.nn``'s errors, naming the class) and store mlx.nn's attributes."""
    kernel, strides, pads = pool_settings(type(layer).__name__, n, kernel_size, stride, padding)
    layer._pooling_function = pooling_function
    layer._kernel_size = kernel
    layer._stride = strides
    layer._padding = pads
    layer._padding_value = padding_value
    layer._axes = pool_axes(kernel)


def _repr(layer: Module) -> str:
    kernel = tuple(layer._kernel_size)
    stride = tuple(layer._stride)
    padding = tuple(p[0] for p in layer._padding)
    return f"kernel_size={kernel}, stride={stride}, padding={padding}"


def _call(layer: Module, apply: Callable[..., mx.array], x: mx.array) -> mx.array:
    return apply(
        layer,
        x,
        kernel_size=layer._kernel_size,
        stride=layer._stride,
        padding=layer._padding,
        padding_value=layer._padding_value,
        pooling_function=layer._pooling_function,
        axes=layer._axes,
    )


class MaxPool1d(Module):
    """1-D max pooling of ``(N, L, C)`` inputs; see :func:`funcnn.functional.max_pool1d`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> pool = nn.MaxPool1d(kernel_size=2)
        >>> pool
        MaxPool1d(kernel_size=(2,), stride=(2,), padding=(0,))
        >>> pool(mx.array([[[1.0], [3.0], [2.0], [0.0]]])).reshape(-1).tolist()
        [3.0, 2.0]
    """

    def __init__(
        self,
        kernel_size: Union[int, Tuple[int]],
        stride: Optional[Union[int, Tuple[int]]] = None,
        padding: Union[int, Tuple[int]] = 0,
    ) -> None:
        super().__init__()
        _store(self, mx.max, _MAX_PAD, 1, kernel_size, stride, padding)

    def _extra_repr(self) -> str:
        return _repr(self)

    def __call__(self, x: mx.array) -> mx.array:
        return _call(self, max_pool1d_apply, x)


class AvgPool1d(Module):
    """1-D average pooling of ``(N, L, C)`` inputs; see :func:`funcnn.functional.avg_pool1d`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> pool = nn.AvgPool1d(2, stride=1, padding=1)
        >>> pool(mx.ones((1, 3, 1))).reshape(-1).tolist()     # the zero padding counts
        [0.5, 1.0, 1.0, 0.5]
    """

    def __init__(
        self,
        kernel_size: Union[int, Tuple[int]],
        stride: Optional[Union[int, Tuple[int]]] = None,
        padding: Union[int, Tuple[int]] = 0,
    ) -> None:
        super().__init__()
        _store(self, mx.mean, 0, 1, kernel_size, stride, padding)

    def _extra_repr(self) -> str:
        return _repr(self)

    def __call__(self, x: mx.array) -> mx.array:
        return _call(self, avg_pool1d_apply, x)


class MaxPool2d(Module):
    """2-D max pooling of ``(N, H, W, C)`` inputs; see :func:`funcnn.functional.max_pool2d`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> pool = nn.MaxPool2d(kernel_size=2, stride=2)
        >>> pool(mx.ones((8, 32, 32, 4))).shape
        (8, 16, 16, 4)
        >>> dict(pool)                  # the settings are items (state, not parameters)
        {'_kernel_size': [2, 2], '_stride': [2, 2], '_padding': [(0, 0), (0, 0)], '_axes': (-3, -2)}
    """

    def __init__(
        self,
        kernel_size: Union[int, Tuple[int, int]],
        stride: Optional[Union[int, Tuple[int, int]]] = None,
        padding: Optional[Union[int, Tuple[int, int]]] = 0,
    ) -> None:
        super().__init__()
        _store(self, mx.max, _MAX_PAD, 2, kernel_size, stride, padding)

    def _extra_repr(self) -> str:
        return _repr(self)

    def __call__(self, x: mx.array) -> mx.array:
        return _call(self, max_pool2d_apply, x)


class AvgPool2d(Module):
    """2-D average pooling of ``(N, H, W, C)`` inputs; see :func:`funcnn.functional.avg_pool2d`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.AvgPool2d((2, 1))(mx.ones((1, 4, 3, 2))).shape
        (1, 2, 3, 2)
    """

    def __init__(
        self,
        kernel_size: Union[int, Tuple[int, int]],
        stride: Optional[Union[int, Tuple[int, int]]] = None,
        padding: Optional[Union[int, Tuple[int, int]]] = 0,
    ) -> None:
        super().__init__()
        _store(self, mx.mean, 0, 2, kernel_size, stride, padding)

    def _extra_repr(self) -> str:
        return _repr(self)

    def __call__(self, x: mx.array) -> mx.array:
        return _call(self, avg_pool2d_apply, x)


class MaxPool3d(Module):
    """3-D max pooling of ``(N, D, H, W, C)`` inputs; see :func:`funcnn.functional.max_pool3d`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.MaxPool3d(2, padding=1)(mx.ones((1, 4, 4, 4, 2))).shape
        (1, 3, 3, 3, 2)
    """

    def __init__(
        self,
        kernel_size: Union[int, Tuple[int, int, int]],
        stride: Optional[Union[int, Tuple[int, int, int]]] = None,
        padding: Optional[Union[int, Tuple[int, int, int]]] = 0,
    ) -> None:
        super().__init__()
        _store(self, mx.max, _MAX_PAD, 3, kernel_size, stride, padding)

    def _extra_repr(self) -> str:
        return _repr(self)

    def __call__(self, x: mx.array) -> mx.array:
        return _call(self, max_pool3d_apply, x)


class AvgPool3d(Module):
    """3-D average pooling of ``(N, D, H, W, C)`` inputs; see :func:`funcnn.functional.avg_pool3d`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.AvgPool3d((1, 2, 2))(mx.ones((1, 2, 4, 4, 3))).shape
        (1, 2, 2, 2, 3)
    """

    def __init__(
        self,
        kernel_size: Union[int, Tuple[int, int, int]],
        stride: Optional[Union[int, Tuple[int, int, int]]] = None,
        padding: Optional[Union[int, Tuple[int, int, int]]] = 0,
    ) -> None:
        super().__init__()
        _store(self, mx.mean, 0, 3, kernel_size, stride, padding)

    def _extra_repr(self) -> str:
        return _repr(self)

    def __call__(self, x: mx.array) -> mx.array:
        return _call(self, avg_pool3d_apply, x)
