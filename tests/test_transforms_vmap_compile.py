"""``funcnn.transforms``: vmap and compile over any funcnn tree, and random trees (hypothesis).

Oracles: ``mx.vmap``/``mx.compile`` on array-only trees, Python loops over
ensembles, and trace counters (a Python side effect inside the traced
function runs once per trace).  Compiled functions are built once per module
and reused: the first call of a new graph is slow.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import mlx.core as mx
import pytest
from _tree_cases import assert_same
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import funcnn as nn
import funcnn.functional as F
import funcnn.transforms as T
from funcnn.transforms._structure import Structure
from funcnn.tree import tree_flatten, tree_leaves, tree_map, tree_stack, tree_unstack


def close(a, b, tol=1e-5):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert mx.allclose(a, b, atol=tol, rtol=tol).item(), (a, b)


class Pair(NamedTuple):
    w: mx.array
    n: int


X = mx.array([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5], [1.0, 1.0]])


# ----------------------------------------------------------------------
# vmap
# ----------------------------------------------------------------------


def test_vmap_matches_mx_vmap_on_plain_trees():
    mx.random.seed(0)
    p = {"a": mx.random.normal((4, 3)), "b": [mx.random.normal((4, 3))]}
    f = lambda p, x: (p["a"] * x + p["b"][0], p["a"].sum(-1))
    cases = [
        ((0, None), mx.random.normal((3,))),
        (({"a": 0, "b": [0]}, None), mx.random.normal((3,))),
        (({"a": 1, "b": 1}, 0), mx.random.normal((3,))),
    ]
    for axes, x in cases:
        ours = T.vmap(f, in_axes=axes)(p, x)
        theirs = mx.vmap(f, in_axes=axes)(p, x)
        for o, t in zip(ours, theirs):
            close(o, t)


def test_vmap_over_stacked_parameters_equals_a_loop():
    mlp = F.sequential(F.linear(3, 4), F.relu(), F.linear(4, 2))
    keys = mx.random.split(mx.random.key(0), 5)
    members = [mlp.init(k) for k in keys]
    x = mx.random.normal((7, 3))
    out = T.vmap(mlp.apply, in_axes=(0, None))(tree_stack(members), x)
    for i, p in enumerate(members):
        close(out[i], mlp.apply(p, x))


def test_vmap_over_a_stacked_module_equals_a_loop():
    mx.random.seed(1)
    models = [nn.Sequential(nn.Linear(2, 3), nn.GELU(), nn.LayerNorm(3)) for _ in range(4)]
    stacked = tree_stack(models)
    ids = [id(v) for v in tree_leaves(stacked)]
    out = T.vmap(lambda m, x: m(x), in_axes=(0, None))(stacked, X)
    for i, m in enumerate(models):
        close(out[i], m(X))
    assert [id(v) for v in tree_leaves(stacked)] == ids
    # per-member gradients of an ensemble, as one call
    g = T.vmap(T.grad(lambda m, x: m(x).sum()), in_axes=(0, None))(stacked, X)
    assert type(g) is nn.Sequential
    for i, m in enumerate(models):
        close(g["layers"][0]["weight"][i], T.grad(lambda m, x: m(x).sum())(m, X)["layers"][0]["weight"])
    assert tree_unstack(g["layers"][2])[0]["weight"].shape == (3,)


def test_vmap_static_leaves_are_never_mapped_and_pass_through():
    seen = []

    def f(p):
        seen.append((p["n"], p["s"], p["none"]))
        return {"y": p["w"] * p["n"], "tag": p["s"]}

    out = T.vmap(f)({"w": mx.ones((3, 2)), "n": 2, "s": "x", "none": None})
    assert seen == [(2, "x", None)] and out["tag"] == "x" and out["y"].shape == (3, 2)


def test_vmap_module_shaped_in_axes_and_out_axes_tree():
    model = nn.Linear(2, 3)
    axes = tree_map(lambda _: None, model)  # a Module-shaped prefix
    out = T.vmap(lambda m, x: {"y": m(x), "z": x * 2}, in_axes=(axes, 1), out_axes={"y": 1, "z": 0})(
        model, X.T
    )
    close(out["y"], model(X).T)
    close(out["z"], X * 2)


def test_vmap_kwargs_are_passed_through_unmapped():
    out = T.vmap(lambda x, *, scale: x * scale)(mx.ones((3, 2)), scale=mx.array([1.0, 2.0]))
    assert out.tolist() == [[1.0, 2.0]] * 3


def test_vmap_errors_name_the_problem():
    two = lambda a, b: a + b
    with pytest.raises(ValueError, match=r"in_axes must be a tree prefix.*expected a prefix of \(\*, \{'y': \*\}\)"):
        T.vmap(two, in_axes=(0, {"x": 0}))(mx.ones(2), {"y": mx.ones(2)})
    with pytest.raises(ValueError, match=r"in_axes has 1 entries, but fn received 2"):
        T.vmap(two, in_axes=(0,))(mx.ones(2), mx.ones(2))
    with pytest.raises(ValueError, match=r"one entry per positional argument \(2 here\); received a dict"):
        T.vmap(two, in_axes={"a": 0})(mx.ones(2), mx.ones(2))
    with pytest.raises(ValueError, match=r"axis 2 for the array at 'args\[1\]' of shape \(3,\)"):
        T.vmap(two, in_axes=(0, 2))(mx.ones(3), mx.ones(3))
    with pytest.raises(ValueError, match=r"one size; received \{'args\[0\]': 2, 'args\[1\]': 3\}"):
        T.vmap(two)(mx.ones(2), mx.ones(3))
    with pytest.raises(ValueError, match="maps none of the 2 array leaves"):
        T.vmap(two, in_axes=None)(mx.ones(2), mx.ones(3))
    with pytest.raises(ValueError, match="in_axes holds ints or None; received str"):
        T.vmap(two, in_axes="0")
    with pytest.raises(ValueError, match="cannot return an unmapped output"):
        T.vmap(lambda a: a, out_axes=None)(mx.ones(2))
    with pytest.raises(ValueError, match=r"out_axes gives axis 3 for an output of shape \(2,\)"):
        T.vmap(lambda a: a, out_axes=3)(mx.ones(2))
    with pytest.raises(ValueError, match="must return at least one array"):
        T.vmap(lambda a: 3)(mx.ones(2))


# ----------------------------------------------------------------------
# compile
# ----------------------------------------------------------------------


def test_compile_matches_mx_compile_on_plain_trees():
    mx.random.seed(2)
    p = {"a": mx.random.normal((3,)), "b": [mx.random.normal((2,)), (mx.random.normal((1,)),)]}
    f = lambda p: {"s": p["a"].sum() + p["b"][1][0], "l": [p["b"][0] * 2]}
    assert_same(T.compile(f)(p), mx.compile(f)(p), loose=False)


TRACES = []


def step(model, x, n, tag, *, scale=1.0):
    return model(x).sum() * n * scale, tag


def counted_step(model, x, n, tag, **kwargs):
    TRACES.append((n, tag, model.training))
    assert type(model) is nn.Sequential  # a real Module, not a plain dict
    return step(model, x, n, tag, **kwargs)


COMPILED_STEP = T.compile(counted_step)


def test_compile_retraces_on_static_changes_only():
    TRACES.clear()
    mx.random.seed(4)
    model = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), nn.Linear(3, 1))
    ids = [id(v) for v in tree_leaves(model)]
    out = lambda *a, **k: COMPILED_STEP(*a, **k)[0].item()

    def check(expected_traces, result, *args, **kwargs):
        assert len(TRACES) == expected_traces, TRACES
        assert abs(result - step(*args, **kwargs)[0].item()) < 1e-5

    r = out(model, X, 2, "a")
    check(1, r, model, X, 2, "a")
    r = out(model, X + 1, 2, "a")  # new array values: no trace
    check(1, r, model, X + 1, 2, "a")
    model.update(tree_map(lambda a: a * 2, model.parameters()))  # new parameter arrays
    r = out(model, X, 2, "a")
    check(1, r, model, X, 2, "a")
    r = out(model, X, 3, "a")  # an int static leaf
    check(2, r, model, X, 3, "a")
    out(model, X, 3, "b")  # a str static leaf
    out(model, X, 3, "b", scale=0.5)  # a keyword argument
    assert len(TRACES) == 4
    r = out(model, X, 2, "a")  # back to earlier values: cache hit
    check(4, r, model, X, 2, "a")
    out(model.eval(), X, 2, "a")  # the training flag of every module
    assert TRACES[-1] == (2, "a", False) and len(TRACES) == 5
    out(model.train(), X, 2, "a")
    model.layers[1].eps = 1e-2  # a plain attribute of one sub-module
    out(model, X, 2, "a")
    model.layers[0].freeze(keys="bias")  # _no_grad, mutated in place
    out(model, X, 2, "a")
    assert len(TRACES) == 7
    model.layers[0].unfreeze()
    model.layers[1].eps = 1e-5
    out(model, X, 2, "a")  # every static part back as in the first call
    assert len(TRACES) == 7
    out(model, X, 2.0, "a")  # 2.0 is not 2: a different static value
    assert len(TRACES) == 8
    assert [id(v) for v in tree_leaves(model)] != ids  # (update() above replaced them)
    mx.eval(model.parameters())


def test_compile_static_leaves_of_every_kind_in_args_and_results():
    traces = []

    def f(t):
        traces.append(1)
        return {"y": t["fn"](t["w"]).astype(t["dt"]), "fn": t["fn"], "dt": t["dt"], "rest": t["rest"]}

    cf = T.compile(f)
    tree = {"w": mx.array([-1.0, 2.0]), "fn": mx.abs, "dt": mx.float16,
            "rest": (None, True, 0.5, "s", 3, OrderedDict(a=1))}
    for w in (mx.array([-1.0, 2.0]), mx.array([3.0, -4.0])):
        out = cf({**tree, "w": w})
        assert out["y"].dtype == mx.float16 and out["y"].tolist() == mx.abs(w).tolist()
        assert out["fn"] is mx.abs and out["dt"] == mx.float16
        assert out["rest"] == tree["rest"] and type(out["rest"][5]) is OrderedDict
    assert len(traces) == 1
    cf({**tree, "fn": mx.negative})
    cf({**tree, "dt": mx.float32})
    assert len(traces) == 3


def test_compile_module_in_module_out_training_loop():
    mx.random.seed(5)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    ids = [id(v) for v in tree_leaves(model)]
    y = X.sum(-1, keepdims=True)

    @T.compile
    def sgd(m, x, y, lr):
        loss, g = T.value_and_grad(lambda m: ((m(x) - y) ** 2).mean())(m)
        return loss, tree_map(lambda p, d: p if d is None else p - lr * d, m, g)

    losses, trained = [], model
    for _ in range(30):
        loss, trained = sgd(trained, X, y, 0.05)
        losses.append(loss.item())
    assert type(trained) is nn.Sequential and type(trained.layers[1]) is nn.ReLU
    assert losses[-1] < 0.3 * losses[0]
    assert [id(v) for v in tree_leaves(model)] == ids


def test_compile_output_statics_follow_the_trace_of_each_shape():
    cf = T.compile(lambda x: (x + 1, x.shape[0], "len%d" % x.shape[0]))
    for n in (2, 3, 2, 3):
        y, size, text = cf(mx.zeros(n))
        assert (y.shape, size, text) == ((n,), n, f"len{n}")


def test_compile_shapeless_does_not_retrace_on_shape_change():
    traces = []
    cf = T.compile(lambda p: (traces.append(1), p["w"] * 2)[1], shapeless=True)
    assert cf({"w": mx.ones(2)}).tolist() == [2.0, 2.0]
    assert cf({"w": mx.ones(3)}).tolist() == [2.0] * 3 and len(traces) == 1


def test_compile_namedtuple_args_and_results():
    cf = T.compile(lambda p: Pair(p.w * p.n, p.n + 1))
    out = cf(Pair(mx.ones(2), 3))
    assert type(out) is Pair and out.n == 4 and out.w.tolist() == [3.0, 3.0]


def test_compile_matches_dict_items_by_key():
    traces = []
    cf = T.compile(lambda d: (traces.append(1), list(d))[1])
    assert cf({"a": mx.ones(1), "b": mx.ones(1)}) == ["a", "b"]
    # the same keys in another order: the same structure (matched by key)
    assert cf({"b": mx.ones(1), "a": mx.ones(1)}) == ["a", "b"] and len(traces) == 1
    cf({"a": mx.ones(1), "c": mx.ones(1)})
    assert len(traces) == 2


def test_compile_a_non_array_where_the_structure_has_an_array():
    import numpy as np

    traces = []

    def f(t):
        traces.append(type(t["x"]).__name__)
        return tree_map(lambda v: v * 2, t["x"])

    cf = T.compile(f)
    ones = np.ones(2)  # static (numpy arrays compare elementwise: only this object matches)
    assert cf({"x": mx.ones(2)}).tolist() == [2.0, 2.0]
    assert cf({"x": 3}) == 6  # a static int now: analysed afresh, traced
    assert cf({"x": [mx.ones(1)]})[0].tolist() == [2.0]
    assert cf({"x": ones}).tolist() == [2.0, 2.0]  # a type MLX refuses as an argument
    assert traces == ["array", "int", "list", "ndarray"]
    assert cf({"x": mx.full(2, 2.0)}).tolist() == [4.0, 4.0]
    assert cf({"x": 3}) == 6 and cf({"x": ones}).tolist() == [2.0, 2.0]
    assert cf({"x": [mx.ones(1)]})[0].tolist() == [2.0]
    assert traces == ["array", "int", "list", "ndarray"]  # every trace was kept


def test_compile_recovers_after_fn_raises():
    state = {"fail": True}

    def f(m, x):
        if state["fail"]:
            m.layers[0].weight = m.layers[0].weight + 1  # a tracer written into the copy
            raise RuntimeError("boom")
        return m(x).sum()

    model = nn.Sequential(nn.Linear(2, 1))
    ids = [id(v) for v in tree_leaves(model)]
    cf = T.compile(f)
    with pytest.raises(RuntimeError, match="boom"):
        cf(model, X)
    state["fail"] = False
    assert abs(cf(model, X).item() - model(X).sum().item()) < 1e-5
    assert [id(v) for v in tree_leaves(model)] == ids
    mx.eval(model.parameters())


# ----------------------------------------------------------------------
# Random trees (hypothesis)
# ----------------------------------------------------------------------


class Box(nn.Module):
    """A module holding whatever items it is given."""


def _box(items, training):
    box = Box()
    dict.update(box, items)
    box._training = training
    return box


_shapes = st.lists(st.integers(1, 3), max_size=2).map(tuple)
_arrays = st.builds(lambda s, k: mx.random.normal(s, key=mx.random.key(k)), _shapes, st.integers(0, 99))
_statics = st.one_of(
    st.integers(-5, 5), st.text(max_size=3), st.none(), st.booleans(),
    st.floats(allow_nan=False, width=32), st.sampled_from([mx.float32, mx.int8, abs]),
)
_keys = st.text("abcdefgh", min_size=1, max_size=3)
_trees = st.recursive(
    st.one_of(_arrays, _statics),
    lambda kids: st.one_of(
        st.lists(kids, max_size=3),
        st.lists(kids, max_size=3).map(tuple),
        st.dictionaries(_keys, kids, max_size=3),
        st.builds(Pair, kids, kids),
        st.builds(_box, st.dictionaries(_keys, kids, max_size=3), st.booleans()),
    ),
    max_leaves=8,
)
_fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _statics_of(tree):
    return [(k, v) for k, v in tree_flatten(tree) if not isinstance(v, mx.array)]


@_fast
@given(_trees)
def test_structure_matches_itself_and_rebuilds(tree):
    s, arrays = Structure.build(tree)
    assert all(a is b for a, b in zip(s.match(tree), arrays))
    assert_same(s.rebuild(arrays), tree)
    fresh = tree_map(lambda v: mx.zeros((2,) * (v.ndim + 1)) if isinstance(v, mx.array) else v, tree)
    expected = [a.shape for a in tree_leaves(fresh) if isinstance(a, mx.array)]
    assert [a.shape for a in s.match(fresh)] == expected


@_fast
@given(_trees, st.data())
def test_structure_rejects_a_changed_static_leaf(tree, data):
    statics = _statics_of(tree)
    if not statics:
        return
    s, _ = Structure.build(tree)
    i = data.draw(st.integers(0, len(statics) - 1))
    counter = iter(range(len(statics)))
    changed = tree_map(
        lambda v: v if isinstance(v, mx.array) or next(counter) != i else ("changed", v), tree
    )
    assert s.match(changed) is None


@_fast
@given(_trees)
def test_structure_rejects_a_changed_module_attribute(tree):
    boxes = [n for n in tree_leaves(tree, is_leaf=lambda n: isinstance(n, Box)) if isinstance(n, Box)]
    if not boxes:
        return
    s, _ = Structure.build(tree)
    boxes[-1]._training = not boxes[-1]._training
    assert s.match(tree) is None
    boxes[-1]._training = not boxes[-1]._training
    assert s.match(tree) is not None
    boxes[0]._no_grad.add("x")  # mutated in place
    assert s.match(tree) is None


COMPILED_PLUS_ONE = T.compile(lambda t: tree_map(lambda v: v + 1 if isinstance(v, mx.array) else v, t))


@_fast
@given(_trees)
def test_compile_and_grad_on_random_trees(tree):
    out = COMPILED_PLUS_ONE(tree)
    assert_same(out, tree_map(lambda v: v + 1 if isinstance(v, mx.array) else v, tree))
    # (Modules choose their trainable arrays: tested with fixed models elsewhere.)
    if not any(isinstance(v, mx.array) for v in tree_leaves(tree)) or any(
        isinstance(n, nn.Module) for n in tree_leaves(tree, is_leaf=lambda n: isinstance(n, nn.Module))
    ):
        return
    g = T.grad(lambda t: sum((v * v).sum() for v in tree_leaves(t) if isinstance(v, mx.array)))(tree)
    flat = tree_flatten(g)
    for (k, gv), (_, v) in zip(flat, tree_flatten(tree)):
        if isinstance(v, mx.array):
            close(gv, 2 * v)
        else:
            assert gv is None, k
