"""Where funcnn's convolutions deliberately do better than mlx.nn: a malformed ``kernel_size``.

mlx.nn 0.32.4 indexes a tuple ``kernel_size`` unchecked: too few sizes crash
the constructor with a bare ``IndexError: tuple index out of range`` (a float
with ``TypeError: 'float' object is not subscriptable``), too many build a
layer whose every call fails; a tuple given to a 1-D layer fails in the
arithmetic of its init scale.  funcnn's classes and factories reject all of
them at construction with the same exception type as mlx.nn where it raises
one (``ValueError`` where it raises none, or a bare ``IndexError``), naming
what they expected and what they received.  Each test pins mlx.nn's behaviour
beside funcnn's, so a fix in MLX shows up here.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn
import numpy as np
import pytest
from layer_registry import FACADE, FUNCTIONAL, build

# (class, factory, spatial axes, in_channels)
KINDS = [
    ("Conv2d", "conv2d", 2, 4),
    ("Conv3d", "conv3d", 3, 4),
    ("ConvTranspose2d", "conv_transpose2d", 2, 4),
    ("ConvTranspose3d", "conv_transpose3d", 3, 4),
]
IDS = [k[0] for k in KINDS]


def _funcnn_raises(cls, factory, args, error, message):
    for library in (FACADE, FUNCTIONAL):
        with pytest.raises(error) as got:
            build(cls, factory, args, {}, library)
        assert str(got.value) == message, library


@pytest.mark.parametrize("cls,factory,n,cin", KINDS, ids=IDS)
def test_too_few_kernel_sizes(cls, factory, n, cin):
    short = (2,) * (n - 1)
    with pytest.raises(IndexError, match="tuple index out of range"):
        getattr(mlx.nn, cls)(cin, 3, short)
    _funcnn_raises(
        cls, factory, (cin, 3, short), ValueError,
        f"kernel_size must be an int or a tuple of {n} ints, got {short!r} ({n - 1} sizes).",
    )


@pytest.mark.parametrize("cls,factory,n,cin", KINDS, ids=IDS)
def test_too_many_kernel_sizes(cls, factory, n, cin):
    long = (2,) * (n + 1)
    oracle = getattr(mlx.nn, cls)(cin, 3, long)  # builds, with an (n + 1)-D kernel ...
    assert oracle.weight.shape == (3, *long, cin)
    with pytest.raises(ValueError, match=r"\[conv\] Invalid weight array"):
        oracle(mx.ones((1,) + (6,) * n + (cin,)))  # ... that no call accepts
    _funcnn_raises(
        cls, factory, (cin, 3, long), ValueError,
        f"kernel_size must be an int or a tuple of {n} ints, got {long!r} ({n + 1} sizes).",
    )


@pytest.mark.parametrize("cls,factory,n,cin", KINDS, ids=IDS)
def test_non_integer_kernel_size(cls, factory, n, cin):
    with pytest.raises(TypeError, match="'float' object is not subscriptable"):
        getattr(mlx.nn, cls)(cin, 3, 2.0)
    _funcnn_raises(
        cls, factory, (cin, 3, 2.0), TypeError,
        f"kernel_size must be an int or a tuple of {n} ints, got 2.0.",
    )


@pytest.mark.parametrize("cls,factory,n,cin", KINDS, ids=IDS)
def test_a_list_kernel_size_is_accepted_as_in_mlx(cls, factory, n, cin):
    sizes = list(range(1, n + 1))
    mx.random.seed(0)
    want = getattr(mlx.nn, cls)(cin, 3, sizes)
    for library in (FACADE, FUNCTIONAL):
        mx.random.seed(0)
        got = build(cls, factory, (cin, 3, sizes), {}, library)
        weight = got.weight if library == FACADE else got.init()["weight"]
        assert mx.array_equal(weight, want.weight).item(), library


@pytest.mark.parametrize(
    "cls,factory", [("Conv1d", "conv1d"), ("ConvTranspose1d", "conv_transpose1d")],
    ids=["Conv1d", "ConvTranspose1d"],
)
@pytest.mark.parametrize("kernel_size", [(3,), 2.0], ids=["tuple", "float"])
def test_one_d_kernel_size_is_one_int(cls, factory, kernel_size):
    with pytest.raises(TypeError, match="unsupported operand|incompatible function arguments"):
        getattr(mlx.nn, cls)(4, 3, kernel_size)
    _funcnn_raises(
        cls, factory, (4, 3, kernel_size), TypeError,
        f"kernel_size must be an int, got {kernel_size!r}.",
    )
    # Integers of other types (numpy's) index as ints: accepted, as in mlx.nn.
    mx.random.seed(0)
    want = getattr(mlx.nn, cls)(4, 3, np.int64(2))
    mx.random.seed(0)
    got = build(cls, factory, (4, 3, np.int64(2)), {}, FACADE)
    assert repr(got) == repr(want)
    assert mx.array_equal(got.weight, want.weight).item()
