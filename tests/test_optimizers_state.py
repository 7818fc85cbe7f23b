"""``funcnn.optimizers``: the explicit state.

Trainable masks (frozen leaves untouched bit for bit, no state, no weight
decay), Module parameters (against ``mlx.optimizers`` driving the same funcnn
Module), compiled vs eager, save/resume through safetensors, purity (nothing
passed in is modified, the optimizer object never changes) and errors.
Tolerances as in ``test_optimizers.py``.
"""

from __future__ import annotations

import copy

import mlx.core as mx
import mlx.optimizers as mo
import numpy as np
import pytest
from test_optimizers import (
    assert_close,
    assert_equal,
    gradient,
    make_params,
    mlx_state_as_ours,
    run_funcnn,
)

import funcnn as nn
import funcnn.optimizers as fo
from funcnn.optimizers import _plan
from funcnn.tree import tree_flatten, tree_map, tree_unflatten

FROZEN = ("layers.0.bias", "scale")
MASK = {"layers": [{"weight": True, "bias": False}, {}, {"weight": True}], "scale": False}


def decaying_optimizers():
    """Optimizers whose weight decay would move a parameter with a zero gradient."""
    return [
        fo.adamw(1e-2, weight_decay=0.5),
        fo.sgd(0.1, momentum=0.9, weight_decay=0.5),
        fo.lion(1e-2, weight_decay=0.5),
        fo.clip_by_global_norm(0.1, fo.adamw(fo.cosine_decay(1e-2, 20), weight_decay=0.5)),
    ]


def trainable_only(tree):
    flat = tree_flatten(tree)
    return tree_unflatten([(k, v) for k, v in flat if k not in FROZEN])


# ----------------------------------------------------------------------
# Masks
# ----------------------------------------------------------------------


@pytest.mark.parametrize("opt", decaying_optimizers(), ids=repr)
@pytest.mark.parametrize(
    "mask", [MASK, lambda name, x: name not in FROZEN], ids=["bool_tree", "predicate"]
)
def test_frozen_leaves_untouched_without_state(opt, mask):
    params = make_params()
    state = opt.init(params, mask=mask)
    assert not any(k.startswith(FROZEN) for k, _ in tree_flatten(state["per_param"]))
    ours = params
    for i in range(20):  # full gradients, frozen leaves included
        ours, state = opt.update(gradient(ours, i), state, ours)
    for name in FROZEN:
        frozen = dict(tree_flatten(ours))[name]
        assert frozen is dict(tree_flatten(params))[name]
    assert not any(k.startswith(FROZEN) for k, _ in tree_flatten(state["per_param"]))
    # The trainable leaves follow MLX run on the trainable part alone.
    mlx_opt = {"adamw": mo.AdamW(1e-2, weight_decay=0.5),
               "sgd": mo.SGD(0.1, momentum=0.9, weight_decay=0.5),
               "lion": mo.Lion(1e-2, weight_decay=0.5)}.get(opt.name)
    if mlx_opt is not None and not opt._grad_transforms:
        theirs = params
        for i in range(20):
            updated = mlx_opt.apply_gradients(trainable_only(gradient(theirs, i)), theirs)
            theirs = tree_unflatten({**dict(tree_flatten(theirs)), **dict(tree_flatten(updated))})
        assert_close(trainable_only(ours), trainable_only(theirs))


def test_partial_and_full_gradients_give_the_same_step():
    params = make_params()
    opt = fo.adamw(1e-2, weight_decay=0.1)
    state = opt.init(params, mask=MASK)
    full = gradient(params, 0)
    partial = trainable_only(full)  # with {} placeholders, as value_and_grad gives
    assert partial["layers"][0] == {"weight": full["layers"][0]["weight"]} and partial["layers"][1] == {}
    with_none = tree_map(lambda g: g, full)
    with_none["scale"] = None
    a = opt.update(full, state, params)
    for grads in (partial, with_none):
        assert_equal(opt.update(grads, state, params), a)


def test_a_parameter_with_state_but_no_gradient_is_left_alone():
    params = make_params()
    opt = fo.sgd(0.1, momentum=0.9)
    state = opt.init(params)
    new, new_state = opt.update({"scale": mx.ones(1)}, state, params)
    assert new["layers"][0]["weight"] is params["layers"][0]["weight"]
    v = new_state["per_param"]["layers"][0]["weight"]["v"]
    assert v is state["per_param"]["layers"][0]["weight"]["v"]
    assert new["scale"].item() != params["scale"].item()


# ----------------------------------------------------------------------
# Modules
# ----------------------------------------------------------------------


X = mx.random.normal((8, 3), key=mx.random.key(5))
Y = mx.random.normal((8, 2), key=mx.random.key(6))


def model_pair():
    """Two funcnn models with the same parameters and frozen set."""
    models = []
    for _ in range(2):
        mx.random.seed(3)
        m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        m.layers[0].freeze(keys="bias")
        m.layers[2].freeze()
        models.append(m)
    return models


def loss_fn(model):
    return lambda x, y: mx.mean((model(x) - y) ** 2)


def test_module_params_match_mlx_optimizers_driving_the_module():
    ours_model, their_model = model_pair()
    frozen_before = ours_model.layers[2].weight
    mlx_opt = mo.AdamW(learning_rate=mo.cosine_decay(1e-2, 40), weight_decay=0.1)
    opt = fo.adamw(learning_rate=fo.cosine_decay(1e-2, 40), weight_decay=0.1)
    state = opt.init(ours_model)
    assert [k for k, _ in tree_flatten(state["per_param"])] == ["layers.0.weight.m", "layers.0.weight.v"]
    for _ in range(50):
        _, grads = nn.value_and_grad(their_model, loss_fn(their_model))(X, Y)
        mlx_opt.update(their_model, grads)
        mx.eval(their_model.parameters(), mlx_opt.state)
        _, grads = nn.value_and_grad(ours_model, loss_fn(ours_model))(X, Y)
        new_params, state = opt.update(grads, state, ours_model)
        assert type(new_params) is dict and type(new_params["layers"]) is list
        assert [k for k, _ in tree_flatten(new_params)] == [k for k, _ in tree_flatten(ours_model.parameters())]
        ours_model.update(new_params)
        mx.eval(ours_model.parameters(), state)
    assert_close(ours_model.parameters(), their_model.parameters())
    assert_close(state, mlx_state_as_ours(mlx_opt.state))
    assert ours_model.layers[2].weight is frozen_before


def test_module_with_odd_items_and_module_as_mask():
    from _compare import doc_model  # arrays, private arrays, ints, tuples, None

    model = doc_model(nn)
    items = {k: v for k, v in model.items()}
    opt = fo.sgd(0.1, momentum=0.9)
    state = opt.init(model)
    grads = tree_map(mx.ones_like, model.trainable_parameters())
    new, state = opt.update(grads, state, model)
    assert list(model) == list(items) and all(model[k] is v for k, v in items.items())
    assert list(new) == ["w", "l", "d", "empty", "sub"] and new["l"][1:] == [{}, {}]
    assert model.update(new) is model
    assert model.w.tolist() == pytest.approx([-0.1, -0.1])
    # An explicit mask overrides a Module's trainable set.
    assert list(opt.init(model, mask=lambda name, x: name == "w")["per_param"]) == ["w"]
    # A Module as the mask of a plain tree: its trainable set.
    frozen = nn.Linear(2, 2).freeze(keys="weight")
    state = opt.init(frozen.parameters(), mask=frozen)
    assert list(state["per_param"]) == ["bias"]


# ----------------------------------------------------------------------
# Compile
# ----------------------------------------------------------------------


def test_compiled_step_follows_the_eager_trajectory_and_leaves_no_tracer():
    opt = fo.clip_by_global_norm(
        1.0, fo.adam(fo.join_schedules([fo.linear_schedule(0.0, 1e-2, 5), fo.cosine_decay(1e-2, 40)], [5]),
                     bias_correction=True))
    before = dict(vars(opt.rule))
    before_state = dict(opt.rule._state)
    params = make_params()
    eager, eager_state = run_funcnn(opt, params, state=opt.init(params, mask=MASK))
    compiled, compiled_state = run_funcnn(
        opt, params, state=opt.init(params, mask=MASK), update=mx.compile(opt.update))
    assert_close(compiled, eager)
    assert_close(compiled_state, eager_state)
    assert dict(vars(opt.rule)) == before  # same objects: nothing was set on the rule
    assert all(opt.rule._state[k] is v for k, v in before_state.items())
    mx.eval(opt.rule._state)  # a tracer left behind would fail to evaluate
    assert opt.rule._state["step"].item() == 0


# ----------------------------------------------------------------------
# Save and resume
# ----------------------------------------------------------------------


def save(tree, path):
    mx.save_safetensors(str(path), tree_flatten(tree, destination={}))
    return tree_unflatten(mx.load(str(path)))


@pytest.mark.parametrize(
    "opt",
    [
        fo.adamw(fo.join_schedules([fo.linear_schedule(0.0, 1e-2, 5), fo.cosine_decay(1e-2, 30)], [5])),
        fo.clip_by_global_norm(0.5, fo.sgd(fo.step_decay(0.1, 0.5, 4), momentum=0.9, nesterov=True)),
        fo.adafactor(),
    ],
    ids=repr,
)
@pytest.mark.parametrize("mask", [None, MASK], ids=["all", "masked"])
def test_resume_from_safetensors_is_bitwise_identical(opt, mask, tmp_path):
    params = make_params()
    straight, straight_state = run_funcnn(opt, params, opt.init(params, mask=mask), steps=20)
    half, half_state = run_funcnn(opt, params, opt.init(params, mask=mask), steps=10)
    loaded = dict(tree_flatten(save(half, tmp_path / "params.safetensors")))
    loaded_params = tree_unflatten([(k, loaded[k]) for k, _ in tree_flatten(params)])
    loaded_state = save(half_state, tmp_path / "state.safetensors")  # in mx.load's key order
    resumed, resumed_state = run_funcnn(opt, loaded_params, loaded_state, steps=10, first=10)
    assert_equal(resumed, straight)
    assert_equal(resumed_state, straight_state)


def test_state_is_a_plain_tree_of_arrays():
    params = make_params()
    state = fo.adam(fo.cosine_decay(1e-2, 10)).init(params)
    _, state = fo.adam(1e-2).update(gradient(params, 0), state, params)

    def plain(x):
        if isinstance(x, dict):
            return type(x) is dict and all(plain(v) for v in x.values())
        if isinstance(x, list):
            return type(x) is list and all(plain(v) for v in x)
        return isinstance(x, mx.array)

    assert plain(state)
    assert state["step"].dtype == mx.uint64 and state["learning_rate"].dtype == mx.float32


# ----------------------------------------------------------------------
# Purity
# ----------------------------------------------------------------------


def snapshot(tree):
    return [(k, id(v), np.array(v).tobytes()) if isinstance(v, mx.array) else (k, id(v), v)
            for k, v in tree_flatten(tree)]


@pytest.mark.parametrize("opt", decaying_optimizers() + [fo.adafactor(beta_1=0.9)], ids=repr)
def test_update_modifies_nothing_it_is_given(opt):
    params = make_params()
    state = opt.init(params, mask=MASK)
    params, state = opt.update(gradient(params, 0), state, params)
    grads = gradient(params, 1)
    inputs = (grads, state, params)
    shapes = copy.deepcopy(tree_map(lambda x: None, inputs))
    before = snapshot(inputs)
    rule = dict(vars(opt.rule))
    first = opt.update(*inputs)
    second = opt.update(*inputs)
    assert snapshot(inputs) == before and tree_map(lambda x: None, inputs) == shapes
    assert dict(vars(opt.rule)) == rule
    assert_equal(first, second)


def test_update_never_modifies_the_module():
    model, _ = model_pair()
    _, grads = nn.value_and_grad(model, loss_fn(model))(X, Y)
    before = snapshot(model)
    no_grad = [set(m._no_grad) for m in model.modules()]
    opt = fo.adamw(1e-2)
    state = opt.init(model)
    new, state = opt.update(grads, state, model)
    assert snapshot(model) == before
    assert [set(m._no_grad) for m in model.modules()] == no_grad
    assert not new["layers"][0]["weight"] is model.layers[0].weight


def test_one_optimizer_serves_independent_states():
    opt = fo.sgd(0.1, momentum=0.9)
    a, b = make_params(0), make_params(1)
    alone, _ = run_funcnn(opt, a, steps=5)
    sa, sb = opt.init(a), opt.init(b)
    for i in range(5):
        a, sa = opt.update(gradient(a, i), sa, a)
        b, sb = opt.update(gradient(b, i), sb, b)
    assert_equal(a, alone)


# ----------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------


def test_errors_name_the_problem():
    params = make_params()
    opt = fo.adam(1e-2)
    state = opt.init(params)
    with pytest.raises(ValueError, match=r"missing: \['scale'\]"):
        opt.init(params, mask={"layers": MASK["layers"]})
    with pytest.raises(TypeError, match="'scale' is array, not a boolean"):
        opt.init(params, mask={**MASK, "scale": mx.ones(1)})
    with pytest.raises(ValueError, match="gradient for 'nope'"):
        opt.update({"nope": mx.ones(1)}, state, params)
    with pytest.raises(ValueError, match="per_param.scale.m"):
        opt.update({}, state, {"layers": params["layers"]})
    with pytest.raises(ValueError, match="made by init"):
        opt.update({}, {"per_param": {}}, params)
    with pytest.raises(ValueError, match="no 'learning_rate'"):
        opt.update({}, {"step": mx.array(0, mx.uint64)}, params)
    with pytest.raises(TypeError, match="not a bare array"):
        opt.init(mx.ones(2))
    with pytest.raises(ValueError, match="params lacks"):
        opt.init({"w": mx.ones(2)}, mask=nn.Linear(2, 2))


def test_wrapping_another_mlx_rule():
    class Stateless(mo.SGD):
        def init_single(self, parameter, state):
            pass

    with pytest.raises(TypeError, match="at least one array"):
        fo.Optimizer(Stateless(0.1), "stateless", {}).init({"w": mx.ones(2)})
    params = make_params()
    opt = fo.Optimizer(mo.Adamax(1e-2, betas=[0.8, 0.9]), "adamax", {})
    assert_equal(run_funcnn(opt, params, steps=5), run_funcnn(fo.adamax(1e-2, [0.8, 0.9]), params, steps=5))


def test_parameters_named_like_the_scalars_do_not_collide():
    # mlx.optimizers keeps slots beside "step"/"learning_rate" and fails here
    # (ValueError: Cannot index mlx array using the given type.).
    params = {"step": mx.ones(2), "learning_rate": mx.ones(1)}
    opt = fo.adam(0.1)
    new, state = opt.update(tree_map(mx.ones_like, params), opt.init(params), params)
    assert state["step"].item() == 1 and sorted(state["per_param"]) == ["learning_rate", "step"]
    assert new["step"].tolist() == pytest.approx([1 - 0.1 * 0.1 / 0.001**0.5] * 2, rel=1e-5)


def test_update_plans_follow_every_change_of_structure():
    """``update`` matches arrays by position, worked out once per structure
    (``funcnn/optimizers/_plan.py``): alternating structures, a gradient that
    turns into ``None`` and a state reloaded in another order must each give
    exactly what a fresh optimizer computes."""
    opt = fo.adam(1e-2)
    a = {"w": mx.ones((2, 2)), "b": mx.zeros(2)}
    b = {"layers": [{"weight": mx.ones((3,))}, {}, {"weight": mx.full((2,), 2.0)}]}
    sa, sb = opt.init(a), opt.init(b)
    ga = {"w": mx.full((2, 2), 0.5), "b": mx.ones(2)}
    gb = {"layers": [{"weight": mx.ones((3,))}, {}, {"weight": mx.ones((2,))}]}

    def fresh(grads, state, params):
        _plan._plans.clear()  # plans are shared by all optimizers: work this one out anew
        return fo.adam(1e-2).update(grads, state, params)

    for grads, state, params in [(ga, sa, a), (gb, sb, b), (ga, sa, a),
                                 ({"w": ga["w"], "b": None}, sa, a), (ga, sa, a)]:
        got, expected = opt.update(grads, state, params), fresh(grads, state, params)
        assert_equal(got, expected)
    reordered = tree_unflatten(list(reversed(tree_flatten(sa))))
    assert_equal(opt.update(ga, reordered, a), fresh(ga, sa, a))


def test_a_rule_that_adds_state_entries_is_refused():
    class Growing(mo.SGD):
        def apply_single(self, gradient, parameter, state):
            state["extra"] = gradient
            return super().apply_single(gradient, parameter, state)

    opt = fo.Optimizer(Growing(learning_rate=0.1, momentum=0.9), "growing", {})
    params = {"w": mx.ones(2)}
    with pytest.raises(TypeError, match="added state entries \\['extra'\\] for 'w'"):
        opt.update({"w": mx.ones(2)}, opt.init(params), params)
