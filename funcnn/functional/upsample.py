"""Spatial upsampling of channels-last inputs (MLX's ``layers/upsample.py``).

The array functions :func:`upsample_nearest`, :func:`upsample_linear` and
:func:`upsample_cubic` (:mod:`mlx.nn`'s, same signatures) resample every
spatial axis of an ``(N, *spatial, C)`` input -- any number of them -- by its
scale factor; the output size of an axis of size ``n`` is
``int(scale * n)``.  The pair ``upsample`` (as :class:`mlx.nn.Upsample`) has
no parameters; its math is :func:`upsample_apply`, whose settings are the
attributes :mod:`mlx.nn` reads on every call.

The sampling grids and weights are computed with the very ops of :mod:`mlx.nn`
in the same order (the non-antialiased cubic weights through the same
shapeless ``mx.compile``), so results and gradients are bit-identical.  As in
:mod:`mlx.nn`, linear and cubic interpolation return float32 for float16,
bfloat16 and integer inputs (the weights are float32); nearest keeps the dtype.

Beyond :mod:`mlx.nn`: a scale factor that is not a positive finite number is a
``ValueError`` naming it (:mod:`mlx.nn` returns an empty array, or fails with
``ZeroDivisionError``, ``OverflowError`` or a broadcast error, depending on
the mode); nearest downsampling to an empty axis returns an empty array, as
the other modes do (:mod:`mlx.nn` divides by zero); ``scale_factor`` that is
not a sequence is a ``ValueError`` (:mod:`mlx.nn`: ``TypeError`` from ``len``);
and :func:`upsample_apply` accepts a list of scale factors as a tuple and
rejects an unknown mode with a ``ValueError`` (:mod:`mlx.nn` fails inside
``int()``, or raises a bare ``Exception``).
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Sequence
from itertools import product
from typing import Any, Literal, Tuple, Union

import mlx.core as mx

from ._pair import Pair, no_params, pair_factory

__all__ = [
    "upsample",
    "upsample_apply",
    "upsample_nearest",
    "upsample_linear",
    "upsample_cubic",
]

MODES = ("nearest", "linear", "cubic")
# Per axis: the (indices, weight) pairs whose weighted samples add up to the output.
Taps = tuple
IndicesFn = Callable[[int, float, bool, int, int], Taps]


# --------------------------------------------------------------------------
# Sampling grids
# --------------------------------------------------------------------------


def _along(a: mx.array, dim: int, ndims: int) -> mx.array:
    """``a`` (1-D) shaped to broadcast along spatial axis ``dim`` of ``ndims``."""
    shape = [1] * ndims
    shape[dim] = -1
    return a.reshape(shape)


def _source_positions(n: int, scale: float, align_corners: bool, dim: int, ndims: int) -> mx.array:
    """Where each output sample falls on the input axis, in input-index units (float32)."""
    m = int(scale * n)
    if align_corners:
        positions = mx.arange(m, dtype=mx.float32) * ((n - 1) / max(m - 1, 1))
    else:
        step = 1 / scale
        offset = ((m - 1) * step - n + 1) / 2
        positions = mx.arange(m, dtype=mx.float32) * step - offset
    return _along(positions, dim, ndims)


def _nearest_indices(n: int, scale: float, dim: int, ndims: int) -> mx.array:
    m = int(scale * n)
    positions = mx.arange(m, dtype=mx.float32)
    if m > n:
        positions = ((positions + 0.5) * (n / m) - 0.5).round()
    elif m > 0:  # mlx.nn divides by m == 0 here; an empty axis needs no positions
        positions = positions * (n / m)
    return _along(positions.astype(mx.uint32), dim, ndims)


def _linear_indices(n: int, scale: float, align_corners: bool, dim: int, ndims: int) -> Taps:
    positions = mx.clip(
        _source_positions(n, scale, align_corners, dim, ndims), a_min=0, a_max=n - 1
    )
    left = mx.floor(positions)
    right = mx.ceil(positions)
    frac = mx.expand_dims(positions - left, -1)
    return ((left.astype(mx.uint32), 1 - frac), (right.astype(mx.uint32), frac))


def _cubic_weight_fn(ind: mx.array, grid: mx.array, dist: int) -> mx.array:
    # Keys' kernel with a = -0.75 (OpenCV's), inner piece for |d| <= 1, outer for 1 < |d| <= 2.
    a = -0.75
    x = mx.abs(ind - grid)
    if dist == 1:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    return (((x - 5) * x + 8) * x - 4) * a


# mlx.nn compiles the weights (shapeless): compiled code may round differently from eager.
_cubic_weight = mx.compile(_cubic_weight_fn, shapeless=True)


def _cubic_indices(n: int, scale: float, align_corners: bool, dim: int, ndims: int) -> Taps:
    positions = _source_positions(n, scale, align_corners, dim, ndims)
    left1 = mx.floor(positions)
    right1 = mx.floor(positions + 1)
    left2 = left1 - 1
    right2 = right1 + 1
    taps = []
    for grid, dist in ((left1, 1), (right1, 1), (left2, 2), (right2, 2)):
        weight = _cubic_weight(positions, grid, dist=dist)[..., None]
        taps.append((grid, weight))
    # Out-of-range taps read the border sample.
    return tuple(
        (mx.clip(grid, a_min=0, a_max=n - 1).astype(mx.uint32), weight) for grid, weight in taps
    )


def _triangle(d: mx.array) -> mx.array:
    return mx.maximum(1.0 - d, 0.0)


def _keys_half(d: mx.array) -> mx.array:
    # Keys' kernel with a = -0.5 (PIL's), the antialiased cubic filter.
    a = -0.5
    inner = ((a + 2.0) * d - (a + 3.0)) * d * d + 1
    outer = (((d - 5) * d + 8) * d - 4) * a
    return mx.where(d <= 1.0, inner, mx.where(d <= 2.0, outer, 0.0))


def _filtered_indices(
    n: int,
    scale: float,
    align_corners: bool,
    dim: int,
    ndims: int,
    kernel: Callable[[mx.array], mx.array],
    radius: float,
) -> Taps:
    """Antialiased taps: the kernel widened by ``1 / scale`` when downsampling, renormalised."""
    positions = _source_positions(n, scale, align_corners, dim, ndims)
    widen = 1.0 / scale if scale < 1 else 1.0
    reach = math.ceil(radius * widen) + 1
    grids, weights = [], []
    for k in range(1 - reach, reach):
        grid = mx.floor(positions) + k
        w = kernel(mx.abs(positions - grid) / widen)
        grids.append(grid)
        weights.append(mx.where((grid >= 0) & (grid < n), w, 0.0))
    total = sum(weights)
    total = mx.where(total > 0, total, 1.0)
    return tuple(
        (mx.clip(grid, a_min=0, a_max=n - 1).astype(mx.uint32), mx.expand_dims(w / total, -1))
        for grid, w in zip(grids, weights)
    )


def _linear_aa_indices(n: int, scale: float, align_corners: bool, dim: int, ndims: int) -> Taps:
    return _filtered_indices(n, scale, align_corners, dim, ndims, _triangle, 1.0)


def _cubic_aa_indices(n: int, scale: float, align_corners: bool, dim: int, ndims: int) -> Taps:
    return _filtered_indices(n, scale, align_corners, dim, ndims, _keys_half, 2.0)


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------


def _check_antialias(align_corners: bool, antialias: bool) -> None:
    if antialias and align_corners:
        raise ValueError(
            "[Upsample] antialias=True with align_corners=True is not "
            "supported. Use align_corners=False for antialiased interpolation."
        )


def _check_scales(x: mx.array, scale_factor: Any) -> None:
    if not isinstance(scale_factor, (list, tuple)):
        raise ValueError(
            "scale_factor must be a tuple with one scale per spatial dimension but got "
            f"{scale_factor!r}"
        )
    if x.ndim - 2 != len(scale_factor):
        raise ValueError("A scale needs to be provided for each spatial dimension")
    for s in scale_factor:
        try:
            valid = bool(0 < s < math.inf)
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise ValueError(
                f"Every scale factor must be a positive finite number but got {tuple(scale_factor)}"
            )


# --------------------------------------------------------------------------
# The array functions
# --------------------------------------------------------------------------


def upsample_nearest(x: mx.array, scale_factor: Tuple) -> mx.array:
    """Nearest-neighbour resampling of the spatial axes of ``(N, *spatial, C)`` inputs.

    Integer scale factors repeat each sample (a broadcast); others pick, for
    each output sample, the input sample nearest to its centre.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> x = mx.array([1, 2, 3]).reshape(1, 3, 1)
        >>> nn.upsample.upsample_nearest(x, (2,)).reshape(-1).tolist()
        [1, 1, 2, 2, 3, 3]
        >>> nn.upsample.upsample_nearest(x, (1.5,)).reshape(-1).tolist()
        [1, 2, 2, 3]
    """
    _check_scales(x, scale_factor)
    dims = x.ndim - 2
    if tuple(map(int, scale_factor)) == scale_factor:
        # (N, n1, 1, n2, 1, ..., C) broadcast to (N, n1, s1, n2, s2, ..., C), then merged.
        shape = list(x.shape)
        for d in range(dims):
            shape.insert(2 + 2 * d, 1)
        x = x.reshape(shape)
        for d in range(dims):
            shape[2 + 2 * d] = int(scale_factor[d])
        x = mx.broadcast_to(x, shape)
        for d in range(dims):
            shape[d + 1] *= shape[d + 2]
            shape.pop(d + 2)
        return x.reshape(shape)
    _, *sizes, _ = x.shape
    index = [slice(None)]
    for dim, (n, s) in enumerate(zip(sizes, scale_factor)):
        index.append(_nearest_indices(n, s, dim, dims))
    return x[tuple(index)]


def _interpolate(
    x: mx.array, scale_factor: Sequence, indices_fn: IndicesFn, align_corners: bool
) -> mx.array:
    """All axes at once: a weighted sum over every combination of the axes' taps."""
    _check_scales(x, scale_factor)
    dims = x.ndim - 2
    _, *sizes, _ = x.shape
    axes_taps = [
        indices_fn(n, s, align_corners, dim, dims)
        for dim, (n, s) in enumerate(zip(sizes, scale_factor))
    ]
    samples, weights = [], []
    for combination in product(*axes_taps):
        index, weight = zip(*combination)
        samples.append(x[(slice(None),) + index])
        weights.append(functools.reduce(operator.mul, weight))
    return sum(w * sample for w, sample in zip(weights, samples))


def _interpolate_separable(
    x: mx.array, scale_factor: Sequence, indices_fn: IndicesFn, align_corners: bool
) -> mx.array:
    """One axis after the other: a weighted sum of gathered slices per axis."""
    _check_scales(x, scale_factor)
    dims = x.ndim - 2
    _, *sizes, _ = x.shape
    out = x
    for dim, (n, s) in enumerate(zip(sizes, scale_factor)):
        out = sum(
            mx.take(out, index.reshape(-1), axis=dim + 1) * weight
            for index, weight in indices_fn(n, s, align_corners, dim, dims)
        )
    return out


def upsample_linear(
    x: mx.array,
    scale_factor: Tuple,
    align_corners: bool = False,
    antialias: bool = False,
) -> mx.array:
    """Linear (bilinear, trilinear, ...) resampling of ``(N, *spatial, C)`` inputs.

    ``align_corners=True`` maps the first and last samples of input and output
    onto each other; ``antialias=True`` widens the filter when downsampling
    (not with ``align_corners``).  Returns float32 for half and integer inputs.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> x = mx.array([0.0, 1.0]).reshape(1, 2, 1)
        >>> nn.upsample.upsample_linear(x, (2.0,)).reshape(-1).tolist()
        [0.0, 0.25, 0.75, 1.0]
        >>> y = nn.upsample.upsample_linear(x, (2.0,), align_corners=True)
        >>> [round(v, 4) for v in y.reshape(-1).tolist()]
        [0.0, 0.3333, 0.6667, 1.0]
    """
    _check_antialias(align_corners, antialias)
    if antialias:
        return _interpolate_separable(x, scale_factor, _linear_aa_indices, align_corners)
    if not align_corners:
        return _interpolate_separable(x, scale_factor, _linear_indices, align_corners)
    return _interpolate(x, scale_factor, _linear_indices, align_corners)


def upsample_cubic(
    x: mx.array,
    scale_factor: Tuple,
    align_corners: bool = False,
    antialias: bool = False,
) -> mx.array:
    """Cubic (bicubic, ...) resampling of ``(N, *spatial, C)`` inputs, Keys' kernel.

    The kernel's coefficient is ``-0.75`` (OpenCV's), or ``-0.5`` (PIL's) with
    ``antialias=True``, which also widens it when downsampling.  Returns
    float32 for half and integer inputs.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> x = mx.array([0.0, 1.0, 2.0, 3.0]).reshape(1, 4, 1)
        >>> y = nn.upsample.upsample_cubic(x, (2.0,), align_corners=True)
        >>> y.shape, y[0, 0, 0].item(), y[0, -1, 0].item()
        ((1, 8, 1), 0.0, 3.0)
    """
    _check_antialias(align_corners, antialias)
    if antialias:
        return _interpolate_separable(x, scale_factor, _cubic_aa_indices, align_corners)
    return _interpolate(x, scale_factor, _cubic_indices, align_corners)


# --------------------------------------------------------------------------
# The layer
# --------------------------------------------------------------------------


def upsample_settings(
    scale_factor: Union[float, tuple], mode: str, align_corners: bool, antialias: bool
) -> Union[float, tuple]:
    """``scale_factor`` as :mod:`mlx.nn` stores it (floats), once the settings are checked.

    Example:
        >>> from funcnn.functional.upsample import upsample_settings
        >>> upsample_settings([2, 3], "linear", False, False)
        (2.0, 3.0)
        >>> upsample_settings(2, "cubic", True, False)
        2.0
    """
    if mode not in MODES:
        raise ValueError(f"[Upsample] Got unsupported upsampling algorithm: {mode}")
    if antialias and mode == "nearest":
        raise ValueError(
            "[Upsample] Antialiasing is not supported for nearest neighbor upsampling"
        )
    if isinstance(scale_factor, (list, tuple)):
        scale_factor = tuple(map(float, scale_factor))
    else:
        scale_factor = float(scale_factor)
    _check_antialias(align_corners, antialias)
    return scale_factor


def upsample_apply(
    params: dict,
    x: mx.array,
    *,
    scale_factor: Union[float, tuple],
    mode: str = "nearest",
    align_corners: bool = False,
    antialias: bool = False,
) -> mx.array:
    """Resample the spatial axes of ``(N, *spatial, C)`` inputs by ``scale_factor`` with ``mode``.

    A single scale applies to every spatial axis, a tuple gives one per axis.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> x = mx.ones((2, 3, 4, 5))
        >>> F.upsample_apply({}, x, scale_factor=(2.0, 0.5), mode="linear").shape
        (2, 6, 2, 5)
    """
    dims = x.ndim - 2
    if dims <= 0:
        raise ValueError(
            f"[Upsample] The input should have at least 1 spatial "
            f"dimension which means it should be at least 3D but "
            f"{x.ndim}D was provided"
        )
    if isinstance(scale_factor, list):  # a list set after construction: as the constructor does
        scale_factor = tuple(scale_factor)
    if isinstance(scale_factor, tuple):
        if len(scale_factor) != dims:
            raise ValueError(
                f"[Upsample] One scale per spatial dimension is required but "
                f"scale_factor={scale_factor} and the number of spatial "
                f"dimensions were {dims}"
            )
    else:
        scale_factor = (scale_factor,) * dims
    if mode == "nearest":
        return upsample_nearest(x, scale_factor)
    if mode == "linear":
        return upsample_linear(x, scale_factor, align_corners, antialias)
    if mode == "cubic":
        return upsample_cubic(x, scale_factor, align_corners, antialias)
    raise ValueError(f"[Upsample] Unknown interpolation mode {mode!r}; expected one of {MODES}.")


@pair_factory
def upsample(
    scale_factor: Union[float, Tuple],
    mode: Literal["nearest", "linear", "cubic"] = "nearest",
    align_corners: bool = False,
    antialias: bool = False,
) -> Pair:
    """Spatial upsampling of ``(N, *spatial, C)`` inputs (as :class:`mlx.nn.Upsample`).

    ``mode`` is ``"nearest"``, ``"linear"`` or ``"cubic"``; ``align_corners``
    and ``antialias`` apply to the last two.  ``apply`` is :func:`upsample_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> up = F.upsample(2)
        >>> up.apply(up.init(), mx.array([[[[1], [2]], [[3], [4]]]])).reshape(4, 4).tolist()[0]
        [1, 1, 2, 2]
    """
    scale = upsample_settings(scale_factor, mode, align_corners, antialias)
    apply = functools.partial(
        upsample_apply,
        scale_factor=scale,
        mode=mode,
        align_corners=align_corners,
        antialias=antialias,
    )
    return Pair(no_params, apply, "upsample")
