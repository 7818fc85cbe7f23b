"""Differential tests of ``funcnn.Module`` against ``mlx.nn.Module``.

Every test builds the *same* structure with both namespaces (``funcnn`` and
``mlx.nn``, passed in as ``nn``), runs the identical code on both and compares
what comes out: flattened keys, array values and dtypes, trainable key sets,
``named_modules()`` paths and class names, exception types and messages.
Sections follow ``/work/shared/reference/mlx_nn_semantics.md`` (1.1-1.16, 3.1).

Where funcnn deliberately does better than mlx.nn (duplicate keys in
``load_weights``, ``pathlib.Path``, tuples of freeze keys, ``.npy`` files), the
test asserts funcnn's behaviour and, where it is cheap, that mlx.nn still has
the bug.
"""

from __future__ import annotations

import copy
import functools
import subprocess
import sys

import mlx.core as mx
import mlx.nn as mnn  # the oracle; the library itself never imports it
import mlx.optimizers as optim
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlx.utils import tree_flatten, tree_map_with_path

import funcnn as fnn

NAMESPACES = (fnn, mnn)
MODULE_TYPES = (fnn.Module, mnn.Module)


# ----------------------------------------------------------------------
# Differential helpers
# ----------------------------------------------------------------------


def describe(x):
    """A namespace-independent, comparable description of ``x``."""
    if isinstance(x, mx.array):
        return ("array", str(x.dtype), tuple(x.shape), x.tolist())
    if isinstance(x, MODULE_TYPES):
        return ("module", type(x).__name__, [(k, describe(v)) for k, v in x.items()])
    if isinstance(x, dict):
        return ("dict", [(k, describe(v)) for k, v in x.items()])
    if isinstance(x, list):
        return ("list", [describe(v) for v in x])
    if isinstance(x, tuple):
        return ("tuple", [describe(v) for v in x])
    if isinstance(x, (set, frozenset)):
        return ("set", sorted((describe(v) for v in x), key=repr))
    if isinstance(x, BaseException):
        return ("raised", type(x).__name__, str(x))
    if callable(x):
        return ("callable", getattr(x, "__name__", type(x).__name__))
    return x


def outcome(fn, *args, **kwargs):
    """``("ok", result)`` or the raised exception (described by type and message)."""
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as err:  # noqa: BLE001 - we compare whatever is raised
        return err


def both(fn, seed=0):
    """``[fn(funcnn), fn(mlx.nn)]``, each run after ``mx.random.seed(seed)``."""
    results = []
    for nn in NAMESPACES:
        mx.random.seed(seed)
        results.append(fn(nn))
    return results


def same(fn, seed=0):
    """Run ``fn`` with both namespaces, assert equal descriptions, return funcnn's result."""
    ours, theirs = both(fn, seed)
    assert describe(ours) == describe(theirs)
    return ours


def keys_of(tree, is_leaf=None):
    return [k for k, _ in tree_flatten(tree, is_leaf=is_leaf)]


def trainable_keys(model):
    return keys_of(model.trainable_parameters())


def no_grad_table(model):
    return [(k, type(m).__name__, sorted(m._no_grad, key=repr)) for k, m in model.named_modules()]


def module_paths(model):
    return [(k, type(m).__name__) for k, m in model.named_modules()]


def shapes(tree):
    return [(k, tuple(v.shape)) for k, v in tree_flatten(tree)]


def mlp3(nn):
    return nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), nn.Linear(3, 1, bias=False))


def assert_same_params(a, b):
    fa, fb = tree_flatten(a.parameters()), tree_flatten(b.parameters())
    assert [k for k, _ in fa] == [k for k, _ in fb]
    for (k, x), (_, y) in zip(fa, fb):
        assert x.dtype == y.dtype and x.shape == y.shape, k
        assert mx.array_equal(x, y).item(), k


def test_library_never_imports_mlx_nn():
    code = "import sys, funcnn, funcnn.module, funcnn.layers; print('mlx.nn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------
# 1.1 Attribute protocol
# ----------------------------------------------------------------------


def doc_model(nn):
    """The model of reference section 1.1."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = mx.zeros((2,))
            self._hidden = mx.ones((2,))
            self.n = 3
            self.t = (1, 2)
            self.l = [mx.ones((1,)), 5, "s"]
            self.d = {"a": mx.ones((1,)), "_b": mx.ones((1,)), "c": None}
            self.empty = []
            self.sub = nn.Linear(2, 2)

    return M()


def test_attribute_protocol_recorded_sequence():
    def run(nn):
        m = doc_model(nn)
        log = [list(m.keys()), ("n" in m, m.n, "n" in vars(m))]
        m.w = 7
        log.append(("w" in m, m.w, vars(m).get("w")))
        m.w = mx.zeros((3,))
        log.append(("w" in m, "w" in vars(m), m.w.shape))
        m.foo = None
        log.append(("foo" in m, "foo" in vars(m), m.foo))
        m["x"] = None
        log.append(outcome(lambda: m.x))
        log.append(("x" in m, outcome(lambda: delattr(m, "x"))))
        del m.w
        log.append(("w" in m, outcome(lambda: m.w)))
        del m.n
        log.append(("n" in vars(m), outcome(lambda: m.n)))
        log.append(outcome(lambda: delattr(m, "nothing")))
        m.t2 = (mx.ones((1,)),)  # tuples are items
        m.sub = nn.ReLU()  # modules are dicts: items
        log.append(list(m.keys()))
        m.sub = None  # plain attribute, pops the item
        m.fn = len  # callables are plain attributes
        log.append((list(m.keys()), m.sub, m.fn is len))
        return log

    log = same(run)
    assert log[0] == ["w", "_hidden", "t", "l", "d", "empty", "sub"]
    assert log[2] == (False, 7, 7)
    assert log[3] == (True, False, (3,))
    assert log[4] == (False, True, None)
    assert isinstance(log[5], AttributeError)
    assert log[7][0] is False


def test_dict_gotchas():
    def run(nn):
        return [
            bool(nn.ReLU()),
            bool(nn.Linear(1, 1)),
            outcome(hash, nn.ReLU()),
            nn.ReLU() == nn.GELU(),
            nn.ReLU() == {},
            outcome(lambda: nn.Linear(2, 2) == nn.Linear(2, 2)),
            isinstance(nn.Linear(1, 1), dict),
        ]

    res = same(run)
    assert res[:2] == [False, True]
    assert str(res[2]) == "unhashable type: 'ReLU'"
    assert res[3] is True and res[4] is True
    assert isinstance(res[5], ValueError)


def test_training_is_read_only_and_module_not_callable():
    def run(nn):
        lin = nn.Linear(1, 1)
        return [
            outcome(setattr, lin, "training", False),
            lin.training,
            outcome(lambda: nn.Module()(mx.ones(1))),
        ]

    res = same(run)
    assert str(res[0]) == "property 'training' of 'Linear' object has no setter"
    assert str(res[2]) == "'Module' object is not callable"


def test_assigning_to_a_method_name():
    def run(nn):
        class S(nn.Module):
            def __init__(self):
                super().__init__()
                self.update = mx.ones((1,))

        class T(nn.Module):
            def __init__(self):
                super().__init__()
                self["update"] = mx.ones((1,))

        t = T()
        return [outcome(S), keys_of(t.parameters()), callable(t.update), t.update.__name__]

    res = same(run)
    assert str(res[0]) == "'S' object has no attribute 'update'"
    assert res[1:] == [["update"], True, "update"]


def test_missing_super_init():
    def run(nn):
        class NoInit(nn.Module):
            def __init__(self):
                self.w = mx.ones((2,))
                self.sub = nn.Linear(1, 1)

        m = NoInit()
        return [
            keys_of(m.parameters()),
            outcome(m.trainable_parameters),
            outcome(m.freeze),
            outcome(m.unfreeze, keys="w"),
            outcome(lambda: m.training),
            outcome(m.train),
            [k for k, _ in m.named_modules()],
        ]

    res = same(run)
    assert res[0] == ["w", "sub.weight", "sub.bias"]
    assert str(res[1]) == "'NoInit' object has no attribute '_no_grad'"
    assert str(res[4]) == "'NoInit' object has no attribute '_training'"


def test_deepcopy():
    def run(nn):
        m = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
        m.freeze(keys="bias")
        m.layers[2].eval()
        c = copy.deepcopy(m)
        x = mx.ones((1, 2))
        return [
            c,
            type(c).__name__,
            c.layers[0].weight is m.layers[0].weight,
            c.layers[0]._no_grad == m.layers[0]._no_grad,
            c.layers[0]._no_grad is m.layers[0]._no_grad,
            trainable_keys(c),
            [x.training for x in c.modules()],
            mx.array_equal(c(x), m(x)).item(),
        ]

    res = same(run)
    assert res[2:] == [
        False,
        True,
        False,
        ["layers.0.weight", "layers.2.weight"],
        [True, False, True, True],
        True,
    ]


# ----------------------------------------------------------------------
# 1.2 What counts as a parameter
# ----------------------------------------------------------------------


def test_what_counts_as_a_parameter():
    def run(nn):
        m = doc_model(nn)
        p = m.parameters()
        return [keys_of(p), p, list(p), p["l"], p["d"], p["empty"]]

    res = same(run)
    assert res[0] == ["w", "l.0", "d.a", "d._b", "sub.weight", "sub.bias"]
    assert res[2] == ["w", "l", "d", "empty", "sub"]  # _hidden and the tuple are dropped
    assert res[3][1:] == [{}, {}]
    assert res[4]["c"] == {} and "_b" in res[4]
    assert res[5] == []


def test_tuples_are_invisible():
    def run(nn):
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.t = (nn.Linear(1, 1),)

        m = M()
        return [m.parameters(), m.children(), m.leaf_modules(), module_paths(m), list(m.state)]

    res = same(run)
    assert res[:4] == [{}, {}, {}, [("", "M")]]
    assert res[4] == ["t"]


def test_callables_and_parameterless_layers_are_placeholders():
    def run(nn):
        m = nn.Sequential(mx.sigmoid, nn.Linear(1, 1), nn.ReLU(), [], nn.relu)
        return [m.parameters(), keys_of(m.parameters()), m.children()]

    res = same(run)
    p = res[0]["layers"]
    assert p[0] == {} and p[2] == {} and p[3] == [] and p[4] == {}
    assert res[1] == ["layers.1.weight", "layers.1.bias"]


def test_parameter_order_is_insertion_order():
    def run(nn):
        return [
            list(nn.GroupNorm(2, 4).parameters()),
            list(nn.LayerNorm(4).parameters()),
            list(nn.Conv2d(2, 2, 3).keys()),
            keys_of(nn.MultiHeadAttention(4, 2, bias=True).parameters()),
        ]

    res = same(run)
    assert res[0] == ["bias", "weight"]
    assert res[1] == ["weight", "bias"]


def test_shared_submodule_appears_under_every_path():
    def run(nn):
        class Tied(nn.Module):
            def __init__(self):
                super().__init__()
                lin = nn.Linear(2, 2)
                self.a = lin
                self.b = lin

        m = Tied()
        p = m.parameters()
        return [keys_of(p), p["a"]["weight"] is p["b"]["weight"], module_paths(m)]

    res = same(run)
    assert res == [["a.weight", "a.bias", "b.weight", "b.bias"], True, [("", "Tied"), ("b", "Linear"), ("a", "Linear")]]


# ----------------------------------------------------------------------
# 1.3 filter_and_map
# ----------------------------------------------------------------------


def test_filter_and_map_doc_examples():
    def run(nn):
        seq = nn.Sequential(nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 1))

        class Buf(nn.Module):
            def __init__(self):
                super().__init__()
                self._buf = mx.array([1, 1])
                self.w = mx.zeros((1,))
                self.sub = nn.Linear(1, 1)

        return [
            seq.filter_and_map(seq.valid_parameter_filter, map_fn=lambda x: x.shape),
            Buf().filter_and_map(lambda m, k, v: isinstance(v, mx.array) and k.startswith("_")),
        ]

    res = same(run)
    assert res[0] == {"layers": [{"weight": (1, 1), "bias": (1,)}, {}, {"weight": (1, 1), "bias": (1,)}]}
    assert list(res[1]) == ["_buf"]


def test_filter_and_map_sees_dotted_keys_and_map_fn_sees_leaves():
    def run(nn):
        m = doc_model(nn)
        seen, mapped = [], []

        def filt(owner, key, value):
            seen.append((type(owner).__name__, key, type(value).__name__))
            return nn.Module.valid_parameter_filter(owner, key, value)

        def fmap(x):
            mapped.append(describe(x))
            return "leaf"

        out = m.filter_and_map(filt, map_fn=fmap)
        return [out, seen, mapped]

    res = same(run)
    assert ("M", "d._b", "array") in res[1]
    assert ("M", "l.1", "int") in res[1]


def test_filter_and_map_custom_is_leaf_fn_and_unexpected_leaf():
    def run(nn):
        m = doc_model(nn)
        return [
            m.filter_and_map(
                m.valid_parameter_filter,
                map_fn=len,
                is_leaf_fn=lambda mod, k, v: not isinstance(v, nn.Module),
            ),
            m.filter_and_map(
                lambda mod, k, v: True,
                map_fn=lambda v: type(v).__name__,
                is_leaf_fn=lambda mod, k, v: not isinstance(v, (dict, list)),
            ),
            outcome(nn.Linear(1, 1).filter_and_map, lambda *a: True, is_leaf_fn=lambda *a: False),
        ]

    res = same(run)
    assert res[0] == {"w": 2, "l": 3, "d": 3, "empty": 0, "sub": {"weight": 2, "bias": 2}}
    assert res[1]["t"] == "tuple" and res[1]["_hidden"] == "array" and res[1]["sub"]["weight"] == "array"
    assert isinstance(res[2], RuntimeError)
    assert str(res[2]) == "Unexpected leaf found while traversing the module"


# ----------------------------------------------------------------------
# 1.4 parameters / trainable_parameters
# ----------------------------------------------------------------------


def test_parameters_are_new_containers_with_the_same_arrays():
    def run(nn):
        m = mlp3(nn)
        p, t = m.parameters(), m.trainable_parameters()
        same_objects = p["layers"][0]["weight"] is m.layers[0].weight and t["layers"][2]["weight"] is m.layers[2].weight
        new_containers = p["layers"] is not m.layers and type(p["layers"][0]) is dict
        p["layers"][0]["weight"] = mx.zeros((3, 2))
        p["layers"].append(1)
        m.freeze()
        return [same_objects, new_containers, len(m.layers), m.trainable_parameters(), keys_of(m.parameters())]

    res = same(run)
    assert res[:3] == [True, True, 3]
    assert res[3] == {"layers": [{}, {}, {}]}


# ----------------------------------------------------------------------
# 1.5 children / leaf_modules
# ----------------------------------------------------------------------


def test_children_keeps_placeholders():
    def run(nn):
        class Top(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = mx.ones((1,))
                self.a = nn.Linear(1, 1)
                self.b = [nn.ReLU(), nn.Linear(1, 1)]
                self.c = {"x": nn.GELU(), "y": mx.ones((1,))}
                self.ws = [mx.ones((1,))]

        m = Top()
        ch = m.children()
        return [
            ch,
            {k: describe(v)[0] for k, v in ch.items()},
            ch["a"] is m.a,
            nn.Linear(1, 1).children(),
            nn.Linear(1, 1).leaf_modules(),
            keys_of(ch, is_leaf=nn.Module.is_module),
        ]

    res = same(run)
    ch = res[0]
    assert list(ch) == ["a", "b", "c", "ws"]
    assert ch["c"]["y"] == {} and ch["ws"] == [{}]
    assert res[2:5] == [True, {}, {}]
    assert res[5] == ["a", "b.0", "b.1", "c.x"]


def test_leaf_modules_paths():
    def run(nn):
        m = nn.Sequential(nn.Linear(1, 1), [nn.ReLU(), {"k": nn.Linear(1, 1)}])
        return keys_of(m.leaf_modules(), is_leaf=nn.Module.is_module)

    assert same(run) == ["layers.0", "layers.1.0", "layers.1.1.k"]


def test_leaf_modules_upstream_nested_sequential_with_function():
    def run(nn):
        m = nn.Sequential(
            nn.Sequential(nn.Linear(2, 10), nn.relu),
            nn.Sequential(nn.Linear(10, 10), nn.ReLU()),
            nn.Linear(10, 1),
            mx.sigmoid,
        )
        children = m.children()
        leaves = tree_flatten(m.leaf_modules(), is_leaf=nn.Module.is_module)
        idents = [
            leaves[0][1] is m.layers[0].layers[0],
            leaves[1][1] is m.layers[1].layers[0],
            leaves[2][1] is m.layers[1].layers[1],
            leaves[3][1] is m.layers[2],
        ]
        m.eval()
        return [
            len(children),
            len(children["layers"]),
            children["layers"][3],
            len(tree_flatten(children, is_leaf=nn.Module.is_module)),
            [k for k, _ in leaves],
            idents,
            [x.training for x in m.modules()],
        ]

    res = same(run)
    assert res[:4] == [1, 4, {}, 3]
    assert res[4] == ["layers.0.layers.0", "layers.1.layers.0", "layers.1.layers.1", "layers.2"]
    assert res[5] == [True] * 4
    assert not any(res[6])


# ----------------------------------------------------------------------
# 1.6 update
# ----------------------------------------------------------------------


def update_model(nn):
    class U(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = [nn.Linear(2, 3), nn.Linear(3, 3), nn.Linear(3, 1)]
            self._priv = mx.zeros((2,))
            self.n = 3
            self.t = (1, 2)
            self.ta = (mx.ones((1,)),)
            self.l = [mx.ones((1,)), 5, "s"]

    return U()


A = mx.full((1,), 4.0)
UPDATE_CASES = {
    "unknown_key": lambda nn, m: m.update({"foo": A}),
    "unknown_nested_key": lambda nn, m: m.update({"layers": [{"weight2": A}]}),
    "int_for_array": lambda nn, m: m.update({"layers": [{"bias": 3}]}),
    "out_of_bounds": lambda nn, m: m.update({"layers": [{}, {}, {}, {}]}),
    "out_of_bounds_lenient": lambda nn, m: m.update({"layers": [{}, {}, {}, {}]}, strict=False),
    "wrong_shape_accepted": lambda nn, m: m.update({"layers": [{"bias": mx.zeros((7,))}]}),
    "wrong_dtype_accepted": lambda nn, m: m.update({"layers": [{"bias": mx.zeros((3,), mx.int32)}]}),
    "array_for_module": lambda nn, m: m.update({"layers": [A]}),
    "array_for_module_lenient": lambda nn, m: m.update({"layers": [A]}, strict=False),
    "array_as_tree": lambda nn, m: m.update(A),
    "array_as_tree_lenient": lambda nn, m: m.update(A, strict=False),
    "dict_replaces_array_lenient": lambda nn, m: m.update({"layers": [{"bias": {"x": 1}}]}, strict=False),
    "private_item": lambda nn, m: m.update({"_priv": A}),
    "plain_attribute": lambda nn, m: m.update({"n": A}),
    "tuple_of_ints": lambda nn, m: m.update({"t": [A]}),
    "tuple_of_arrays": lambda nn, m: m.update({"ta": [A]}),
    "list_non_array_entries": lambda nn, m: m.update({"l": [A, {}, {}]}),
    "list_int_entry_given_list": lambda nn, m: m.update({"l": [A, [A]]}),
    "list_str_entry": lambda nn, m: m.update({"l": [{}, {}, [1]]}),
    "list_str_entry_lenient": lambda nn, m: m.update({"l": [{}, {}, [1]]}, strict=False),
    "empty_tree": lambda nn, m: m.update({}),
    "placeholders": lambda nn, m: m.update({"layers": [{}, {"weight": mx.zeros((3, 3))}, {}]}),
    "list_at_top": lambda nn, m: m.update([A]),
    "unknown_lenient": lambda nn, m: m.update({"foo": A, "layers": [{"nope": A, "bias": mx.ones((3,))}]}, strict=False),
    "from_other_module": lambda nn, m: m.update({"layers": [{}, {}, nn.Linear(3, 1)]}),
    "module_as_tree": lambda nn, m: m.layers[2].update(nn.Linear(3, 1)) is m.layers[2] and m,
    "module_for_array_lenient": lambda nn, m: m.update({"layers": [{"bias": nn.Linear(1, 1)}]}, strict=False),
}


@pytest.mark.parametrize("case", list(UPDATE_CASES))
def test_update_edge_cases(case):
    def run(nn):
        m = update_model(nn)
        res = outcome(UPDATE_CASES[case], nn, m)
        returned_self = isinstance(res, tuple) and res[1] is m
        return [res if not isinstance(res, tuple) else "ok", returned_self, m.state, keys_of(m.parameters())]

    res = same(run)
    expected_errors = {
        "unknown_key": 'Module does not have parameter named "foo".',
        "unknown_nested_key": 'Module does not have parameter named "weight2".',
        "int_for_array": "Received invalid type: int.",
        "out_of_bounds": "List index 3 is out of bounds for destination of length 3.",
        "array_for_module": "Received invalid type: array.",
        "array_as_tree": "Received invalid type: array.",
        "plain_attribute": 'Module does not have parameter named "n".',
        "tuple_of_ints": "Received invalid type: array.",
        "tuple_of_arrays": "'tuple' object does not support item assignment",
    }
    if case in expected_errors:
        assert str(res[0]) == expected_errors[case]
    elif case not in ("list_int_entry_given_list", "list_str_entry", "list_at_top"):
        assert res[:2] == ["ok", True], res[0]


def test_update_values_land_without_checks():
    def run(nn):
        m = update_model(nn)
        m.update({"layers": [{"bias": mx.zeros((7,))}, {}, {"bias": mx.zeros((1,), mx.int32)}], "_priv": A})
        m.update({"layers": [{}, {"bias": {"x": 1}}]}, strict=False)
        return [m.layers[0].bias.shape, m.layers[2].bias.dtype == mx.int32, m._priv is A, m.layers[1].bias]

    assert same(run) == [(7,), True, True, {"x": 1}]


# ----------------------------------------------------------------------
# 1.7 update_modules
# ----------------------------------------------------------------------

UPDATE_MODULES_CASES = {
    "replace_in_list": lambda nn, m: m.update_modules({"layers": [{}, nn.GELU(), {}]}),
    "array_for_module": lambda nn, m: m.update_modules({"layers": [A]}),
    "array_for_module_lenient": lambda nn, m: m.update_modules({"layers": [A]}, strict=False),
    "empty_module_for_array": lambda nn, m: m.update_modules({"layers": [{"weight": nn.ReLU()}]}),
    "linear_for_array": lambda nn, m: m.update_modules({"layers": [{"weight": nn.Linear(1, 1)}]}),
    "linear_for_array_lenient": lambda nn, m: m.update_modules({"layers": [{"weight": nn.Linear(1, 1)}]}, strict=False),
    "unknown_key": lambda nn, m: m.update_modules({"foo": nn.ReLU()}),
    "unknown_key_lenient": lambda nn, m: m.update_modules({"foo": nn.ReLU()}, strict=False),
    "out_of_bounds": lambda nn, m: m.update_modules({"layers": [{}, {}, {}, nn.ReLU()]}),
    "out_of_bounds_lenient": lambda nn, m: m.update_modules({"layers": [{}, {}, {}, nn.ReLU()]}, strict=False),
    "array_as_tree": lambda nn, m: m.update_modules(A),
    "placeholder_for_int": lambda nn, m: m.update_modules({"l": [{}, {}, {}]}),
    "module_for_int": lambda nn, m: m.update_modules({"l": [{}, nn.Linear(1, 1)]}),
    "module_for_tuple": lambda nn, m: m.update_modules({"t": nn.ReLU()}),
    "module_into_tuple": lambda nn, m: m.update_modules({"ta": [nn.Linear(1, 1)]}),
    "leaf_modules_roundtrip": lambda nn, m: m.update_modules(m.leaf_modules()),
    "module_for_private": lambda nn, m: m.update_modules({"_priv": nn.Linear(1, 1)}),
}


@pytest.mark.parametrize("case", list(UPDATE_MODULES_CASES))
def test_update_modules_edge_cases(case):
    def run(nn):
        m = update_model(nn)
        res = outcome(UPDATE_MODULES_CASES[case], nn, m)
        returned_self = isinstance(res, tuple) and res[1] is m
        return [res if not isinstance(res, tuple) else "ok", returned_self, m.state, module_paths(m)]

    res = same(run)
    expected_errors = {
        "array_for_module": "Received invalid type: array.",
        "linear_for_array": "Received invalid type: Linear.",
        "unknown_key": 'Module does not have sub-module named "foo".',
        "out_of_bounds": "List index 3 is out of bounds for destination of length 3.",
        "array_as_tree": "Received invalid type: array.",
        "module_for_int": "Received invalid type: Linear.",
        "module_for_private": "Received invalid type: Linear.",
    }
    if case in expected_errors:
        assert str(res[0]) == expected_errors[case]
    elif case not in ("module_into_tuple", "module_for_tuple"):
        assert res[:2] == ["ok", True], res[0]
    if case == "replace_in_list":
        assert res[3][2] == ("layers.1", "GELU")
    if case == "empty_module_for_array":  # the silent quirk: ignored even when strict
        assert isinstance(res[2].layers[0].weight, mx.array)


def test_update_modules_with_leaf_modules_always_works():
    def run(nn):
        out = []
        models = [
            nn.Sequential(nn.Sequential(nn.Linear(2, 2), nn.relu), nn.Sequential(nn.Linear(2, 2), nn.ReLU()), mx.sigmoid),
            update_model(nn),
            doc_model(nn),
            nn.MultiHeadAttention(4, 2),
        ]
        for m in models:
            before = module_paths(m)
            r = m.update_modules(m.leaf_modules())
            out.append((r is m, before == module_paths(m)))
        return out

    assert same(run) == [(True, True)] * 4


def test_update_modules_swaps_layers_like_quantize():
    def run(nn):
        m = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), [nn.Linear(4, 4), {"k": nn.Linear(4, 2)}])

        def swap(path, mod):
            if isinstance(mod, nn.Linear) and path != "layers.0":
                return nn.Embedding(3, 2)
            return mod

        m.update_modules(tree_map_with_path(swap, m.leaf_modules(), is_leaf=nn.Module.is_module))
        return [module_paths(m), keys_of(m.parameters()), repr(m)]

    res = same(run)
    assert ("layers.2.1.k", "Embedding") in res[0]


# ----------------------------------------------------------------------
# 1.8 apply
# ----------------------------------------------------------------------


def test_apply():
    def run(nn):
        lin = nn.Linear(2, 2)
        w = lin.weight
        r = lin.apply(lambda x: x + 1, filter_fn=lambda m, k, v: k == "bias")

        class P(nn.Module):
            def __init__(self):
                super().__init__()
                self._p = mx.ones((1,))
                self.w = mx.ones((1,))
                self.sub = nn.Linear(1, 1)

        p = P()
        p.sub.freeze()
        p.apply(lambda x: x * 0)
        q = P()
        q.freeze(keys="w", recurse=False)
        q.apply(lambda x: x * 0, filter_fn=nn.Module.trainable_parameter_filter)
        return [r is lin, lin.weight is w, lin, p, q, outcome(nn.Linear(1, 1).apply, lambda x: 3)]

    res = same(run)
    assert res[:2] == [True, True]
    assert str(res[5]) == "Received invalid type: int."


# ----------------------------------------------------------------------
# 1.9 apply_to_modules / modules / named_modules
# ----------------------------------------------------------------------


def test_traversal_order():
    def run(nn):
        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.Linear(1, 1)
                self.b = [nn.ReLU(), nn.Linear(1, 1)]
                self.c = {"x": nn.GELU()}

        class Top(nn.Module):
            def __init__(self):
                super().__init__()
                self.blk = Block()
                self.head = nn.Linear(1, 1)

        seq = nn.Sequential(nn.Linear(1, 1), nn.ReLU(), nn.GELU())
        top = Top()
        visited = []
        r = top.apply_to_modules(lambda k, m: visited.append((k, type(m).__name__)) or 42)
        return [
            [k for k, _ in seq.named_modules()],
            module_paths(top),
            visited,
            r is top,
            [type(m).__name__ for m in top.modules()],
            [m is n for m, (_, n) in zip(top.modules(), top.named_modules())],
        ]

    res = same(run)
    assert res[0] == ["", "layers.2", "layers.1", "layers.0"]
    assert [k for k, _ in res[1]] == ["", "head", "blk", "blk.c.x", "blk.b.1", "blk.b.0", "blk.a"]
    assert res[2] == res[1] and res[3] is True


# ----------------------------------------------------------------------
# 1.10 freeze / unfreeze
# ----------------------------------------------------------------------


def test_freeze_doc_examples():
    def run(nn):
        m = mlp3(nn)
        log = [m.freeze() is m, m.trainable_parameters(), no_grad_table(m)]
        m.unfreeze(keys="bias")
        log.append(trainable_keys(m))
        m.unfreeze()
        log.append(outcome(m.freeze, keys="nope", strict=True))
        log.append(no_grad_table(m))
        m.freeze(keys="nope")
        log.append(no_grad_table(m))
        log.append(outcome(m.freeze, keys="bias", strict=True, recurse=False))
        log.append(outcome(m.freeze, keys="bias", strict=True))
        log.append(trainable_keys(m))
        log.append(keys_of(m.parameters()))  # frozen arrays stay parameters
        log.append(outcome(m.unfreeze, keys="nope", strict=True, recurse=False))
        log.append(outcome(m.unfreeze, keys=["nope2"], strict=True))
        m.unfreeze()
        log.append(no_grad_table(m))
        return log

    log = same(run)
    assert log[1] == {"layers": [{}, {}, {}]}
    assert log[2] == [
        ("", "Sequential", []),
        ("layers.2", "Linear", ["weight"]),
        ("layers.1", "LayerNorm", ["bias", "weight"]),
        ("layers.0", "Linear", ["bias", "weight"]),
    ]
    assert log[3] == ["layers.0.bias", "layers.1.bias"]
    assert isinstance(log[4], KeyError) and log[4].args == ("Module doesn't contain member nope.",)
    assert all(ng == ["nope"] for _, _, ng in log[6])
    assert isinstance(log[7], KeyError)
    assert log[8][0] == "ok"
    assert log[9] == ["layers.0.weight", "layers.1.weight", "layers.2.weight"]
    assert log[10] == [
        "layers.0.weight",
        "layers.0.bias",
        "layers.1.weight",
        "layers.1.bias",
        "layers.2.weight",
    ]
    assert all(ng == [] for _, _, ng in log[13])


def test_freeze_list_and_dict_members():
    def run(nn):
        class W(nn.Module):
            def __init__(self):
                super().__init__()
                self.ws = [mx.ones((1,)), mx.ones((1,))]
                self.d = {"a": mx.ones((1,)), "b": mx.ones((1,))}
                self.sub = nn.Linear(1, 1)
                self._priv = mx.ones((1,))
                self.t = (1,)
                self.n = 1

        m = W()
        log = [set(m.freeze(recurse=False)._no_grad), m.trainable_parameters()]
        m.unfreeze()
        log.append(trainable_keys(m.freeze(keys="ws.1")))
        m.unfreeze()
        log.append(trainable_keys(m.freeze(keys="sub.weight")))  # dotted path through a submodule: no effect
        log.append(outcome(m.freeze, keys="_priv", strict=True))  # dict membership: private items pass
        log.append(outcome(m.freeze, keys="t", strict=True))  # tuple items pass
        log.append(outcome(m.freeze, keys="n", strict=True))  # plain attributes fail
        m.unfreeze()
        log.append(outcome(m.freeze, strict=True))  # keys=None + strict checks flattened names
        log.append(no_grad_table(m))
        return log

    log = same(run)
    assert log[0] == {"ws.0", "ws.1", "d.a", "d.b"}
    assert log[1] == {"ws": [{}, {}], "d": {"a": {}, "b": {}}, "sub": {"weight": log[1]["sub"]["weight"], "bias": log[1]["sub"]["bias"]}}
    assert log[2] == ["ws.0", "d.a", "d.b", "sub.weight", "sub.bias"]
    assert log[3] == ["ws.0", "ws.1", "d.a", "d.b", "sub.weight", "sub.bias"]
    assert log[4][0] == "ok" and log[5][0] == "ok"
    assert isinstance(log[6], KeyError)
    assert isinstance(log[7], KeyError) and log[7].args == ("Module doesn't contain member ws.0.",)


def test_freeze_container_member_and_later_members():
    def run(nn):
        seq = nn.Sequential(nn.Linear(1, 1), nn.Linear(1, 1))
        seq.freeze(keys="layers", recurse=False)
        m = nn.Linear(2, 2, bias=False)
        m.freeze(keys="bias")
        m.bias = mx.zeros((2,))
        s2 = nn.Sequential(nn.Linear(1, 1))
        s2.freeze(recurse=False)  # Sequential owns no arrays
        return [seq.trainable_parameters(), keys_of(seq.parameters()), trainable_keys(m), trainable_keys(s2)]

    res = same(run)
    assert res[0] == {}
    assert res[2] == ["weight"]
    assert res[3] == ["layers.0.weight", "layers.0.bias"]


def test_freeze_is_keyword_only_and_idempotent():
    def run(nn):
        m = mlp3(nn)
        a = no_grad_table(m.freeze().freeze())
        b = no_grad_table(m.unfreeze().unfreeze())
        return [outcome(m.freeze, True), outcome(m.unfreeze, False), a, b]

    res = same(run)
    assert str(res[0]) == "Module.freeze() takes 1 positional argument but 2 were given"


@pytest.mark.parametrize("method", ["freeze", "unfreeze"])
def test_tuple_of_keys_is_a_collection_of_keys(method):
    # Improvement over mlx.nn: MLX stores ("weight", "bias") as ONE bogus key.
    def build(nn):
        m = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))
        return m.freeze() if method == "unfreeze" else m

    ours = getattr(build(fnn), method)(keys=("weight", "bias"))
    as_list = getattr(build(fnn), method)(keys=["weight", "bias"])
    all_keys = ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]
    assert trainable_keys(ours) == ([] if method == "freeze" else all_keys)
    assert no_grad_table(ours) == no_grad_table(as_list)
    assert getattr(build(fnn), method)(keys=("weight", "bias"), strict=True) is not None
    # A tuple with an unknown member is still checked member by member.
    with pytest.raises(KeyError, match="nope"):
        getattr(build(fnn), method)(keys=("weight", "nope"), strict=True)

    # mlx.nn's bug: the tuple is one key; nothing changes and strict raises.
    theirs = getattr(build(mnn), method)(keys=("weight", "bias"))
    assert trainable_keys(theirs) == ([] if method == "unfreeze" else all_keys)
    if method == "freeze":
        assert theirs.layers[0]._no_grad == {("weight", "bias")}
    with pytest.raises(KeyError):
        getattr(build(mnn), method)(keys=("weight", "bias"), strict=True)


def hyp_model(nn):
    class H(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = [nn.Linear(2, 2), nn.ReLU(), nn.LayerNorm(2, bias=False), nn.Linear(2, 1, bias=False)]
            self.ws = [mx.ones((1,)), mx.ones((1,))]
            self.d = {"a": mx.ones((1,))}
            self.gn = nn.GroupNorm(1, 2)
            self._priv = mx.ones((1,))

    return H()


KEY_CHOICES = [None, "weight", "bias", ["weight", "bias"], ["bias"], "ws.1", "d.a", "nope", "layers", "_priv", "gn", []]
OPS = st.tuples(
    st.sampled_from(["freeze", "unfreeze"]),
    st.sampled_from(range(len(KEY_CHOICES))),
    st.booleans(),
    st.booleans(),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=1, max_size=6))
def test_random_freeze_unfreeze_sequences(ops):
    def run(nn):
        m = hyp_model(nn)
        log = []
        for method, key_index, recurse, strict in ops:
            keys = copy.deepcopy(KEY_CHOICES[key_index])
            res = outcome(getattr(m, method), keys=keys, recurse=recurse, strict=strict)
            log.append((res if not isinstance(res, tuple) else res[1] is m, trainable_keys(m), no_grad_table(m)))
        return log

    same(run)


# ----------------------------------------------------------------------
# 1.11 training / train / eval
# ----------------------------------------------------------------------


def test_train_eval():
    def run(nn):
        calls = []

        class Flag(nn.Module):
            def _set_training_mode(self, mode):
                calls.append(mode)
                super()._set_training_mode(mode)

            def __call__(self, x):
                return x * 2 if self.training else x

        class Tup(nn.Module):
            def __init__(self):
                super().__init__()
                self.hidden = (nn.Linear(1, 1),)  # tuples are not traversed

        m = nn.Sequential(nn.Linear(1, 1), [Flag(), nn.ReLU()], Tup())
        log = [m.training, m.eval() is m, [x.training for x in m.modules()], m.layers[1][0](mx.ones(1)).item()]
        log.append(m.layers[2].hidden[0].training)
        m.layers.append(Flag())  # added later: keeps its own flag
        log.append([x.training for x in m.modules()])
        log.append(m.train() is m)
        log.append([x.training for x in m.modules()])
        m.train(False)
        log.append([x.training for x in m.modules()])
        log.append(calls)
        return log

    log = same(run)
    assert log[0] is True and log[1] is True
    assert not any(log[2]) and log[3] == 1.0 and log[4] is True
    assert log[5] == [False, True, False, False, False, False]
    assert all(log[7])


# ----------------------------------------------------------------------
# 1.12 state
# ----------------------------------------------------------------------


def test_state_is_self():
    def run(nn):
        lin = nn.Linear(2, 2)
        conv = nn.Conv2d(1, 1, 2)
        lin.state["weight"] = mx.zeros((2, 2))
        lin.state["hello"] = "world"
        mx.eval(conv.state)
        mx.eval(conv)
        m = doc_model(nn)
        return [lin.state is lin, lin.weight.tolist(), lin["hello"], list(m.state), list(conv.state)]

    res = same(run)
    assert res[0] is True and res[2] == "world"
    assert res[3] == ["w", "_hidden", "t", "l", "d", "empty", "sub"]


# ----------------------------------------------------------------------
# 1.13 load_weights
# ----------------------------------------------------------------------


def two_linears(nn):
    return nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))


GOOD = [
    ("layers.0.weight", mx.zeros((3, 2))),
    ("layers.0.bias", mx.zeros((3,))),
    ("layers.1.weight", mx.zeros((1, 3))),
    ("layers.1.bias", mx.zeros((1,))),
]

LOAD_CASES = {
    "good": lambda: (GOOD, True),
    "good_dict": lambda: (dict(GOOD), True),
    "wrong_shape": lambda: (GOOD[:3] + [("layers.1.bias", mx.zeros((2,)))], True),
    "float16_accepted": lambda: (GOOD[:3] + [("layers.1.bias", mx.zeros((1,), mx.float16))], True),
    "extras": lambda: (GOOD + [("extra", A), ("layers.2.weight", A)], True),
    "missing": lambda: (GOOD[:2], True),
    "extras_and_missing": lambda: (GOOD[:2] + [("extra", A)], True),
    "not_an_array": lambda: (GOOD[:3] + [("layers.1.bias", [1.0])], True),
    "type_then_shape": lambda: (
        [("layers.0.weight", mx.zeros((5,))), ("layers.0.bias", 3)] + GOOD[2:],
        True,
    ),
    "empty_strict": lambda: ([], True),
    "empty_lenient": lambda: ([], False),
    "lenient_tolerates_everything": lambda: (
        [("layers.0.bias", mx.ones((5,))), ("nope.x", A), ("layers.7.weight", A)],
        False,
    ),
}


@pytest.mark.parametrize("case", list(LOAD_CASES))
def test_load_weights_cases(case):
    def run(nn):
        m = two_linears(nn)
        weights, strict = LOAD_CASES[case]()
        res = outcome(m.load_weights, weights, strict=strict)
        return [res if not isinstance(res, tuple) else res[1] is m, m]

    res = same(run)
    expected = {
        "wrong_shape": "Expected shape (1,) but received shape (2,) for parameter layers.1.bias",
        "extras": "Received 2 parameters not in model: \nextra,\nlayers.2.weight.",
        "missing": "Missing 2 parameters: \nlayers.1.bias,\nlayers.1.weight.",
        "extras_and_missing": "Received 1 parameters not in model: \nextra.",
        "not_an_array": "Expected mx.array but received <class 'list'> for parameter layers.1.bias",
        "type_then_shape": "Expected shape (3, 2) but received shape (5,) for parameter layers.0.weight",
        "empty_strict": "Missing 4 parameters: \nlayers.0.bias,\nlayers.0.weight,\nlayers.1.bias,\nlayers.1.weight.",
    }
    if case in expected:
        assert isinstance(res[0], ValueError) and str(res[0]) == expected[case]
    else:
        assert res[0] is True
    if case == "float16_accepted":
        assert res[1].layers[1].bias.dtype == mx.float16
    if case == "lenient_tolerates_everything":
        assert res[1].layers[0].bias.shape == (5,)


def test_load_weights_frozen_and_tied():
    def run(nn):
        m = two_linears(nn)
        m.freeze()

        class Tied(nn.Module):
            def __init__(self):
                super().__init__()
                lin = nn.Linear(1, 1)
                self.a = lin
                self.b = lin

        t = Tied()
        return [
            outcome(m.load_weights, GOOD[:2]),  # frozen parameters are still required
            outcome(t.load_weights, [("a.weight", mx.ones((1, 1))), ("a.bias", mx.ones((1,)))]),
            outcome(t.load_weights, [("a.weight", mx.ones((1, 1))), ("a.bias", mx.ones((1,))), ("b.weight", mx.zeros((1, 1))), ("b.bias", mx.zeros((1,)))]),
            t.a.weight.item(),
        ]

    res = same(run)
    assert str(res[0]).startswith("Missing 2 parameters")
    assert str(res[1]).startswith("Missing 2 parameters")
    assert res[3] == 0.0


@pytest.mark.parametrize("ext", ["npz", "safetensors"])
def test_save_and_load_roundtrip(tmp_path, ext):
    def run(nn):
        mx.random.seed(1)
        src = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), [nn.GroupNorm(1, 3), nn.ReLU()])
        src.freeze(keys="bias")
        src._private = mx.ones((1,))
        path = str(tmp_path / f"{nn.__name__}.{ext}")
        saved = src.save_weights(path)
        on_disk = mx.load(path)
        mx.random.seed(2)
        dst = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), [nn.GroupNorm(1, 3), nn.ReLU()])
        r = dst.load_weights(path)
        return [saved, sorted(on_disk), r is dst, dst.parameters(), src.parameters()]

    res = same(run)
    assert res[0] is None and res[2] is True
    assert res[1] == sorted(["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "layers.2.0.bias", "layers.2.0.weight"])
    assert describe(res[3]) == describe(res[4])


@pytest.mark.parametrize("name", ["w.npy", "w", "w.pt", "w.NPZ"])
def test_save_weights_bad_extension(tmp_path, name):
    def run(nn):
        return outcome(nn.Linear(1, 1).save_weights, str(tmp_path / name))

    res = same(run)
    assert isinstance(res, ValueError)
    assert str(res) == f"Unsupported file extension for {tmp_path / name}. Use '.npz' or '.safetensors'."


@pytest.mark.parametrize("ext", ["npz", "safetensors"])
def test_pathlib_path_is_accepted(tmp_path, ext):
    # Improvement over mlx.nn, which refuses pathlib.Path in both directions.
    mx.random.seed(0)
    src = two_linears(fnn)
    path = tmp_path / f"w.{ext}"
    assert src.save_weights(path) is None
    dst = two_linears(fnn)
    assert dst.load_weights(path) is dst
    assert_same_params(src, dst)
    # mlx.nn's bugs:
    with pytest.raises(AttributeError, match="endswith"):
        two_linears(mnn).save_weights(tmp_path / f"m.{ext}")
    with pytest.raises(TypeError):
        two_linears(mnn).load_weights(path)


def test_duplicate_key_is_a_value_error():
    # Improvement over mlx.nn: a key given twice raises ValueError naming it and
    # leaves the model unchanged (mlx.nn recurses until RecursionError).
    weights = GOOD + [("layers.1.bias", mx.full((1,), 9.0))]
    for strict in (True, False):
        m = two_linears(fnn)
        before = describe(m.parameters())
        with pytest.raises(ValueError, match="layers.1.bias"):
            m.load_weights(weights, strict=strict)
        assert describe(m.parameters()) == before
    m = two_linears(mnn)
    before = describe(m.parameters())
    with pytest.raises(RecursionError):  # mlx.nn's bug
        m.load_weights(weights)
    assert describe(m.parameters()) == before


def test_npy_file_is_a_value_error(tmp_path):
    # Improvement over mlx.nn: a .npy file (one array) is a ValueError, not AttributeError.
    path = tmp_path / "one.npy"
    mx.save(str(path), mx.zeros((2,)))
    for strict in (True, False):
        with pytest.raises(ValueError, match="single array"):
            fnn.Linear(1, 2).load_weights(str(path), strict=strict)
    with pytest.raises(AttributeError, match="items"):  # mlx.nn's bug
        mnn.Linear(1, 2).load_weights(str(path))


LOAD_KEYS = [k for k, _ in GOOD]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(LOAD_KEYS + ["extra", "layers.5.weight", "layers.0.nope"]), unique=True),
    st.lists(st.sampled_from(range(3)), min_size=7, max_size=7),
    st.booleans(),
)
def test_random_load_weights(keys, variants, strict):
    def value(i, k):
        shape = dict((k2, v.shape) for k2, v in GOOD).get(k, (1,))
        return [mx.ones(shape), mx.ones((4,)), mx.ones(shape, mx.float16)][variants[i]]

    def run(nn):
        m = two_linears(nn)
        weights = [(k, value(i, k)) for i, k in enumerate(keys)]
        res = outcome(m.load_weights, weights, strict=strict)
        return [res if not isinstance(res, tuple) else "ok", m]

    same(run)


# ----------------------------------------------------------------------
# 1.15 set_dtype
# ----------------------------------------------------------------------


def dtype_model(nn):
    class D(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = mx.ones((2,))
            self.i = mx.ones((2,), mx.int32)
            self.b = mx.ones((2,), mx.bfloat16)
            self.c = mx.ones((2,), mx.complex64)
            self._p = mx.ones((2,))
            self.sub = nn.Linear(1, 1)
            self.sub.freeze()

    return D()


def dtypes(m):
    return {k: str(v.dtype) for k, v in m.items() if isinstance(v, mx.array)} | {"sub.weight": str(m.sub.weight.dtype)}


def test_set_dtype():
    def run(nn):
        a, b, c = dtype_model(nn), dtype_model(nn), dtype_model(nn)
        seen = []
        results = [a.set_dtype(mx.float16), b.set_dtype(mx.float16, predicate=None)]
        c.set_dtype(mx.float16, predicate=lambda t: seen.append(t) or t == mx.int32)
        return [results, dtypes(a), dtypes(b), dtypes(c), [str(t) for t in seen]]

    res = same(run)
    assert res[0] == [None, None]
    assert res[1] == {
        "f": "mlx.core.float16",
        "i": "mlx.core.int32",
        "b": "mlx.core.float16",
        "c": "mlx.core.complex64",
        "_p": "mlx.core.float32",
        "sub.weight": "mlx.core.float16",
    }
    assert res[2]["c"] == "mlx.core.float16" and res[2]["_p"] == "mlx.core.float32"
    assert res[3]["i"] == "mlx.core.float16" and res[3]["f"] == "mlx.core.float32"
    assert len(res[4]) == 6


# ----------------------------------------------------------------------
# 3.1 value_and_grad
# ----------------------------------------------------------------------


def small_net(nn):
    return nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))


X = mx.array([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5], [1.0, 1.0]])
Y = mx.array([[1.0], [0.0], [-1.0], [0.5]])


def mse(model, x, y):
    return mx.mean((model(x) - y) ** 2)


def test_value_and_grad_structure_and_values():
    def run(nn):
        out = []
        for setup in (lambda m: None, lambda m: m.layers[0].freeze(), lambda m: m.freeze(keys="bias")):
            m = small_net(nn)
            setup(m)
            loss, grads = nn.value_and_grad(m, mse)(m, X, Y)
            out.append((loss, grads, shapes(grads)))
        return out

    res = same(run)
    assert res[0][1]["layers"][1] == {}
    assert res[0][2] == [
        ("layers.0.weight", (3, 2)),
        ("layers.0.bias", (3,)),
        ("layers.2.weight", (1, 3)),
        ("layers.2.bias", (1,)),
    ]
    assert res[1][1]["layers"][0] == {}
    assert [k for k, _ in res[2][2]] == ["layers.0.weight", "layers.2.weight"]


def test_value_and_grad_aux_errors_kwargs_name():
    def run(nn):
        m = small_net(nn)

        def with_aux(x, *, scale=1.0):
            """Doc of with_aux."""
            y = m(x)
            return (y.sum() * scale, 3, "s", None, y)

        f = nn.value_and_grad(m, with_aux)
        (loss, *aux), grads = f(X, scale=2.0)
        unused = nn.Sequential(nn.Linear(2, 1), nn.Linear(1, 1))
        _, g_unused = nn.value_and_grad(unused, lambda x: unused.layers[0](x).sum())(X)
        frozen = small_net(nn).freeze()
        return [
            loss,
            aux,
            grads,
            (f.__name__, f.__qualname__, f.__doc__, f.__module__, f.__wrapped__ is with_aux),
            outcome(nn.value_and_grad(m, lambda x: [m(x).sum()]), X),
            outcome(nn.value_and_grad(m, lambda x: m(x)), X),
            outcome(nn.value_and_grad(frozen, lambda x: frozen(x).sum()), X),
            g_unused["layers"][1],
        ]

    res = same(run)
    assert res[3][0] == "with_aux" and res[3][2] == "Doc of with_aux." and res[3][4] is True
    assert res[3][3] == __name__
    assert isinstance(res[4], ValueError) and "[value_and_grad]" in str(res[4])
    assert str(res[5]) == "[vjp] Output shape (4,1) does not match cotangent shape ()."
    assert str(res[6]) == "[grad] Must specify at least one argument."
    assert res[7]["weight"].tolist() == [[0.0]] and res[7]["bias"].tolist() == [0.0]


def test_value_and_grad_tied_weights_and_new_arrays():
    def run(nn):
        class Tied(nn.Module):
            def __init__(self):
                super().__init__()
                lin = nn.Linear(2, 2)
                self.a = lin
                self.b = lin

            def __call__(self, x):
                return self.b(self.a(x))

        m = Tied()
        w, b = m.a.weight, m.a.bias
        before = describe(m.parameters())
        _, g = nn.value_and_grad(m, lambda x: m(x).sum())(X)

        def pure(params):
            pw, pb = params
            return ((X @ pw.T + pb) @ pw.T + pb).sum()

        true_w, true_b = mx.grad(pure)((w, b))
        return [
            g,
            m.a.weight is w,
            describe(m.parameters()) == before,
            mx.all(g["a"]["weight"] == 0).item() and mx.all(g["a"]["bias"] == 0).item(),
            mx.allclose(g["b"]["weight"], true_w, atol=1e-5).item() and mx.allclose(g["b"]["bias"], true_b, atol=1e-5).item(),
        ]

    res = same(run)
    # The whole gradient goes to the last alias, zeros to the first.
    assert res[1:] == [False, True, True, True]


# ----------------------------------------------------------------------
# Documentation examples, optimizers, compile, repr
# ----------------------------------------------------------------------


def test_module_docstring_my_mlp():
    def run(nn):
        class MyMLP(nn.Module):
            def __init__(self, in_dims: int, out_dims: int, hidden_dims: int = 16):
                super().__init__()
                self.in_proj = nn.Linear(in_dims, hidden_dims)
                self.out_proj = nn.Linear(hidden_dims, out_dims)

            def __call__(self, x):
                x = self.in_proj(x)
                x = mx.maximum(x, 0)
                return self.out_proj(x)

        model = MyMLP(2, 1)
        mx.eval(model.parameters())
        model.in_proj.weight = model.in_proj.weight * 2
        mx.eval(model.parameters())
        return [model, model(X), repr(model), module_paths(model)]

    res = same(run, seed=7)
    assert [k for k, _ in res[3]] == ["", "out_proj", "in_proj"]


def test_quick_start_mlp():
    def run(nn):
        class MLP(nn.Module):
            def __init__(self, num_layers: int, input_dim: int, hidden_dim: int, output_dim: int):
                super().__init__()
                layer_sizes = [input_dim] + [hidden_dim] * num_layers + [output_dim]
                self.layers = [nn.Linear(idim, odim) for idim, odim in zip(layer_sizes[:-1], layer_sizes[1:])]

            def __call__(self, x):
                for l in self.layers[:-1]:
                    x = mx.maximum(l(x), 0.0)
                return self.layers[-1](x)

        def loss_fn(model, X, y):
            return mx.mean(nn.losses.cross_entropy(model(X), y))

        mx.random.seed(42)
        data = mx.random.normal((16, 8))
        labels = mx.random.randint(0, 4, (16,))
        model = MLP(2, 8, 16, 4)
        mx.eval(model.parameters())
        init = model.parameters()
        optimizer = optim.SGD(learning_rate=0.1)
        loss_and_grad_fn = nn.value_and_grad(model, loss_fn)
        losses, all_grads = [], []
        for _ in range(3):
            loss, grads = loss_and_grad_fn(model, data, labels)
            optimizer.update(model, grads)
            mx.eval(model.parameters(), optimizer.state)
            losses.append(loss)
            all_grads.append(grads)
        return [init, losses, all_grads, model]

    res = same(run)
    assert res[1][2].item() < res[1][0].item()


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda: optim.SGD(learning_rate=0.05, momentum=0.9),
        lambda: optim.SGD(learning_rate=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
        lambda: optim.Adam(learning_rate=0.01),
        lambda: optim.AdamW(learning_rate=0.01, weight_decay=0.1),
    ],
    ids=["sgd_momentum", "sgd_nesterov", "adam", "adamw"],
)
def test_optimizers_train_funcnn_modules_like_mlx(make_opt):
    def run(nn):
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.LayerNorm(8), nn.Linear(8, 8), nn.GELU())
                self.frozen = nn.Linear(8, 8)
                self.frozen.freeze()
                self.heads = [nn.ReLU(), nn.Linear(8, 1)]

            def __call__(self, x):
                x = self.frozen(self.body(x))
                for layer in self.heads:
                    x = layer(x)
                return x

        model = Net()
        opt = make_opt()
        grad_fn = nn.value_and_grad(model, mse)
        losses = []
        for _ in range(4):
            loss, grads = grad_fn(model, X, Y)
            opt.update(model, grads)
            mx.eval(model.parameters(), opt.state)
            losses.append(loss)
        return [losses, model, opt.state, trainable_keys(model)]

    res = same(run, seed=3)
    assert "frozen.weight" not in res[3]


def test_compile_with_state_capture():
    def run(nn):
        model = small_net(nn)
        optimizer = optim.Adam(learning_rate=0.05)
        state = [model.state, optimizer.state]

        @functools.partial(mx.compile, inputs=state, outputs=state)
        def step(x, y):
            loss, grads = nn.value_and_grad(model, mse)(model, x, y)
            optimizer.update(model, grads)
            return loss

        losses = []
        for _ in range(6):
            losses.append(step(X, Y))
            mx.eval(state)
        return [losses, model]

    res = same(run, seed=5)
    assert res[0][-1].item() < res[0][0].item()


def test_repr_of_composite_models():
    def run(nn):
        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.attn = nn.MultiHeadAttention(8, 2)
                self.norms = {"pre": nn.LayerNorm(8), "post": nn.RMSNorm(8)}
                self.mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))
                self.rope = nn.RoPE(4)
                self.w = mx.ones((2,))
                self.t = (nn.Linear(1, 1),)

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(10, 8)
                self.convs = [nn.Conv1d(8, 8, 3), nn.Conv2d(4, 6, (3, 2), stride=2, padding=1)]
                self.blocks = [Block(), Block()]
                self.gn = nn.GroupNorm(2, 8)
                self.act = nn.SiLU()

        return [repr(Model()), repr(Block()), repr(nn.Module()), repr(nn.Sequential())]

    res = same(run)
    assert res[2] == "Module()"
    assert "(blocks.1): Block(" in res[0]
    assert "    (norms.post): RMSNorm(8, eps=1e-05)" in res[0]
    assert "(t" not in res[1]  # tuple members are not children


# ----------------------------------------------------------------------
# Random structures: every traversal agrees on arbitrary nestings
# ----------------------------------------------------------------------

NAMES = ["a", "b", "w", "layers", "_p", "_q"]

LEAVES = st.one_of(
    st.tuples(st.just("arr"), st.integers(1, 3)),
    st.tuples(st.just("int")),
    st.tuples(st.just("str")),
    st.tuples(st.just("none")),
    st.tuples(st.just("fn")),
    st.tuples(st.just("tuple")),
    st.tuples(st.just("linear"), st.booleans()),
    st.tuples(st.just("relu")),
    st.tuples(st.just("layernorm")),
)


def _containers(children):
    named = st.lists(st.tuples(st.sampled_from(NAMES), children), max_size=4)
    return st.one_of(
        st.tuples(st.just("list"), st.lists(children, max_size=3)),
        st.tuples(st.just("dict"), named),
        st.tuples(st.just("module"), named),
        st.tuples(st.just("seq"), st.lists(children, max_size=3)),
    )


SPECS = st.recursive(LEAVES, _containers, max_leaves=10)


def build_spec(nn, spec):
    kind = spec[0]
    if kind == "arr":
        return mx.arange(spec[1], dtype=mx.float32) + 1
    if kind == "int":
        return 5
    if kind == "str":
        return "s"
    if kind == "none":
        return None
    if kind == "fn":
        return mx.sigmoid
    if kind == "tuple":
        return (mx.ones((1,)), 2)
    if kind == "linear":
        return nn.Linear(2, 2, bias=spec[1])
    if kind == "relu":
        return nn.ReLU()
    if kind == "layernorm":
        return nn.LayerNorm(2)
    if kind == "list":
        return [build_spec(nn, s) for s in spec[1]]
    if kind == "dict":
        return {k: build_spec(nn, s) for k, s in spec[1]}
    if kind == "seq":
        return nn.Sequential(*(build_spec(nn, s) for s in spec[1]))

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            for name, s in spec[1]:
                setattr(self, name, build_spec(nn, s))

    return Custom()


def wrap_root(nn, spec):
    class Root(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = build_spec(nn, spec)
            self.head = nn.Linear(2, 1)

    return Root()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SPECS)
def test_random_structures(spec):
    def run(nn):
        m = wrap_root(nn, spec)
        is_mod = nn.Module.is_module
        log = [
            m.state,
            m.parameters(),
            keys_of(m.parameters()),
            keys_of(m.children(), is_leaf=is_mod),
            keys_of(m.leaf_modules(), is_leaf=is_mod),
            module_paths(m),
            repr(m),
            outcome(m.update, m.parameters()),
            outcome(m.update_modules, m.leaf_modules()),
            outcome(m.load_weights, tree_flatten(m.parameters())),
            outcome(m.freeze, keys="w", strict=True),
            no_grad_table(m),
            trainable_keys(m),
            outcome(m.freeze, strict=True),
            no_grad_table(m),
            outcome(m.unfreeze, keys=["_p", "a"], strict=True),
            m.trainable_parameters(),
        ]
        m.unfreeze()
        m.freeze(keys="bias")

        def loss():
            return sum(v.sum() for _, v in tree_flatten(m.trainable_parameters()))

        log.append(outcome(nn.value_and_grad(m, loss)))
        m.freeze()
        log.append(outcome(nn.value_and_grad(m, loss)))
        log.append((m.set_dtype(mx.float16), m.state))
        log.append([x.training for x in m.eval().modules()])
        return log

    same(run)
