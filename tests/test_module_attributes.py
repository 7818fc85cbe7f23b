"""Differential tests of ``funcnn.Module`` against ``mlx.nn.Module``: attributes and traversal.

Sections 1.1-1.5 and 1.9 of ``/work/shared/reference/mlx_nn_semantics.md``: the
attribute protocol, what counts as a parameter, ``filter_and_map``,
``parameters``/``trainable_parameters``, ``children``/``leaf_modules`` and
``apply_to_modules``/``modules``/``named_modules``.

Every test builds the *same* structure with both namespaces (``funcnn`` and
``mlx.nn``, passed in as ``nn``), runs the identical code on both and compares
what comes out (see ``_compare.py``).
"""

from __future__ import annotations

import copy
import subprocess
import sys

import mlx.core as mx
from mlx.utils import tree_flatten

from _compare import describe, doc_model, keys_of, mlp3, module_paths, outcome, same, trainable_keys


def test_library_never_imports_mlx_nn():
    code = "import sys, funcnn, funcnn.layers.base, funcnn.layers; print('mlx.nn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------
# 1.1 Attribute protocol
# ----------------------------------------------------------------------


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
