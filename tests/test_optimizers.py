"""``funcnn.optimizers`` against ``mlx.optimizers``: trajectories, schedules, clipping.

Every optimizer and hyper-parameter variant runs 50 steps from the same
parameters on the same gradient sequence (noise plus a term in the current
parameters, so errors would compound) through both libraries; parameters and
every state array must agree to float32 round-off: ``|a - b| <= 1e-6 + 1e-6 |b|``
(a few ulps at the parameters' scale).  Eagerly they agree bit for bit (the
same ``apply_single`` runs on the same inputs); the tolerance leaves MLX room
to change its graph.  Masks, Modules, compile, save/resume and purity are in
``test_optimizers_state.py``.
"""

from __future__ import annotations

import inspect
import re

import mlx.core as mx
import mlx.optimizers as mo
import numpy as np
import pytest

import funcnn.optimizers as fo
from funcnn.tree import tree_flatten, tree_map, tree_map_with_path

STEPS = 50
TOL = {"rtol": 1e-6, "atol": 1e-6}


# ----------------------------------------------------------------------
# Shared helpers (also imported by test_optimizers_state.py)
# ----------------------------------------------------------------------


def make_params(seed: int = 0) -> dict:
    """A tree like ``F.sequential``'s: lists, an empty placeholder, a 1-element leaf."""
    k = iter(mx.random.split(mx.random.key(seed), 8))
    return {
        "layers": [
            {"weight": mx.random.normal((4, 3), key=next(k)), "bias": mx.random.normal((4,), key=next(k))},
            {},
            {"weight": mx.random.normal((2, 4), key=next(k))},
        ],
        "scale": mx.random.normal((1,), key=next(k)),
    }


def gradient(params: dict, i: int, scale: float = 1.0) -> dict:
    """Step ``i``'s gradient: fixed noise plus ``0.1 * params`` (same tree as ``params``)."""
    names = [k for k, _ in tree_flatten(params)]
    keys = dict(zip(names, mx.random.split(mx.random.key(1000 + i), len(names))))
    return tree_map_with_path(
        lambda k, p: scale * mx.random.normal(p.shape, key=keys[k]) + 0.1 * p, params
    )


def run_mlx(opt, params, steps=STEPS, scale=1.0, clip=None):
    for i in range(steps):
        g = gradient(params, i, scale)
        if clip is not None:
            g, _ = mo.clip_grad_norm(g, clip)
        params = opt.apply_gradients(g, params)
        mx.eval(params, opt.state)
    return params, opt.state


def run_funcnn(opt, params, state=None, steps=STEPS, scale=1.0, first=0, update=None):
    state = opt.init(params) if state is None else state
    update = update or opt.update
    for i in range(first, first + steps):
        params, state = update(gradient(params, i, scale), state, params)
        mx.eval(params, state)
    return params, state


def assert_close(ours, theirs, **tol):
    a, b = tree_flatten(ours), tree_flatten(theirs)
    assert [k for k, _ in a] == [k for k, _ in b]
    for (k, x), (_, y) in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape, k
        np.testing.assert_allclose(np.array(x), np.array(y), err_msg=k, **(tol or TOL))


def assert_equal(ours, theirs):
    a, b = tree_flatten(ours), tree_flatten(theirs)
    assert [k for k, _ in a] == [k for k, _ in b]
    for (k, x), (_, y) in zip(a, b):
        assert x.dtype == y.dtype and mx.array_equal(x, y).item(), k


def mlx_state_as_ours(state: dict) -> dict:
    """MLX keeps step, scalars and per-parameter slots in one dict; funcnn nests the
    slots under ``"per_param"`` and orders each parameter's slots by name."""
    scalars = {k: v for k, v in state.items() if k in ("step", "learning_rate")}
    slots = {k: v for k, v in state.items() if k not in scalars}

    def is_slots(x):
        return isinstance(x, dict) and bool(x) and all(isinstance(v, mx.array) for v in x.values())

    slots = tree_map(lambda x: {k: x[k] for k in sorted(x)}, slots, is_leaf=is_slots)
    return {**scalars, "per_param": slots}


# ----------------------------------------------------------------------
# The variants: (factory, hyper-parameters); schedules as S -> hyper-parameters,
# with S the module (funcnn.optimizers or mlx.optimizers) to take them from.
# ----------------------------------------------------------------------

MLX_CLASS = {
    "sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad",
    "adadelta": "AdaDelta", "adamax": "Adamax", "lion": "Lion", "adafactor": "Adafactor",
    "muon": "Muon",
}

VARIANTS = {
    "sgd": ("sgd", {"learning_rate": 0.1}),
    "sgd_momentum": ("sgd", {"learning_rate": 0.05, "momentum": 0.9}),
    "sgd_dampening": ("sgd", {"learning_rate": 0.05, "momentum": 0.9, "dampening": 0.5}),
    "sgd_nesterov": ("sgd", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}),
    "sgd_weight_decay": ("sgd", {"learning_rate": 0.1, "weight_decay": 0.1}),
    "sgd_all": ("sgd", {"learning_rate": 0.05, "momentum": 0.8, "weight_decay": 0.01,
                        "nesterov": True}),
    "sgd_array_lr": ("sgd", {"learning_rate": mx.array(0.1), "momentum": 0.5}),
    "adam": ("adam", {"learning_rate": 1e-2}),
    "adam_bias_correction": ("adam", {"learning_rate": 1e-2, "bias_correction": True}),
    "adam_betas_eps": ("adam", {"learning_rate": 1e-2, "betas": [0.8, 0.95], "eps": 1e-6}),
    "adamw": ("adamw", {"learning_rate": 1e-2}),
    "adamw_decay_bias_correction": ("adamw", {"learning_rate": 1e-2, "weight_decay": 0.1,
                                              "bias_correction": True}),
    "rmsprop": ("rmsprop", {"learning_rate": 1e-2}),
    "rmsprop_alpha_eps": ("rmsprop", {"learning_rate": 1e-2, "alpha": 0.9, "eps": 1e-6}),
    "adagrad": ("adagrad", {"learning_rate": 0.1}),
    "adagrad_eps": ("adagrad", {"learning_rate": 0.1, "eps": 1e-4}),
    "adadelta": ("adadelta", {"learning_rate": 1.0, "rho": 0.95}),
    "adamax": ("adamax", {"learning_rate": 1e-2}),
    "lion": ("lion", {"learning_rate": 1e-3}),
    "lion_weight_decay": ("lion", {"learning_rate": 1e-3, "betas": [0.95, 0.98],
                                   "weight_decay": 0.1}),
    "adafactor": ("adafactor", {}),
    "adafactor_lr_beta1_decay": ("adafactor", {"learning_rate": 1e-2, "relative_step": False,
                                               "beta_1": 0.9, "weight_decay": 0.1}),
    "adafactor_warmup": ("adafactor", {"warmup_init": True, "scale_parameter": False}),
    "muon": ("muon", {"learning_rate": 0.02}),
    "muon_plain": ("muon", {"learning_rate": 0.02, "nesterov": False, "weight_decay": 0.0,
                            "ns_steps": 3}),
    # Schedules as learning rates.
    "sgd_step_decay": ("sgd", lambda S: {"learning_rate": S.step_decay(0.1, 0.5, 10),
                                         "momentum": 0.9}),
    "adam_exponential_decay": ("adam", lambda S: {
        "learning_rate": S.exponential_decay(1e-2, 0.95)}),
    "adamw_cosine_decay": ("adamw", lambda S: {
        "learning_rate": S.cosine_decay(1e-2, 30, 1e-3), "bias_correction": True}),
    "rmsprop_linear_warmup": ("rmsprop", lambda S: {
        "learning_rate": S.linear_schedule(0.0, 1e-2, 20)}),
    "lion_joined": ("lion", lambda S: {"learning_rate": S.join_schedules(
        [S.linear_schedule(0.0, 1e-3, 10), S.cosine_decay(1e-3, 30)], [10])}),
    "sgd_three_joined": ("sgd", lambda S: {"learning_rate": S.join_schedules(
        [S.linear_schedule(0.0, 0.1, 5), lambda s: mx.array(0.1), S.exponential_decay(0.1, 0.9)],
        [5, 20]), "nesterov": True, "momentum": 0.9}),
    "adafactor_scheduled": ("adafactor", lambda S: {
        "learning_rate": S.cosine_decay(1e-2, 40), "relative_step": False}),
}


def build(variant: str):
    """``(funcnn optimizer, mlx.optimizers optimizer)`` for one variant."""
    name, kwargs = VARIANTS[variant]
    ours = kwargs(fo) if callable(kwargs) else kwargs
    theirs = kwargs(mo) if callable(kwargs) else kwargs
    return getattr(fo, name)(**ours), getattr(mo, MLX_CLASS[name])(**theirs)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_trajectory_matches_mlx(variant):
    opt, mlx_opt = build(variant)
    params = make_params()
    theirs, their_state = run_mlx(mlx_opt, params)
    ours, state = run_funcnn(opt, params)
    assert_close(ours, theirs)
    assert_close(state, mlx_state_as_ours(their_state))
    assert state["step"].item() == STEPS


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
@pytest.mark.parametrize("variant", ["sgd_momentum", "adamw_cosine_decay", "lion"])
def test_clip_by_global_norm_matches_mlx_clip_then_step(variant, max_norm):
    opt, mlx_opt = build(variant)
    params = make_params()
    theirs, their_state = run_mlx(mlx_opt, params, scale=5.0, clip=max_norm)
    opt = fo.clip_by_global_norm(max_norm, opt)
    ours, state = run_funcnn(opt, params, scale=5.0)
    assert_close(ours, theirs)
    assert_close(state, mlx_state_as_ours(their_state))


def test_clip_grad_norm_matches_mlx_and_accepts_any_tree():
    grads = gradient(make_params(), 0, scale=3.0)
    ours, norm = fo.clip_grad_norm(grads, 1.0)
    theirs, their_norm = mo.clip_grad_norm(grads, 1.0)
    assert_equal(ours, theirs)
    assert norm.item() == their_norm.item() > 1.0
    half = {"a": mx.array([300.0, 400.0], mx.float16), "none": None, "n": 3}
    clipped, norm = fo.clip_grad_norm(half, 10.0)  # MLX's fails on None
    assert norm.item() == 500.0 and clipped["a"].dtype == mx.float16
    assert clipped["none"] is None and clipped["n"] == 3
    np.testing.assert_allclose(np.array(clipped["a"]), [6.0, 8.0], rtol=1e-3)
    same, norm = fo.clip_grad_norm({"a": mx.array([0.3, 0.4])}, 1.0)
    assert abs(norm.item() - 0.5) < 1e-7 and same["a"].tolist() == pytest.approx([0.3, 0.4])
    with pytest.raises(ValueError, match="max_norm should be >=0"):
        fo.clip_grad_norm(grads, -1.0)
    with pytest.raises(ValueError, match="max_norm should be >=0"):
        fo.clip_by_global_norm(-1.0, fo.sgd(0.1))


def test_editing_a_constant_learning_rate_in_the_state_is_mlx_setting_it():
    params = make_params()
    mlx_opt = mo.Adam(learning_rate=1e-2)
    theirs, _ = run_mlx(mlx_opt, params, steps=10)
    mlx_opt.learning_rate = 1e-3
    for i in range(10, 20):
        theirs = mlx_opt.apply_gradients(gradient(theirs, i), theirs)
    opt = fo.adam(learning_rate=1e-2)
    ours, state = run_funcnn(opt, params, steps=10)
    state = {**state, "learning_rate": mx.array(1e-3)}
    ours, state = run_funcnn(opt, ours, state, steps=10, first=10)
    assert_close(ours, theirs)


@pytest.mark.parametrize("schedule", ["step_decay", "exponential_decay", "cosine_decay", "linear_schedule"])
def test_schedules_are_mlx_schedules(schedule):
    args = {"step_decay": (0.1, 0.7, 3), "exponential_decay": (0.1, 0.9),
            "cosine_decay": (0.1, 20, 0.01), "linear_schedule": (0.0, 0.1, 7)}[schedule]
    ours, theirs = getattr(fo, schedule)(*args), getattr(mo, schedule)(*args)
    for s in range(30):
        step = mx.array(s, mx.uint64)
        assert mx.array_equal(ours(step), theirs(step)).item(), s
    assert repr(ours) == f"{schedule}({', '.join(map(repr, args))})"


def test_invalid_schedules_raise_mlx_errors():
    cases = [("step_decay", (0.1, 0.5, 0)), ("cosine_decay", (0.1, 0)),
             ("linear_schedule", (0.0, 0.1, 0)), ("join_schedules", ([], [])),
             ("join_schedules", ([fo.cosine_decay(0.1, 5)] * 2, []))]
    for name, args in cases:
        with pytest.raises(ValueError) as theirs:
            getattr(mo, name)(*args)
        with pytest.raises(ValueError, match=re.escape(str(theirs.value))):
            getattr(fo, name)(*args)


def _normalized(default):
    return list(default) if isinstance(default, (list, tuple)) else default


@pytest.mark.parametrize("name,cls", sorted(MLX_CLASS.items()))
def test_same_hyper_parameter_names_and_defaults_as_mlx(name, cls):
    ours = inspect.signature(getattr(fo, name)).parameters
    theirs = dict(inspect.signature(getattr(mo, cls).__init__).parameters)
    theirs.pop("self")
    assert list(ours) == list(theirs)
    for k in ours:
        assert _normalized(ours[k].default) == _normalized(theirs[k].default), k


def test_invalid_hyper_parameters_raise_mlx_errors_at_construction():
    cases = [
        ("sgd", "SGD", {"learning_rate": 0.1, "nesterov": True}),
        ("adam", "Adam", {"learning_rate": 0.1, "betas": [1.0, 0.9]}),
        ("adam", "Adam", {"learning_rate": 0.1, "eps": -1.0}),
        ("lion", "Lion", {"learning_rate": 0.1, "betas": [0.9, -0.1]}),
        ("rmsprop", "RMSprop", {"learning_rate": 0.1, "eps": 0.0}),
        ("adagrad", "Adagrad", {"learning_rate": 0.1, "eps": 0.0}),
        ("adadelta", "AdaDelta", {"learning_rate": 0.1, "rho": -1.0}),
    ]
    for name, cls, kwargs in cases:
        with pytest.raises(ValueError) as theirs:
            getattr(mo, cls)(**kwargs)
        with pytest.raises(ValueError, match=re.escape(str(theirs.value))):
            getattr(fo, name)(**kwargs)


def test_repr_and_unpacking():
    opt = fo.clip_by_global_norm(1.0, fo.adamw(fo.cosine_decay(1e-3, 100), weight_decay=0.1))
    assert repr(opt) == (
        "clip_by_global_norm(1.0, adamw(learning_rate=cosine_decay(0.001, 100, 0.0), weight_decay=0.1))"
    )
    init, update = opt
    params = {"w": mx.ones(2)}
    new, state = update({"w": mx.ones(2)}, init(params), params)
    assert new["w"].shape == (2,) and state["step"].item() == 1
    assert repr(fo.sgd(0.1, momentum=0.9)) == "sgd(learning_rate=0.1, momentum=0.9)"
