"""Registry-driven layer matrix: every entry of ``layer_registry.LAYERS`` against every check.

``mlx.nn`` is the oracle.  For each layer variant:

1. seeded init (``key=None``) equals the mlx.nn constructor's: names, order,
   shapes, dtypes, bits, and the number of draws from the global RNG;
2. ``init(key)`` is deterministic, leaves the global RNG alone, and differs
   between keys exactly where mlx.nn's init is random;
3. ``pair.apply`` equals the mlx.nn module loaded with the same parameters, in
   training and in evaluation mode (the same global seed before each call, so
   dropout draws the same mask; a stateful pair's updates, merged into its
   parameters, equal the module's parameters after the call);
4. the funcnn class equals its pair's ``apply`` with the class's parameters,
   in both modes, state included;
5. ``mx.grad`` through ``pair.apply`` equals ``mlx.nn.value_and_grad``'s on the
   trainable parameters (state gets a zero gradient);
6. ``mx.vmap`` over an input batch axis / over stacked parameters equals a loop
   (explicit keys, both modes);
7. ``mx.compile(pair.apply)`` equals eager (the key an argument, both modes);
8. float16 / bfloat16 parameters and inputs match mlx.nn under the same cast;
9. ``repr``, items and plain attributes (``_no_grad``, ``_training``, settings)
   of the funcnn class equal mlx.nn's;
10. every mlx.nn constructor ``ValueError`` is raised identically by the class
    and the factory.

Keys, training mode, state, call errors and settings changed after
construction: ``test_layer_channels.py``; random shapes and options:
``test_layer_properties.py``.

Tolerances: see ``_layer_helpers``.  On mlx 0.32.4 (CPU) every check except
vmap over stacked parameters of ``sequential_nested`` (float32 round-off) is
in fact bit-exact.  The grouped-convolution variants of the stacked-parameter
vmap check are strict xfails: mlx itself computes them wrongly.
Also strict xfails, declared in the registry: vmap over inputs of pooling with
overlapping or partial windows (MLX's ``as_strided`` has no vmap rule) and
half precision for Upsample's linear/cubic modes (mlx.nn returns float32).
"""

from __future__ import annotations

import inspect

import mlx.core as mx
import mlx.nn
import numpy as np
import pytest
from _layer_helpers import (
    EXACT,
    GRAD_TOL,
    HALF_TOL,
    MODES,
    SEEDS,
    VMAP_TOL,
    assert_close,
    assert_params_identical,
    case_ids,
    channels,
    cotangent_loss,
    is_float,
    mlx_with,
    output_of,
    params_for,
    rng_state,
    run_module,
    run_pair,
    select,
    structure,
    with_known_failures,
)
from layer_registry import ERROR_CASES, FACADE, FUNCTIONAL, LAYERS, MLX, build, make
from mlx.utils import tree_flatten, tree_map

import funcnn
import funcnn.functional as F

ALL = pytest.mark.parametrize("case", LAYERS, ids=case_ids(LAYERS))


# --- 1. seeded init ---------------------------------------------------------------


@ALL
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


@ALL
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


@MODES
@ALL
def test_apply_matches_mlx(case, training):
    params = params_for(case, 3)
    inputs = case.inputs(0)
    want, want_params = run_module(mlx_with(case, params), inputs, training)
    want_rng = rng_state()
    got, got_params = run_pair(make(case, FUNCTIONAL), params, inputs, training)
    assert_close(got, want, **EXACT, label="output")
    assert_close(got_params, want_params, **EXACT, label="parameters after the call")
    np.testing.assert_array_equal(rng_state(), want_rng)  # the same draws from the global RNG


# --- 4. facade == pair --------------------------------------------------------------


@MODES
@ALL
def test_facade_matches_pair(case, training):
    module = make(case, FACADE)
    module.update(params_for(case, 4))
    before = module.parameters()
    inputs = case.inputs(1)
    got, got_params = run_module(module, inputs, training)
    want, want_params = run_pair(make(case, FUNCTIONAL), before, inputs, training)
    assert_close(got, want, **EXACT, label="output")
    assert_close(got_params, want_params, **EXACT, label="parameters after the call")


# --- 5. gradients ------------------------------------------------------------------


@ALL
def test_grad_matches_mlx(case):
    params = params_for(case, 5)
    inputs = case.inputs(2)
    pair = make(case, FUNCTIONAL)
    float_arg = next((i for i, a in enumerate(inputs) if is_float(a)), None)

    def loss(p, x):
        # Integer leaves (quantized weights) have no gradient: MLX raises for one.
        p = tree_map(lambda a: a if is_float(a) else mx.stop_gradient(a), p)
        args = list(inputs)
        if float_arg is not None:
            args[float_arg] = x
        return cotangent_loss(output_of(pair, pair.apply(p, *args, **channels(pair))))

    x0 = inputs[float_arg] if float_arg is not None else mx.array(0.0)
    mx.random.seed(11)
    got_p, got_x = mx.grad(loss, argnums=(0, 1))(params, x0)
    assert structure(got_p) == structure(params)

    model = mlx_with(case, params)
    trainable = pair.trainable(params)
    if tree_flatten(model.trainable_parameters()):
        mlx_vg = mlx.nn.value_and_grad(model, lambda *a: cotangent_loss(model(*a)))
        mx.random.seed(11)
        value, want_p = mlx_vg(*inputs)
        assert_close(select(got_p, trainable), want_p, **GRAD_TOL, label="params")
        mx.random.seed(11)
        assert_close(loss(params, x0), value, **GRAD_TOL, label="value")
    # State is not trained: in training mode the output does not depend on it.  (Frozen
    # parameters that are not state, such as quantized scales, do act on the output.)
    for (name, g), (_, ok) in zip(tree_flatten(got_p), tree_flatten(trainable)):
        if not ok and case.stateful:
            assert not mx.any(g).item(), name
    # (mlx.nn.value_and_grad raises "[grad] Must specify at least one argument."
    # for a model without parameters; the input gradient below covers those.)

    if float_arg is not None:

        def mlx_loss(x):
            args = list(inputs)
            args[float_arg] = x
            return cotangent_loss(model(*args))

        mx.random.seed(12)
        want_x = mx.grad(mlx_loss)(x0)
        mx.random.seed(12)
        assert_close(mx.grad(loss, argnums=1)(params, x0), want_x, **GRAD_TOL, label="input")


# --- 6. vmap -------------------------------------------------------------------------


def _leaves(tree) -> list:
    return [x for _, x in tree_flatten(tree)]


@MODES
@with_known_failures("vmap_inputs")
def test_vmap_over_inputs(case, training):
    pair = make(case, FUNCTIONAL)
    params = params_for(case, 6)
    batches = [case.inputs(s) for s in (11, 12, 13)]
    n = case.data_args
    rest = batches[0][n:]
    kwargs = channels(pair, training, key=mx.random.key(5))
    stacked = [mx.stack([b[i] for b in batches]) for i in range(n)]
    got = mx.vmap(lambda *data: _leaves(pair.apply(params, *data, *rest, **kwargs)))(*stacked)
    loop = [_leaves(pair.apply(params, *b[:n], *rest, **kwargs)) for b in batches]
    want = [mx.stack(outs) for outs in zip(*loop)]
    assert_close(got, want, **VMAP_TOL)


CASES_WITH_PARAMS = [c for c in LAYERS if tree_flatten(make(c, FUNCTIONAL).init(mx.random.key(0)))]


@MODES
@with_known_failures("vmap_params", CASES_WITH_PARAMS)
def test_vmap_over_stacked_params(case, training):
    pair = make(case, FUNCTIONAL)
    each = [params_for(case, seed) for seed in (21, 22, 23)]
    stacked = tree_map(lambda *leaves: mx.stack(leaves), *each)
    inputs = case.inputs(3)
    kwargs = channels(pair, training, key=mx.random.key(6))
    if all(isinstance(a, mx.array) for a in inputs):
        vmapped = mx.vmap(
            lambda p, *a: _leaves(pair.apply(p, *a, **kwargs)),
            in_axes=(0,) + (None,) * len(inputs),
        )
        got = vmapped(stacked, *inputs)
    else:  # str/int/None call arguments cannot pass through vmap: close over them
        got = mx.vmap(lambda p: _leaves(pair.apply(p, *inputs, **kwargs)))(stacked)
    loop = [_leaves(pair.apply(p, *inputs, **kwargs)) for p in each]
    want = [mx.stack(outs) for outs in zip(*loop)]
    assert_close(got, want, **VMAP_TOL)


# --- 7. compile ------------------------------------------------------------------------


@MODES
@ALL
def test_compile_matches_eager(case, training):
    pair = make(case, FUNCTIONAL)
    params = params_for(case, 7)
    inputs = case.inputs(4)
    key = mx.random.key(8)

    def run(p, k, *args):
        return pair.apply(p, *args, **channels(pair, training, key=k))

    got = mx.compile(run)(params, key, *inputs)
    assert_close(got, run(params, key, *inputs), **EXACT)


# --- 8. half precision ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16], ids=["float16", "bfloat16"])
@with_known_failures("half_precision")
def test_half_precision_matches_mlx(case, dtype):
    cast = lambda a: a.astype(dtype) if is_float(a) else a  # noqa: E731
    params = tree_map(cast, params_for(case, 8))
    inputs = tuple(cast(a) for a in case.inputs(5))
    want, want_params = run_module(mlx_with(case, params), inputs)
    got, got_params = run_pair(make(case, FUNCTIONAL), params, inputs)
    for g, w in zip(_leaves(got), _leaves(want)):  # an output may be a tuple (LSTM)
        assert g.dtype == w.dtype
        if case.output_dtype is not None:  # declared by the registry, as mlx.nn computes it
            assert g.dtype == case.output_dtype
        elif mx.issubdtype(w.dtype, mx.floating) and (  # Step's output is int32 in mlx.nn
            tree_flatten(params) or any(is_float(a) for a in inputs[: case.data_args])
        ):
            assert g.dtype == dtype
    assert_close(got, want, **HALF_TOL[dtype])
    assert_close(got_params, want_params, **HALF_TOL[dtype], label="parameters after the call")


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
    # An mlx.nn function default (RNN's ``tanh``) and its funcnn twin compare by name.
    return {k: _plain(_default(v)) for k, v in vars(module).items()}


def _plain(value):
    # Objects without equality: a distributed group by its size and rank, a function built
    # per instance (FullyShardedModule's gather) by its type.
    if isinstance(value, mx.distributed.Group):
        return ("Group", value.size(), value.rank())
    if isinstance(value, mx.custom_function):
        return type(value)
    return value


def twin_repr(module) -> str:
    """``repr(module)``, the reprs of such twins (``<function tanh at 0x..>``) by name."""
    text = repr(module)
    for value in (v for m in module.modules() for v in vars(m).values()):
        if (named := _default(value)) is not value:
            text = text.replace(repr(value), f"nn.{named[1]}")
    return text


@ALL
def test_repr_items_attributes_match_mlx(case):
    mx.random.seed(0)
    want = make(case, MLX)
    mx.random.seed(0)
    got = make(case, FACADE)
    assert twin_repr(got) == twin_repr(want)
    assert list(got.keys()) == list(want.keys())
    assert module_structure(got) == module_structure(want)
    assert plain_attributes(got) == plain_attributes(want)
    assert len(got.modules()) == len(want.modules())
    for sub_got, sub_want in zip(got.modules(), want.modules()):
        assert type(sub_got).__name__ == type(sub_want).__name__
        assert plain_attributes(sub_got) == plain_attributes(sub_want)
    assert tree_flatten(got.trainable_parameters()) is not None
    assert [k for k, _ in tree_flatten(got.trainable_parameters())] == [
        k for k, _ in tree_flatten(want.trainable_parameters())
    ]


# Defaults that are mlx.nn objects (``activation=relu``) must be funcnn's twin of the same name.
_DEFAULT_NAMES = {
    **{id(getattr(mlx.nn, n)): n for n in dir(mlx.nn) if not n.startswith("_")},
    **{id(getattr(funcnn, n)): n for n in dir(funcnn) if not n.startswith("_")},
}


def _default(value):
    return ("nn", _DEFAULT_NAMES[id(value)]) if callable(value) and id(value) in _DEFAULT_NAMES else value


def _signature(fn, skip_self: bool):
    params = list(inspect.signature(fn).parameters.values())[1 if skip_self else 0 :]
    # Names of *args are free (Sequential's factory takes ``*layers``, the class ``*modules``).
    return [
        (p.kind, _default(p.default), None if p.kind == p.VAR_POSITIONAL else p.name)
        for p in params
    ]


LAYER_KINDS = sorted({(c.cls, c.factory) for c in LAYERS})


@pytest.mark.parametrize("cls,factory", LAYER_KINDS, ids=[k[0] for k in LAYER_KINDS])
def test_signatures_match_mlx(cls, factory):
    want = getattr(mlx.nn, cls)
    got = getattr(funcnn, cls)
    assert _signature(got.__init__, True) == _signature(want.__init__, True)
    assert _signature(getattr(F, factory), False) == _signature(want.__init__, True)
    assert _signature(got.__call__, True) == _signature(want.__call__, True)


# --- 10. validation errors ------------------------------------------------------------------


@pytest.mark.parametrize("case", ERROR_CASES, ids=case_ids(ERROR_CASES))
def test_constructor_errors_match_mlx(case):
    with pytest.raises(case.error) as want:
        build(case.cls, case.factory, case.args, case.kwargs, MLX)
    for library in (FACADE, FUNCTIONAL):
        with pytest.raises(Exception) as got:
            build(case.cls, case.factory, case.args, case.kwargs, library)
        assert type(got.value) is type(want.value), library
        assert str(got.value) == str(want.value), library
