"""Differential tests of the direct tree walks (``funcnn/layers/_walk.py``) at their edges.

``funcnn.Module`` answers ``parameters()``, ``trainable_parameters()``,
``children()``, ``leaf_modules()``, ``apply_to_modules`` (``modules``,
``named_modules``, ``freeze``, ``unfreeze``, ``train``), ``update`` and
``load_weights`` with direct walks while a module keeps Module's own hooks,
and with mlx.nn's generic walk otherwise.  These tests drive both paths where
they meet: hooks overridden on a class, on an instance or patched later; keys
that are not strings or that ``tree_unflatten`` reads differently; array
subclasses; dict and list subclasses; modules without ``_no_grad``; shared
sub-modules.  Each runs the same code on ``funcnn`` and ``mlx.nn`` and
compares everything (see ``_compare.py``).
"""

from __future__ import annotations

from collections import OrderedDict

import mlx.core as mx
import pytest

import funcnn as fnn
from _compare import describe, keys_of, no_grad_table, outcome, same


class Arr(mx.array):
    """An array subclass: a parameter for mlx.nn (``isinstance``), not ``type(x) is mx.array``."""


class Items(OrderedDict):
    pass


class Seq(list):
    pass


def snapshot(m, nn):
    """Everything the walks compute, as comparable data (errors included)."""
    is_mod = nn.Module.is_module
    return {
        "parameters": outcome(m.parameters),
        "trainable": outcome(m.trainable_parameters),
        "children": outcome(lambda: keys_of(m.children(), is_leaf=is_mod)),
        "leaf_modules": outcome(lambda: keys_of(m.leaf_modules(), is_leaf=is_mod)),
        "named_modules": outcome(lambda: [(k, type(v).__name__) for k, v in m.named_modules()]),
        "modules": outcome(lambda: [type(v).__name__ for v in m.modules()]),
        "no_grad": outcome(no_grad_table, m),
    }


def operations(m, nn):
    """Snapshots around freeze/unfreeze/update/load_weights on ``m``."""
    out = [snapshot(m, nn)]
    out.append(outcome(lambda: m.freeze() and None))
    out.append(snapshot(m, nn))
    out.append(outcome(lambda: m.unfreeze(keys=["weight"]) and None))
    out.append(snapshot(m, nn))
    out.append(outcome(lambda: m.unfreeze() and None))
    got = outcome(m.parameters)
    if isinstance(got, tuple):  # ("ok", parameters): write them back both ways
        params = got[1]
        out.append(outcome(lambda: m.update(params) and None))
        out.append(outcome(lambda: m.load_weights(fnn.tree_flatten(params)) and None))
    out.append(snapshot(m, nn))
    return out


def rich(nn):
    """A model with every kind of member the walks tell apart."""

    class Rich(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = mx.zeros((2,))
            self._private = mx.ones((1,))
            self.sub = nn.Linear(2, 2)
            self._hidden_sub = nn.Linear(1, 1)
            self.l = [
                mx.ones((1,)), 3, None, (mx.ones((1,)),), nn.LayerNorm(2), [mx.zeros((1,))], {}
            ]
            self.d = {"a": mx.ones((1,)), "_b": mx.ones((1,)), "c": None, "m": nn.Linear(1, 1)}
            self.nested = {"x": [{"y": mx.ones((1,))}], "z": {"q": nn.Linear(1, 1)}}
            self.t = (mx.ones((1,)), 2)
            self.empty = []
            self.relus = [nn.ReLU(), nn.ReLU()]

    return Rich()


def test_rich_model_every_operation():
    same(lambda nn: operations(rich(nn), nn))


def test_partially_frozen_nested_keys():
    def run(nn):
        m = rich(nn)
        m.freeze(keys=["l.0", "d.a", "nested.x.0.y", "w", "l.4", "sub"], recurse=False)
        m.sub.freeze(keys="bias")
        return [snapshot(m, nn), describe(m.trainable_parameters())]

    same(run)


def test_array_subclass_members():
    def run(nn):
        m = nn.Linear(2, 2)
        m.extra = Arr(mx.ones((1,)))
        m.items_ = [Arr(mx.zeros((1,))), mx.ones((1,))]
        m.dd = {"k": Arr(mx.ones((1,)))}
        out = operations(m, nn)
        # update: an array subclass is an array (replaced), a subclass value is accepted.
        out.append(outcome(lambda: m.update({"extra": Arr(mx.zeros((1,)))}) and None))
        out.append(outcome(lambda: m.update({"extra": 3}) and None))
        both_kinds = [mx.zeros((1,)), Arr(mx.ones((1,)))]
        out.append(outcome(lambda: m.update({"items_": both_kinds}) and None))
        out.append(describe(m.parameters()))
        return out

    same(run)


def test_dict_and_list_subclass_members():
    def run(nn):
        m = nn.Module()
        m.od = Items(a=mx.ones((1,)), lin=nn.Linear(1, 1), s="x")
        m.sq = Seq([nn.Linear(1, 1), mx.zeros((1,)), Seq([mx.ones((1,))])])
        return operations(m, nn)

    same(run)


def test_non_string_keys():
    def run(nn):
        m = nn.Linear(1, 1)
        m[3] = (1, 2)  # a key that is never tested: no error
        out = [snapshot(m, nn)]
        m[4] = mx.ones((1,))  # the "_" test of mlx.nn fails on it
        out.append(operations(m, nn))
        del m[4]
        m["d"] = {1: mx.ones((1,)), (1, 2): mx.zeros((1,)), "x": [mx.ones((1,))]}
        out.append(operations(m, nn))
        return out

    same(run)


def test_module_without_no_grad():
    def run(nn):
        class Bare(nn.Module):
            def __init__(self, with_array):
                if with_array:  # no super().__init__(): no _no_grad, no _training
                    self["w"] = mx.ones((1,))

        outer = nn.Module()
        outer.a = Bare(False)
        outer.b = [Bare(False)]
        out = [outcome(outer.trainable_parameters), outcome(outer.parameters)]
        outer.c = Bare(True)
        out += [outcome(outer.trainable_parameters), outcome(outer.freeze), outcome(outer.unfreeze)]
        return out

    same(run)


def test_hooks_overridden_on_the_class():
    def run(nn):
        class NoBias(nn.Linear):
            @staticmethod
            def valid_parameter_filter(module, key, value):
                return key != "bias" and nn.Module.valid_parameter_filter(module, key, value)

        class Hidden(nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = nn.Linear(1, 1)
                self.other = [nn.Linear(1, 1)]

            def children(self):
                return {"other": self.other}

        class OnlyWeights(nn.Linear):
            def items(self):
                return [(k, v) for k, v in dict.items(self) if k == "weight"]

        class NoFreeze(nn.Linear):
            def _validate_keys(self, keys, strict):
                return []

        class Childless(nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = nn.Linear(1, 1)

            def children(self):
                return {"nothing": [], "empty": {}}  # flattens to nothing: a leaf module

        class Lies(nn.Module):
            def __init__(self):
                super().__init__()
                self.x = nn.Linear(1, 1)

            @staticmethod
            def valid_child_filter(module, key, value):
                return False

            @staticmethod
            def is_module(value):
                return False

        root = nn.Module()
        root.a = NoBias(2, 2)
        root.b = Hidden()
        root.c = OnlyWeights(1, 1)
        root.d = NoFreeze(1, 1)
        root.e = Lies()
        root.f = [Childless()]
        out = operations(root, nn)
        out += [snapshot(m, nn) for m in (root.a, root.b, root.c, root.e)]
        out.append(outcome(lambda: keys_of(root.e.named_modules())))
        return out

    same(run)


def test_hooks_overridden_on_the_instance_and_patched_later():
    def run(nn):
        m = nn.Sequential(nn.Linear(1, 1), nn.Sequential(nn.Linear(1, 1), nn.ReLU()))
        inner = m.layers[1]
        out = [snapshot(m, nn)]
        inner.children = lambda: {}  # a plain attribute (not an array): on the instance
        out.append(operations(m, nn))
        del inner.children
        inner.items = lambda: iter([])
        out.append(operations(m, nn))
        del inner.items
        lin = m.layers[0]
        lin.items = lambda: iter([("weight", dict.__getitem__(lin, "weight"))])  # hides bias
        out.append(operations(m, nn))
        del lin.items
        lin._validate_keys = lambda keys, strict: ["only-this"]
        out.append(operations(m, nn))
        del lin._validate_keys
        inner.valid_parameter_filter = lambda module, key, value: False
        inner.filter_and_map = lambda *a, **k: {"patched": mx.ones((1,))}
        out.append(operations(m, nn))
        return out

    same(run)


def test_class_patched_after_instances_exist():
    def run(nn):
        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = nn.Linear(1, 1)

        m = nn.Module()
        m.blocks = [Block(), Block()]
        out = [snapshot(m, nn)]
        Block.children = lambda self: {}
        out.append(operations(m, nn))
        Block.valid_parameter_filter = staticmethod(lambda module, key, value: False)
        out.append(operations(m, nn))
        return out

    same(run)


def test_instance_override_on_the_root():
    def run(nn):
        m = nn.Sequential(nn.Linear(1, 1), nn.Linear(1, 1))
        m.is_module = lambda value: False
        out = [outcome(lambda: [k for k, _ in m.named_modules()])]
        del m.is_module
        seen = []
        m.apply_to_modules = lambda fn: seen.append("called") or m
        out += [outcome(lambda: len(m.modules())), outcome(m.freeze), outcome(m.unfreeze), seen]
        del m.apply_to_modules
        m.parameters = lambda: {"layers": [{"weight": mx.ones((1, 1))}]}
        out.append(outcome(lambda: m.load_weights([("layers.0.weight", mx.ones((1, 1)))]) and None))
        out.append(describe(dict.__getitem__(m, "layers")[0].weight))
        return out

    same(run)


def test_leaf_modules_treats_modules_without_leaves_as_leaves():
    def run(nn):
        m = nn.Module()
        m.acts = nn.Sequential(nn.ReLU(), nn.GELU())  # children without any item at all
        m.mixed = nn.Sequential(nn.ReLU(), nn.Linear(1, 1))
        m.empty_holder = nn.Module()
        m.empty_holder.inner = nn.Module()
        m.empty_holder.inner.nothing = []
        m.tupled = nn.Module()
        m.tupled.inner = nn.Module()
        m.tupled.inner.t = (1,)
        return snapshot(m, nn)

    same(run)


def test_freeze_strict_without_keys_and_recurse_false():
    def run(nn):
        m = rich(nn)
        return [
            outcome(lambda: m.freeze(strict=True) and None),
            no_grad_table(m),
            outcome(lambda: m.unfreeze(strict=True, keys="w") and None),
            outcome(lambda: m.freeze(recurse=False) and None),
            no_grad_table(m),
            outcome(lambda: m.unfreeze(recurse=False) and None),
            no_grad_table(m),
        ]

    same(run)


def test_apply_to_modules_sees_changes_made_by_apply_fn():
    def run(nn):
        m = nn.Sequential(nn.Linear(1, 1), nn.Linear(1, 1))
        seen = []

        def fn(path, module):
            seen.append(path)
            if path == "layers.1":
                module.extra = nn.Linear(1, 1)  # read as a child after fn returns
            if path == "":
                module.layers.append(nn.Linear(1, 1))

        m.apply_to_modules(fn)
        return seen

    assert same(run) == ["", "layers.2", "layers.1", "layers.1.extra", "layers.0"]


@pytest.mark.parametrize(
    "build",
    [
        lambda nn: {"d": {"0": mx.ones((1,)), "1": mx.zeros((1,))}},  # read back as a list
        lambda nn: {"d": {"a.b": mx.ones((1,))}},  # split at the dot
        lambda nn: {"d": {"": mx.ones((1,))}},
        lambda nn: {"": mx.ones((1,))},
        lambda nn: {"d": {"x": mx.ones((1,)), "0": mx.zeros((1,))}},
        lambda nn: {"l": [mx.ones((1,)), 7, mx.zeros((1,))]},  # a gap filled with {}
    ],
)
def test_load_weights_with_names_tree_unflatten_reads_differently(build):
    def run(nn):
        m = nn.Module()
        for k, v in build(nn).items():
            m[k] = v
        flat = fnn.tree_flatten(m.parameters())
        new = [(k, v + 1) for k, v in flat]
        return [
            outcome(lambda: m.load_weights(new) and None),
            describe(dict(m)),
            outcome(lambda: m.load_weights(new, strict=False) and None),
            describe(dict(m)),
        ]

    same(run)


def test_load_weights_into_a_shared_submodule():
    def run(nn):
        shared = nn.Linear(1, 1)
        m = nn.Module()
        m.a = shared
        m.b = [shared]
        m.c = nn.Linear(1, 1)
        names = [k for k, _ in fnn.tree_flatten(m.parameters())]
        orders = [names, names[::-1], sorted(names)]
        out = []
        for i, order in enumerate(orders):
            weights = [(k, mx.full((1, 1) if k.endswith("weight") else (1,), float(i * 10 + j)))
                       for j, k in enumerate(order)]
            out.append(outcome(lambda: m.load_weights(weights) and None))
            out.append(describe(m.parameters()))
        return out

    same(run)


def test_load_weights_out_of_order_and_errors():
    def run(nn):
        m = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2), nn.Linear(2, 1))
        flat = fnn.tree_flatten(m.parameters())
        out = []
        for weights in (
            [(k, v * 2) for k, v in reversed(flat)],
            [(k, v * 3) for k, v in sorted(flat)],
            flat[:-1],
            flat + [("layers.9.weight", mx.ones((1,)))],
            [(k, v if i else 1.0) for i, (k, v) in enumerate(flat)],
            [(k, v.reshape(-1) if v.ndim == 2 else v) for k, v in flat],
        ):
            out.append(outcome(lambda: m.load_weights(weights) and None))
            out.append(describe(m.parameters()))
        return out

    same(run, more_errors=True)


def test_load_weights_where_item_methods_are_not_dicts():
    def run(nn):
        class Ghost(nn.Linear):
            def items(self):  # a name that is not in the dict
                return list(dict.items(self)) + [("ghost", mx.zeros((1,)))]

        class Hiding(dict):
            def __contains__(self, key):  # update() cannot find "a"
                return key != "a" and dict.__contains__(self, key)

        class HidingModule(nn.Module):
            def __contains__(self, key):
                return key != "w" and dict.__contains__(self, key)

        out = []
        for make in (
            lambda: Ghost(1, 1),
            lambda: [Hiding(a=mx.ones((1,)), b=mx.zeros((1,)))],
            lambda: HidingModule(),
        ):
            m = nn.Module()
            m.x = make()
            if isinstance(m.x, nn.Module) and not isinstance(m.x, nn.Linear):
                m.x.w = mx.ones((1,))
                m.x.v = mx.ones((1,))
            flat = fnn.tree_flatten(m.parameters())
            new = [(k, v + 1) for k, v in flat]
            out.append(outcome(lambda: m.load_weights(new) and None))
            out.append(describe(dict(m.x) if isinstance(m.x, dict) else m.x))
        return out

    same(run)


def test_load_weights_calls_an_overridden_update():
    def run(nn):
        calls = []

        class Recording(nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = nn.Linear(1, 1)

            def update(self, parameters, strict=True):
                calls.append((describe(parameters), strict))
                return super().update(parameters, strict)

        m = Recording()
        flat = fnn.tree_flatten(m.parameters())
        out = [outcome(lambda: m.load_weights([(k, v + 1) for k, v in flat]) and None)]
        plain = nn.Linear(1, 1)
        plain.update = lambda parameters, strict=True: calls.append("instance") or plain
        out.append(outcome(lambda: plain.load_weights(fnn.tree_flatten(plain.parameters())) and None))
        return [out, calls, describe(m.parameters())]

    same(run)


def test_base_class_filter_patched(monkeypatch):
    def no_bias(module, key, value):
        return key != "bias" and isinstance(value, (dict, list, mx.array)) and not key.startswith("_")

    import mlx.nn as mnn

    for nn in (fnn, mnn):
        monkeypatch.setattr(nn.Module, "valid_parameter_filter", staticmethod(no_bias))

    def run(nn):
        m = nn.Sequential(nn.Linear(1, 1), nn.LayerNorm(1))
        m.layers[0].freeze(keys="weight")
        return [snapshot(m, nn), operations(m, nn)]

    same(run)
