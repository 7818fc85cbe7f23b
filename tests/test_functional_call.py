"""``funcnn.functional_call``: a pure view of any Module, under every transform.

Oracles: the same module after ``update`` (a copy), ``funcnn.value_and_grad``
and ``mlx.nn.value_and_grad``, Python loops over ensembles.  Every test also
checks that the module holds its original array objects afterwards and that
they evaluate (no tracer left behind).
"""

from __future__ import annotations

import copy

import mlx.core as mx
import mlx.nn as mnn  # oracle
import pytest

import funcnn as nn
import funcnn.functional as F
import funcnn.transforms as T
from funcnn import functional_call
from funcnn.tree import tree_flatten, tree_leaves, tree_map, tree_stack

X = mx.array([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5], [1.0, 1.0]])


def close(a, b, tol=1e-5):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert mx.allclose(a, b, atol=tol, rtol=tol).item(), (a, b)


def snapshot(model):
    """Every container's contents by identity (arrays, sub-modules, lists)."""
    return [(k, id(v)) for k, v in tree_flatten(model)] + [
        (k, id(m)) for k, m in model.named_modules()
    ]


def assert_untouched(model, before):
    assert snapshot(model) == before
    mx.eval(tree_leaves(model))  # raises if a tracer was left behind


class Custom(nn.Module):
    """A user-defined module: dict and list members, a private buffer, a config tuple."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(2, 3)
        self.heads = [nn.Linear(3, 1), nn.Linear(3, 1)]
        self.table = {"scale": mx.array([2.0]), "shift": mx.array([0.5])}
        self._buffer = mx.array([10.0])
        self.config = (1, "x")

    def __call__(self, x):
        h = mx.tanh(self.proj(x)) * self.table["scale"] + self.table["shift"]
        return sum(head(h) for head in self.heads) + self._buffer


def make(seed=0):
    mx.random.seed(seed)
    return Custom()


def params_of(seed):
    return make(seed).parameters()


def reference(params, x):
    """The oracle: a separate module updated with ``params``."""
    other = make(0)
    other.update(params, strict=False)
    return other(x)


# ----------------------------------------------------------------------
# Values, partial trees, restoration
# ----------------------------------------------------------------------


def test_full_and_partial_params_equal_an_updated_copy():
    model = make(0)
    before = snapshot(model)
    full = params_of(1)
    close(functional_call(model, full, X), reference(full, X))
    partial = {"heads": [{}, {"weight": mx.ones((1, 3))}], "table": {"shift": mx.array([-1.0])}}
    close(functional_call(model, partial, X), reference(partial, X))
    keep = {"proj": None, "heads": [None, {"bias": None}]}  # None keeps the module's own
    close(functional_call(model, keep, X), model(X))
    assert_untouched(model, before)


def test_params_may_be_a_module_shaped_tree():
    model = make(0)
    before = snapshot(model)
    other = make(2)
    with pytest.raises(ValueError, match="'_buffer' is not a parameter"):
        functional_call(model, other, X)  # a private array is not a parameter
    shaped = tree_map(lambda v: v, other)
    dict.__setitem__(shaped, "_buffer", None)  # as in a gradient; "config" keeps its statics
    close(functional_call(model, shaped, X), other(X))
    assert_untouched(model, before)


def test_keyword_arguments_named_like_its_own_parameters_reach_the_module():
    class Kw(nn.Module):
        def __call__(self, x, module=None, params=None):
            return (module, params)

    assert functional_call(Kw(), {}, X, module=1, params=2) == (1, 2)


class Stateful(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 1)
        self.layers = [nn.Linear(1, 1)]
        self._cache = mx.zeros((1, 2))

    def __call__(self, x, fail=False, grow=False, new=False):
        self._cache = x[:1]  # arrays stored by the call: state
        self.lin.weight = self.lin.weight * 0
        if grow:
            self.layers.append(nn.Linear(1, 1))
        if new:
            self.other = x
        if fail:
            raise RuntimeError("boom")
        return self.layers[0](self.lin(x))


def test_state_the_call_stores_is_refused_never_lost_and_the_module_restored():
    model = Stateful()
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"'_cache', 'lin.weight'.*stateful_call"):
        functional_call(model, {"lin": {"bias": mx.ones(1)}}, X)
    assert_untouched(model, before)
    with pytest.raises(RuntimeError, match="boom"):
        functional_call(model, {"lin": {"bias": mx.ones(1)}}, X, fail=True)
    assert_untouched(model, before)
    with pytest.raises(ValueError, match=r"at 'layers' \(changed a list's length to 2\)"):
        nn.stateful_call(model, {}, X, grow=True)
    with pytest.raises(ValueError, match=r"at 'the module' \(added 'other'\)"):
        nn.stateful_call(model, {}, X, new=True)
    assert_untouched(model, before)
    assert "other" not in model and len(model.layers) == 1


def test_stateful_call_returns_the_stored_arrays_as_updates():
    model = Stateful()
    before = snapshot(model)
    params = {"lin": {"bias": mx.ones(1)}}
    out, updates = nn.stateful_call(model, params, X)
    assert_untouched(model, before)
    assert sorted(k for k, _ in nn.tree_flatten(updates)) == ["_cache", "lin.weight"]
    assert mx.array_equal(updates["_cache"], X[:1]).item()
    assert not mx.any(updates["lin"]["weight"]).item()
    # The same call on the module itself, with the params loaded, gives the same result.
    copy = Stateful()
    copy.update(model.parameters()).update(params)
    assert mx.array_equal(copy(X), out).item()
    assert mx.array_equal(model.update(updates).lin.weight, copy.lin.weight).item()


def test_stateful_call_carries_batch_norm_statistics_like_mlx_nn():
    mx.random.seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm(3))
    mx.random.seed(0)
    oracle = mnn.Sequential(mnn.Linear(2, 3), mnn.BatchNorm(3))
    x = mx.random.normal((6, 2), key=mx.random.key(1))
    params = model.parameters()
    for _ in range(3):
        out, updates = nn.stateful_call(model, params, x)
        params = F.merge_updates(params, updates)
        assert mx.array_equal(out, oracle(x)).item()
    assert mx.array_equal(params["layers"][1]["running_var"], oracle.layers[1].running_var).item()
    assert model.layers[1].running_mean.tolist() == [0.0, 0.0, 0.0]  # the module: untouched


# ----------------------------------------------------------------------
# Errors: nothing is written
# ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, message",
    [
        ({"prj": {}}, r"'prj' is not a parameter of the Custom \(its parameters: 'proj', 'heads', 'table'\)"),
        ({"heads": [{}, {"wieght": mx.ones(1)}]}, r"'heads.1.wieght' is not a parameter of the Linear at 'heads.1'"),
        ({"_buffer": mx.ones(1)}, r"'_buffer' is not a parameter of the Custom"),
        ({"config": mx.ones(1)}, r"'config' is not a parameter"),
        ({"table": {"scale": mx.ones(1), "offset": mx.ones(1)}}, r"'table.offset' is not a parameter"),
        ({"heads": [{}, {}, {}]}, r"params gives 3 entries at 'heads', but the module has 2"),
        ({"proj": {"weight": {"a": mx.ones(1)}}}, r"at 'proj.weight': expected an array .* received dict"),
        ({"proj": {"weight": 3}}, r"at 'proj.weight': expected an array .* received int 3"),
        ({"proj": mx.ones(1)}, r"at 'proj': expected a Linear of parameters, not an array"),
        ({"heads": {"0": {}}}, r"at 'heads': expected a list .* received dict"),
        ([mx.ones(1)], r"at '': expected a dict .* received list"),
    ],
)
def test_bad_paths_raise_naming_them_before_any_write(params, message):
    model = make(0)
    before = snapshot(model)
    # a valid write comes first in each tree: it must not happen either
    with pytest.raises(ValueError, match=message):
        functional_call(model, {"table": {"scale": mx.zeros(1)}, **params}
                        if isinstance(params, dict) else params, X)
    assert_untouched(model, before)
    with pytest.raises(TypeError, match="module must be a funcnn Module"):
        functional_call({"w": mx.ones(1)}, {}, X)


# ----------------------------------------------------------------------
# Under transforms
# ----------------------------------------------------------------------


def loss_of(model):
    return lambda p, x: (functional_call(model, p, x) ** 2).mean()


def test_under_mx_grad_equals_value_and_grad_of_funcnn_and_mlx():
    model = make(0)
    before = snapshot(model)
    loss, g = mx.value_and_grad(loss_of(model))(model.trainable_parameters(), X)
    assert_untouched(model, before)
    ours_loss, ours_g = T.value_and_grad(loss_of(model))(model.trainable_parameters(), X)
    assert_untouched(model, before)
    other = copy.deepcopy(model)
    their_loss, their_g = nn.value_and_grad(other, lambda x: (other(x) ** 2).mean())(X)
    close(loss, their_loss), close(ours_loss, their_loss)
    for (k, a), (_, b), (_, c) in zip(tree_flatten(g), tree_flatten(their_g), tree_flatten(ours_g)):
        close(a, b), close(c, b)


def test_under_mx_vmap_over_stacked_parameters_equals_a_loop():
    model = make(0)
    before = snapshot(model)
    members = [params_of(s) for s in range(3)]
    out = mx.vmap(lambda p, x: functional_call(model, p, x), in_axes=(0, None))(tree_stack(members), X)
    assert_untouched(model, before)
    for i, p in enumerate(members):
        close(out[i], reference(p, X))
    out2 = T.vmap(lambda p, x: functional_call(model, p, x), in_axes=(0, None))(tree_stack(members), X)
    close(out2, out)
    assert_untouched(model, before)


def test_under_mx_compile_params_are_inputs_and_the_model_stays_clean():
    model = make(0)
    before = snapshot(model)
    run = mx.compile(lambda p, x: functional_call(model, p, x))
    for seed in (1, 2):
        p = params_of(seed)
        close(run(p, X), reference(p, X))
        assert_untouched(model, before)
    close(model(X), reference(model.parameters(), X))


def test_under_funcnn_compile_and_grad_with_the_module_as_argument():
    model = make(0)
    before = snapshot(model)

    @T.compile
    def step(m, p, x):
        loss, g = T.value_and_grad(lambda p: (functional_call(m, p, x) ** 2).mean())(p)
        return loss, tree_map(lambda a, d: a - 0.01 * d, p, g)

    p = model.trainable_parameters()
    losses = []
    for _ in range(5):
        loss, p = step(model, p, X)
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert_untouched(model, before)


# ----------------------------------------------------------------------
# Shared submodules: the last path written wins
# ----------------------------------------------------------------------


def tied(nn_):
    mx.random.seed(7)
    model = nn_.Sequential(nn_.Linear(2, 2), nn_.ReLU())
    model.layers.append(model.layers[0])  # the same Linear at layers.0 and layers.2
    return model


def test_shared_submodule_last_path_wins():
    model = tied(nn)
    before = snapshot(model)
    params = {"layers": [{"weight": mx.zeros((2, 2))}, {}, {"weight": mx.eye(2)}]}
    bias = model.layers[0].bias  # the last path set only the weight: both use eye(2)
    expected = mx.maximum(X @ mx.eye(2).T + bias, 0) @ mx.eye(2).T + bias
    close(functional_call(model, params, X), expected)
    assert_untouched(model, before)


def test_shared_submodule_gradient_flows_to_the_last_alias_as_in_mlx_nn():
    model = tied(nn)
    before = snapshot(model)
    g = mx.grad(lambda p, x: functional_call(model, p, x).sum())(model.trainable_parameters(), X)
    assert_untouched(model, before)
    theirs = tied(mnn)
    _, tg = mnn.value_and_grad(theirs, lambda x: theirs(x).sum())(X)
    for (k, a), (k2, b) in zip(tree_flatten(g), tree_flatten(tg)):
        assert k == k2
        close(a, b)
    close(g["layers"][0]["weight"], mx.zeros((2, 2)))
