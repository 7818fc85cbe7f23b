"""``upsample_nearest``/``upsample_linear``/``upsample_cubic`` against mlx.nn's, bit for bit.

* values and input gradients on a grid of 1-D, 2-D and 3-D inputs, integer,
  non-integer, mixed and downsampling scale factors, float32/float16/bfloat16,
  every ``align_corners``/``antialias`` combination mlx.nn accepts;
* random sizes and scales (hypothesis), integer inputs, list and NumPy scales;
* mlx.nn's errors, and the places where funcnn does better (each pinned beside
  mlx.nn's behaviour): scale factors that are not positive finite numbers, a
  nearest downsampling to an empty axis, a scale that is not a sequence, and
  ``Upsample`` settings changed after construction to a list or an unknown mode.

The layer itself (every mode and option, vmap, compile, mutations) is in the
registry (``layer_registry/upsample.py``).
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn
import mlx.nn.layers.upsample as mlx_upsample
import numpy as np
import pytest
from _bits import assert_identical
from hypothesis import given, settings
from hypothesis import strategies as st
from layer_registry import normal

import funcnn
import funcnn.functional as F
import funcnn.layers.upsample as fn_upsample

FUNCTIONS = ("nearest", "linear", "cubic")

# (function, keyword options): every combination mlx.nn accepts.
CONFIGS = [("nearest", {})] + [
    (name, {"align_corners": corners, "antialias": antialias})
    for name in ("linear", "cubic")
    for corners in (False, True)
    for antialias in (False, True)
    if not (corners and antialias)
]
CONFIG_IDS = [
    name + "".join(f"-{k}" for k, v in kw.items() if v) for name, kw in CONFIGS
]

SHAPES = {1: (2, 5, 3), 2: (2, 4, 3, 2), 3: (1, 3, 2, 3, 2)}
SCALES = [
    (2,), (3.0,), (1.5,), (0.5,), (0.4,), (1.0,), (2.3,),
    (2, 2), (1.5, 2.5), (0.5, 0.75), (2, 0.5), (1.0, 1.0), (0.6, 1.3),
    (2, 2, 2), (1.5, 0.5, 2.25),
]  # fmt: skip
DTYPES = {"float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16}


def both(name: str):
    """mlx.nn's function and funcnn's, by mode name."""
    return getattr(mlx_upsample, f"upsample_{name}"), getattr(fn_upsample, f"upsample_{name}")


def test_the_functions_are_one_object_at_every_path():
    for name in FUNCTIONS:
        fn = getattr(fn_upsample, f"upsample_{name}")
        assert fn is getattr(F, f"upsample_{name}")
        assert fn is getattr(funcnn.upsample, f"upsample_{name}")
        assert fn.__module__ == "funcnn.functional.upsample"


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("scale", SCALES, ids=str)
def test_values_and_input_gradients_match_mlx_bit_for_bit(scale, config):
    name, kwargs = config
    want_fn, got_fn = both(name)
    x32 = normal(len(scale), *SHAPES[len(scale)])
    for dtype_name, dtype in DTYPES.items():
        x = x32.astype(dtype)
        want, got = want_fn(x, scale, **kwargs), got_fn(x, scale, **kwargs)
        assert_identical(got, want, f"{dtype_name} values")
        # Half inputs come back as float32 from linear/cubic (mlx.nn's float32 weights).
        assert want.dtype == (dtype if name == "nearest" else mx.float32)
        expected = tuple(int(s * n) for s, n in zip(scale, x.shape[1:-1]))
        assert got.shape[1:-1] == expected
        cotangent = normal(7, *want.shape).astype(want.dtype)
        grads = [
            mx.grad(lambda v, fn=fn, ct=cotangent: (fn(v, scale, **kwargs) * ct).sum())(x)
            for fn in (got_fn, want_fn)
        ]
        assert_identical(*grads, f"{dtype_name} input gradient")


@settings(max_examples=40)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    data=st.data(),
    config=st.sampled_from(CONFIGS),
)
def test_random_sizes_and_scales_match_mlx(sizes, data, config):
    name, kwargs = config
    scales = tuple(
        data.draw(st.one_of(st.integers(1, 3), st.floats(0.25, 3.5).map(lambda s: round(s, 3))))
        for _ in sizes
    )
    want_fn, got_fn = both(name)
    x = normal(sum(sizes), 2, *sizes, 2)
    try:
        want = want_fn(x, scales, **kwargs)
        mx.eval(want)
    except ZeroDivisionError:  # mlx.nn's nearest downsampling to an empty axis (pinned below)
        assert name == "nearest" and any(int(s * n) == 0 for s, n in zip(scales, sizes))
        assert got_fn(x, scales, **kwargs).size == 0
        return
    assert_identical(got_fn(x, scales, **kwargs), want)


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_integer_inputs_match_mlx(config):
    name, kwargs = config
    want_fn, got_fn = both(name)
    x = mx.arange(24, dtype=mx.int32).reshape(1, 4, 3, 2)
    for scale in ((2, 2), (1.5, 0.5)):
        want = want_fn(x, scale, **kwargs)
        assert want.dtype == (mx.int32 if name == "nearest" else mx.float32)
        assert_identical(got_fn(x, scale, **kwargs), want)


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_list_and_numpy_scales_match_mlx(config):
    name, kwargs = config
    want_fn, got_fn = both(name)
    x = normal(3, 2, 4, 3, 2)
    # A list never takes nearest's broadcast path (list != tuple): the gather gives the same.
    for scale in ([2, 2], [1.5, 0.5], (np.float32(2.0), np.float64(1.5)), (np.int64(2), 3)):
        assert_identical(got_fn(x, scale, **kwargs), want_fn(x, scale, **kwargs), str(scale))


def test_documented_values():
    x = mx.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 2, 2, 1)
    lin = fn_upsample.upsample_linear(x, (2, 2)).squeeze().tolist()
    assert lin[0] == [1.0, 1.25, 1.75, 2.0] and lin[3] == [3.0, 3.25, 3.75, 4.0]
    corners = fn_upsample.upsample_linear(x, (2, 2), align_corners=True).squeeze()
    assert corners[0, 0].item() == 1.0 and corners[-1, -1].item() == 4.0
    near = fn_upsample.upsample_nearest(x, (2, 2)).squeeze().tolist()
    assert near[0] == [1.0, 1.0, 2.0, 2.0] and near[2] == [3.0, 3.0, 4.0, 4.0]
    # Downsampling by 2: plain linear reads two samples, antialiased linear a triangle twice
    # as wide (weights 1/4, 3/4, 3/4, 1/4; the tap outside the input dropped, renormalised).
    line = mx.array([0.0, 2.0, 4.0, 6.0]).reshape(1, 4, 1)
    assert fn_upsample.upsample_linear(line, (0.5,)).reshape(-1).tolist() == [1.0, 5.0]
    wide = fn_upsample.upsample_linear(line, (0.5,), antialias=True).reshape(-1).tolist()
    assert wide == [pytest.approx(10 / 7), pytest.approx(32 / 7)]


# --- errors -------------------------------------------------------------------------------


def _raised(fn, *args, **kwargs) -> BaseException:
    with pytest.raises(Exception) as info:
        mx.eval(fn(*args, **kwargs))
    return info.value


@pytest.mark.parametrize(
    "name,args,kwargs",
    [
        ("nearest", ((2,),), {}),
        ("nearest", ((1.5, 2, 2),), {}),
        ("linear", ((2,),), {"align_corners": True}),
        ("linear", ((2, 2, 2),), {}),
        ("cubic", ((2,),), {}),
        ("cubic", ((0.5, 2, 1),), {"antialias": True}),
        ("linear", ((2,),), {"align_corners": True, "antialias": True}),
        ("cubic", ((2, 2),), {"align_corners": True, "antialias": True}),
    ],
)
def test_errors_match_mlx(name, args, kwargs):
    x = normal(0, 1, 4, 3, 2)
    want_fn, got_fn = both(name)
    want, got = _raised(want_fn, x, *args, **kwargs), _raised(got_fn, x, *args, **kwargs)
    assert type(got) is type(want) is ValueError
    assert str(got) == str(want)


BAD_SCALES = [0.0, -1.0, -2.0, math.nan, math.inf]


@pytest.mark.parametrize("scale", BAD_SCALES, ids=str)
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_scales_that_are_not_positive_finite_numbers_are_a_clear_value_error(config, scale):
    name, kwargs = config
    want_fn, got_fn = both(name)
    x = normal(1, 1, 4, 2)
    # mlx.nn: an empty array or an unrelated error, depending on the mode and the value.
    try:
        out = want_fn(x, (scale,), **kwargs)
        mx.eval(out)
        assert out.size == 0
    except (ZeroDivisionError, OverflowError, ValueError, AttributeError) as e:
        assert "positive finite" not in str(e)
    with pytest.raises(ValueError, match="positive finite number but got") as info:
        got_fn(x, (scale,), **kwargs)
    assert str(scale) in str(info.value)


def test_mlx_nn_is_inconsistent_on_bad_scales():
    # The behaviour funcnn replaces, measured on mlx.nn 0.32.4 (one line per failure kind).
    x = normal(1, 1, 4, 2)
    with pytest.raises(ZeroDivisionError):
        mlx_upsample.upsample_linear(x, (0.0,))
    assert mlx_upsample.upsample_nearest(x, (0.0,)).shape == (1, 0, 2)
    with pytest.raises(ValueError, match="broadcast_to"):
        mlx_upsample.upsample_nearest(x, (-1.0,))
    assert mlx_upsample.upsample_linear(x, (-1.0,)).shape == (1, 0, 2)
    with pytest.raises(OverflowError):
        mlx_upsample.upsample_cubic(x, (math.inf,))


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_downsampling_to_an_empty_axis_is_empty_in_every_mode(config):
    name, kwargs = config
    want_fn, got_fn = both(name)
    x = normal(2, 2, 3, 4, 2)
    got = got_fn(x, (0.3, 1.0), **kwargs)  # int(0.3 * 3) == 0 rows
    assert got.shape == (2, 0, 4, 2)
    if name == "nearest":  # mlx.nn divides by the empty size
        with pytest.raises(ZeroDivisionError):
            want_fn(x, (0.3, 1.0), **kwargs)
    else:
        assert_identical(got, want_fn(x, (0.3, 1.0), **kwargs))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_a_scale_that_is_not_a_sequence_is_a_value_error(name):
    want_fn, got_fn = both(name)
    x = normal(3, 1, 4, 2)
    with pytest.raises(TypeError, match="has no len"):  # mlx.nn
        want_fn(x, 2.0)
    with pytest.raises(ValueError, match="one scale per spatial dimension but got 2.0"):
        got_fn(x, 2.0)


# --- the layer: settings changed after construction ------------------------------------------


def test_a_list_scale_set_after_construction_acts_as_the_tuple():
    x = normal(4, 1, 3, 2, 2)
    want = mlx.nn.Upsample((2.0, 1.5), mode="linear")(x)
    layer = funcnn.Upsample(1.0, mode="linear")
    layer.scale_factor = [2.0, 1.5]
    assert_identical(layer(x), want)
    oracle = mlx.nn.Upsample(1.0, mode="linear")
    oracle.scale_factor = [2.0, 1.5]
    with pytest.raises(TypeError):  # mlx.nn: int() of the list
        oracle(x)
    layer.scale_factor = [2.0]
    with pytest.raises(ValueError, match="One scale per spatial dimension"):
        layer(x)


def test_an_unknown_mode_set_after_construction_is_a_value_error():
    x = normal(5, 1, 3, 2)
    oracle, layer = mlx.nn.Upsample(2.0), funcnn.Upsample(2.0)
    oracle.mode = layer.mode = "bilinear"
    with pytest.raises(Exception) as want:
        oracle(x)
    assert type(want.value) is Exception  # mlx.nn: a bare Exception
    with pytest.raises(ValueError, match="'bilinear'; expected one of"):
        layer(x)
    with pytest.raises(ValueError, match="'area'"):
        F.upsample_apply({}, x, scale_factor=2.0, mode="area")
