"""Max and average pooling over channels-last inputs (MLX's ``layers/pooling.py``).

Pairs ``max_pool1d``/``2d``/``3d`` and ``avg_pool1d``/``2d``/``3d``, without
parameters.  Their math is the ``*_apply`` functions, whose keyword settings
are what :mod:`mlx.nn` stores and reads on every call: ``kernel_size`` and
``stride`` (lists of ints, one per spatial axis), ``padding`` (a list of
``(low, high)`` pairs; as in :mod:`mlx.nn`, the input is padded only when some
``low`` is positive), ``padding_value`` (``-inf`` for max pooling, ``0`` for
average pooling, so padding counts in the average), ``pooling_function``
(``mx.max``/``mx.mean``) and ``axes`` (the window axes it reduces).

The windows are the same view :mod:`mlx.nn` builds (a reshape when windows
tile the input, ``mx.as_strided`` otherwise), so results and gradients are
bit-identical; as with :mod:`mlx.nn`, ``mx.vmap`` maps the tiling case only
(MLX's ``as_strided`` has no vmap rule, and a gather would change the
rounding of the averages).  Beyond :mod:`mlx.nn`:

* a window larger than the padded input, or a stride or kernel size that is
  not positive (set after construction), is a ``ValueError`` naming them
  (:mod:`mlx.nn` returns an empty array or fails inside ``as_strided``);
* a tuple whose entries are not ints is a ``ValueError`` at construction
  (:mod:`mlx.nn` fails at the first call);
* an input with too few or too many axes gets the sliding-window message
  whether or not the layer pads (:mod:`mlx.nn` lets ``mx.pad`` fail first).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import Any, Optional, Union

import mlx.core as mx

from ._pair import Pair, no_params, pair_factory

__all__ = [
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "max_pool1d_apply",
    "max_pool2d_apply",
    "max_pool3d_apply",
    "avg_pool1d_apply",
    "avg_pool2d_apply",
    "avg_pool3d_apply",
]

Padding = Sequence[tuple]
Reduce = Callable[..., mx.array]

_MAX_PAD = -float("inf")
_AVG_PAD = 0


# --------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------


def _value_or_list(x: Any, n: int, msg: str) -> list:
    if isinstance(x, (list, tuple)):
        if len(x) != n:
            raise ValueError(msg)
        if not all(isinstance(v, int) for v in x):
            # mlx.nn accepts these and fails at the first call (or in its own checks).
            raise ValueError(f"{msg} but got {tuple(x)!r}")
        return list(x)
    if not isinstance(x, int):
        raise ValueError(msg)
    return [x] * n


def pool_settings(
    layer: str, n: int, kernel_size: Any, stride: Any, padding: Any
) -> tuple[list, list, list]:
    """``(kernel_size, stride, padding)`` as :mod:`mlx.nn` stores them, or its ``ValueError``.

    ``stride=None`` is the kernel size (the very same list, as in :mod:`mlx.nn`);
    ``padding`` becomes ``(p, p)`` pairs.  ``layer`` names the class in messages.

    Example:
        >>> from funcnn.functional.pooling import pool_settings
        >>> pool_settings("MaxPool2d", 2, 3, None, (1, 0))
        ([3, 3], [3, 3], [(1, 1), (0, 0)])
    """
    noun = "integer" if n == 1 else "integers"
    msg = f"[{layer}] '{{}}' must be an integer or a tuple containing {n} {noun}"
    kernel = _value_or_list(kernel_size, n, msg.format("kernel_size"))
    strides = kernel if stride is None else _value_or_list(stride, n, msg.format("stride"))
    pads = [(p, p) for p in _value_or_list(padding, n, msg.format("padding"))]
    for name, values in (("kernel_size", kernel), ("stride", strides)):
        if any(v <= 0 for v in values):
            raise ValueError(f"[{layer}] '{name}' must be positive but got {tuple(values)}.")
    if any(p[0] < 0 for p in pads):
        raise ValueError(
            f"[{layer}] 'padding' must be non-negative but got {tuple(p[0] for p in pads)}."
        )
    return kernel, strides, pads


def pool_axes(kernel_size: Sequence[int]) -> tuple:
    """The window axes of the strided view, which the pooling function reduces."""
    return tuple(range(-len(kernel_size) - 1, -1, 1))


# --------------------------------------------------------------------------
# Sliding windows
# --------------------------------------------------------------------------


def _check_rank(x: mx.array, window: Sequence[int], strides: Sequence[int]) -> None:
    if x.ndim < 3:
        raise ValueError(
            f"To extract sliding windows at least 1 spatial dimension "
            f"(3 total) is needed but the input only has {x.ndim} dimensions."
        )
    spatial = x.shape[1:-1]
    if not (len(spatial) == len(window) == len(strides)):
        raise ValueError(
            f"To extract sliding windows the window shapes and strides must have "
            f"the same number of spatial dimensions as the signal but the signal "
            f"has {len(spatial)} dims and the window shape has {len(window)} "
            f"and strides have {len(strides)}."
        )


def _check_fit(spatial: tuple, window: Sequence[int], strides: Sequence[int]) -> None:
    for name, values in (("kernel_size", window), ("stride", strides)):
        if any(v <= 0 for v in values):
            raise ValueError(f"Pooling: '{name}' must be positive but got {tuple(values)}.")
    if any(w > s for s, w in zip(spatial, window)):
        raise ValueError(
            f"Pooling: the window {tuple(window)} is larger than the padded input, "
            f"whose spatial shape is {tuple(spatial)}."
        )


def _tiles(x: mx.array, window: Sequence[int]) -> mx.array:
    """Non-overlapping windows: a reshape and a transpose (MLX's fast path)."""
    shape = x.shape
    new_shape = [shape[0]]
    for s, w in zip(shape[1:], window):
        new_shape.append(s // w)
        new_shape.append(w)
    new_shape.append(shape[-1])
    last_axis = len(new_shape) - 1
    axis_order = [0, *range(1, last_axis, 2), *range(2, last_axis, 2), last_axis]
    return x.reshape(new_shape).transpose(axis_order)


def _strided_view(x: mx.array, window: Sequence[int], strides: Sequence[int]) -> mx.array:
    """Overlapping or partial windows: a strided view (which ``mx.vmap`` cannot map)."""
    shape = x.shape
    spatial = shape[1:-1]
    # Row-major element strides of x (MLX's as_strided reads a contiguous copy).
    elem = list(reversed(list(accumulate(reversed(shape + (1,)), operator.mul))))[1:]
    final_shape = [shape[0]]
    final_shape += [(size - w) // s + 1 for size, w, s in zip(spatial, window, strides)]
    final_shape += window
    final_shape += [shape[-1]]
    final_strides = elem[:1]
    final_strides += [og * s for og, s in zip(elem[1:-1], strides)]
    final_strides += elem[1:-1]
    final_strides += elem[-1:]
    return mx.as_strided(x, final_shape, final_strides)


def _sliding_windows(x: mx.array, window: Sequence[int], strides: Sequence[int]) -> mx.array:
    spatial = x.shape[1:-1]
    _check_fit(spatial, window, strides)
    if all(w == s and size % w == 0 for size, w, s in zip(spatial, window, strides)):
        return _tiles(x, window)
    return _strided_view(x, window, strides)


def _pool(
    x: mx.array,
    kernel_size: Sequence[int],
    stride: Optional[Sequence[int]],
    padding: Optional[Padding],
    padding_value: float,
    pooling_function: Reduce,
    axes: Optional[tuple],
) -> mx.array:
    stride = kernel_size if stride is None else stride
    padding = [(0, 0)] * len(kernel_size) if padding is None else list(padding)
    axes = pool_axes(kernel_size) if axes is None else axes
    # The rank check first, so that a bad input gets the same message with or without padding.
    _check_rank(x, kernel_size, stride)
    if any(p[0] > 0 for p in padding):
        x = mx.pad(x, [(0, 0)] + padding + [(0, 0)], constant_values=padding_value)
    x = _sliding_windows(x, kernel_size, stride)
    return pooling_function(x, axes)


# --------------------------------------------------------------------------
# The math of each layer
# --------------------------------------------------------------------------


def max_pool1d_apply(
    params: dict,
    x: mx.array,
    *,
    kernel_size: Sequence[int],
    stride: Optional[Sequence[int]] = None,
    padding: Optional[Padding] = None,
    padding_value: float = _MAX_PAD,
    pooling_function: Reduce = mx.max,
    axes: Optional[tuple] = None,
) -> mx.array:
    """The maximum of each window of ``(N, L, C)`` inputs.

    ``kernel_size``/``stride`` hold one int, ``padding`` one ``(low, high)``
    pair (``None``: no padding); ``stride=None`` is ``kernel_size`` and
    ``axes=None`` the window axes.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> x = mx.arange(6.0).reshape(1, 6, 1)
        >>> F.max_pool1d_apply({}, x, kernel_size=[2]).reshape(-1).tolist()
        [1.0, 3.0, 5.0]
    """
    return _pool(x, kernel_size, stride, padding, padding_value, pooling_function, axes)


def max_pool2d_apply(
    params: dict,
    x: mx.array,
    *,
    kernel_size: Sequence[int],
    stride: Optional[Sequence[int]] = None,
    padding: Optional[Padding] = None,
    padding_value: float = _MAX_PAD,
    pooling_function: Reduce = mx.max,
    axes: Optional[tuple] = None,
) -> mx.array:
    """The maximum of each window of ``(N, H, W, C)`` inputs (settings as :func:`max_pool1d_apply`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> x = mx.arange(16.0).reshape(1, 4, 4, 1)
        >>> F.max_pool2d_apply({}, x, kernel_size=[2, 2]).reshape(-1).tolist()
        [5.0, 7.0, 13.0, 15.0]
    """
    return _pool(x, kernel_size, stride, padding, padding_value, pooling_function, axes)


def max_pool3d_apply(
    params: dict,
    x: mx.array,
    *,
    kernel_size: Sequence[int],
    stride: Optional[Sequence[int]] = None,
    padding: Optional[Padding] = None,
    padding_value: float = _MAX_PAD,
    pooling_function: Reduce = mx.max,
    axes: Optional[tuple] = None,
) -> mx.array:
    """The maximum of each window of ``(N, D, H, W, C)`` inputs.

    Settings as :func:`max_pool1d_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> x = mx.arange(27.0).reshape(1, 3, 3, 3, 1)
        >>> F.max_pool3d_apply({}, x, kernel_size=[2, 2, 2], stride=[1, 1, 1]).shape
        (1, 2, 2, 2, 1)
    """
    return _pool(x, kernel_size, stride, padding, padding_value, pooling_function, axes)


def avg_pool1d_apply(
    params: dict,
    x: mx.array,
    *,
    kernel_size: Sequence[int],
    stride: Optional[Sequence[int]] = None,
    padding: Optional[Padding] = None,
    padding_value: float = _AVG_PAD,
    pooling_function: Reduce = mx.mean,
    axes: Optional[tuple] = None,
) -> mx.array:
    """The mean of each window of ``(N, L, C)`` inputs; zero padding counts in the mean.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> x = mx.ones((1, 4, 1))
        >>> F.avg_pool1d_apply({}, x, kernel_size=[2], padding=[(1, 1)]).reshape(-1).tolist()
        [0.5, 1.0, 0.5]
    """
    return _pool(x, kernel_size, stride, padding, padding_value, pooling_function, axes)


def avg_pool2d_apply(
    params: dict,
    x: mx.array,
    *,
    kernel_size: Sequence[int],
    stride: Optional[Sequence[int]] = None,
    padding: Optional[Padding] = None,
    padding_value: float = _AVG_PAD,
    pooling_function: Reduce = mx.mean,
    axes: Optional[tuple] = None,
) -> mx.array:
    """The mean of each window of ``(N, H, W, C)`` inputs (settings as :func:`max_pool1d_apply`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> x = mx.arange(16.0).reshape(1, 4, 4, 1)
        >>> F.avg_pool2d_apply({}, x, kernel_size=[2, 2]).reshape(-1).tolist()
        [2.5, 4.5, 10.5, 12.5]
    """
    return _pool(x, kernel_size, stride, padding, padding_value, pooling_function, axes)


def avg_pool3d_apply(
    params: dict,
    x: mx.array,
    *,
    kernel_size: Sequence[int],
    stride: Optional[Sequence[int]] = None,
    padding: Optional[Padding] = None,
    padding_value: float = _AVG_PAD,
    pooling_function: Reduce = mx.mean,
    axes: Optional[tuple] = None,
) -> mx.array:
    """The mean of each window of ``(N, D, H, W, C)`` inputs (settings as :func:`max_pool1d_apply`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.avg_pool3d_apply({}, mx.ones((2, 4, 4, 4, 3)), kernel_size=[2, 2, 2]).shape
        (2, 2, 2, 2, 3)
    """
    return _pool(x, kernel_size, stride, padding, padding_value, pooling_function, axes)


# --------------------------------------------------------------------------
# Pair factories
# --------------------------------------------------------------------------


def _pool_pair(
    apply: Callable[..., mx.array],
    layer: str,
    n: int,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    name: str,
) -> Pair:
    kernel, strides, pads = pool_settings(layer, n, kernel_size, stride, padding)
    settings = functools.partial(
        apply, kernel_size=kernel, stride=strides, padding=pads, axes=pool_axes(kernel)
    )
    return Pair(no_params, settings, name)


@pair_factory
def max_pool1d(
    kernel_size: Union[int, tuple],
    stride: Optional[Union[int, tuple]] = None,
    padding: Union[int, tuple] = 0,
) -> Pair:
    """1-D max pooling of ``(N, L, C)`` inputs (as :class:`mlx.nn.MaxPool1d`).

    ``stride`` defaults to ``kernel_size``; ``padding`` pads both ends with
    ``-inf``.  ``apply`` is :func:`max_pool1d_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> pool = F.max_pool1d(3, stride=1, padding=1)
        >>> pool.apply(pool.init(), mx.ones((2, 8, 4))).shape
        (2, 8, 4)
    """
    return _pool_pair(max_pool1d_apply, "MaxPool1d", 1, kernel_size, stride, padding, "max_pool1d")


@pair_factory
def max_pool2d(
    kernel_size: Union[int, tuple],
    stride: Optional[Union[int, tuple]] = None,
    padding: Optional[Union[int, tuple]] = 0,
) -> Pair:
    """2-D max pooling of ``(N, H, W, C)`` inputs (as :class:`mlx.nn.MaxPool2d`).

    ``kernel_size``, ``stride`` and ``padding`` are ints or ``(height, width)``
    tuples.  ``apply`` is :func:`max_pool2d_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> pool = F.max_pool2d(2)
        >>> pool.apply({}, mx.ones((1, 8, 6, 3))).shape
        (1, 4, 3, 3)
    """
    return _pool_pair(max_pool2d_apply, "MaxPool2d", 2, kernel_size, stride, padding, "max_pool2d")


@pair_factory
def max_pool3d(
    kernel_size: Union[int, tuple],
    stride: Optional[Union[int, tuple]] = None,
    padding: Optional[Union[int, tuple]] = 0,
) -> Pair:
    """3-D max pooling of ``(N, D, H, W, C)`` inputs (as :class:`mlx.nn.MaxPool3d`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.max_pool3d((1, 2, 2)).apply({}, mx.ones((1, 3, 4, 4, 2))).shape
        (1, 3, 2, 2, 2)
    """
    return _pool_pair(max_pool3d_apply, "MaxPool3d", 3, kernel_size, stride, padding, "max_pool3d")


@pair_factory
def avg_pool1d(
    kernel_size: Union[int, tuple],
    stride: Optional[Union[int, tuple]] = None,
    padding: Union[int, tuple] = 0,
) -> Pair:
    """1-D average pooling of ``(N, L, C)`` inputs (as :class:`mlx.nn.AvgPool1d`).

    ``padding`` pads both ends with zeros, which count in the averages.
    ``apply`` is :func:`avg_pool1d_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.avg_pool1d(2).apply({}, mx.arange(4.0).reshape(1, 4, 1)).reshape(-1).tolist()
        [0.5, 2.5]
    """
    return _pool_pair(avg_pool1d_apply, "AvgPool1d", 1, kernel_size, stride, padding, "avg_pool1d")


@pair_factory
def avg_pool2d(
    kernel_size: Union[int, tuple],
    stride: Optional[Union[int, tuple]] = None,
    padding: Optional[Union[int, tuple]] = 0,
) -> Pair:
    """2-D average pooling of ``(N, H, W, C)`` inputs (as :class:`mlx.nn.AvgPool2d`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.avg_pool2d(3, stride=2, padding=1).apply({}, mx.ones((1, 8, 8, 3))).shape
        (1, 4, 4, 3)
    """
    return _pool_pair(avg_pool2d_apply, "AvgPool2d", 2, kernel_size, stride, padding, "avg_pool2d")


@pair_factory
def avg_pool3d(
    kernel_size: Union[int, tuple],
    stride: Optional[Union[int, tuple]] = None,
    padding: Optional[Union[int, tuple]] = 0,
) -> Pair:
    """3-D average pooling of ``(N, D, H, W, C)`` inputs (as :class:`mlx.nn.AvgPool3d`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.avg_pool3d(2).apply({}, mx.ones((1, 4, 4, 4, 2))).shape
        (1, 2, 2, 2, 2)
    """
    return _pool_pair(avg_pool3d_apply, "AvgPool3d", 3, kernel_size, stride, padding, "avg_pool3d")
