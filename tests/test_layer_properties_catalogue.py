"""Hypothesis over the newer layer families: random shapes and options vs mlx.nn, bit for bit.

Each example builds the layer three ways from the same global seed -- the
mlx.nn class, the funcnn class and the funcnn pair (``init()`` without a key)
-- checks that the three parameter trees are bit-identical, loads the same
perturbed parameters into all three (so no weight sits at a symmetric value
such as LayerNorm's ones) and compares their outputs bit for bit; for
ConvTranspose, pooling and LSTM also the gradient with respect to the input
(to float32 round-off).

Regions where funcnn deliberately raises and mlx.nn does not (docs/guides/migrating.rst, "Where
funcnn does better") are left out of the strategies, each with a comment.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import pytest
from _layer_helpers import (
    assert_close,
    assert_params_identical,
    cotangent_loss,
    is_float,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from layer_registry import FACADE, FUNCTIONAL, MLX, build, normal
from mlx.utils import tree_map
from test_layer_properties import HYP

# Few examples each (the whole file runs in seconds); derandomized, as HYP is.
FEW = settings(HYP, max_examples=10)
MORE = settings(HYP, max_examples=25)
GRAD_TOL = {"rtol": 1e-5, "atol": 1e-5}
DTYPES = st.sampled_from([mx.float32, mx.float16, mx.bfloat16])
SEEDS = st.integers(0, 2**16)


def _perturbed(params: Any, seed: int) -> Any:
    counter = iter(range(10_000))

    def perturb(a):
        if not is_float(a):
            return a
        return a + (0.3 * normal(seed + next(counter), *a.shape)).astype(a.dtype)

    return tree_map(perturb, params)


def _three_way(
    cls: str, factory: str, args: tuple, kwargs: dict, inputs: tuple, seed: int = 0
) -> tuple:
    """Build three ways, check the seeded init, perturb, call and compare.

    Returns ``(want_module, got_module, pair, params)`` for further checks.
    """
    mx.random.seed(seed)
    want_module = build(cls, factory, args, kwargs, MLX)
    mx.random.seed(seed)
    got_module = build(cls, factory, args, kwargs, FACADE)
    pair = build(cls, factory, args, kwargs, FUNCTIONAL)
    mx.random.seed(seed)
    params = pair.init()
    assert_params_identical(got_module.parameters(), want_module.parameters())
    assert_params_identical(params, want_module.parameters())

    params = _perturbed(params, seed + 1)
    want_module.update(params)
    got_module.update(params)
    want = want_module(*inputs)
    assert_params_identical(got_module(*inputs), want)
    assert_params_identical(pair.apply(params, *inputs), want)
    return want_module, got_module, pair, params


def _check_input_grads(want_module, got_module, pair, params, inputs: tuple) -> None:
    """d loss / d inputs[0] of the three agree to float32 round-off."""
    x, rest = inputs[0], inputs[1:]

    def grad_of(f):
        return mx.grad(lambda x: cotangent_loss(f(x, *rest)))(x)

    want = grad_of(want_module)
    assert_close(grad_of(got_module), want, **GRAD_TOL, label="facade")
    assert_close(grad_of(lambda *a: pair.apply(params, *a)), want, **GRAD_TOL, label="pair")


# --- convolutions --------------------------------------------------------------------


def _axes(strategy, n: int):
    return st.tuples(*[strategy] * n)


@FEW
@given(
    cin=st.integers(1, 3),
    cout=st.integers(1, 3),
    kernel=_axes(st.integers(1, 3), 3),
    stride=_axes(st.integers(1, 2), 3),
    padding=_axes(st.integers(0, 1), 3),
    dilation=_axes(st.integers(1, 2), 3),
    extra=_axes(st.integers(0, 2), 3),
    as_int=st.booleans(),
    bias=st.booleans(),
    seed=SEEDS,
)
def test_conv3d(cin, cout, kernel, stride, padding, dilation, extra, as_int, bias, seed):
    options = (kernel, stride, padding, dilation)
    if as_int:  # an int stands for the same value on every axis
        options = tuple((t[0],) * 3 for t in options)
    kernel, stride, padding, dilation = options
    # Every axis at least one (dilated) window long once padded.
    sizes = [max(1, d * (k - 1) + 1 - 2 * p) + e
             for k, p, d, e in zip(kernel, padding, dilation, extra)]
    args = (cin, cout, *(t[0] if as_int else t for t in options), bias)
    _three_way("Conv3d", "conv3d", args, {}, (normal(seed, 2, *sizes, cin),), seed)


@st.composite
def _conv_transpose_config(draw, spatial: int) -> tuple:
    kernel = draw(_axes(st.integers(1, 3), spatial))
    stride = draw(_axes(st.integers(1, 3), spatial))
    dilation = draw(_axes(st.integers(1, 2), spatial))
    padding = tuple(draw(st.integers(0, d * (k - 1))) for k, d in zip(kernel, dilation))
    output_padding = tuple(draw(st.integers(0, s - 1)) for s in stride)
    options = (kernel, stride, padding, dilation, output_padding)
    # ConvTranspose1d takes ints only; the 2-D/3-D layers take an int or a tuple.
    if spatial == 1 or draw(st.booleans()):
        options = tuple(t[0] for t in options)
        kernel, stride, padding, dilation, output_padding = ((t,) * spatial for t in options)
    kwargs = dict(zip(("stride", "padding", "dilation", "output_padding"), options[1:]))
    kwargs["bias"] = draw(st.booleans())
    # mlx refuses an empty output: (n - 1) * s - 2 * p + d * (k - 1) + op + 1 >= 1.
    shortest = [
        1 + max(0, -(-(2 * p - d * (k - 1) - op) // s))
        for k, s, p, d, op in zip(kernel, stride, padding, dilation, output_padding)
    ]
    sizes = tuple(n + draw(st.integers(0, 3)) for n in shortest)
    return options[0], kwargs, sizes


@FEW
@pytest.mark.parametrize("spatial", [1, 2, 3])
@given(data=st.data(), cin=st.integers(1, 3), cout=st.integers(1, 3), seed=SEEDS)
def test_conv_transpose(spatial, data, cin, cout, seed):
    kernel, kwargs, sizes = data.draw(_conv_transpose_config(spatial))
    cls = f"ConvTranspose{spatial}d"
    inputs = (normal(seed, 2, *sizes, cin),)
    modules = _three_way(
        cls, f"conv_transpose{spatial}d", (cin, cout, kernel), kwargs, inputs, seed
    )
    _check_input_grads(*modules, inputs)


# --- pooling ---------------------------------------------------------------------------


@st.composite
def _pool_config(draw, spatial: int) -> tuple:
    # Listed largest first: Hypothesis favours the first entries, and a padded window
    # (k // 2 > 0) is where max and average pooling differ most from a plain reduction.
    kernel = draw(_axes(st.sampled_from([3, 2, 1]), spatial))
    stride = draw(st.one_of(st.none(), _axes(st.integers(1, 3), spatial)))
    padding = tuple(draw(st.sampled_from(range(k // 2, -1, -1))) for k in kernel)
    # funcnn raises where the window is larger than the padded input (mlx.nn returns an
    # empty array or fails in as_strided): every axis holds at least one window.
    sizes = tuple(draw(st.integers(max(1, k - 2 * p), 6)) for k, p in zip(kernel, padding))
    as_int = draw(st.booleans())
    if as_int:
        kernel, padding = kernel[:1] * spatial, padding[:1] * spatial
        stride = stride if stride is None else stride[:1] * spatial
        sizes = tuple(max(sizes[0], s) for s in sizes)
    kwargs = {"stride": stride, "padding": padding}
    if as_int:
        kwargs = {k: v if v is None else v[0] for k, v in kwargs.items()}
        kernel = kernel[0]
    return kernel, kwargs, sizes


@FEW
@pytest.mark.parametrize("spatial", [1, 2, 3])
@pytest.mark.parametrize("kind", ["Max", "Avg"])
@given(data=st.data(), channels=st.integers(1, 3), batch=st.integers(1, 2), seed=SEEDS)
def test_pooling(kind, spatial, data, channels, batch, seed):
    kernel, kwargs, sizes = data.draw(_pool_config(spatial))
    inputs = (normal(seed, batch, *sizes, channels),)
    modules = _three_way(
        f"{kind}Pool{spatial}d", f"{kind.lower()}_pool{spatial}d", (kernel,), kwargs, inputs
    )
    _check_input_grads(*modules, inputs)


# --- upsampling --------------------------------------------------------------------------

# Scales below 1 included; funcnn's ValueError for non-positive or non-finite scales
# (mlx.nn: empty arrays, crashes) is outside this range.
SCALES = st.sampled_from([1, 2, 3, 0.5, 0.75, 1.5, 2.0, 2.5, 1.25, 0.4])


@MORE
@given(
    spatial=st.integers(1, 3),
    scales=_axes(SCALES, 3),
    as_tuple=st.booleans(),
    mode=st.sampled_from(["nearest", "linear", "cubic"]),
    align_corners=st.booleans(),
    antialias=st.booleans(),
    sizes=_axes(st.integers(1, 5), 3),
    dtype=DTYPES,
    seed=SEEDS,
)
def test_upsample(spatial, scales, as_tuple, mode, align_corners, antialias, sizes, dtype, seed):
    scales, sizes = scales[:spatial], sizes[:spatial]
    if not as_tuple:
        scales = scales[:1] * spatial
    # An axis downsampled to nothing: funcnn's nearest mode returns an empty array where
    # mlx.nn divides by zero; every axis keeps at least one sample here.
    sizes = tuple(max(n, int(1 / s) + 1) for n, s in zip(sizes, scales))
    # mlx.nn refuses antialias for nearest and together with align_corners (so does funcnn:
    # tests/layer_registry/upsample.py); the allowed combinations only.
    antialias = antialias and mode != "nearest" and not align_corners
    x = normal(seed, 2, *sizes, 2).astype(dtype)
    _three_way("Upsample", "upsample", (scales if as_tuple else scales[0], mode),
               {"align_corners": align_corners, "antialias": antialias}, (x,))


# --- recurrent ---------------------------------------------------------------------------


@st.composite
def _sequence(draw, n_states: int) -> tuple:
    """``(input_size, hidden_size, bias, inputs, seed)``: batched or not, with or without states."""
    input_size, hidden_size = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    lead = draw(st.sampled_from([(), (1,), (3,)]))
    length = draw(st.integers(1, 4))
    seed = draw(SEEDS)
    states = [
        normal(seed + i + 1, *lead, hidden_size) if draw(st.booleans()) else None
        for i in range(n_states)
    ]
    while states and states[-1] is None:  # trailing Nones: the call's defaults
        states.pop()
    inputs = (normal(seed, *lead, length, input_size), *states)
    return input_size, hidden_size, draw(st.booleans()), inputs, seed


@HYP
@given(config=_sequence(1), nonlinearity=st.sampled_from([None, mx.tanh, mx.sigmoid, mx.sin]))
def test_rnn(config, nonlinearity):
    # Plain functions only: RNN(nonlinearity=ReLU()) is a deliberate funcnn fix (mlx.nn
    # silently runs tanh for a falsy Module).
    input_size, hidden_size, bias, inputs, seed = config
    _three_way("RNN", "rnn", (input_size, hidden_size, bias, nonlinearity), {}, inputs, seed)


@HYP
@given(config=_sequence(1))
def test_gru(config):
    input_size, hidden_size, bias, inputs, seed = config
    _three_way("GRU", "gru", (input_size, hidden_size), {"bias": bias}, inputs, seed)


@HYP
@given(config=_sequence(2))
def test_lstm(config):
    input_size, hidden_size, bias, inputs, seed = config
    modules = _three_way("LSTM", "lstm", (input_size, hidden_size, bias), {}, inputs, seed)
    _check_input_grads(*modules, inputs)


# --- transformer blocks ------------------------------------------------------------------


def _mask(kind: str, lq: int, lk: int, seed: int) -> Any:
    if kind == "none":
        return None
    if kind == "causal":
        return "causal"
    if kind == "additive":
        return 2 * normal(seed, lq, lk)
    mask = normal(seed, lq, lk) > -0.5
    mask[:, 0] = True  # no fully masked row (a NaN softmax either way)
    return mask


MASKS = st.sampled_from(["none", "causal", "additive", "bool"])
BLOCK = {
    "heads": st.integers(1, 3),
    "head_dim": st.integers(1, 3),
    "mlp_dims": st.one_of(st.none(), st.integers(1, 8)),
    "activation": st.sampled_from([None, mx.tanh]),
    "norm_first": st.booleans(),
    "batch": st.integers(1, 2),
    "length": st.integers(1, 4),
    "seed": SEEDS,
}


def _block_kwargs(mlp_dims, activation, norm_first) -> dict:
    kwargs = {"mlp_dims": mlp_dims, "dropout": 0.0, "norm_first": norm_first}
    if activation is not None:  # None: the default, relu
        kwargs["activation"] = activation
    return kwargs


@FEW
@given(mask=MASKS, **BLOCK)
def test_transformer_encoder_layer(
    mask, heads, head_dim, mlp_dims, activation, norm_first, batch, length, seed
):
    dims = heads * head_dim
    inputs = (normal(seed, batch, length, dims), _mask(mask, length, length, seed + 1))
    _three_way("TransformerEncoderLayer", "transformer_encoder_layer", (dims, heads),
               _block_kwargs(mlp_dims, activation, norm_first), inputs, seed)


@FEW
@given(
    x_mask=MASKS,
    memory_mask=st.sampled_from(["none", "additive", "bool"]),
    memory_length=st.integers(1, 4),
    **BLOCK,
)
def test_transformer_decoder_layer(
    x_mask, memory_mask, memory_length, heads, head_dim, mlp_dims, activation, norm_first,
    batch, length, seed,
):
    dims = heads * head_dim
    inputs = (
        normal(seed, batch, length, dims),
        normal(seed + 1, batch, memory_length, dims),
        _mask(x_mask, length, length, seed + 2),
        _mask(memory_mask, length, memory_length, seed + 3),
    )
    _three_way("TransformerDecoderLayer", "transformer_decoder_layer", (dims, heads),
               _block_kwargs(mlp_dims, activation, norm_first), inputs, seed)


# --- activations with settings -------------------------------------------------------------

SHAPES = st.lists(st.integers(1, 4), min_size=1, max_size=3)
SETTING = st.floats(-2.0, 2.0, allow_nan=False).map(lambda v: round(v, 3))


def _activation_input(shape, dtype, seed) -> mx.array:
    # Scale 3: both tails, and values near the settings' kinks.
    return (3 * normal(seed, *shape)).astype(dtype)


@MORE
@given(
    layer=st.sampled_from([
        ("LeakyReLU", "leaky_relu", "negative_slope"),
        ("ELU", "elu", "alpha"),
        ("CELU", "celu", "alpha"),
        ("Softshrink", "softshrink", "lambd"),
        ("HardShrink", "hard_shrink", "lambd"),
        ("Step", "step", "threshold"),
    ]),
    value=SETTING,
    positional=st.booleans(),
    shape=SHAPES,
    dtype=DTYPES,
    seed=SEEDS,
)
def test_activation_settings(layer, value, positional, shape, dtype, seed):
    cls, factory, name = layer
    args, kwargs = ((value,), {}) if positional else ((), {name: value})
    _three_way(cls, factory, args, kwargs, (_activation_input(shape, dtype, seed),))


@HYP
@given(
    shape=SHAPES,
    axis_index=st.integers(0, 2),
    negative=st.booleans(),
    dtype=DTYPES,
    seed=SEEDS,
)
def test_glu_axis(shape, axis_index, negative, dtype, seed):
    axis_index %= len(shape)
    shape = list(shape)
    shape[axis_index] *= 2  # GLU halves its axis
    axis = axis_index - len(shape) if negative else axis_index
    _three_way("GLU", "glu", (), {"axis": axis}, (_activation_input(shape, dtype, seed),))


@HYP
@given(
    layer=st.sampled_from([("Softmax", "softmax"), ("Softmin", "softmin"),
                           ("LogSoftmax", "log_softmax")]),
    shape=SHAPES,
    dtype=DTYPES,
    seed=SEEDS,
)
def test_softmax_family(layer, shape, dtype, seed):
    cls, factory = layer
    if cls == "LogSoftmax":
        # mlx.nn.log_softmax crashes the interpreter over an axis of size 1 (funcnn
        # returns the value: tests/test_activations.py); at least 2 here.
        shape = [*shape[:-1], max(2, shape[-1])]
    _three_way(cls, factory, (), {}, (_activation_input(shape, dtype, seed),))


@HYP
@given(
    shape=SHAPES,
    per_channel=st.booleans(),
    init=SETTING,
    dtype=DTYPES,
    seed=SEEDS,
)
def test_prelu(shape, per_channel, init, dtype, seed):
    # A weight that does not broadcast against the input is a funcnn error on every call
    # (mlx.nn raises once per rank, then reads out of bounds): one weight, or one per entry
    # of the last axis.
    num_parameters = shape[-1] if per_channel else 1
    _three_way("PReLU", "prelu", (num_parameters, init), {},
               (_activation_input(shape, dtype, seed),), seed)
