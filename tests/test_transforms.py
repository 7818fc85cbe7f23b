"""``funcnn.transforms``: grad, value_and_grad, jvp, vjp over any funcnn tree; purity.

The oracles are MLX's own transforms on the array-only version of each tree,
``funcnn.value_and_grad`` / ``mlx.nn.value_and_grad`` on modules, and finite
differences.  ``vmap`` and ``compile`` are in ``test_transforms_vmap_compile.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import mlx.core as mx
import mlx.nn
import mlx.nn as mnn  # oracle
import pytest
from _compare import doc_model
from _tree_cases import assert_same

import funcnn as nn
import funcnn.transforms as T
from funcnn.tree import tree_flatten, tree_leaves, tree_map, tree_structure


def close(a, b, tol=1e-5):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert mx.allclose(a, b, atol=tol, rtol=tol).item(), (a, b)


def grad_paths(tree):
    return [k for k, v in tree_flatten(tree) if v is not None]


def array_ids(model):
    return [(k, id(v)) for k, v in tree_flatten(model) if isinstance(v, mx.array)]


def assert_pure(model, ids_before):
    """The model holds its original array objects and all of them evaluate."""
    assert array_ids(model) == ids_before
    mx.eval(tree_leaves(model.parameters()))


X = mx.array([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5], [1.0, 1.0]])
Y = mx.array([[1.0], [0.0], [-1.0], [0.5]])


def mse(model, x, y):
    return ((model(x) - y) ** 2).mean()


def mlp(nn_):
    mx.random.seed(3)
    return nn_.Sequential(nn_.Linear(2, 3), nn_.ReLU(), nn_.Linear(3, 1))


class Pair(NamedTuple):
    w: mx.array
    n: int


# ----------------------------------------------------------------------
# Plain trees: the same values as MLX
# ----------------------------------------------------------------------


def plain_params():
    mx.random.seed(0)
    return {
        "a": mx.random.normal((3,)),
        "b": [mx.random.normal((2, 2)), (mx.random.normal((1,)), mx.random.normal(()))],
    }


def plain_loss(p, x):
    return (p["a"].sum() * x + (p["b"][0] ** 2).sum() + p["b"][1][0].sum() * p["b"][1][1]).sum()


@pytest.mark.parametrize("argnums", [0, 1, (0, 1), (1, 0)])
def test_grad_and_value_and_grad_match_mlx(argnums):
    p, x = plain_params(), mx.array([1.0, 2.0])
    ours_v, ours_g = T.value_and_grad(plain_loss, argnums)(p, x)
    theirs_v, theirs_g = mx.value_and_grad(plain_loss, argnums)(p, x)
    if argnums == (1, 0):  # ours follow argnums' order; MLX sorts them
        theirs_g = theirs_g[::-1]
    close(ours_v, theirs_v)
    assert_same(tree_map(lambda a: a.round(4), ours_g), tree_map(lambda a: a.round(4), theirs_g))
    assert_same(T.grad(plain_loss, argnums)(p, x), ours_g)


def test_aux_like_mlx_with_static_leaves():
    p = plain_params()

    def f(q):
        y = q["a"] * 2
        return y.sum(), {"y": y, "tag": "s", "n": 3, "none": None, "dtype": mx.int32}, [y[0]]

    (loss, aux, extra), g = T.value_and_grad(f)(p)
    (m_loss, m_y, m_extra), m_g = mx.value_and_grad(lambda q: (f(q)[0], f(q)[1]["y"], f(q)[2]))(p)
    close(loss, m_loss)
    close(aux["y"], m_y)
    close(extra[0], m_extra[0])
    assert (aux["tag"], aux["n"], aux["none"], aux["dtype"]) == ("s", 3, None, mx.int32)
    assert_same(g, m_g)
    # grad accepts (loss, aux) too and drops the aux
    assert_same(T.grad(f)(p), g)


def test_static_leaves_of_every_kind_pass_through_and_get_none():
    fn_leaf = abs
    tree = {
        "w": mx.array([1.0, 2.0]),
        "i": mx.array([1, 2]),  # an integer array: not differentiated by default
        "n": 3, "f": 0.5, "s": "name", "none": None, "b": True,
        "fn": fn_leaf, "dt": mx.float16, "t": (1, "x"),
    }
    seen = {}

    def f(t):
        seen.update({k: v for k, v in t.items() if k not in ("w", "i")})
        return (t["w"] * t["n"] * t["f"]).sum() + t["i"].sum()

    loss, g = T.value_and_grad(f)(tree)
    assert loss.item() == 4.5 + 3
    assert g["w"].tolist() == [1.5, 1.5]
    assert all(g[k] is None for k in tree if k not in ("w", "t")) and g["t"] == (None, None)
    assert all(seen[k] is tree[k] for k in seen if k != "t") and seen["t"] == (1, "x")


def test_namedtuple_args_and_results():
    def f(p):
        return (p.w * p.n).sum(), Pair(p.w + 1, p.n + 1)

    (loss, aux), g = T.value_and_grad(f)(Pair(mx.ones(2), 3))
    assert type(g) is Pair and g.n is None and g.w.tolist() == [3.0, 3.0]
    assert type(aux) is Pair and aux.n == 4 and aux.w.tolist() == [2.0, 2.0]
    assert loss.item() == 6.0


def test_kwargs_pass_through_undifferentiated():
    f = T.value_and_grad(lambda w, *, scale, bias: (w * scale + bias).sum())
    loss, g = f(mx.ones(2), scale=mx.array(3.0), bias=mx.array(1.0))
    assert loss.item() == 8.0 and g.tolist() == [3.0, 3.0]


def test_nested_transforms_second_order_and_exports():
    x = mx.array([1.0, -2.0])
    second = T.grad(lambda x: T.grad(lambda y: (y**3).sum())(x).sum())(x)
    assert second.tolist() == [6.0, -12.0]  # d/dx sum(3 x^2)
    hvp = T.jvp(T.grad(lambda p: (p["w"] ** 3).sum()), ({"w": x},), ({"w": mx.ones(2)},))[1]
    assert hvp["w"].tolist() == [6.0, -12.0]
    assert nn.value_and_grad is nn.utils.value_and_grad  # the mlx.nn-compatible one
    assert nn.transforms is T and nn.functional_call is T.functional_call
    assert {"transforms", "functional_call"} <= set(nn.__all__)


def test_one_wrapper_serves_several_structures():
    f = T.value_and_grad(lambda t: sum((v**2).sum() for v in tree_leaves(t) if isinstance(v, mx.array)))
    model = mlp(nn)
    for arg in (model, {"a": mx.ones(2)}, model, [mx.ones(1), 3], {"a": mx.ones(2)}):
        _, g = f(arg)
        assert tree_structure(g) == tree_structure(arg)


def test_wraps_fn_metadata():
    def loss(x):
        """Doc."""
        return x.sum()

    for t in (T.grad, T.value_and_grad, T.vmap, T.compile):
        w = t(loss)
        assert (w.__name__, w.__doc__, w.__wrapped__) == ("loss", "Doc.", loss)


# ----------------------------------------------------------------------
# Modules
# ----------------------------------------------------------------------


def test_module_gradient_is_a_module_of_the_same_class():
    model = mlp(nn)
    g = T.grad(mse)(model, X, Y)
    assert type(g) is nn.Sequential
    assert [type(m).__name__ for m in g.layers] == ["Linear", "ReLU", "Linear"]
    assert tree_structure(g) == tree_structure(model)
    assert g is not model and all(a is not b for a, b in zip(g.layers, model.layers))


@pytest.mark.parametrize(
    "setup",
    [lambda m: None, lambda m: m.layers[0].freeze(), lambda m: m.freeze(keys="bias")],
    ids=["plain", "frozen-layer", "frozen-bias"],
)
def test_module_gradients_equal_value_and_grad_of_funcnn_and_mlx(setup):
    results = []
    for nn_ in (nn, mnn):
        model = mlp(nn_)
        setup(model)
        results.append(nn_.value_and_grad(model, mse)(model, X, Y))
    model = mlp(nn)
    setup(model)
    ids = array_ids(model)
    loss, g = T.value_and_grad(mse)(model, X, Y)
    assert_pure(model, ids)
    expected = tree_flatten(model.trainable_parameters())
    assert grad_paths(g) == [k for k, _ in expected]
    for other_loss, other_g in results:
        close(loss, other_loss)
        ours = dict(tree_flatten(g))
        for k, v in tree_flatten(other_g):
            close(ours[k], v)


def test_trainable_filter_respects_private_tuple_dict_and_frozen_entries():
    model = doc_model(nn)  # private array, tuple item, list with statics, dict with "_b"
    model.freeze(keys="l.0", recurse=False)

    def f(m):
        total = m.w.sum() + m._hidden.sum() + m.d["a"].sum() + m.d["_b"].sum() + m.l[0].sum()
        return total + m.sub(m.w).sum()

    g = T.grad(f)(model)
    assert grad_paths(g) == [k for k, _ in tree_flatten(model.trainable_parameters())]
    assert grad_paths(g) == ["w", "d.a", "d._b", "sub.weight", "sub.bias"]
    assert g["_hidden"] is None and g["t"] == (None, None) and g["l"][1:] == [None, None]
    assert g.n == 3  # plain attributes come with the module


def test_predicate_filter_narrows_and_tree_filter_chooses_exactly():
    model = mlp(nn)
    model.layers[2].freeze()
    weights_only = T.grad(mse, filter=lambda x: x.ndim == 2)(model, X, Y)
    assert grad_paths(weights_only) == ["layers.0.weight"]
    # a boolean tree (shaped like the module) can select frozen arrays too
    choose = tree_map(lambda x: isinstance(x, mx.array) and x.ndim == 1, model)
    biases = T.grad(mse, filter=choose)(model, X, Y)
    assert grad_paths(biases) == ["layers.0.bias", "layers.2.bias"]
    # a prefix: True for the first argument, False for the second
    g0, g1 = T.grad(lambda a, b: (a * b).sum(), argnums=(0, 1), filter=(True, False))(
        mx.ones(2), mx.ones(2)
    )
    assert g0.tolist() == [1.0, 1.0] and g1 is None


def test_tied_module_gets_per_path_gradients_summing_to_mlx_last_alias():
    class Tied(nn.Module):
        def __init__(self, nn_):
            super().__init__()
            self.enc = nn_.Linear(2, 2)
            self.dec = self.enc

        def __call__(self, x):
            return self.dec(mx.tanh(self.enc(x)))

    mx.random.seed(1)
    model = Tied(nn)
    g = T.grad(lambda m, x: m(x).sum())(model, X)
    mx.random.seed(1)
    theirs = mnn.Sequential()  # any mlx.nn container works as the oracle's holder
    theirs.enc = mnn.Linear(2, 2)
    theirs.dec = theirs.enc
    _, tg = mnn.value_and_grad(theirs, lambda x: theirs.dec(mx.tanh(theirs.enc(x))).sum())(X)
    close(g["enc"]["weight"] + g["dec"]["weight"], tg["dec"]["weight"])
    close(tg["enc"]["weight"], mx.zeros((2, 2)))  # mlx.nn: all to the last alias


@pytest.mark.parametrize("transform", ["value_and_grad", "compile"])
def test_arrays_stored_on_a_module_inside_fn_reach_the_caller(transform):
    # As an eager call (and mlx.nn.value_and_grad) would leave them: never silently lost.
    model = mlx_module = mlp(nn)
    mlx_module = mlp(mlx.nn)
    w0 = model.layers[0].weight

    def f(m, x):
        m.layers[0].weight = m.layers[0].weight * 2
        m.update({"layers": [{}, {}, {"bias": mx.zeros(1)}]})
        m.layers[1].cache = x[:1]  # a new array item
        return m(x).sum()

    run = T.value_and_grad(f) if transform == "value_and_grad" else T.compile(f)
    out = run(model, X)
    mlx_out = mlx.nn.value_and_grad(mlx_module, lambda x: f(mlx_module, x))(X)
    value = out[0] if transform == "value_and_grad" else out
    assert value.item() == pytest.approx(mlx_out[0].item(), rel=1e-6)
    assert mx.array_equal(model.layers[0].weight, 2 * w0).item()
    assert model.layers[2].bias.tolist() == [0.0]
    assert mx.array_equal(model.layers[1].cache, X[:1]).item()
    mx.eval(model.parameters())  # real arrays, no tracer


@pytest.mark.parametrize("transform", ["grad", "value_and_grad", "compile", "vmap", "jvp", "vjp"])
def test_state_changes_a_transform_cannot_carry_out_are_refused(transform):
    model = mlp(nn)
    ids = array_ids(model)

    def freeze(m, x):  # a plain attribute (the frozen set) changed: cannot be carried out
        m.layers[0].freeze()
        return m(x).sum()

    def store(m, x):  # an array stored: carried out by grad/compile, refused by the others
        m.layers[2].bias = m.layers[2].bias + 1
        return m(x).sum()

    def call(f):
        return {
            "grad": lambda: T.grad(f)(model, X),
            "value_and_grad": lambda: T.value_and_grad(f)(model, X),
            "compile": lambda: T.compile(f)(model, X),
            "vmap": lambda: T.vmap(f, in_axes=(None, 0))(model, X),
            "jvp": lambda: T.jvp(f, (model, X), (None, X)),
            "vjp": lambda: T.vjp(f, (model, X), mx.array(1.0)),
        }[transform]()

    with pytest.raises(ValueError, match=r"changed the Linear at args\[0\]\.layers\.0: .*_no_grad"):
        call(freeze)
    assert_pure(model, ids)
    assert model.layers[0]._no_grad == set()
    if transform in ("vmap", "jvp", "vjp"):
        with pytest.raises(ValueError, match=rf"args\[0\]\.layers\.2: item 'bias'.*{transform} cannot"):
            call(store)
        assert_pure(model, ids)


@pytest.mark.parametrize("transform", ["grad", "value_and_grad", "vmap", "compile", "jvp", "vjp"])
def test_no_tracer_leaks_when_fn_raises(transform):
    model = mlp(nn)
    ids = array_ids(model)
    leaked = []

    def f(m, x):
        leaked.append(m)
        m.layers[0].weight = m.layers[0].weight + 1
        raise RuntimeError("boom")

    calls = {
        "grad": lambda: T.grad(f)(model, X),
        "value_and_grad": lambda: T.value_and_grad(f)(model, X),
        "vmap": lambda: T.vmap(f, in_axes=(None, 0))(model, X),
        "compile": lambda: T.compile(f)(model, X),
        "jvp": lambda: T.jvp(f, (model, X), (tree_map(lambda _: None, model), X)),
        "vjp": lambda: T.vjp(f, (model, X), mx.ones(1)),
    }
    with pytest.raises(RuntimeError, match="boom"):
        calls[transform]()
    assert_pure(model, ids)
    assert leaked and leaked[0] is not model  # fn got a copy
    mse(model, X, Y).item()  # the model still works


# ----------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------


def test_error_non_scalar_loss_names_the_shape():
    with pytest.raises(ValueError, match=r"scalar array.*shape \(4, 1\)"):
        T.grad(lambda m: m(X))(mlp(nn))
    with pytest.raises(ValueError, match="first element of the tuple.*list of length"):
        T.grad(lambda x: ([x.sum()], 1))(mx.ones(2))
    with pytest.raises(ValueError, match="fn's result is a list of length 1"):
        T.value_and_grad(lambda x: [x.sum()])(mx.ones(2))


def test_error_nothing_to_differentiate_lists_what_was_received():
    with pytest.raises(ValueError, match=r"nothing to differentiate.*'args\[0\].n': int 3"):
        T.grad(lambda p: p["i"].sum())({"i": mx.array([1]), "n": 3})
    frozen = mlp(nn).freeze()
    with pytest.raises(ValueError, match=r"args\[0\].layers.0.weight': an array of shape \(3, 2\)"):
        T.grad(mse)(frozen, X, Y)


def test_error_argnums_and_filter():
    with pytest.raises(ValueError, match="argnums=2, but fn received 2 positional"):
        T.grad(lambda a, b: a.sum(), argnums=2)(mx.ones(1), mx.ones(1))
    for bad in (-1, (), (0, 0), "0", 1.0):
        with pytest.raises((ValueError, TypeError), match="argnums"):
            T.grad(lambda a: a.sum(), argnums=bad)
    with pytest.raises(ValueError, match=r"filter must be a tree prefix.*expected a prefix of"):
        T.grad(lambda p: p["a"].sum(), filter={"b": True})({"a": mx.ones(1)})
    with pytest.raises(ValueError, match="filter tree holds booleans.*int 1"):
        T.grad(lambda p: p["a"].sum(), filter={"a": 1})({"a": mx.ones(1)})
    with pytest.raises(TypeError, match="filter must be None, a predicate"):
        T.grad(lambda a: a.sum(), filter=3.0)(mx.ones(1))


# ----------------------------------------------------------------------
# jvp and vjp
# ----------------------------------------------------------------------


def tree_fn(p, x):
    h = mx.tanh(p["w"] @ x + p["b"][0])
    return {"out": h * p["scale"], "sq": (h**2).sum(), "tag": p["tag"]}


def tree_primals():
    mx.random.seed(5)
    return (
        {"w": mx.random.normal((3, 2)), "b": [mx.random.normal((3,))], "scale": 2.0, "tag": "t"},
        mx.random.normal((2,)),
    )


def test_jvp_matches_mlx_and_finite_differences():
    p, x = tree_primals()
    tp = {"w": mx.random.normal((3, 2)), "b": [mx.random.normal((3,))], "scale": None, "tag": None}
    tx = mx.random.normal((2,))
    out, tan = T.jvp(tree_fn, (p, x), (tp, tx))
    assert out["tag"] == "t" and tan["tag"] is None
    flat = lambda w, b, xx: [tree_fn({**p, "w": w, "b": [b]}, xx)[k] for k in ("out", "sq")]
    m_out, m_tan = mx.jvp(flat, [p["w"], p["b"][0], x], [tp["w"], tp["b"][0], tx])
    close(out["out"], m_out[0]), close(tan["out"], m_tan[0]), close(tan["sq"], m_tan[1])
    eps = 1e-3
    shifted = lambda s: tree_fn(
        {**p, "w": p["w"] + s * tp["w"], "b": [p["b"][0] + s * tp["b"][0]]}, x + s * tx
    )["sq"]
    close(tan["sq"], (shifted(eps) - shifted(-eps)) / (2 * eps), tol=1e-2)


def test_vjp_matches_mlx_and_returns_primal_structure():
    p, x = tree_primals()
    cot = {"out": mx.array([1.0, -2.0, 0.5]), "sq": mx.array(3.0), "tag": None}
    out, (gp, gx) = T.vjp(tree_fn, (p, x), cot)
    assert out["tag"] == "t"
    assert gp["scale"] is None and gp["tag"] is None and isinstance(gp["b"], list)
    flat = lambda w, b, xx: [tree_fn({**p, "w": w, "b": [b]}, xx)[k] for k in ("out", "sq")]
    _, (m_w, m_b, m_x) = mx.vjp(flat, [p["w"], p["b"][0], x], [cot["out"], cot["sq"]])
    close(gp["w"], m_w), close(gp["b"][0], m_b), close(gx, m_x)
    out2, grads2 = T.vjp(tree_fn, [p, x], cot)
    assert isinstance(grads2, list) and len(grads2) == 2


def test_jvp_vjp_over_a_module_use_trainable_parameters():
    model = mlp(nn)
    model.layers[0].freeze(keys="bias")
    ids = array_ids(model)
    tangents = tree_map(lambda v: mx.ones_like(v) if isinstance(v, mx.array) else None, model)
    out, tan = T.jvp(lambda m: m(X), (model,), (tangents,))
    # the frozen bias has a tangent, but it is not differentiated
    def by_hand(s):
        m2 = mlp(nn)
        m2.update(tree_map(lambda a: a + s, model.parameters()))
        m2.layers[0].bias = model.layers[0].bias
        return m2(X)

    close(tan, (by_hand(1e-3) - by_hand(-1e-3)) / 2e-3, tol=1e-2)
    out2, (g,) = T.vjp(lambda m: m(X), (model,), mx.ones((4, 1)))
    assert grad_paths(g) == [k for k, _ in tree_flatten(model.trainable_parameters())]
    close(g["layers"][2]["weight"], T.grad(lambda m: m(X).sum())(model)["layers"][2]["weight"])
    assert_pure(model, ids)


def test_jvp_vjp_errors():
    p, x = tree_primals()
    with pytest.raises(ValueError, match=r"tangent at 'args\[1\]' must be an array of the primal's shape \(2,\)"):
        T.jvp(tree_fn, (p, x), (None, mx.ones(3)))
    with pytest.raises(ValueError, match="tangents must be a tuple or list with one tree per primal"):
        T.jvp(tree_fn, (p, x), (None,))
    with pytest.raises(ValueError, match="nothing to differentiate"):
        T.jvp(tree_fn, (p, x), (None, None))
    with pytest.raises(ValueError, match="primals must be a tuple or list"):
        T.vjp(tree_fn, p, mx.ones(1))
    with pytest.raises(ValueError, match="cotangents must have the structure of fn's result"):
        T.vjp(tree_fn, (p, x), {"out": mx.ones(3), "sq": mx.ones(()), "tag": mx.ones(1)})
    with pytest.raises(ValueError, match="cotangents must have the structure"):
        T.vjp(tree_fn, (p, x), [mx.ones(3)])
    with pytest.raises(ValueError, match=r"cotangent at 'out' must have the output's shape \(3,\)"):
        T.vjp(tree_fn, (p, x), {"out": mx.ones(2), "sq": mx.ones(()), "tag": None})


def test_state_in_dict_and_list_members_of_a_module_is_tracked_too():
    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 1)
            self.stats = {"mean": mx.zeros(2), "hist": [mx.zeros(1), mx.zeros(1)]}
            self.layers = [nn.Linear(2, 2)]

        def __call__(self, x, grow=False):
            self.stats["mean"] = x.mean(axis=0)  # an array replacing an array: carried out
            self.stats["hist"][1] = x.sum(keepdims=True)[0]
            if grow:
                self.layers.append(nn.Linear(2, 2))
            return self.lin(self.layers[0](x)).sum()

    model = Holder()
    for run in (T.value_and_grad(lambda m, x: m(x)), T.compile(lambda m, x: m(x))):
        model.stats["mean"] = mx.zeros(2)
        run(model, X)
        assert mx.allclose(model.stats["mean"], X.mean(axis=0)).item()
        assert mx.allclose(model.stats["hist"][1], X.sum(keepdims=True)[0]).item()
        assert model.stats["hist"][0].tolist() == [0.0]
    with pytest.raises(ValueError, match=r"Holder at args\[0\]: item 'layers' changed the length"):
        T.value_and_grad(lambda m, x: m(x, grow=True))(model, X)
    assert len(model.layers) == 1
