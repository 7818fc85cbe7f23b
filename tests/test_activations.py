"""``funcnn``'s activation functions against ``mlx.nn``'s (the oracle), bit for bit.

Every function of ``mlx.nn.layers.activations`` on a grid reaching 0, ±tiny
(subnormals included), large magnitudes, ±inf and NaN, in int32, float16,
bfloat16 and float32, with its extra arguments (``axis``, ``alpha``,
``lambd``, ``threshold``, ``min_val``/``max_val``, ``negative_slope``) at
several values, as Python scalars, and differentiated.  The layer classes and
pair factories are covered by the registry (``layer_registry/activations.py``)
through ``test_layers.py`` and ``test_layer_channels.py``.

Last, the defects of ``mlx.nn`` that funcnn does not copy, each pinned beside
MLX's behaviour (crashes are observed in a child interpreter).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import mlx.core as mx
import mlx.nn
import mlx.nn.layers.activations as mlx_activations
import numpy as np
import pytest
from _bits import assert_identical, normal
from hypothesis import given, settings
from hypothesis import strategies as st

import funcnn
import funcnn.functional as F
import funcnn.layers.activations as funcnn_activations

FUNCTIONS = [
    "sigmoid", "relu", "relu2", "relu6", "leaky_relu", "log_softmax", "elu", "softmax",
    "softplus", "softsign", "softshrink", "celu", "silu", "log_sigmoid", "gelu", "gelu_approx",
    "gelu_fast_approx", "glu", "step", "selu", "prelu", "mish", "hardswish", "hard_tanh",
    "hard_shrink", "softmin", "tanh",
]  # fmt: skip
DTYPES = [mx.int32, mx.float16, mx.bfloat16, mx.float32]
COLUMNS = 8  # the grids are (rows, 8): every function sees a matrix


# --- the grids ------------------------------------------------------------------------------

SPECIALS = [
    -mx.inf, -3e38, -65504.0, -1e4, -100.0, -30.0, -6.0, -3.0, -1.0, -0.5, -1e-7, -1e-30,
    -1e-45, -0.0, 0.0, 1e-45, 1e-30, 1e-7, 0.5, 1.0, 3.0, 6.0, 30.0, 100.0, 1e4, 65504.0,
    3e38, mx.inf, mx.nan, -mx.nan,
]  # fmt: skip
INT_SPECIALS = [-(2**31), -(2**31) + 1, -100_000, -7, -1, 0, 1, 7, 100_000, 2**31 - 1]


def _rows(values: mx.array) -> mx.array:
    """``values`` padded with zeros to an even number of rows of :data:`COLUMNS`."""
    pad = (-values.size) % (2 * COLUMNS)
    return mx.concatenate([values, mx.zeros((pad,), values.dtype)]).reshape(-1, COLUMNS)


def dense(dtype) -> mx.array:
    """Finite values: a dense sweep of [-10, 10] (int32: -50..50)."""
    if dtype == mx.int32:
        return _rows(mx.arange(-50, 51, dtype=mx.int32))
    return _rows(mx.linspace(-10, 10, 401).astype(dtype))


def specials(dtype) -> mx.array:
    """Zeros, tiny and huge values, infinities and NaNs (int32: its extremes)."""
    if dtype == mx.int32:
        return _rows(mx.array(INT_SPECIALS, dtype=mx.int32))
    return _rows(mx.array(SPECIALS).astype(dtype))


# Extra arguments of each function, at several values (Python scalars and arrays);
# ``prelu``'s ``alpha`` is required.
# (The scalar values are those of the registry's layer variants where there is one, so
# that in a full run both share their compiled kernels.)
COLUMN_VALUES = mx.linspace(-1.0, 2.0, COLUMNS)
AXES = [{}, {"axis": 0}, {"axis": -2}, {"axis": (0, 1)}, {"axis": [1]}, {"axis": None}]
SHRINK = [{}, {"lambd": 0.0}, {"lambd": 1.0}, {"lambd": 1.5}, {"lambd": mx.array(0.25)}]
VARIANTS: dict[str, list[dict]] = {
    "leaky_relu": [
        {}, {"negative_slope": 0.0}, {"negative_slope": 0.2}, {"negative_slope": 2.0},
        {"negative_slope": -0.1}, {"negative_slope": 0}, {"negative_slope": COLUMN_VALUES},
    ],
    "elu": [{}, {"alpha": 0.5}, {"alpha": 2.0}, {"alpha": 3}, {"alpha": COLUMN_VALUES}],
    "celu": [{}, {"alpha": 0.5}, {"alpha": 2.0}, {"alpha": mx.array(0.7)}],
    "softshrink": SHRINK,
    "hard_shrink": SHRINK,
    "step": [{}, {"threshold": 0.5}, {"threshold": -1.0}, {"threshold": 3},
             {"threshold": COLUMN_VALUES}],
    "hard_tanh": [
        {}, {"min_val": -2.0, "max_val": 3.0}, {"min_val": 0, "max_val": 6},
        {"min_val": 2.0, "max_val": -2.0}, {"min_val": -COLUMN_VALUES, "max_val": COLUMN_VALUES},
    ],
    "prelu": [{"alpha": 0.25}, {"alpha": 2}, {"alpha": mx.array([0.1])},
              {"alpha": COLUMN_VALUES}],
    "softmax": AXES,
    "log_softmax": AXES,
    "softmin": AXES,
    "glu": [{}, {"axis": 0}, {"axis": -2}, {"axis": 1}],
}  # fmt: skip
CASES = [(name, kw) for name in FUNCTIONS for kw in VARIANTS.get(name, [{}])]
CASE_IDS = [f"{name}-{i}" for name in FUNCTIONS for i in range(len(VARIANTS.get(name, [{}])))]


def test_every_mlx_activation_function_is_exported_like_mlx():
    mlx_names = sorted(
        n for n, v in vars(mlx_activations).items()
        if callable(v) and not isinstance(v, type) and not n.startswith("_")
        and getattr(v, "__module__", "") == mlx_activations.__name__
    )  # fmt: skip
    assert mlx_names == sorted(FUNCTIONS)
    for name in FUNCTIONS:
        fn = getattr(funcnn, name)
        assert getattr(funcnn_activations, name) is fn
        assert getattr(F.activations, name) is fn
        assert fn.__name__ == name and fn.__doc__
    # The pair factories are a different namespace: F.relu() is a layer.
    assert isinstance(F.relu(), F.Pair) and F.relu is not funcnn.relu


def _same_on_grids(name: str, kwargs: dict, dtype) -> None:
    for grid in (dense(dtype), specials(dtype)):
        want = getattr(mlx.nn, name)(grid, **kwargs)
        assert_identical(getattr(funcnn, name)(grid, **kwargs), want)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_bitwise_equal_to_mlx_in_every_dtype(name, dtype):
    _same_on_grids(name, VARIANTS.get(name, [{}])[0], dtype)


# Each value of a setting is a constant of its own compiled kernel: float32 inputs only.
@pytest.mark.parametrize("name,kwargs", CASES, ids=CASE_IDS)
def test_bitwise_equal_to_mlx_with_every_setting(name, kwargs):
    _same_on_grids(name, kwargs, mx.float32)


@pytest.mark.parametrize("name,kwargs", CASES, ids=CASE_IDS)
def test_gradients_bitwise_equal_to_mlx(name, kwargs):
    x = mx.concatenate([dense(mx.float32), specials(mx.float32)])
    arrays = {k: v for k, v in kwargs.items() if isinstance(v, mx.array)}  # differentiated too
    fixed = {k: v for k, v in kwargs.items() if k not in arrays}
    # A non-uniform cotangent (a plain sum would zero the softmax gradients).
    weights = normal(1, *getattr(mlx.nn, name)(x, **kwargs).shape)

    def grads(fn):
        def loss(v, extra):
            return (fn(v, **fixed, **extra).astype(mx.float32) * weights).sum()

        return mx.grad(loss, argnums=(0, 1))(x, arrays)

    (got_x, got_arrays), (want_x, want_arrays) = grads(getattr(funcnn, name)), grads(
        getattr(mlx.nn, name)
    )
    assert_identical(got_x, want_x)
    assert list(got_arrays) == list(arrays)
    for k in arrays:
        assert_identical(got_arrays[k], want_arrays[k])


def test_output_types_follow_mlx():
    ints = mx.array([-2, 0, 3])
    assert funcnn.relu(ints).dtype == mx.int32 and funcnn.relu2(ints).dtype == mx.int32
    assert funcnn.relu6(ints).dtype == mx.float32  # the bound 6.0 promotes
    assert funcnn.step(mx.ones((2,), mx.float16)).dtype == mx.int32  # always int32
    for name in ("silu", "gelu", "sigmoid", "softmax", "tanh", "mish", "selu"):
        assert getattr(funcnn, name)(ints).dtype == mx.float32
    for dtype in (mx.float16, mx.bfloat16):
        for name in set(FUNCTIONS) - {"step", "prelu"}:
            assert getattr(funcnn, name)(mx.ones((2, 2), dtype)).dtype == dtype, name
        # A Python float setting keeps half precision; a float32 array promotes.
        assert funcnn.prelu(mx.ones((2,), dtype), 0.5).dtype == dtype
        assert funcnn.prelu(mx.ones((2,), dtype), mx.array([0.5])).dtype == mx.float32


# Each scalar is a constant of a new compiled kernel (about half a second on a cold kernel
# cache): a float for every function; ints and bools where the result type depends on them.
SCALAR_CASES = (
    [(name, VARIANTS.get(name, [{}])[0], -2.5) for name in FUNCTIONS]
    + [(name, VARIANTS.get(name, [{}])[0], 3) for name in (
        "relu", "relu2", "relu6", "leaky_relu", "step", "hard_tanh", "gelu", "softmax", "prelu",
    )]
    + [(name, {}, True) for name in ("relu", "sigmoid", "step", "hard_shrink")]
    + [(name, kwargs, -2.5) for name, kwargs in [
        ("leaky_relu", {"negative_slope": 0.2}), ("elu", {"alpha": 0.5}),
        ("celu", {"alpha": 2.0}), ("softshrink", {"lambd": 1.0}), ("step", {"threshold": 0.5}),
        ("hard_tanh", {"min_val": 0, "max_val": 6}), ("softmax", {"axis": 0}),
    ]]
)  # fmt: skip


@pytest.mark.parametrize(
    "name,kwargs,value", SCALAR_CASES, ids=[f"{n}-{kw}-{v}" for n, kw, v in SCALAR_CASES]
)
def test_python_scalars_like_mlx(name, kwargs, value):
    """A compiled function traces a Python scalar as a constant; the axis ones reject it."""
    try:
        want = getattr(mlx.nn, name)(value, **kwargs)
    except Exception as error:  # noqa: BLE001 - the same error is expected from funcnn
        with pytest.raises(type(error)) as got:
            getattr(funcnn, name)(value, **kwargs)
        assert str(got.value) == str(error)
        assert name in ("softmax", "log_softmax", "softmin", "glu")
        return
    assert_identical(getattr(funcnn, name)(value, **kwargs), want)


def test_python_scalar_examples():
    assert funcnn.relu(3.0).item() == 3.0 and funcnn.relu(3.0).dtype == mx.float32
    assert funcnn.relu(-2).item() == 0 and funcnn.relu(-2).dtype == mx.int32
    assert funcnn.step(0.5, threshold=0.5).item() == 1
    assert funcnn.hard_tanh(-3, min_val=-2, max_val=2).item() == -2


@pytest.mark.parametrize("name", FUNCTIONS)
def test_numpy_arrays_are_treated_like_mlx(name):
    """Rejected by the compiled functions (mx.compile's error) and glu; tanh takes them."""
    x = np.linspace(-2, 2, 8, dtype=np.float32).reshape(2, 4)
    args = (0.5,) if name == "prelu" else ()
    try:
        want = getattr(mlx.nn, name)(x, *args)
    except (TypeError, ValueError) as error:
        with pytest.raises(type(error)) as got:
            getattr(funcnn, name)(x, *args)
        assert str(got.value) == str(error)
        assert ("[compile]" in str(error)) == (name != "glu")
        return
    assert name == "tanh"
    assert_identical(getattr(funcnn, name)(x, *args), want)


@pytest.mark.parametrize(
    "name,x,kwargs",
    [
        ("glu", mx.ones((2, 5)), {}),
        ("glu", mx.ones((3, 4)), {"axis": 0}),
        ("glu", mx.ones((2, 4)), {"axis": 2}),
        ("softmax", mx.ones((2, 4)), {"axis": 2}),
        ("log_softmax", mx.ones((2, 4)), {"axis": -3}),
        ("log_softmax", mx.ones((2, 4)), {"axis": (1, -1)}),
        ("softmin", mx.array(1.0), {}),
    ],
)
def test_errors_like_mlx(name, x, kwargs):
    with pytest.raises(Exception) as want:
        mx.eval(getattr(mlx.nn, name)(x, **kwargs))
    with pytest.raises(type(want.value)) as got:
        mx.eval(getattr(funcnn, name)(x, **kwargs))
    assert str(got.value) == str(want.value)


# --- reference values and properties -------------------------------------------------------

REFERENCE_X = [-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0]
REFERENCE_SAMPLES = {
    "gelu": [-0.00405, -0.158655, -0.154269, 0, 0.345731, 0.841345, 2.99595],
    "gelu_approx": [-0.003637, -0.158808, -0.154286, 0, 0.345714, 0.841192, 2.996363],
    "gelu_fast_approx": [-0.018071, -0.154204, -0.149612, 0, 0.350388, 0.845796, 2.981929],
    "silu": [-0.142278, -0.268941, -0.18877, 0, 0.31123, 0.731059, 2.857722],
    "relu": [0, 0, 0, 0, 0.5, 1.0, 3.0],
    "relu6": [0, 0, 0, 0, 0.5, 1.0, 3.0],
    "softsign": [-0.75, -0.5, -1 / 3, 0, 1 / 3, 0.5, 0.75],
    "hard_shrink": [-3.0, -1.0, 0, 0, 0, 1.0, 3.0],
    "softshrink": [-2.5, -0.5, 0, 0, 0, 0.5, 2.5],
    "hardswish": [0, -1 / 3, -5 / 24, 0, 7 / 24, 2 / 3, 3.0],
    "log_sigmoid": [-3.048587, -1.313262, -0.974077, -0.693147, -0.474077, -0.313262, -0.048587],
}


@pytest.mark.parametrize("name", sorted(REFERENCE_SAMPLES))
def test_reference_samples(name):
    got = getattr(funcnn, name)(mx.array(REFERENCE_X))
    np.testing.assert_allclose(np.array(got), REFERENCE_SAMPLES[name], rtol=2e-5, atol=2e-6)


def test_gelu_approximation_errors_as_measured():
    x = mx.linspace(-6, 6, 100_001)
    exact = funcnn.gelu(x)
    tanh_err = mx.abs(funcnn.gelu_approx(x) - exact).max().item()
    fast_err = mx.abs(funcnn.gelu_fast_approx(x) - exact).max().item()
    assert tanh_err < 5e-4
    # mlx documents < 0.015 for the fast approximation; measured ~0.0203.
    assert 0.015 < fast_err < 0.025


def test_relu_grad_at_zero_is_zero():
    assert mx.grad(funcnn.relu)(mx.array(0.0)).item() == 0.0
    np.testing.assert_array_equal(
        np.array(mx.grad(lambda v: funcnn.relu(v).sum())(mx.array([-1.0, 0.0, 2.0]))), [0, 0, 1]
    )


def test_softmax_family_normalises_and_log_softmax_is_stable():
    x = 50 * normal(2, 4, 6)
    for axis in (0, 1):
        np.testing.assert_allclose(np.array(funcnn.softmax(x, axis=axis).sum(axis)), 1, rtol=1e-6)
        np.testing.assert_allclose(np.array(funcnn.softmin(x, axis=axis).sum(axis)), 1, rtol=1e-6)
    huge = mx.array([1e30, 1e30])
    assert funcnn.log_softmax(huge).tolist() == pytest.approx([-0.6931472] * 2)


def test_pairs_apply_the_functions():
    x = dense(mx.float32)
    pairs = {
        "relu": F.relu(), "silu": F.silu(), "gelu": F.gelu(), "gelu_approx": F.gelu("tanh"),
        "gelu_fast_approx": F.gelu("fast"), "sigmoid": F.sigmoid(), "tanh": F.tanh(),
        "softmax": F.softmax(), "log_softmax": F.log_softmax(), "hard_tanh": F.hard_tanh(),
    }  # fmt: skip
    for name, pair in pairs.items():
        assert pair.init() == {} and pair.init(mx.random.key(0)) == {}
        assert_identical(pair.apply({}, x), getattr(mlx.nn, name)(x))
    assert_identical(F.leaky_relu(0.3).apply({}, x), mlx.nn.leaky_relu(x, 0.3))
    assert_identical(F.glu(0).apply({}, x), mlx.nn.glu(x, 0))
    for approx, fn in [("none", "gelu"), ("precise", "gelu_approx"), ("tanh", "gelu_approx"),
                       ("fast", "gelu_fast_approx"), ("bogus", "gelu_fast_approx")]:
        # mlx.nn.GELU's choice at call time (anything unknown is the fast one)
        assert_identical(F.activations.gelu_apply({}, x, approx=approx), getattr(funcnn, fn)(x))


def test_prelu_weight_and_gradient():
    layer = funcnn.PReLU(3, init=0.1)
    oracle = mlx.nn.PReLU(3, init=0.1)
    assert_identical(layer.weight, oracle.weight)
    x = normal(3, 4, 3)
    assert_identical(layer(x), oracle(x))
    pair = F.prelu(3, 0.1)
    params = pair.init(mx.random.key(0))
    got = mx.grad(lambda p: pair.apply(p, x).sum())(params)["weight"]
    want = mlx.nn.value_and_grad(oracle, lambda v: oracle(v).sum())(x)[1]["weight"]
    assert_identical(got, want)
    assert got.tolist() == pytest.approx(mx.minimum(x, 0).sum(0).tolist())


def test_prelu_int_init_makes_an_int32_weight_like_mlx():
    mx.random.seed(0)
    oracle = mlx.nn.PReLU(2, 1)
    for got in (funcnn.PReLU(2, 1).weight, F.prelu(2, 1).init()["weight"],
                F.prelu(2, 1).init(mx.random.key(0))["weight"]):  # fmt: skip
        assert_identical(got, oracle.weight)
    x = normal(6, 3, 2)
    assert_identical(funcnn.PReLU(2, 1)(x), oracle(x))
    assert_identical(funcnn.PReLU(2, True).weight, mlx.nn.PReLU(2, True).weight)  # bool


@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(
    shape=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    data=st.data(),
    scale=st.sampled_from([1.0, 100.0]),
)
def test_hypothesis_log_softmax_any_shape_and_axes(shape, data, scale):
    """Bit-identical to mlx.nn wherever mlx.nn survives; the formula's value elsewhere."""
    x = scale * normal(len(shape), *shape)
    ndim = len(shape)
    axes = data.draw(st.lists(st.integers(-ndim, ndim - 1), min_size=1, max_size=ndim,
                              unique_by=lambda a: a % ndim))  # fmt: skip
    axis = axes[0] if len(axes) == 1 else tuple(axes)
    reduced = {a % ndim for a in axes}
    got = funcnn.log_softmax(x, axis=axis)
    if len(reduced) < ndim and all(shape[a] == 1 for a in reduced):  # mlx.nn would crash
        shifted = x - mx.max(x, axis=axis, keepdims=True)
        assert_identical(got, shifted - mx.logsumexp(shifted, axis=axis, keepdims=True))
    else:
        assert_identical(got, mlx.nn.log_softmax(x, axis=axis))


# --- where mlx.nn is defective --------------------------------------------------------------


def _mlx_in_child(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` (with ``mx`` and ``nn`` = mlx.nn imported) in a fresh interpreter."""
    prelude = "import mlx.core as mx, mlx.nn as nn\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=120,
        check=False,
    )


def test_log_softmax_over_size_one_axes_does_not_crash():
    # mlx.nn's shapeless compiled log_softmax corrupts memory when it reduces only axes of
    # size 1 (mlx 0.32.4): the interpreter dies (SIGSEGV or SIGABRT).
    child = _mlx_in_child(
        "y = nn.log_softmax(mx.array([[1.0], [2.0], [3.0]]))\nmx.eval(y)\nprint('survived')"
    )
    assert child.returncode != 0 and "survived" not in child.stdout
    # funcnn gives the formula's value: 0 for finite entries, NaN for infinite ones.
    x = mx.array([[1.0], [-2e30], [mx.inf], [mx.nan]])
    assert funcnn.log_softmax(x).tolist()[:2] == [[0.0], [0.0]]
    assert np.isnan(np.array(funcnn.log_softmax(x)[2:])).all()
    for shape, axis in [((1, 5), 0), ((3, 1, 2), 1), ((2, 1, 1), (1, 2)), ((1, 1), -1)]:
        y = normal(4, *shape)
        shifted = y - mx.max(y, axis=axis, keepdims=True)
        assert_identical(
            funcnn.log_softmax(y, axis=axis),
            shifted - mx.logsumexp(shifted, axis=axis, keepdims=True),
        )
    # Its gradient, the layer and the pair take the same path.
    # (log_softmax is identically 0 there, so d/dv sum(v * log_softmax(v)) is 0 too.)
    assert mx.grad(lambda v: (funcnn.log_softmax(v) * v).sum())(x[:2]).tolist() == [[0.0], [0.0]]
    assert funcnn.LogSoftmax()(x[:2]).tolist() == [[0.0], [0.0]]
    assert F.log_softmax().apply({}, x[:2]).tolist() == [[0.0], [0.0]]
    # Full reductions over size-1 axes, where mlx.nn works, stay bit-identical to it.
    for shape, axis in [((1,), -1), ((1, 1), (0, 1)), ((1, 1), None)]:
        y = normal(5, *shape)
        assert_identical(funcnn.log_softmax(y, axis=axis), mlx.nn.log_softmax(y, axis=axis))


EMPTY_SHAPES = [(2, 0), (0, 3)]


@pytest.mark.parametrize("name", ["softmax", "softmin", "log_softmax"])
def test_empty_inputs_act_as_on_a_first_call_however_traced(name):
    # Once traced with a non-empty input, mlx.nn's shapeless softmax crashes on an empty
    # reduced axis, and its log_softmax returns a wrongly shaped array.
    first_calls = {}
    for shape in EMPTY_SHAPES:  # each in a fresh interpreter: a first call
        child = _mlx_in_child(
            f"try:\n    print(list(nn.{name}(mx.zeros({shape})).shape))\n"
            "except ValueError as e:\n    print(repr(str(e)))"
        )
        first_calls[shape] = ast.literal_eval(child.stdout.strip())  # a list or a message
    traced = _mlx_in_child(
        f"mx.eval(nn.{name}(mx.ones((2, 3))))\ny = nn.{name}(mx.zeros((2, 0)))\nmx.eval(y)\n"
        "print(list(y.shape))"
    )
    if name == "log_softmax":
        assert first_calls[(2, 0)] == "[max] Cannot max reduce over axis 1 with size 0."
        assert traced.stdout.strip() == "[2, 1]"  # neither the error nor (2, 0)
    else:
        assert first_calls[(2, 0)] == [2, 0]
        assert traced.returncode != 0 and traced.stdout == ""  # crashed
    fn = getattr(funcnn, name)
    mx.eval(fn(mx.ones((2, 3))))
    for shape in EMPTY_SHAPES:
        for _ in range(2):  # traced or not: the first call's answer
            try:
                got = list(fn(mx.zeros(shape)).shape)
            except ValueError as e:
                got = str(e)
            assert got == first_calls[shape]


BROADCAST_CASES = [
    ("prelu", "mx.ones((2, 3)), mx.array([0.1, 0.2, 0.3])",
     "-mx.ones((2, 4)), mx.array([0.1, 0.2, 0.3])"),
    ("leaky_relu", "mx.ones((2, 3)), mx.array([0.1, 0.2, 0.3])",
     "-mx.ones((2, 4)), mx.array([0.1, 0.2, 0.3])"),
    ("hard_tanh", "mx.ones((3,)), mx.zeros((3,))", "mx.ones((5,)), mx.zeros((2,))"),
    ("step", "mx.ones((2, 3)), mx.zeros((1, 3))", "mx.ones((2, 3)), mx.zeros((1, 2))"),
]  # fmt: skip


def _arrays(code: str) -> tuple:
    return eval(code, {"mx": mx})  # the literal test data above


@pytest.mark.parametrize("name,fits,misfits", BROADCAST_CASES, ids=[c[0] for c in BROADCAST_CASES])
def test_arrays_that_do_not_broadcast_raise_on_every_call(name, fits, misfits):
    # mlx.nn checks the shapes only when it traces: after a call with arrays of the same
    # ranks, arrays that do not broadcast are read out of bounds and nothing is raised.
    child = _mlx_in_child(
        f"import json\nf = nn.{name}\nout = {{}}\n"
        f"try:\n    f({misfits})\nexcept ValueError as e:\n    out['first'] = str(e)\n"
        f"mx.eval(f({fits}))\ny = f({misfits})\nmx.eval(y)\nout['shape'] = y.shape\n"
        "print(json.dumps(out))"
    )
    mlx_result = json.loads(child.stdout.strip().splitlines()[-1])
    assert "cannot be broadcast" in mlx_result["first"]
    assert len(mlx_result["shape"]) >= 1  # a result, where there should be an error
    # funcnn raises MLX's first-call error on every call.
    fn = getattr(funcnn, name)
    mx.eval(fn(*_arrays(fits)))
    for _ in range(2):
        with pytest.raises(ValueError) as got:
            fn(*_arrays(misfits))
        assert str(got.value) == mlx_result["first"]


def test_prelu_layer_whose_weight_does_not_fit_raises_on_every_call():
    layer, pair = funcnn.PReLU(3), F.prelu(3)
    for _ in range(2):
        mx.eval(layer(mx.ones((2, 3))), pair.apply(pair.init(), mx.ones((2, 3))))
        with pytest.raises(ValueError, match=r"Shapes \(3\) and \(2,4\) cannot be broadcast"):
            layer(mx.ones((2, 4)))
        with pytest.raises(ValueError, match="cannot be broadcast"):
            pair.apply(pair.init(), mx.ones((2, 4)))


@pytest.mark.parametrize("num_parameters", [2.0, 2.5, "3", None, [3], np.float32(2)])
def test_prelu_rejects_a_non_integer_count_with_a_message(num_parameters):
    # mlx.nn lets nanobind's bare "std::bad_cast" RuntimeError through.
    with pytest.raises(RuntimeError, match="bad_cast"):
        mlx.nn.PReLU(num_parameters)
    for make in (funcnn.PReLU, F.prelu):
        with pytest.raises(TypeError) as got:
            make(num_parameters)
        assert repr(num_parameters) in str(got.value)
        assert "num_parameters must be an int" in str(got.value)


def test_prelu_count_beyond_64_bits_is_an_overflow_error():
    with pytest.raises(RuntimeError, match="bad_cast"):
        mlx.nn.PReLU(2**64)
    with pytest.raises(OverflowError) as within_64_bits:
        mlx.nn.PReLU(2**40)
    with pytest.raises(OverflowError) as got:
        funcnn.PReLU(2**64)
    assert str(got.value) == str(within_64_bits.value).replace(str(2**40), str(2**64))
    # Integer-like counts are accepted as by mlx.nn.
    for count in (np.int64(3), True, mx.array(2)):
        assert funcnn.PReLU(count).weight.shape == mlx.nn.PReLU(count).weight.shape
