"""Differential tests of ``funcnn.Module`` against ``mlx.nn.Module`` on random structures.

Hypothesis builds arbitrary nestings of arrays, plain values, lists, dicts,
custom modules and ``Sequential``; every traversal, update, load, freeze,
``value_and_grad``, ``set_dtype`` and ``eval`` must agree with mlx.nn.

Every test builds the *same* structure with both namespaces (``funcnn`` and
``mlx.nn``, passed in as ``nn``), runs the identical code on both and compares
what comes out (see ``_compare.py``).
"""

from __future__ import annotations

import mlx.core as mx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlx.utils import tree_flatten

from _compare import keys_of, module_paths, no_grad_table, outcome, same, trainable_keys


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
