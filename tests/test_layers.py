"""Registry-driven layer matrix: every entry of ``layer_registry.LAYERS`` against every check.

``mlx.nn`` is the oracle.  For each layer variant:

1. seeded init (``key=None``) equals the mlx.nn constructor's: names, order,
   shapes, dtypes, bits, and the number of draws from the global RNG;
2. ``init(key)`` is deterministic, leaves the global RNG alone, and differs
   between keys exactly where mlx.nn's init is random;
3. ``pair.apply`` equals the mlx.nn module loaded with the same parameters;
4. the funcnn class equals its pair's ``apply`` with the class's parameters;
5. ``mx.grad`` through ``pair.apply`` equals ``mlx.nn.value_and_grad``'s;
6. ``mx.vmap`` over an input batch axis / over stacked parameters equals a loop;
7. ``mx.compile(pair.apply)`` equals eager;
8. float16 / bfloat16 parameters and inputs match mlx.nn under the same cast;
9. ``repr``, items and plain attributes of the funcnn class equal mlx.nn's;
10. every mlx.nn constructor ``ValueError`` is raised identically by the class
    and the factory.

Plus constructor/call signatures, the causal-mask helper, and hypothesis runs
over random shapes and options for Linear, Conv1d/2d, the norms, RoPE and MHA.

Tolerances: see the constants below.  On mlx 0.32.4 (CPU) every check except
vmap over stacked parameters of ``sequential_nested`` (float32 round-off) is
in fact bit-exact.  The grouped-convolution variants of the stacked-parameter
vmap check are strict xfails: mlx itself computes them wrongly.
"""

from __future__ import annotations

import inspect

import mlx.core as mx
import mlx.nn
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlx.utils import tree_flatten, tree_map

import funcnn
import funcnn.functional as F
from layer_registry import ERROR_CASES, FACADE, FUNCTIONAL, LAYERS, MLX, build, make, normal

# --- tolerances ------------------------------------------------------------------
# pair.apply vs mlx.nn, facade vs pair, compile vs eager: same ops in the same
# order, so bit-exact.
EXACT = dict(rtol=0.0, atol=0.0)
# Gradients: funcnn differentiates the same graph; bit-exact in practice, but
# asserted to float32 round-off.
GRAD_TOL = dict(rtol=1e-5, atol=1e-6)
# vmap reorders reductions / batches matmuls: float32 round-off.
VMAP_TOL = dict(rtol=1e-5, atol=1e-5)
# Half precision against mlx.nn under the same cast (same ops: exact in practice).
HALF_TOL = {mx.float16: dict(rtol=1e-3, atol=1e-3), mx.bfloat16: dict(rtol=1e-2, atol=1e-2)}

SEEDS = (0, 1234)


def _ids(cases):
    return [c.id for c in cases]


def _with_known_failures(check: str, cases=LAYERS):
    """Parametrize ``cases``, marking registry-declared failures of ``check`` as strict xfails."""
    params = []
    for case in cases:
        marks = []
        if check in case.known_failures:
            marks.append(pytest.mark.xfail(strict=True, reason=case.known_failures[check]))
        params.append(pytest.param(case, id=case.id, marks=marks))
    return pytest.mark.parametrize("case", params)


# --- tree helpers ----------------------------------------------------------------


def _is_float(a) -> bool:
    return isinstance(a, mx.array) and mx.issubdtype(a.dtype, mx.floating)


def structure(tree):
    """The tree with every array replaced by ``(shape, dtype)``; containers kept."""
    if isinstance(tree, mx.array):
        return ("array", tree.shape, tree.dtype)
    if isinstance(tree, dict):
        return {k: structure(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(structure(v) for v in tree)
    return tree


def bits(a: mx.array) -> np.ndarray:
    """The raw bits of ``a`` (so ``-0.0 != 0.0`` and NaN payloads count)."""
    view = {1: mx.uint8, 2: mx.uint16, 4: mx.uint32, 8: mx.uint64}[a.dtype.size]
    if a.dtype == mx.bool_:
        return np.array(a)
    return np.array(mx.view(a, view))


def assert_params_identical(got, want):
    """Same names in the same flatten order, same containers, shapes, dtypes and bits."""
    assert structure(got) == structure(want)
    got_flat, want_flat = tree_flatten(got), tree_flatten(want)
    assert [k for k, _ in got_flat] == [k for k, _ in want_flat]
    for (name, g), (_, w) in zip(got_flat, want_flat):
        assert g.shape == w.shape and g.dtype == w.dtype, name
        np.testing.assert_array_equal(bits(g), bits(w), err_msg=name)


def assert_close(got, want, rtol, atol, label=""):
    got_flat, want_flat = tree_flatten(got), tree_flatten(want)
    assert [k for k, _ in got_flat] == [k for k, _ in want_flat], label
    for (name, g), (_, w) in zip(got_flat, want_flat):
        assert g.shape == w.shape, (label, name)
        assert g.dtype == w.dtype, (label, name)
        if rtol == 0 and atol == 0:
            np.testing.assert_array_equal(
                np.array(g.astype(mx.float32)),
                np.array(w.astype(mx.float32)),
                err_msg=f"{label} {name}",
            )
        else:
            np.testing.assert_allclose(
                np.array(g.astype(mx.float32)),
                np.array(w.astype(mx.float32)),
                rtol=rtol,
                atol=atol,
                err_msg=f"{label} {name}",
            )


def rng_state() -> np.ndarray:
    return np.array(mx.random.state[0])


def params_for(case, seed: int):
    """Keyed init, then perturbed so that no parameter sits at a symmetric value (ones, zeros)."""
    params = make(case, FUNCTIONAL).init(mx.random.key(seed))
    counter = iter(range(10_000))

    def perturb(a):
        if not _is_float(a):
            return a
        return a + 0.3 * normal(seed * 1000 + next(counter), *a.shape).astype(a.dtype)

    return tree_map(perturb, params)


def mlx_with(case, params):
    """The mlx.nn module of ``case`` holding ``params``."""
    module = make(case, MLX)
    module.update(params)
    return module


def cotangent_loss(out: mx.array) -> mx.array:
    """A scalar loss with a non-uniform cotangent (sum() would zero many norm gradients)."""
    weights = normal(777, *out.shape).astype(out.dtype)
    return (out * weights).sum()


# --- 1. seeded init ---------------------------------------------------------------


@pytest.mark.parametrize("case", LAYERS, ids=_ids(LAYERS))
def test_seeded_init_matches_mlx(case):
    for seed in SEEDS:
        mx.random.seed(seed)
        want = make(case, MLX).parameters()
        mx.eval(want)
        want_state = rng_state()

        mx.random.seed(seed)
        pair = make(case, FUNCTIONAL)
        got = pair.init()
        mx.eval(got)
        assert_params_identical(got, want)
        np.testing.assert_array_equal(rng_state(), want_state)

        mx.random.seed(seed)
        got = make(case, FACADE).parameters()
        mx.eval(got)
        assert_params_identical(got, want)
        np.testing.assert_array_equal(rng_state(), want_state)


# --- 2. explicit key --------------------------------------------------------------


@pytest.mark.parametrize("case", LAYERS, ids=_ids(LAYERS))
def test_explicit_key_init(case):
    pair = make(case, FUNCTIONAL)
    mx.random.seed(99)
    before = rng_state()
    first = pair.init(mx.random.key(1))
    second = pair.init(mx.random.key(1))
    other = pair.init(mx.random.key(2))
    mx.eval(first, second, other)
    assert_params_identical(first, second)
    np.testing.assert_array_equal(rng_state(), before)

    # Same structure as the oracle's parameters.
    mx.random.seed(0)
    oracle = make(case, MLX).parameters()
    assert structure(first) == structure(oracle)

    # A leaf differs between keys exactly where mlx.nn's init differs between seeds.
    mx.random.seed(1)
    oracle_other = make(case, MLX).parameters()
    flats = [tree_flatten(t) for t in (first, other, oracle, oracle_other)]
    for (name, a), (_, b), (_, ra), (_, rb) in zip(*flats):
        random_in_mlx = not mx.array_equal(ra, rb).item()
        differs = not mx.array_equal(a, b).item()
        assert differs == random_in_mlx, name

    # Independent draws: no two random leaves share a key (compared on their
    # common prefix, since a reused key repeats the leading values).
    random_leaves = [
        (name, a.flatten())
        for (name, a), (_, ra), (_, rb) in zip(*flats[:1], *flats[2:])
        if not mx.array_equal(ra, rb).item()
    ]
    for i, (name_a, a) in enumerate(random_leaves):
        for name_b, b in random_leaves[i + 1 :]:
            n = min(a.size, b.size)
            assert not mx.array_equal(a[:n], b[:n]).item(), (name_a, name_b)


# --- 3. output equality with mlx.nn -------------------------------------------------


@pytest.mark.parametrize("case", LAYERS, ids=_ids(LAYERS))
def test_apply_matches_mlx(case):
    params = params_for(case, 3)
    inputs = case.inputs(0)
    want = mlx_with(case, params)(*inputs)
    got = make(case, FUNCTIONAL).apply(params, *inputs)
    assert_close(got, want, **EXACT)


# --- 4. facade == pair --------------------------------------------------------------


@pytest.mark.parametrize("case", LAYERS, ids=_ids(LAYERS))
def test_facade_matches_pair(case):
    module = make(case, FACADE)
    module.update(params_for(case, 4))
    inputs = case.inputs(1)
    got = module(*inputs)
    want = make(case, FUNCTIONAL).apply(module.parameters(), *inputs)
    assert_close(got, want, **EXACT)


# --- 5. gradients ------------------------------------------------------------------


@pytest.mark.parametrize("case", LAYERS, ids=_ids(LAYERS))
def test_grad_matches_mlx(case):
    params = params_for(case, 5)
    inputs = case.inputs(2)
    pair = make(case, FUNCTIONAL)
    float_arg = next((i for i, a in enumerate(inputs) if _is_float(a)), None)

    def loss(p, x):
        args = list(inputs)
        if float_arg is not None:
            args[float_arg] = x
        return cotangent_loss(pair.apply(p, *args))

    x0 = inputs[float_arg] if float_arg is not None else mx.array(0.0)
    got_p, got_x = mx.grad(loss, argnums=(0, 1))(params, x0)

    model = mlx_with(case, params)
    assert structure(got_p) == structure(params)
    if tree_flatten(params):
        mlx_vg = mlx.nn.value_and_grad(model, lambda *a: cotangent_loss(model(*a)))
        value, want_p = mlx_vg(*inputs)
        assert_close(got_p, want_p, **GRAD_TOL, label="params")
        assert_close(loss(params, x0), value, **GRAD_TOL, label="value")
    # (mlx.nn.value_and_grad raises "[grad] Must specify at least one argument."
    # for a model without parameters; the input gradient below covers those.)

    if float_arg is not None:

        def mlx_loss(x):
            args = list(inputs)
            args[float_arg] = x
            return cotangent_loss(model(*args))

        assert_close(got_x, mx.grad(mlx_loss)(x0), **GRAD_TOL, label="input")


# --- 6. vmap -------------------------------------------------------------------------


@pytest.mark.parametrize("case", LAYERS, ids=_ids(LAYERS))
def test_vmap_over_inputs(case):
    pair = make(case, FUNCTIONAL)
    params = params_for(case, 6)
    batches = [case.inputs(s) for s in (11, 12, 13)]
    n = case.data_args
    rest = batches[0][n:]
    stacked = [mx.stack([b[i] for b in batches]) for i in range(n)]
    got = mx.vmap(lambda *data: pair.apply(params, *data, *rest))(*stacked)
    want = mx.stack([pair.apply(params, *b[:n], *rest) for b in batches])
    assert_close(got, want, **VMAP_TOL)


CASES_WITH_PARAMS = [c for c in LAYERS if tree_flatten(make(c, FUNCTIONAL).init(mx.random.key(0)))]


@_with_known_failures("vmap_params", CASES_WITH_PARAMS)
def test_vmap_over_stacked_params(case):
    pair = make(case, FUNCTIONAL)
    each = [params_for(case, seed) for seed in (21, 22, 23)]
    stacked = tree_map(lambda *leaves: mx.stack(leaves), *each)
    inputs = case.inputs(3)
    if all(isinstance(a, mx.array) for a in inputs):
        vmapped = mx.vmap(pair.apply, in_axes=(0,) + (None,) * len(inputs))
        got = vmapped(stacked, *inputs)
    else:  # str/int/None call arguments cannot pass through vmap: close over them
        got = mx.vmap(lambda p: pair.apply(p, *inputs))(stacked)
    want = mx.stack([pair.apply(p, *inputs) for p in each])
    assert_close(got, want, **VMAP_TOL)


# --- 7. compile ------------------------------------------------------------------------


@pytest.mark.parametrize("case", LAYERS, ids=_ids(LAYERS))
def test_compile_matches_eager(case):
    pair = make(case, FUNCTIONAL)
    params = params_for(case, 7)
    inputs = case.inputs(4)
    got = mx.compile(pair.apply)(params, *inputs)
    assert_close(got, pair.apply(params, *inputs), **EXACT)


# --- 8. half precision ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("case", LAYERS, ids=_ids(LAYERS))
def test_half_precision_matches_mlx(case, dtype):
    cast = lambda a: a.astype(dtype) if _is_float(a) else a  # noqa: E731
    params = tree_map(cast, params_for(case, 8))
    inputs = tuple(cast(a) for a in case.inputs(5))
    want = mlx_with(case, params)(*inputs)
    got = make(case, FUNCTIONAL).apply(params, *inputs)
    assert got.dtype == want.dtype
    if tree_flatten(params) or any(_is_float(a) for a in inputs[: case.data_args]):
        assert got.dtype == dtype
    assert_close(got, want, **HALF_TOL[dtype])


# --- 9. repr, items, attributes ------------------------------------------------------------


def module_structure(value):
    """Items of a module tree: arrays as (shape, dtype), sub-modules by type name."""
    if isinstance(value, (mlx.nn.Module, funcnn.Module)):
        return (type(value).__name__, [(k, module_structure(v)) for k, v in value.items()])
    if isinstance(value, mx.array):
        return ("array", value.shape, value.dtype)
    if isinstance(value, dict):
        return {k: module_structure(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(module_structure(v) for v in value)
    return value


def plain_attributes(module) -> dict:
    attrs = dict(vars(module))
    attrs.pop("_pair", None)
    return attrs


@pytest.mark.parametrize("case", LAYERS, ids=_ids(LAYERS))
def test_repr_items_attributes_match_mlx(case):
    mx.random.seed(0)
    want = make(case, MLX)
    mx.random.seed(0)
    got = make(case, FACADE)
    assert repr(got) == repr(want)
    assert list(got.keys()) == list(want.keys())
    assert module_structure(got) == module_structure(want)
    assert plain_attributes(got) == plain_attributes(want)
    assert len(got.modules()) == len(want.modules())
    for sub_got, sub_want in zip(got.modules(), want.modules()):
        assert type(sub_got).__name__ == type(sub_want).__name__
        assert plain_attributes(sub_got) == plain_attributes(sub_want)


def _signature(fn, skip_self: bool):
    params = list(inspect.signature(fn).parameters.values())[1 if skip_self else 0 :]
    # Names of *args are free (Sequential's factory takes ``*layers``, the class ``*modules``).
    return [(p.kind, p.default, None if p.kind == p.VAR_POSITIONAL else p.name) for p in params]


LAYER_KINDS = sorted({(c.cls, c.factory) for c in LAYERS})


@pytest.mark.parametrize("cls,factory", LAYER_KINDS, ids=[k[0] for k in LAYER_KINDS])
def test_signatures_match_mlx(cls, factory):
    want = getattr(mlx.nn, cls)
    got = getattr(funcnn, cls)
    assert _signature(got.__init__, True) == _signature(want.__init__, True)
    assert _signature(getattr(F, factory), False) == _signature(want.__init__, True)
    assert _signature(got.__call__, True) == _signature(want.__call__, True)


# --- 10. validation errors ------------------------------------------------------------------


@pytest.mark.parametrize("case", ERROR_CASES, ids=_ids(ERROR_CASES))
def test_constructor_errors_match_mlx(case):
    with pytest.raises(case.error) as want:
        build(case.cls, case.factory, case.args, case.kwargs, MLX)
    for library in (FACADE, FUNCTIONAL):
        with pytest.raises(Exception) as got:
            build(case.cls, case.factory, case.args, case.kwargs, library)
        assert type(got.value) is type(want.value), library
        assert str(got.value) == str(want.value), library


# --- extras: helpers shared with mlx.nn -------------------------------------------------------


@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16])
@pytest.mark.parametrize("n", [1, 4, 7])
def test_create_additive_causal_mask(n, dtype):
    want = mlx.nn.MultiHeadAttention.create_additive_causal_mask(n, dtype)
    for got in (
        F.create_additive_causal_mask(n, dtype),
        funcnn.MultiHeadAttention.create_additive_causal_mask(n, dtype),
    ):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(bits(got), bits(want))
    assert F.create_additive_causal_mask(3).dtype == mx.float32


def test_mha_mask_keyword_and_kinds_agree():
    mha = F.multi_head_attention(8, 2)
    params = mha.init(mx.random.key(0))
    x = normal(0, 2, 5, 8)
    additive = mha.apply(params, x, x, x, mask=F.create_additive_causal_mask(5))
    boolean = mha.apply(params, x, x, x, mask=mx.tril(mx.ones((5, 5), dtype=mx.bool_)))
    causal = mha.apply(params, x, x, x, mask="causal")
    # As in mlx.nn (measured): the three kinds of causal mask give identical outputs.
    assert mx.array_equal(additive, causal).item()
    assert mx.array_equal(boolean, causal).item()
    module = funcnn.MultiHeadAttention(8, 2)
    module.update(params)
    assert mx.array_equal(module(x, x, x, mask="causal"), causal).item()


def test_embedding_as_linear_matches_mlx():
    mx.random.seed(3)
    want_module = mlx.nn.Embedding(10, 4)
    mx.random.seed(3)
    got_module = funcnn.Embedding(10, 4)
    x = normal(0, 2, 3, 4)
    want = want_module.as_linear(x)
    assert mx.array_equal(got_module.as_linear(x), want).item()
    assert mx.array_equal(F.embedding_as_linear(got_module.parameters(), x), want).item()


def test_pair_unpacks_and_sequential_rejects_non_callables():
    init, apply = F.linear(3, 2)
    params = init(mx.random.key(0))
    assert apply(params, mx.ones((3,))).shape == (2,)
    with pytest.raises(TypeError):
        F.sequential(F.linear(3, 2), 5)


# --- hypothesis: random shapes and options vs mlx.nn ------------------------------------------

HYP = settings(max_examples=12, deadline=None, derandomize=True, database=None)


def _check_against_mlx(cls, factory, args, kwargs, x):
    pair = build(cls, factory, args, kwargs, FUNCTIONAL)
    params = pair.init(mx.random.key(0))
    params = tree_map(lambda a: a + 0.3 * normal(1, *a.shape), params)
    module = build(cls, factory, args, kwargs, MLX)
    module.update(params)
    got, want = pair.apply(params, x), module(x)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(np.array(got), np.array(want))


@HYP
@given(
    batch=st.lists(st.integers(1, 4), min_size=0, max_size=3),
    din=st.integers(1, 9),
    dout=st.integers(1, 9),
    bias=st.booleans(),
)
def test_hypothesis_linear(batch, din, dout, bias):
    _check_against_mlx("Linear", "linear", (din, dout), {"bias": bias}, normal(2, *batch, din))


@st.composite
def _conv_config(draw, spatial: int):
    groups = draw(st.integers(1, 3))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(spatial))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(spatial))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(spatial))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(spatial))
    sizes = tuple(
        draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), 9))
        for k, p, d in zip(kernel, padding, dilation)
    )
    batch = draw(st.integers(1, 3))
    bias = draw(st.booleans())
    return groups, cin, cout, kernel, stride, padding, dilation, sizes, batch, bias


@HYP
@given(cfg=_conv_config(1))
def test_hypothesis_conv1d(cfg):
    groups, cin, cout, (k,), (s,), (p,), (d,), (length,), n, bias = cfg
    kwargs = dict(stride=s, padding=p, dilation=d, groups=groups, bias=bias)
    _check_against_mlx("Conv1d", "conv1d", (cin, cout, k), kwargs, normal(3, n, length, cin))


@HYP
@given(cfg=_conv_config(2), as_ints=st.booleans())
def test_hypothesis_conv2d(cfg, as_ints):
    groups, cin, cout, kernel, stride, padding, dilation, (h, w), n, bias = cfg
    if as_ints:
        kernel, stride, padding, dilation = (t[0] for t in (kernel, stride, padding, dilation))
        w = max(w, h)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias)
    _check_against_mlx("Conv2d", "conv2d", (cin, cout, kernel), kwargs, normal(4, n, h, w, cin))


@HYP
@given(
    shape=st.lists(st.integers(1, 5), min_size=0, max_size=3),
    dims=st.integers(1, 12),
    affine=st.booleans(),
    bias=st.booleans(),
    eps=st.sampled_from([1e-5, 1e-3, 0.5]),
)
def test_hypothesis_layer_norm(shape, dims, affine, bias, eps):
    x = 3 * normal(5, *shape, dims) + 1
    _check_against_mlx(
        "LayerNorm", "layer_norm", (dims,), dict(eps=eps, affine=affine, bias=bias), x
    )
    _check_against_mlx("RMSNorm", "rms_norm", (dims,), dict(eps=eps), x)


@HYP
@given(
    batch=st.integers(1, 3),
    spatial=st.lists(st.integers(1, 4), min_size=0, max_size=2),
    groups=st.integers(1, 4),
    per_group=st.integers(1, 3),
    affine=st.booleans(),
    pytorch_compatible=st.booleans(),
)
def test_hypothesis_group_norm(batch, spatial, groups, per_group, affine, pytorch_compatible):
    dims = groups * per_group
    x = 3 * normal(6, batch, *spatial, dims) + 1
    kwargs = dict(affine=affine, pytorch_compatible=pytorch_compatible)
    _check_against_mlx("GroupNorm", "group_norm", (groups, dims), kwargs, x)


@HYP
@given(
    batch=st.integers(1, 2),
    lq=st.integers(1, 5),
    lk=st.integers(1, 5),
    heads=st.integers(1, 3),
    head_dim=st.integers(1, 3),
    in_dims=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
    value_dims=st.sampled_from([None, 6]),
    value_output_dims=st.sampled_from([None, 5]),
    bias=st.booleans(),
    mask=st.sampled_from([None, "bool", "additive"]),
)
def test_hypothesis_multi_head_attention(
    batch, lq, lk, heads, head_dim, in_dims, value_dims, value_output_dims, bias, mask
):
    dims = heads * head_dim
    if value_dims is not None:
        value_dims = heads * value_dims
    args = (dims, heads, *in_dims, value_dims, value_output_dims, bias)
    pair = F.multi_head_attention(*args)
    params = tree_map(lambda a: a + 0.3 * normal(1, *a.shape), pair.init(mx.random.key(0)))
    module = mlx.nn.MultiHeadAttention(*args)
    module.update(params)
    q, k, v = (
        normal(2, batch, lq, in_dims[0]),
        normal(3, batch, lk, in_dims[1]),
        normal(4, batch, lk, in_dims[2]),
    )
    m = None
    if mask == "bool":
        m = normal(5, lq, lk) > -0.5
        m[:, 0] = True  # no fully masked row
    elif mask == "additive":
        m = 2 * normal(5, lq, lk)
    got, want = pair.apply(params, q, k, v, m), module(q, k, v, mask=m)
    assert got.shape == want.shape == (batch, lq, value_output_dims or dims)
    np.testing.assert_array_equal(np.array(got), np.array(want))


@HYP
@given(
    shape=st.lists(st.integers(1, 4), min_size=2, max_size=3),  # rope needs ndim >= 2
    half_dims=st.integers(1, 4),
    extra=st.integers(0, 4),
    traditional=st.booleans(),
    base=st.sampled_from([10000, 500.0, 10]),
    scale=st.sampled_from([1.0, 0.5, 2.0]),
    offset=st.one_of(st.integers(0, 20), st.integers(0, 20).map(mx.array)),
)
def test_hypothesis_rope(shape, half_dims, extra, traditional, base, scale, offset):
    dims = 2 * half_dims
    x = normal(6, *shape, dims + extra)
    kwargs = dict(traditional=traditional, base=base, scale=scale)
    got = F.rope(dims, **kwargs).apply({}, x, offset)
    want = mlx.nn.RoPE(dims, **kwargs)(x, offset)
    np.testing.assert_array_equal(np.array(got), np.array(want))
    assert mx.array_equal(funcnn.RoPE(dims, **kwargs)(x, offset), want).item()
