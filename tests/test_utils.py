"""Differential tests of :mod:`funcnn.utils` against :mod:`mlx.nn.utils`.

Each helper is run next to its mlx.nn twin on the same inputs and the results
compared (structure, node types, dtypes, values, and for the distributed
helpers the sequence of ``all_sum`` calls).  Where funcnn deliberately
differs (node types, ``None`` leaves, the stream on the mixed-dtype path), the
test asserts both what mlx.nn does and what funcnn does instead.

More than one process is simulated without processes: a fake group reports
``size() == 2`` and ``mx.distributed.all_sum`` (which both libraries look up
at call time) is replaced by a function that adds what the other rank holds.
"""

from __future__ import annotations

import ast
import functools
import math
from collections import OrderedDict
from pathlib import Path

import funcnn as nn  # first: see tests/conftest.py

import mlx.core as mx
import mlx.nn as mnn  # the oracle
import mlx.nn.utils as mutils
import pytest
from mlx.utils import tree_flatten as mlx_flatten
from mlx.utils import tree_unflatten as mlx_unflatten

from funcnn import utils as fu
from funcnn.tree import tree_map_with_path, tree_partition

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------


def describe(x):
    """A comparable description keeping node types, dtypes and values."""
    if isinstance(x, mx.array):
        return ("array", str(x.dtype), tuple(x.shape), x.tolist())
    if isinstance(x, OrderedDict):
        return ("OrderedDict", [(k, describe(v)) for k, v in x.items()])
    if isinstance(x, dict):
        return ("dict", [(k, describe(v)) for k, v in x.items()])
    if isinstance(x, list):
        return ("list", [describe(v) for v in x])
    if isinstance(x, tuple):
        return ("tuple", [describe(v) for v in x])
    return x


def leaves_described(tree):
    """``(dotted key, description)`` of every leaf: values without node types."""
    return [(k, describe(v)) for k, v in mlx_flatten(tree)]


def small_net(ns):
    return ns.Sequential(ns.Linear(3, 4), ns.ReLU(), ns.Linear(4, 2))


def twin_nets():
    """A funcnn net and an mlx.nn net holding the same parameters."""
    ours, theirs = small_net(nn), small_net(mnn)
    theirs.update(mlx_unflatten(mlx_flatten(ours.parameters())))
    return ours, theirs


X = mx.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [-2.0, 1.0, 0.5]])
Y = mx.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])


def mse(model, x=X, y=Y):
    return (model(x) - y).square().mean()


class FakeGroup:
    """Stands in for a ``mx.distributed.Group`` of ``n`` processes (this is rank 0)."""

    def __init__(self, n: int = 2):
        self.n = n

    def size(self) -> int:
        return self.n

    def rank(self) -> int:
        return 0


def peer(x):
    """What every simulated peer holds where this rank holds ``x`` (elementwise,
    so bucketing cannot change the sums)."""
    return 2 * x + 1


@pytest.fixture
def ring(monkeypatch):
    """Replace ``mx.distributed.all_sum``; returns the list of calls it received."""
    calls = []

    def all_sum(x, *, group=None, stream=None):
        x = x if isinstance(x, mx.array) else mx.array(x)  # TypeError on None, as MLX
        calls.append({"shape": tuple(x.shape), "dtype": x.dtype, "group": group, "stream": stream})
        n = group.size() if group is not None else 1
        return x + (n - 1) * peer(x)

    monkeypatch.setattr(mx.distributed, "all_sum", all_sum)
    return calls


def run(calls, fn, *args, **kwargs):
    """``(result, calls made)``, emptying the shared call list first."""
    calls.clear()
    result = fn(*args, **kwargs)
    made = list(calls)
    calls.clear()
    return result, made


def call_shapes(calls):
    return [(c["shape"], c["dtype"]) for c in calls]


def expected_average(x, n=2):
    return (x + (n - 1) * peer(x)) / n


def grad_tree():
    """A nested float32 tree: 6 arrays of 48, 16, 32, 8, 60 and 4 bytes."""
    return {
        "layers": [
            {"weight": mx.arange(12, dtype=mx.float32).reshape(4, 3), "bias": mx.ones(4)},
            {"weight": mx.full((2, 4), -0.5), "bias": mx.array([3.0, -3.0])},
        ],
        "embedding": {"weight": mx.linspace(-1, 1, 15).reshape(5, 3)},
        "scale": mx.array(0.25),
    }


# ----------------------------------------------------------------------
# The module itself
# ----------------------------------------------------------------------


def test_public_names_are_those_of_mlx_nn_utils():
    theirs = {
        name
        for name, value in vars(mutils).items()
        if getattr(value, "__module__", None) == "mlx.nn.utils" and not name.startswith("_")
    }
    ours = {
        name
        for name, value in vars(fu).items()
        if callable(value) and getattr(value, "__module__", None) == "funcnn.utils"
        and not name.startswith("_")
    }
    assert sorted(fu.__all__) == sorted(theirs) == sorted(ours)
    assert all(">>>" in (getattr(fu, name).__doc__ or "") for name in fu.__all__)


def test_imports_only_mlx_core_and_funcnn_tree():
    tree = ast.parse((ROOT / "funcnn" / "utils.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            # A relative ``from .tree import`` counts as funcnn.tree.
            imported.add(("funcnn." if node.level else "") + (node.module or ""))
    stdlib = {"__future__", "functools", "itertools", "collections.abc", "typing"}
    assert imported - stdlib == {"mlx.core", "funcnn.tree"}


# ----------------------------------------------------------------------
# value_and_grad
# ----------------------------------------------------------------------


def test_value_and_grad_matches_mlx():
    ours, theirs = twin_nets()
    value, grads = fu.value_and_grad(ours, lambda: mse(ours))()
    value_m, grads_m = mnn.value_and_grad(theirs, lambda: mse(theirs))()
    assert describe(value) == describe(value_m)
    assert describe(grads) == describe(grads_m)
    assert grads["layers"][1] == {}  # the ReLU's placeholder, as in mlx.nn


def test_value_and_grad_frozen_layers_aux_and_kwargs():
    ours, theirs = twin_nets()
    ours.layers[0].freeze()
    theirs.layers[0].freeze()

    def loss(model, x, *, y):
        return mse(model, x, y), ("aux", 3)

    (v, aux), g = fu.value_and_grad(ours, functools.partial(loss, ours))(X, y=Y)
    (vm, auxm), gm = mnn.value_and_grad(theirs, functools.partial(loss, theirs))(X, y=Y)
    assert aux == auxm == ("aux", 3)
    assert describe((v, g)) == describe((vm, gm))
    assert g["layers"][0] == {}


def test_value_and_grad_all_frozen_raises_as_mlx():
    ours, theirs = twin_nets()
    ours.freeze()
    theirs.freeze()
    with pytest.raises(ValueError) as ours_err:
        fu.value_and_grad(ours, lambda: mse(ours))()
    with pytest.raises(ValueError) as theirs_err:
        mnn.value_and_grad(theirs, lambda: mse(theirs))()
    assert str(ours_err.value) == str(theirs_err.value)


def test_value_and_grad_wraps_fn():
    model = nn.Linear(2, 1)

    def my_loss(x):
        """Doc of my_loss."""
        return model(x).sum()

    wrapped = fu.value_and_grad(model, my_loss)
    assert (wrapped.__name__, wrapped.__doc__, wrapped.__wrapped__) == (
        "my_loss",
        "Doc of my_loss.",
        my_loss,
    )


def test_value_and_grad_accepts_an_mlx_nn_model():
    # Only trainable_parameters/update are used, so mlx.nn modules work too.
    _, theirs = twin_nets()
    ours_on_mlx = fu.value_and_grad(theirs, lambda: mse(theirs))()
    oracle = mnn.value_and_grad(theirs, lambda: mse(theirs))()
    assert describe(ours_on_mlx) == describe(oracle)


# ----------------------------------------------------------------------
# checkpoint
# ----------------------------------------------------------------------


@pytest.mark.parametrize("frozen", [False, True])
def test_checkpoint_parameter_grads_match_plain_and_mlx(frozen):
    ours, theirs = twin_nets()
    if frozen:
        ours.layers[2].freeze(keys="bias")
        theirs.layers[2].freeze(keys="bias")
    ck, ck_m = fu.checkpoint(ours), mutils.checkpoint(theirs)

    def ck_loss(x):
        return (ck(x) - Y).square().mean()

    def ck_loss_m(x):
        return (ck_m(x) - Y).square().mean()

    plain = fu.value_and_grad(ours, lambda x: mse(ours, x))(X)
    checkpointed = fu.value_and_grad(ours, ck_loss)(X)
    oracle = mnn.value_and_grad(theirs, ck_loss_m)(X)
    assert describe(checkpointed) == describe(oracle)
    for (k, a), (k2, b) in zip(mlx_flatten(checkpointed), mlx_flatten(plain)):
        assert k == k2 and mx.allclose(a, b, rtol=1e-6, atol=1e-7).item(), k
    assert ("bias" in checkpointed[1]["layers"][2]) is not frozen


def test_checkpoint_input_grads_match_plain_and_mlx():
    ours, theirs = twin_nets()
    ck, ck_m = fu.checkpoint(ours), mutils.checkpoint(theirs)
    g = mx.grad(lambda x: ck(x).square().sum())(X)
    g_plain = mx.grad(lambda x: ours(x).square().sum())(X)
    g_m = mx.grad(lambda x: ck_m(x).square().sum())(X)
    assert describe(g) == describe(g_m)
    assert mx.allclose(g, g_plain, rtol=1e-6, atol=1e-7).item()
    assert describe(ck(X)) == describe(ours(X))


def test_checkpoint_explicit_fn_with_kwargs():
    ours, theirs = twin_nets()

    def scaled(model):
        def fn(x, *, scale):
            """Scaled forward."""
            return model(x) * scale

        return fn

    fn = scaled(ours)
    ck = fu.checkpoint(ours, fn)
    ck_m = mutils.checkpoint(theirs, scaled(theirs))
    v, g = fu.value_and_grad(ours, lambda: ck(X, scale=3.0).sum())()
    vm, gm = mnn.value_and_grad(theirs, lambda: ck_m(X, scale=3.0).sum())()
    assert describe((v, g)) == describe((vm, gm))
    assert math.isclose(v.item(), 3.0 * ours(X).sum().item(), rel_tol=1e-6)
    assert (ck.__name__, ck.__doc__, ck.__wrapped__) == ("fn", "Scaled forward.", fn)


def test_checkpoint_uses_mx_checkpoint(monkeypatch):
    seen = []
    real = mx.checkpoint

    def spy(f):
        seen.append(f)
        return real(f)

    monkeypatch.setattr(mx, "checkpoint", spy)
    model = nn.Linear(3, 2)
    ck = fu.checkpoint(model)
    assert len(seen) == 1
    assert describe(ck(X)) == describe(model(X))


@pytest.mark.parametrize("ns", [nn, mnn], ids=["funcnn", "mlx.nn"])
def test_checkpoint_defaults_to_the_module_and_sees_a_later_call_patch(ns):
    make = fu.checkpoint if ns is nn else mutils.checkpoint

    class Doubled(ns.Linear):
        """A Linear whose call is patched after checkpointing."""

    model = Doubled(3, 2)
    ck = make(model)
    before = model(X)
    Doubled.__call__ = lambda self, x: 2 * ns.Linear.__call__(self, x)
    assert mx.allclose(ck(X), 2 * before).item()
    assert ck.__wrapped__ is model
    assert ck.__doc__ == Doubled.__doc__


# ----------------------------------------------------------------------
# average_gradients
# ----------------------------------------------------------------------


@pytest.mark.parametrize("all_reduce_size", [1, 40, 100, 32 * 1024**2, 0, -5])
def test_average_matches_mlx_call_for_call(ring, all_reduce_size):
    ours, ours_calls = run(ring, fu.average_gradients, grad_tree(), FakeGroup(), all_reduce_size)
    theirs, their_calls = run(
        ring, mnn.average_gradients, grad_tree(), FakeGroup(), all_reduce_size
    )
    assert describe(ours) == describe(theirs)
    assert call_shapes(ours_calls) == call_shapes(their_calls)
    expected = [(k, describe(expected_average(v))) for k, v in mlx_flatten(grad_tree())]
    assert leaves_described(ours) == expected


def test_average_bucket_layout():
    # 48, 16, 32, 8, 60, 4 bytes; a bucket closes once it reaches the limit.
    tree = grad_tree()
    sizes = [v.size for _, v in mlx_flatten(tree)]
    assert fu._buckets(sizes, 4, 40) == [[0], [1, 2], [3, 4], [5]]
    assert fu._buckets(sizes, 4, 1) == [[i] for i in range(6)]
    assert fu._buckets(sizes, 4, 10**9) == [list(range(6))]
    assert fu._buckets([], 4, 40) == []


@pytest.mark.parametrize("all_reduce_size", [40, 0])
def test_average_bucketing_sends_the_expected_messages(ring, all_reduce_size):
    _, calls = run(ring, fu.average_gradients, grad_tree(), FakeGroup(), all_reduce_size)
    sizes = [math.prod(c["shape"]) for c in calls]
    assert sizes == ([12, 12, 17, 1] if all_reduce_size > 0 else [12, 4, 8, 2, 15, 1])


def test_average_over_three_processes(ring):
    ours, _ = run(ring, fu.average_gradients, grad_tree(), FakeGroup(3), 64)
    theirs, _ = run(ring, mnn.average_gradients, grad_tree(), FakeGroup(3), 64)
    assert describe(ours) == describe(theirs)
    expected = [(k, describe(expected_average(v, 3))) for k, v in mlx_flatten(grad_tree())]
    assert leaves_described(ours) == expected


def mixed_tree():
    return {
        "a": mx.array([1.0, 2.0, 3.0]),
        "b": [mx.array([0.5, -0.5], dtype=mx.float16), mx.array([[4.0]], dtype=mx.bfloat16)],
        "c": {"steps": mx.array([3, 5], dtype=mx.int32)},
    }


@pytest.mark.parametrize("all_reduce_size", [1, 32 * 1024**2, 0])
def test_average_mixed_dtypes_reduce_array_by_array_as_mlx(ring, all_reduce_size):
    ours, ours_calls = run(ring, fu.average_gradients, mixed_tree(), FakeGroup(), all_reduce_size)
    theirs, their_calls = run(
        ring, mnn.average_gradients, mixed_tree(), FakeGroup(), all_reduce_size
    )
    assert describe(ours) == describe(theirs)
    assert call_shapes(ours_calls) == call_shapes(their_calls)
    assert len(ours_calls) == 4
    assert ours["c"]["steps"].dtype == mx.float32  # integer sums / N, as in MLX


def test_average_keeps_the_stream_on_the_mixed_dtype_path(ring):
    stream = mx.new_stream(mx.cpu)
    ours, ours_calls = run(
        ring, fu.average_gradients, mixed_tree(), FakeGroup(), communication_stream=stream
    )
    theirs, their_calls = run(
        ring, mnn.average_gradients, mixed_tree(), FakeGroup(), communication_stream=stream
    )
    assert describe(ours) == describe(theirs)
    assert [c["stream"] for c in ours_calls] == [stream] * 4
    assert [c["stream"] for c in their_calls] == [None] * 4  # mlx.nn drops it here
    # On the bucketed and per-array paths both pass it.
    for size in (32 * 1024**2, 0):
        for fn in (fu.average_gradients, mnn.average_gradients):
            _, calls = run(ring, fn, grad_tree(), FakeGroup(), size, stream)
            assert calls and all(c["stream"] is stream for c in calls)


def test_average_passes_the_group_and_defaults_to_init(ring, monkeypatch):
    group = FakeGroup()
    monkeypatch.setattr(mx.distributed, "init", lambda *a, **k: group)
    for fn in (fu.average_gradients, mnn.average_gradients):
        _, calls = run(ring, fn, grad_tree())
        assert len(calls) == 1 and calls[0]["group"] is group


def odd_tree():
    return {
        "pair": (mx.array([1.0, 2.0]), mx.zeros((2, 2))),
        "ordered": OrderedDict(x=mx.ones(1)),
        "empty": {},
        "none_yet": [],
        "zero_size": mx.zeros((0, 3)),
    }


@pytest.mark.parametrize("all_reduce_size", [1, 32 * 1024**2, 0])
def test_average_keeps_node_types_where_mlx_does_not(ring, all_reduce_size):
    tree = odd_tree()
    ours, ours_calls = run(ring, fu.average_gradients, tree, FakeGroup(), all_reduce_size)
    theirs, their_calls = run(ring, mnn.average_gradients, tree, FakeGroup(), all_reduce_size)
    assert call_shapes(ours_calls) == call_shapes(their_calls)
    assert leaves_described(ours) == leaves_described(theirs)
    assert [type(ours[k]) for k in tree] == [tuple, OrderedDict, dict, list, mx.array]
    assert ours["empty"] == {} and ours["none_yet"] == []
    if all_reduce_size > 0:
        # mlx.nn rebuilds from dotted keys: tuples become lists, dict
        # subclasses plain dicts, empty containers vanish.
        assert list(theirs) == ["pair", "ordered", "zero_size"]
        assert type(theirs["pair"]) is list and type(theirs["ordered"]) is dict
    else:
        # mlx.utils.tree_map keeps tuples and empty containers, not OrderedDict.
        assert type(theirs["pair"]) is tuple and type(theirs["ordered"]) is dict


def frozen_grads():
    """Gradients of a pure parameter tree with the first layer frozen: ``None`` there."""
    params = grad_tree()
    mask = tree_map_with_path(lambda path, _: not path.startswith("layers.0"), params)
    trainable, _ = tree_partition(params, mask)
    return trainable


@pytest.mark.parametrize("all_reduce_size", [1, 40, 32 * 1024**2, 0])
def test_average_passes_none_leaves_through(ring, all_reduce_size):
    grads = frozen_grads()
    assert grads["layers"][0] == {"weight": None, "bias": None}
    with pytest.raises((AttributeError, TypeError)):  # mlx.nn crashes on None
        mnn.average_gradients(grads, FakeGroup(), all_reduce_size)
    ours, ours_calls = run(ring, fu.average_gradients, grads, FakeGroup(), all_reduce_size)
    assert ours["layers"][0] == {"weight": None, "bias": None}
    # The rest is exactly what mlx.nn gives for the tree without the frozen layer.
    rest = {**grads, "layers": [{}, grads["layers"][1]]}
    theirs, their_calls = run(ring, mnn.average_gradients, rest, FakeGroup(), all_reduce_size)
    assert call_shapes(ours_calls) == call_shapes(their_calls)
    assert leaves_described({**ours, "layers": ours["layers"][1:]}) == leaves_described(
        {**theirs, "layers": theirs["layers"][1:]}
    )


@pytest.mark.parametrize("all_reduce_size", [32 * 1024**2, 0])
def test_average_of_nothing_sends_nothing(ring, all_reduce_size):
    nothing = {"a": None, "b": [None, {"c": None}]}
    out, calls = run(ring, fu.average_gradients, nothing, FakeGroup(), all_reduce_size)
    assert calls == [] and describe(out) == describe(nothing)
    empty = {}
    theirs, _ = run(ring, mnn.average_gradients, empty, FakeGroup(), all_reduce_size)
    ours, calls = run(ring, fu.average_gradients, empty, FakeGroup(), all_reduce_size)
    assert calls == [] and ours == theirs == {}
    if all_reduce_size > 0:
        assert ours is empty and theirs is empty


def test_average_reduces_python_numbers_where_mlx_crashes(ring):
    tree = {"w": mx.array([1.0, 3.0]), "count": 4.0}
    with pytest.raises(AttributeError):
        mnn.average_gradients(tree, FakeGroup())
    ours, calls = run(ring, fu.average_gradients, tree, FakeGroup())
    assert len(calls) == 2
    assert ours["count"].item() == expected_average(mx.array(4.0)).item()
    assert ours["w"].tolist() == expected_average(tree["w"]).tolist()
    only_numbers, calls = run(ring, fu.average_gradients, [2.0, None], FakeGroup())
    assert len(calls) == 1 and only_numbers[1] is None
    assert only_numbers[0].item() == expected_average(mx.array(2.0)).item()


@pytest.mark.parametrize("group", [None, "init"])
def test_average_with_one_process_returns_the_same_object(group):
    group = mx.distributed.init() if group == "init" else group
    assert (group or mx.distributed.init()).size() == 1
    for tree in (grad_tree(), frozen_grads(), mixed_tree()):
        assert fu.average_gradients(tree, group) is tree
        assert fu.average_gradients(tree, group, all_reduce_size=0) is tree
        assert mnn.average_gradients(tree, group) is tree


def rank_grads(rank):
    """Rank ``rank``'s gradients: the model on its half of a batch of 6."""
    mx.random.seed(0)
    model = small_net(nn)
    x = mx.random.normal((6, 3), key=mx.random.key(1))
    y = mx.random.normal((6, 2), key=mx.random.key(2))
    half = slice(3 * rank, 3 * rank + 3)
    full = fu.value_and_grad(model, lambda: mse(model, x, y))()[1]
    return fu.value_and_grad(model, lambda: mse(model, x[half], y[half]))()[1], full


@pytest.mark.parametrize("all_reduce_size", [0, 64, 32 * 1024**2])
def test_average_of_two_ranks_equals_the_full_batch_gradient(monkeypatch, all_reduce_size):
    # Rank 1 runs first and records what it sends; rank 0 then receives
    # those messages, call by call, as a two-process ring would deliver them.
    g0, full = rank_grads(0)
    g1, _ = rank_grads(1)
    sent = []

    def record(x, *, group=None, stream=None):
        sent.append(x)
        return x + x  # rank 1's own result is not checked

    monkeypatch.setattr(mx.distributed, "all_sum", record)
    fu.average_gradients(g1, FakeGroup(), all_reduce_size)
    inbox = iter(sent)
    monkeypatch.setattr(mx.distributed, "all_sum", lambda x, **_: x + next(inbox))
    averaged = fu.average_gradients(g0, FakeGroup(), all_reduce_size)
    assert next(inbox, None) is None
    assert [k for k, _ in mlx_flatten(averaged)] == [k for k, _ in mlx_flatten(full)]
    for (k, a), (_, b), (_, c), (_, f) in zip(
        mlx_flatten(averaged), mlx_flatten(g0), mlx_flatten(g1), mlx_flatten(full)
    ):
        assert mx.array_equal(a, (b + c) / 2).item(), k
        assert mx.allclose(a, f, rtol=1e-5, atol=1e-6).item(), k
    assert averaged["layers"][1] == {}


# ----------------------------------------------------------------------
# clip_grad_norm_sharded
# ----------------------------------------------------------------------


def local_norm(tree):
    return math.sqrt(sum((v.astype(mx.float32) ** 2).sum().item() for _, v in mlx_flatten(tree)))


@pytest.mark.parametrize("max_norm", [0.1, 1e6])
def test_clip_with_one_process_is_local_clipping_as_mlx(max_norm):
    tree = grad_tree()
    clipped, norm = fu.clip_grad_norm_sharded(tree, max_norm)
    clipped_m, norm_m = mutils.clip_grad_norm_sharded(tree, max_norm)
    assert describe((clipped, norm)) == describe((clipped_m, norm_m))
    assert math.isclose(norm.item(), local_norm(tree), rel_tol=1e-6)
    assert math.isclose(local_norm(clipped), min(max_norm, local_norm(tree)), rel_tol=1e-5)
    if max_norm > norm.item():
        assert leaves_described(clipped) == leaves_described(tree)


def test_clip_sums_squared_norms_over_the_group(ring):
    group = FakeGroup()
    (ours, norm), calls = run(ring, fu.clip_grad_norm_sharded, grad_tree(), 1.0, group)
    (theirs, norm_m), their_calls = run(
        ring, mutils.clip_grad_norm_sharded, grad_tree(), 1.0, group
    )
    assert describe((ours, norm)) == describe((theirs, norm_m))
    assert call_shapes(calls) == call_shapes(their_calls) == [((), mx.float32)]
    assert calls[0]["group"] is group
    local_sq = local_norm(grad_tree()) ** 2
    global_sq = local_sq + peer(mx.array(local_sq)).item()  # this rank + the simulated one
    assert math.isclose(norm.item(), math.sqrt(global_sq), rel_tol=1e-6)


def test_clip_float16_and_tuples_as_mlx():
    tree = {"a": (mx.array([300.0, -400.0], dtype=mx.float16), mx.ones(3, dtype=mx.float16))}
    ours = fu.clip_grad_norm_sharded(tree, 2.0)
    theirs = mutils.clip_grad_norm_sharded(tree, 2.0)
    assert describe(ours) == describe(theirs)
    assert type(ours[0]["a"]) is tuple and ours[0]["a"][0].dtype == mx.float16


def test_clip_skips_none_leaves_where_mlx_crashes():
    grads = frozen_grads()
    with pytest.raises(AttributeError):
        mutils.clip_grad_norm_sharded(grads, 1.0)
    clipped, norm = fu.clip_grad_norm_sharded(grads, 1.0)
    rest = {**grads, "layers": [{}, grads["layers"][1]]}
    clipped_m, norm_m = mutils.clip_grad_norm_sharded(rest, 1.0)
    assert describe(norm) == describe(norm_m)
    assert clipped["layers"][0] == {"weight": None, "bias": None}
    assert describe({**clipped, "layers": clipped["layers"][1:]}) == describe(
        {**clipped_m, "layers": clipped_m["layers"][1:]}
    )


def test_clip_keeps_dict_subclasses_where_mlx_does_not():
    tree = OrderedDict(w=mx.array([3.0, 4.0]))
    ours, _ = fu.clip_grad_norm_sharded(tree, 1.0)
    theirs, _ = mutils.clip_grad_norm_sharded(tree, 1.0)
    assert type(ours) is OrderedDict and type(theirs) is dict
    assert ours["w"].tolist() == theirs["w"].tolist()


def test_clip_of_an_empty_tree_as_mlx():
    ours = fu.clip_grad_norm_sharded({}, 1.0)
    theirs = mutils.clip_grad_norm_sharded({}, 1.0)
    zero = ("array", "mlx.core.float32", (), 0.0)
    assert describe(ours) == describe(theirs) == ("tuple", [("dict", []), zero])
