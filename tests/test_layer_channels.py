"""The layer template's channels, per registry entry: flags, keys, training mode, state, settings.

* the pure pair's flags (``takes_key``, ``takes_training``, ``stateful``) are
  the ones the registry declares;
* ``pair.trainable(params)`` is ``True`` exactly where mlx.nn's
  ``trainable_parameters()`` has an array (state, such as BatchNorm's running
  statistics, is ``False``);
* a stochastic pair with a key is deterministic, leaves the global RNG alone,
  and draws differently for another key; in evaluation mode it draws nothing;
* a stateful pair returns no updates in evaluation mode;
* every setting that mlx.nn reads at call time, changed after construction,
  changes the funcnn class exactly as it changes the mlx.nn class -- eagerly
  and under ``funcnn.transforms.compile`` (which traces again);
* every call-time ``ValueError`` of mlx.nn (bad input ranks, BatchNorm with
  one value per channel) is raised identically by the class and the pair.

Plus the defects the template removed (settings held twice, the pure core
calling back into the facade), each pinned by a test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mlx.core as mx
import mlx.nn
import numpy as np
import pytest
from _layer_helpers import (
    EXACT,
    MODES,
    assert_close,
    case_ids,
    channels,
    mlx_with,
    output_of,
    params_for,
    rng_state,
    run_module,
)
from layer_registry import CALL_ERROR_CASES, FACADE, FUNCTIONAL, LAYERS, build, make
from mlx.utils import tree_flatten

import funcnn
import funcnn.functional as F
import funcnn.transforms as T

ALL = pytest.mark.parametrize("case", LAYERS, ids=case_ids(LAYERS))
STOCHASTIC = [c for c in LAYERS if c.stochastic]
STATEFUL = [c for c in LAYERS if c.stateful]
MUTATIONS = [(c, name, value) for c in LAYERS for name, value in c.mutations.items()]
# The compiled variant of the mutation check runs for the first variant of each layer and
# setting: each new setting value is a new trace and kernel build (seconds on a cold cache).
_FIRST = {}
for _case, _name, _ in MUTATIONS:
    _FIRST.setdefault((_case.cls, _case.factory, _name), _case.id)
COMPILED_MUTATIONS = {(case_id, name) for (_, _, name), case_id in _FIRST.items()}


@ALL
def test_pair_flags_are_the_declared_channels(case):
    pair = make(case, FUNCTIONAL)
    assert pair.takes_key == case.stochastic
    assert pair.takes_training == case.mode_dependent
    assert pair.stateful == case.stateful


@ALL
def test_trainable_mask_is_mlx_trainable_set(case):
    pair = make(case, FUNCTIONAL)
    params = pair.init(mx.random.key(0))
    mask = pair.trainable(params)
    mask_flat = tree_flatten(mask)
    assert [k for k, _ in mask_flat] == [k for k, _ in tree_flatten(params)]
    assert all(isinstance(v, bool) for _, v in mask_flat)
    want = {k for k, _ in tree_flatten(make(case, "mlx.nn").trainable_parameters())}
    assert {k for k, v in mask_flat if v} == want


@pytest.mark.parametrize("case", STOCHASTIC, ids=case_ids(STOCHASTIC))
def test_keys_are_deterministic_and_leave_the_global_rng_alone(case):
    pair = make(case, FUNCTIONAL)
    params = params_for(case, 1)
    inputs = case.inputs(0)
    keeps_all = all(v == 1 for v in _keep_probabilities(case))
    mx.random.seed(3)
    before = rng_state()
    first = pair.apply(params, *inputs, **channels(pair, True, mx.random.key(1)))
    again = pair.apply(params, *inputs, **channels(pair, True, mx.random.key(1)))
    other = pair.apply(params, *inputs, **channels(pair, True, mx.random.key(2)))
    mx.eval(first, again, other)
    np.testing.assert_array_equal(rng_state(), before)
    assert_close(output_of(pair, again), output_of(pair, first), **EXACT)
    differs = not mx.array_equal(output_of(pair, first), output_of(pair, other)).item()
    assert differs != keeps_all
    # Without a key, evaluation mode draws nothing from the global state either.
    pair.apply(params, *inputs, **channels(pair, False))
    np.testing.assert_array_equal(rng_state(), before)


def _keep_probabilities(case):
    module = make(case, FACADE)
    return [m._p_1 for m in module.modules() if hasattr(m, "_p_1")]


@pytest.mark.parametrize("case", STATEFUL, ids=case_ids(STATEFUL))
def test_stateful_pairs_update_nothing_in_evaluation_mode(case):
    pair = make(case, FUNCTIONAL)
    params = params_for(case, 2)
    _, updates = pair.apply(params, *case.inputs(0), **channels(pair, False))
    assert tree_flatten(updates) == []
    _, updates = pair.apply(params, *case.inputs(0), **channels(pair, True, mx.random.key(0)))
    names = {k for k, _ in tree_flatten(updates)}
    assert names and all(k.endswith(("running_mean", "running_var")) for k in names)
    assert F.merge_updates(params, updates) is not params


# --- settings changed after construction ---------------------------------------------------


@MODES
@pytest.mark.parametrize(
    "case,name,value", MUTATIONS, ids=[f"{c.id}-{n}" for c, n, _ in MUTATIONS]
)
def test_settings_changed_after_construction_act_as_in_mlx(case, name, value, training):
    params = params_for(case, 9)
    inputs = case.inputs(0)
    oracle = mlx_with(case, params)
    eager = make(case, FACADE)
    eager.update(params)
    modules = [oracle, eager]
    # Under funcnn.transforms.compile too (a trace with the old setting first); once per
    # layer and setting, and in evaluation mode only where the mode matters (it is slow).
    compiled = None
    if (case.id, name) in COMPILED_MUTATIONS and (training or case.mode_dependent):
        compiled_model = make(case, FACADE)
        compiled_model.update(params)
        compiled = T.compile(lambda m, *a: m(*a))
        compiled_model.train(training)
        mx.random.seed(0)
        compiled(compiled_model, *inputs)  # traced with the old setting
        compiled_model.update(params)
        modules.append(compiled_model)

    for module in modules:
        setattr(module, name, value)
        assert (name in module) == (name in oracle)  # tuples are items, ints attributes
    want, want_params = run_module(oracle, inputs, training)
    got, got_params = run_module(eager, inputs, training)
    assert_close(got, want, **EXACT, label="eager")
    assert_close(got_params, want_params, **EXACT, label="eager parameters")
    if compiled is not None:
        compiled_model.train(training)
        mx.random.seed(4242)
        got = compiled(compiled_model, *inputs)
        assert_close(got, want, rtol=1e-6, atol=1e-6, label="compiled")
        assert_close(compiled_model.parameters(), want_params, rtol=1e-6, atol=1e-6,
                     label="compiled parameters")


def test_the_three_defects_of_the_old_template_are_gone():
    # Settings held twice: mlx.nn reads them at call time, so must funcnn.
    x = mx.random.normal((2, 6), key=mx.random.key(0))
    ln, mln = funcnn.LayerNorm(6), mlx.nn.LayerNorm(6)
    ln.eps = mln.eps = 10.0
    assert mx.array_equal(ln(x), mln(x)).item()
    conv = funcnn.Conv1d(3, 3, 3)
    conv.padding = 1
    assert conv(mx.ones((1, 3, 3))).shape == (1, 3, 3)
    conv = funcnn.Conv1d(3, 3, 3)
    conv.padding = 1
    assert conv(mx.ones((1, 5, 3))).shape == (1, 5, 3)
    rope, mrope = funcnn.RoPE(4), mlx.nn.RoPE(4)
    step = T.compile(lambda m, y: m(y))
    y = mx.random.normal((1, 3, 4), key=mx.random.key(1))
    step(rope, y)
    rope.base = mrope.base = 10.0
    assert mx.array_equal(step(rope, y), mrope(y)).item()

    # The facade composes children: a swapped projection is the one that runs.
    class Doubled(funcnn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def __call__(self, v):
            return 2 * self.inner(v)

    mha = funcnn.MultiHeadAttention(4, 2)
    q = mx.random.normal((1, 3, 4), key=mx.random.key(2))
    before = mha(q, q, q)
    mha.update_modules({"out_proj": Doubled(mha.out_proj)})
    assert mx.allclose(mha(q, q, q), 2 * before).item()


def test_the_pure_core_never_imports_the_facade():
    root = Path(funcnn.functional.__file__).parent
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                assert not module.startswith(("..layers", "..transforms", "..summary")), path
                assert "funcnn.layers" not in module and module != "funcnn", path
            elif isinstance(node, ast.Import):
                assert all(not a.name.startswith("funcnn.layers") for a in node.names), path


# --- call-time errors ------------------------------------------------------------------------


@pytest.mark.parametrize("case", CALL_ERROR_CASES, ids=case_ids(CALL_ERROR_CASES))
def test_call_errors_match_mlx(case):
    inputs = case.inputs(0)
    oracle = build(case.cls, case.factory, case.args, case.kwargs, "mlx.nn").train(case.training)
    with pytest.raises(case.error) as want:
        oracle(*inputs)
    module = build(case.cls, case.factory, case.args, case.kwargs, FACADE).train(case.training)
    pair = build(case.cls, case.factory, case.args, case.kwargs, FUNCTIONAL)
    params = pair.init()
    for run in (lambda: module(*inputs), lambda: pair.apply(params, *inputs,
                                                            **channels(pair, case.training))):
        with pytest.raises(Exception) as got:
            run()
        assert type(got.value) is type(want.value)
        assert str(got.value) == str(want.value)


def test_sequential_passes_training_and_splits_its_key_among_the_layers_that_take_one():
    drop, lin = F.dropout(0.5), F.linear(4, 4)
    net = F.sequential(drop, lin, F.relu(), drop)
    params = net.init(mx.random.key(0))
    x = mx.random.normal((3, 4), key=mx.random.key(9))
    key = mx.random.key(3)
    k1, k2 = mx.random.split(key, 2)
    want = drop.apply({}, funcnn.relu(lin.apply(params["layers"][1], drop.apply({}, x, key=k1))), key=k2)
    assert mx.array_equal(net.apply(params, x, key=key), want).item()
    # One stochastic member gets the key itself; training=False reaches every member.
    single = F.sequential(lin, drop)
    got = single.apply({"layers": [params["layers"][1], {}]}, x, key=key)
    assert mx.array_equal(got, drop.apply({}, lin.apply(params["layers"][1], x), key=key)).item()
    assert net.apply(params, x, key=key, training=False).tolist() == (
        mx.maximum(lin.apply(params["layers"][1], x), 0).tolist()
    )
    # A deterministic composite accepts key and training too (and ignores them).
    mlp = F.sequential(lin, F.relu())
    mlp_params = {"layers": [params["layers"][1], {}]}
    assert not mlp.takes_key and not mlp.takes_training
    plain = mlp.apply(mlp_params, x)
    assert mx.array_equal(mlp.apply(mlp_params, x, key=key, training=False), plain).item()


def test_batch_norm_does_better_than_mlx_nn_where_it_is_documented():
    # unfreeze returns the module, as Module.unfreeze is documented to; mlx.nn's override: None.
    assert mlx.nn.BatchNorm(2).unfreeze() is None
    bn = funcnn.BatchNorm(2).freeze()
    assert bn.unfreeze() is bn and sorted(bn._no_grad) == ["running_mean", "running_var"]
    # A training call that raises writes nothing; mlx.nn stores running_mean first.
    x = mx.array([[1.0, 2.0], [3.0, 6.0]])
    layers = {}
    for lib in (mlx.nn, funcnn):
        layers[lib] = lib.BatchNorm(2)
        layers[lib].update({"running_var": mx.zeros((3,))})  # does not broadcast
        with pytest.raises(ValueError):
            layers[lib](x)
    assert layers[mlx.nn].running_mean.tolist() != [0.0, 0.0]  # a half-updated layer
    assert layers[funcnn].running_mean.tolist() == [0.0, 0.0]
