"""Bit-level comparison helpers shared by the differential function tests.

``bits`` views an array's raw bits (so ``-0.0 != 0.0`` and NaN payloads count),
``assert_identical`` asserts type, shape, dtype and bits equal, ``normal`` draws
deterministic data from an explicit key (the global RNG is never touched).
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np


def bits(a: mx.array) -> np.ndarray:
    if a.dtype == mx.bool_:
        return np.array(a)
    view = {1: mx.uint8, 2: mx.uint16, 4: mx.uint32, 8: mx.uint64}[a.dtype.size]
    return np.array(mx.view(a, view))


def assert_identical(got: mx.array, want: mx.array, label: str = "") -> None:
    assert isinstance(got, mx.array), label
    assert got.shape == want.shape and got.dtype == want.dtype, (label, got, want)
    np.testing.assert_array_equal(bits(got), bits(want), err_msg=label)


def normal(seed: int, *shape: int, dtype=mx.float32) -> mx.array:
    return mx.random.normal(shape, key=mx.random.key(seed)).astype(dtype)
