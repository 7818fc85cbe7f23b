"""``funcnn.init`` against ``mlx.nn.init`` (the oracle).

Without a key every initializer must give mlx.nn's values bit for bit, with its
dtype, and leave MLX's global random state exactly where mlx.nn leaves it; bad
inputs must raise mlx.nn's exception type and message.  With a key the draw is
deterministic and the global state untouched.  The places where funcnn
deliberately does better than mlx.nn each have a test below that shows what
mlx.nn does and what funcnn does instead.
"""

from __future__ import annotations

import inspect
import math

import funcnn  # noqa: F401  (first, as everywhere in the suite)
import mlx.core as mx
import mlx.nn.init as ref
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import funcnn.functional.init as F_init
import funcnn.init as finit

NAMES = [
    "constant",
    "normal",
    "uniform",
    "identity",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "sparse",
    "orthogonal",
]
RANDOM = [n for n in NAMES if n not in ("constant", "identity")]
FLOATS = [mx.float32, mx.float16, mx.bfloat16]
FEW = settings(max_examples=5, deadline=None, derandomize=True, database=None)

# (name, factory args, initializer kwargs, which shapes it takes)
CASES = [
    ("constant", (0.5,), {}, "any"),
    ("constant", (-3,), {}, "any"),
    ("normal", (), {}, "any"),
    ("normal", (1.5, 0.25), {}, "any"),
    ("uniform", (), {}, "any"),
    ("uniform", (-2.0, 3.0), {}, "any"),
    ("identity", (), {}, "square"),
    ("glorot_normal", (), {}, "fans"),
    ("glorot_normal", (), {"gain": 4.0}, "fans"),
    ("glorot_uniform", (), {}, "fans"),
    ("glorot_uniform", (), {"gain": 0.5}, "fans"),
    ("he_normal", (), {}, "fans"),
    ("he_normal", (), {"mode": "fan_out", "gain": 5.0}, "fans"),
    ("he_uniform", (), {}, "fans"),
    ("he_uniform", (), {"mode": "fan_out", "gain": math.sqrt(2)}, "fans"),
    ("sparse", (0.5,), {}, "matrix"),
    ("sparse", (0.3, 1.0, 2.0), {}, "matrix"),
    ("orthogonal", (), {}, "matrix"),
    ("orthogonal", (2.0,), {}, "matrix"),
]
CASE_IDS = [f"{name}{args}{kwargs or ''}" for name, args, kwargs, _ in CASES]

_dim = st.integers(1, 5)
SHAPES = {
    "any": st.lists(_dim, min_size=0, max_size=4).map(tuple),
    "square": _dim.map(lambda n: (n, n)),
    "fans": st.lists(_dim, min_size=2, max_size=4).map(tuple),
    "matrix": st.tuples(_dim, _dim),
}


def bits(a: mx.array) -> np.ndarray:
    view = {1: mx.uint8, 2: mx.uint16, 4: mx.uint32, 8: mx.uint64}[a.dtype.size]
    return np.array(mx.view(a, view))


def assert_identical(got: mx.array, want: mx.array) -> None:
    assert isinstance(got, mx.array)
    assert (got.shape, got.dtype) == (want.shape, want.dtype)
    np.testing.assert_array_equal(bits(got), bits(want))


def global_state() -> np.ndarray:
    return np.array(mx.random.state[0])


def seeded(module, name, args, a, kwargs, seed=0, dtype=None):
    """``module.name(*args)(a, **kwargs)`` after seeding: (result or error, global state after)."""
    factory_kwargs = {} if dtype is None else {"dtype": dtype}
    mx.random.seed(seed)
    try:
        out = getattr(module, name)(*args, **factory_kwargs)(a, **kwargs)
        mx.eval(out)
    except Exception as err:  # noqa: BLE001 - compared with what mlx.nn raises
        out = err
    return out, global_state()


def assert_same_as_mlx(name, args, a, kwargs, seed=0, dtype=None) -> mx.array:
    got, got_state = seeded(finit, name, args, a, kwargs, seed, dtype)
    want, want_state = seeded(ref, name, args, a, kwargs, seed, dtype)
    if isinstance(want, Exception):
        assert (type(got), str(got)) == (type(want), str(want))
    else:
        assert_identical(got, want)
    np.testing.assert_array_equal(got_state, want_state)
    return got


# --- names and signatures ------------------------------------------------------------


def test_public_names_are_mlx_nn_inits():
    public = [
        n
        for n, f in vars(ref).items()
        if inspect.isfunction(f) and f.__module__ == ref.__name__ and not n.startswith("_")
    ]
    assert sorted(public) == sorted(NAMES)
    assert finit.__all__ == F_init.__all__ == NAMES
    for name in NAMES:
        assert getattr(finit, name) is getattr(F_init, name)


def _params(sig: inspect.Signature) -> list[tuple]:
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


@pytest.mark.parametrize("name", NAMES)
def test_signatures_are_mlx_nn_plus_keyword_key(name):
    assert _params(inspect.signature(getattr(finit, name))) == _params(
        inspect.signature(getattr(ref, name))
    )
    args = {"sparse": (0.5,), "constant": (1.0,)}.get(name, ())
    ours = _params(inspect.signature(getattr(finit, name)(*args)))
    theirs = _params(inspect.signature(getattr(ref, name)(*args)))
    assert ours == theirs + [("key", inspect.Parameter.KEYWORD_ONLY, None)]


# --- global random state: mlx.nn's draws exactly ---------------------------------------


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize(("name", "args", "kwargs", "kind"), CASES, ids=CASE_IDS)
def test_same_values_and_global_state_as_mlx_nn(name, args, kwargs, kind, dtype):
    @FEW
    @given(shape=SHAPES[kind], seed=st.integers(0, 2**31))
    def check(shape, seed):
        out = assert_same_as_mlx(name, args, mx.zeros(shape), kwargs, seed, dtype)
        assert out.dtype == dtype

    check()


def test_follow_up_global_draws_agree():
    mx.random.seed(7)
    ref.sparse(0.25)(mx.zeros((3, 4)))
    ref.he_normal()(mx.zeros((2, 3, 5)))
    want = mx.random.uniform(shape=(6,))
    mx.random.seed(7)
    finit.sparse(0.25)((3, 4))
    finit.he_normal()((2, 3, 5))
    assert_identical(mx.random.uniform(shape=(6,)), want)


@FEW
@given(
    shape=st.lists(st.integers(1, 4), min_size=2, max_size=5).map(tuple),
    name=st.sampled_from(["glorot_normal", "glorot_uniform", "he_normal", "he_uniform"]),
    gain=st.floats(0.1, 10.0),
)
def test_fans_of_conv_shaped_weights_match(shape, name, gain):
    # 3-D to 5-D weights: the kernel axes multiply both fans; mlx.nn is the judge
    kwargs = {"gain": gain} if name.startswith("glorot") else {"gain": gain, "mode": "fan_out"}
    assert_same_as_mlx(name, (), mx.zeros(shape), kwargs, seed=3)


def test_fans_really_use_the_kernel_axes():
    # what the formula promises, beyond agreeing with mlx.nn: std = gain / sqrt(fan)
    shape = (64, 3, 3, 32)  # fan_in 288, fan_out 576
    w = finit.he_normal()(shape, mode="fan_out", key=mx.random.key(0))
    assert abs(w.std().item() - 1 / math.sqrt(576)) < 0.002
    w = finit.he_normal()(shape, key=mx.random.key(0))
    assert abs(w.std().item() - 1 / math.sqrt(288)) < 0.002


@pytest.mark.parametrize("dtype", [mx.int32, mx.uint8, mx.bool_, mx.float32], ids=str)
@pytest.mark.parametrize("name", ["identity", "orthogonal"])
def test_integer_and_bool_dtypes_like_mlx_nn(name, dtype):
    assert_same_as_mlx(name, (), mx.zeros((3, 3)), {}, dtype=dtype)


def test_only_the_input_shape_matters():
    for a in (mx.zeros((3, 4), mx.int32), mx.ones((3, 4), mx.bool_), np.zeros((3, 4))):
        assert_same_as_mlx("glorot_uniform", (), a, {}, seed=1)
        assert_same_as_mlx("sparse", (0.5,), a, {}, seed=1)


@pytest.mark.parametrize("sparsity", [0.0, 0.2, 0.5, 0.99, 1.0, 1.5])
def test_sparse_edge_sparsities_like_mlx_nn(sparsity):
    out = assert_same_as_mlx("sparse", (sparsity,), mx.zeros((4, 5)), {}, seed=2)
    zeros = (out == 0).sum(axis=1).tolist()
    assert zeros == [min(5, math.ceil(sparsity * 5))] * 4


# --- errors: mlx.nn's type and message --------------------------------------------------

BAD = [
    ("glorot_normal", (), mx.zeros((3,)), {}),
    ("glorot_uniform", (), mx.zeros(()), {}),
    ("he_normal", (), mx.zeros((3,)), {}),
    ("he_uniform", (), mx.zeros(()), {"mode": "fan_out"}),
    ("he_normal", (), mx.zeros((2, 3)), {"mode": "fan_avg"}),
    ("he_uniform", (), mx.zeros((3,)), {"mode": "fan_avg"}),  # the shape is reported first
    ("identity", (), mx.zeros((3, 2)), {}),
    ("identity", (), mx.zeros((3,)), {}),
    ("identity", (), mx.zeros((2, 2, 2)), {}),
    ("sparse", (0.5,), mx.zeros((4,)), {}),
    ("sparse", (0.5,), mx.zeros((2, 3, 4)), {}),
    ("sparse", (-0.5,), mx.zeros((2, 3, 4)), {}),  # the shape is reported first
    ("orthogonal", (), mx.zeros((4,)), {}),
    ("orthogonal", (), mx.zeros((2, 2, 2)), {}),
]


BAD_IDS = [f"{name}{a.shape}{kwargs}" for name, _, a, kwargs in BAD]


@pytest.mark.parametrize(("name", "args", "a", "kwargs"), BAD, ids=BAD_IDS)
def test_bad_inputs_raise_like_mlx_nn(name, args, a, kwargs):
    got, _ = seeded(finit, name, args, a, kwargs)
    assert isinstance(got, ValueError)
    assert_same_as_mlx(name, args, a, kwargs)


@pytest.mark.parametrize(
    ("name", "args"),
    [("normal", ()), ("uniform", ()), ("glorot_normal", ()), ("he_uniform", ()),
     ("sparse", (0.5,))],
)
def test_integer_dtypes_raise_mlx_errors_after_the_same_draws(name, args):
    # sparse draws its (float32) order before failing on the values: the state
    # must still advance exactly as in mlx.nn
    got, _ = seeded(finit, name, args, mx.zeros((2, 3)), {}, dtype=mx.int32)
    assert isinstance(got, ValueError)
    assert_same_as_mlx(name, args, mx.zeros((2, 3)), {}, dtype=mx.int32)


# --- explicit keys ----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "args", "kwargs", "kind"), CASES, ids=CASE_IDS)
def test_key_is_deterministic_and_leaves_the_global_state(name, args, kwargs, kind):
    @FEW
    @given(shape=SHAPES[kind], seed=st.integers(0, 2**31))
    def check(shape, seed):
        init = getattr(finit, name)(*args)
        mx.random.seed(seed)
        before = global_state()
        first = init(shape, key=mx.random.key(1), **kwargs)
        second = init(shape, key=mx.random.key(1), **kwargs)
        other = init(shape, key=mx.random.key(2), **kwargs)
        mx.eval(first, second, other)
        np.testing.assert_array_equal(global_state(), before)
        assert_identical(first, second)
        assert first.shape == shape
        if name in RANDOM and math.prod(shape) >= 4:
            assert not mx.array_equal(first, other).item()

    check()


SINGLE_DRAW = [(case, i) for case, i in zip(CASES, CASE_IDS) if case[0] != "sparse"]


@pytest.mark.parametrize(
    ("name", "args", "kwargs", "kind"), [c for c, _ in SINGLE_DRAW], ids=[i for _, i in SINGLE_DRAW]
)
def test_key_draws_what_mlx_nn_draws_from_that_key(name, args, kwargs, kind):
    # After mx.random.seed(s) the global state hands out split(key(s))[1]
    # (checked here too); single-draw initializers given that key must equal
    # mlx.nn's global draw: the same math, only the key's source differs.
    # sparse draws twice: test_sparse_key_is_split_into_two_subkeys.
    shape = {"any": (3, 4), "square": (4, 4), "fans": (5, 2, 3), "matrix": (3, 5)}[kind]
    seed = 11
    mx.random.seed(seed)
    assert_identical(
        mx.random.normal((3,)), mx.random.normal((3,), key=mx.random.split(mx.random.key(seed))[1])
    )
    want, _ = seeded(ref, name, args, mx.zeros(shape), kwargs, seed)
    key = mx.random.split(mx.random.key(seed))[1]
    assert_identical(getattr(finit, name)(*args)(shape, key=key, **kwargs), want)


def test_sparse_key_is_split_into_two_subkeys():
    key = mx.random.key(5)
    got = finit.sparse(0.5, mean=1.0, std=2.0)((4, 6), key=key)
    k_order, k_values = mx.random.split(key)
    order = mx.argsort(mx.random.uniform(shape=(4, 6), key=k_order), axis=1)
    want = mx.random.normal((4, 6), scale=2.0, loc=1.0, key=k_values)
    want[mx.arange(4).reshape(4, 1), order[:, :3]] = 0
    assert_identical(got, want)
    # one key for both draws would tie the zero pattern to the values
    assert not mx.array_equal(k_order, k_values).item()


@pytest.mark.parametrize("name", [n for n in RANDOM if n != "orthogonal"])
def test_keyed_initializers_vmap_over_keys(name):
    init = getattr(finit, name)(*((0.5,) if name == "sparse" else ()))
    keys = mx.random.split(mx.random.key(3), 4)
    batched = mx.vmap(lambda k: init((3, 5), key=k))(keys)
    assert_identical(batched, mx.stack([init((3, 5), key=k) for k in keys]))


# --- a shape instead of an array --------------------------------------------------------


@pytest.mark.parametrize(("name", "args", "kwargs", "kind"), CASES, ids=CASE_IDS)
def test_a_shape_gives_what_an_array_of_that_shape_gives(name, args, kwargs, kind):
    @FEW
    @given(shape=SHAPES[kind], seed=st.integers(0, 2**31))
    def check(shape, seed):
        from_array = assert_same_as_mlx(name, args, mx.zeros(shape), kwargs, seed)
        for as_shape in (shape, list(shape)):
            from_shape, state = seeded(finit, name, args, as_shape, kwargs, seed)
            assert_identical(from_shape, from_array)
            _, want_state = seeded(ref, name, args, mx.zeros(shape), kwargs, seed)
            np.testing.assert_array_equal(state, want_state)
        key = mx.random.key(seed)
        init = getattr(finit, name)(*args)
        assert_identical(init(shape, key=key, **kwargs), init(mx.zeros(shape), key=key, **kwargs))

    check()


def test_numpy_ints_in_a_shape_are_accepted():
    want = finit.normal()((2, 3), key=mx.random.key(0))
    assert_identical(finit.normal()((np.int64(2), np.int32(3)), key=mx.random.key(0)), want)


@pytest.mark.parametrize("bad", [(2, -1), (2.0, 3), (True, 2), ("2",), [None]])
def test_bad_shapes_raise_value_error(bad):
    with pytest.raises(ValueError, match="A shape must be a tuple of non-negative ints"):
        finit.normal()(bad)


# --- where funcnn deliberately differs from mlx.nn --------------------------------------


@pytest.mark.parametrize(
    ("value", "dtype"),
    [(2.7, mx.int32), (-1.5, mx.uint8), (2.7, mx.bool_), (2, mx.bool_), (0.5, mx.complex64)],
    ids=str,
)
def test_constant_honours_its_dtype_where_mlx_nn_returns_float32(value, dtype):
    theirs = ref.constant(value, dtype)(mx.zeros((2, 2)))
    assert theirs.dtype != dtype, "mlx.nn fixed constant's dtype: the difference can go"
    ours = finit.constant(value, dtype)(mx.zeros((2, 2)))
    assert_identical(ours, mx.full((2, 2), mx.array(value).astype(dtype)))
    assert ours.dtype == dtype


@pytest.mark.parametrize("dtype", [mx.int32, mx.float16, mx.bfloat16], ids=str)
def test_constant_matches_mlx_nn_where_mlx_nn_honours_the_dtype(dtype):
    assert_same_as_mlx("constant", (3,), mx.zeros((2, 3)), {}, dtype=dtype)


EMPTY_FANS = [
    ("glorot_normal", (2, 0, 3), {}),
    ("glorot_uniform", (0, 0), {}),
    ("he_normal", (3, 0), {}),
    ("he_uniform", (0, 3), {"mode": "fan_out"}),
    ("he_normal", (4, 2, 0, 5), {"mode": "fan_out"}),
]


@pytest.mark.parametrize(("name", "shape", "kwargs"), EMPTY_FANS)
def test_empty_inputs_with_zero_fan_give_empty_arrays(name, shape, kwargs):
    want, _ = seeded(ref, name, (), mx.zeros(shape), kwargs)
    assert isinstance(want, ZeroDivisionError), "mlx.nn fixed it: compare values instead"
    got, state = seeded(finit, name, (), mx.zeros(shape), kwargs, dtype=mx.float16)
    assert (got.shape, got.dtype) == (shape, mx.float16)
    # one draw, like every other call of the initializer
    mx.random.seed(0)
    mx.random.normal(shape)
    np.testing.assert_array_equal(state, global_state())


def test_empty_inputs_with_a_nonzero_fan_still_match_mlx_nn():
    assert_same_as_mlx("glorot_normal", (), mx.zeros((0, 3)), {})
    assert_same_as_mlx("he_uniform", (), mx.zeros((0, 3)), {})
    assert_same_as_mlx("orthogonal", (), mx.zeros((0, 3)), {})
    assert_same_as_mlx("identity", (), mx.zeros((0, 0)), {})


@pytest.mark.parametrize("shape", [(0, 3), (0, 1), (3, 0), (0, 0)])
def test_sparse_with_no_rows_or_columns_gives_an_empty_array(shape):
    want, want_state = seeded(ref, "sparse", (0.5,), mx.zeros(shape), {})
    assert isinstance(want, ValueError) and "[scatter]" in str(want)
    got, state = seeded(finit, "sparse", (0.5,), mx.zeros(shape), {})
    assert (got.shape, got.dtype) == (shape, mx.float32)
    np.testing.assert_array_equal(state, want_state)  # mlx.nn failed after its two draws


@pytest.mark.parametrize(
    ("sparsity", "mlx_keeps"), [(-0.5, 2), (-0.3, 1), (-1e-9, 4), (float("nan"), None)]
)
def test_sparse_rejects_a_negative_or_nan_sparsity(sparsity, mlx_keeps):
    theirs, _ = seeded(ref, "sparse", (sparsity,), mx.zeros((2, 4)), {})
    if mlx_keeps is None:
        assert str(theirs) == "cannot convert float NaN to integer"
    else:  # the slice order[:, :ceil(sparsity * 4)] counts from the end: the complement
        assert (theirs != 0).sum(axis=1).tolist() == [mlx_keeps] * 2
    mx.random.seed(0)
    before = global_state()
    with pytest.raises(ValueError, match="must be non-negative, got"):
        finit.sparse(sparsity)((2, 4))
    np.testing.assert_array_equal(global_state(), before)


@pytest.mark.parametrize("bad", [3, None, "weights"])
def test_neither_array_nor_shape_raises_type_error(bad):
    with pytest.raises(AttributeError):
        ref.normal()(bad)
    with pytest.raises(TypeError, match="takes an array or a shape"):
        finit.normal()(bad)


# --- what each distribution promises ----------------------------------------------------


@FEW
@given(rows=st.integers(1, 6), cols=st.integers(1, 6), gain=st.floats(0.5, 3.0))
def test_orthogonal_rows_or_columns_are_orthonormal(rows, cols, gain):
    q = finit.orthogonal(gain)((rows, cols), key=mx.random.key(rows * 7 + cols))
    gram = q @ q.T if rows <= cols else q.T @ q
    assert mx.allclose(gram, gain**2 * mx.eye(min(rows, cols)), atol=1e-4).item()


@FEW
@given(rows=st.integers(1, 5), cols=st.integers(1, 8), sparsity=st.floats(0.0, 1.0))
def test_sparse_zeroes_the_same_count_in_every_row(rows, cols, sparsity):
    w = finit.sparse(sparsity, mean=5.0)((rows, cols), key=mx.random.key(cols))
    assert (w == 0).sum(axis=1).tolist() == [math.ceil(sparsity * cols)] * rows


def test_bounds_of_the_uniform_initializers():
    w = finit.glorot_uniform()((30, 20), gain=2.0, key=mx.random.key(0))
    limit = 2.0 * math.sqrt(6 / 50)
    assert w.abs().max().item() <= limit and w.abs().max().item() > 0.9 * limit
    w = finit.he_uniform()((30, 20), mode="fan_out", key=mx.random.key(0))
    assert w.abs().max().item() <= math.sqrt(3 / 30)
