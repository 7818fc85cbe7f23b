"""Differential tests of ``funcnn.Module`` against ``mlx.nn.Module``: update and apply.

Sections 1.6-1.8 of ``/work/shared/reference/mlx_nn_semantics.md``: ``update``,
``update_modules`` (strict and lenient, every edge case) and ``apply``.

Every test builds the *same* structure with both namespaces (``funcnn`` and
``mlx.nn``, passed in as ``nn``), runs the identical code on both and compares
what comes out (see ``_compare.py``).
"""

from __future__ import annotations

import mlx.core as mx
import pytest
from mlx.utils import tree_map_with_path

from _compare import A, doc_model, keys_of, module_paths, outcome, same


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
