"""Property-based differential tests: random module structures, random operation sequences.

Hypothesis draws a *structure description* (plain data: a root container module
holding layers, parameter-less layers, nested containers, lists, dicts, tuples,
shared submodules, private ``_`` members, public and int arrays, non-array
leaves), builds it with ``funcnn`` and with ``mlx.nn`` (same seed, so same
values) and then applies 1-8 drawn operations to both: ``freeze``/``unfreeze``
(keys, ``recurse``, ``strict``), ``update``, ``update_modules``, ``apply``,
``set_dtype``, ``train``/``eval``, ``save_weights``, ``load_weights`` (from the
saved file or from an edited list/dict of weights).  After every operation the
outcome (return value, or exception type and message) and a snapshot of both
models (every item, ``parameters()``, ``trainable_parameters()``, and each
``named_modules()`` path, class, ``training`` flag and frozen keys) must agree.

``load_weights`` error messages are compared by prefix: funcnn's strict
loading may append further problems after mlx.nn's message.  Documented funcnn
improvements are not compared with mlx.nn but asserted: a tuple of ``freeze``
keys is a collection of keys (mlx.nn is given the equivalent list),
``pathlib.Path`` is accepted (mlx.nn is given the ``str``), and a weight name
given twice to ``load_weights`` raises ``ValueError`` naming it and leaves the
model unchanged (mlx.nn, which recurses until ``RecursionError``, is not run).
Names that ``tree_unflatten`` finds ambiguous are never generated.

The example count comes from the Hypothesis profile (see ``conftest.py``)::

    python -m pytest tests/test_module_sequences.py --hypothesis-profile=long
"""

from __future__ import annotations

import pathlib
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

import mlx.core as mx
import mlx.nn as mnn  # the oracle; the library itself never imports it
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from mlx.utils import tree_flatten, tree_unflatten

import funcnn as fnn
from _compare import describe, outcome

# ----------------------------------------------------------------------
# Structures: plain-data descriptions and a builder for either namespace
# ----------------------------------------------------------------------

MEMBER_NAMES = ["a", "b", "blk", "weight", "bias", "_p", "t"]  # members of container modules
ITEM_KEYS = ["a", "b", "_x", "1"]  # keys of plain dicts ("_x" IS a parameter in a dict)

LINEAR = st.builds(lambda i, o, b: ("linear", i, o, b), st.integers(1, 3), st.integers(1, 3), st.booleans())
ARRAY = st.builds(lambda n, dt: ("array", n, dt), st.integers(1, 3), st.sampled_from(["float32", "float32", "int32"]))
LEAVES = st.one_of(  # repeated entries weight the draw towards parameters
    LINEAR,
    LINEAR,
    st.builds(lambda d: ("layernorm", d), st.integers(1, 3)),
    st.builds(lambda n, d: ("embedding", n, d), st.integers(2, 4), st.integers(1, 3)),
    ARRAY,
    ARRAY,
    st.just(("relu",)),
    st.builds(lambda i: ("shared", i), st.integers(0, 9)),  # a module built earlier, again
    st.sampled_from([("int",), ("none",), ("list", []), ("dict", []), ("box", [])]),
)


def members(children, min_size=0):
    return st.lists(
        st.tuples(st.sampled_from(MEMBER_NAMES), children), min_size=min_size, max_size=4, unique_by=lambda kv: kv[0]
    )


def _extend(children):
    small = st.lists(children, min_size=1, max_size=3)
    return st.one_of(
        small.map(lambda xs: ("list", xs)),
        st.lists(
            st.tuples(st.sampled_from(ITEM_KEYS), children), min_size=1, max_size=3, unique_by=lambda kv: kv[0]
        ).map(lambda kv: ("dict", kv)),
        small.map(lambda xs: ("tuple", xs)),
        members(children, min_size=1).map(lambda kv: ("box", kv)),
    )


STRUCTURES = members(st.recursive(LEAVES, _extend, max_leaves=12), min_size=2).map(lambda kv: ("box", kv))

_BOX_CLASSES: dict = {}


def box_class(nn):
    """The container ``Module`` subclass of namespace ``nn`` (named ``Box`` in both)."""
    if nn not in _BOX_CLASSES:

        class Box(nn.Module):
            def __init__(self, items):
                super().__init__()
                for k, v in items:
                    setattr(self, k, v)

        _BOX_CLASSES[nn] = Box
    return _BOX_CLASSES[nn]


def build(nn, spec, seed=0):
    """Build ``spec`` with ``nn``; layers are seeded, arrays deterministic."""
    mx.random.seed(seed)
    built = []  # modules in construction order, for ("shared", i)
    count = [0]

    def make(s):
        kind = s[0]
        if kind == "shared" and built:
            return built[s[1] % len(built)]
        if kind == "array":
            count[0] += 1
            return mx.arange(s[1], dtype=getattr(mx, s[2])) + count[0]
        if kind in ("int", "none"):
            return 3 if kind == "int" else None
        if kind in ("list", "tuple"):
            items = [make(v) for v in s[1]]
            return items if kind == "list" else tuple(items)
        if kind == "dict":
            return {k: make(v) for k, v in s[1]}
        if kind == "linear":
            m = nn.Linear(s[1], s[2], bias=s[3])
        elif kind == "layernorm":
            m = nn.LayerNorm(s[1])
        elif kind == "embedding":
            m = nn.Embedding(s[1], s[2])
        elif kind == "box":
            m = box_class(nn)([(k, make(v)) for k, v in s[1]])
        else:  # "relu", or "shared" before any module exists
            m = nn.ReLU()
        built.append(m)
        return m

    return make(spec)


def snapshot(m):
    """Everything compared after each operation, in namespace-independent form."""
    table = [(k, type(x).__name__, x.training, sorted(x._no_grad, key=repr)) for k, x in m.named_modules()]
    return describe([m, m.parameters(), m.trainable_parameters(), table])


# ----------------------------------------------------------------------
# Operations: each drawn against the current (funcnn) model, run on both
# ----------------------------------------------------------------------


@dataclass
class Op:
    label: str
    run: Callable[[Any, Any, pathlib.Path], Any]  # (nn, model, tmp dir) -> result
    prefix_message: bool = False  # load_weights: funcnn's message starts with mlx.nn's
    duplicate: str | None = None  # load_weights with this name twice: funcnn-only ValueError
    saves: str | None = None  # save_weights: the extension written


def key_pool(m):
    pool = {"nope"}
    for _, x in m.named_modules():
        pool.update(k for k in x if isinstance(k, str))
        pool.update(k for k, _ in tree_flatten(x.parameters()))
    return sorted(pool)


def draw_freeze(data, m):
    method = data.draw(st.sampled_from(["freeze", "unfreeze"]))
    names = st.sampled_from(key_pool(m))
    keys = data.draw(
        st.one_of(st.none(), names, st.lists(names, max_size=3), st.lists(names, min_size=1, max_size=3).map(tuple))
    )
    recurse, strict = data.draw(st.booleans()), data.draw(st.booleans())

    def run(nn, model, tmp):
        # funcnn improvement: a tuple is a collection of keys (mlx.nn: one bogus key).
        k = list(keys) if nn is mnn and isinstance(keys, tuple) else keys
        return getattr(model, method)(keys=k, recurse=recurse, strict=strict)

    return Op(f"{method}(keys={keys!r}, recurse={recurse}, strict={strict})", run)


def new_value(variant, v, j):
    """A replacement for array ``v`` (fresh containers each call)."""
    if variant == "same":
        return v
    if variant == "new":
        return mx.full(v.shape, j + 1, dtype=v.dtype)
    if variant == "f16":
        return mx.full(v.shape, j + 1, dtype=mx.float16)
    if variant == "shape":
        return mx.zeros((7,))
    return {"int": 3, "dict": {"x": 1}, "list": [1.0]}[variant]


def draw_update(data, m):
    params = tree_flatten(m.parameters())
    chosen = data.draw(st.lists(st.sampled_from(range(len(params))), unique=True, max_size=4)) if params else []
    variants = st.sampled_from(["new", "f16", "shape", "int", "dict"])
    picked = [(params[i][0], params[i][1], data.draw(variants)) for i in chosen]
    module_paths = [k for k, _ in m.named_modules() if k]
    wrong = data.draw(st.sampled_from([None, "unknown", "array_for_module", "top_array"]))
    if wrong == "array_for_module" and not module_paths:
        wrong = None
    target = data.draw(st.sampled_from(module_paths)) if wrong == "array_for_module" else None
    strict = data.draw(st.booleans())

    def run(nn, model, tmp):
        if wrong == "top_array":
            return model.update(mx.ones((1,)), strict=strict)
        if wrong == "array_for_module":
            return model.update(tree_unflatten([(target, mx.ones((1,)))]), strict=strict)
        pairs = [(k, new_value(var, v, j)) for j, (k, v, var) in enumerate(picked)]
        tree = tree_unflatten(pairs) if pairs else {}
        if wrong == "unknown":
            tree = dict(tree) if isinstance(tree, dict) else {}
            tree["zz"] = mx.ones((1,))
        return model.update(tree, strict=strict)

    detail = target if wrong == "array_for_module" else [(k, var) for k, _, var in picked]
    return Op(f"update({detail}, wrong={wrong}, strict={strict})", run)


def fresh_module(nn, kind):
    mx.random.seed(123)
    if kind == "linear":
        return nn.Linear(2, 2)
    if kind == "layernorm":
        return nn.LayerNorm(3)
    if kind == "box":
        return box_class(nn)([("w", mx.ones((2,))), ("sub", nn.ReLU())])
    return nn.ReLU() if kind == "relu" else mx.ones((1,))


def draw_update_modules(data, m):
    paths = [k for k, _ in m.named_modules() if k] + [k for k, _ in tree_flatten(m.parameters())] + ["zz"]
    target = data.draw(st.sampled_from(paths))
    kind = data.draw(st.sampled_from(["linear", "layernorm", "relu", "box", "array"]))
    strict = data.draw(st.booleans())

    def run(nn, model, tmp):
        return model.update_modules(tree_unflatten([(target, fresh_module(nn, kind))]), strict=strict)

    return Op(f"update_modules({target!r} <- {kind}, strict={strict})", run)


MAPS = {"x2": lambda x: x * 2, "f16": lambda x: x.astype(mx.float16), "int": lambda x: 3}
FILTERS = {
    "default": None,
    "bias": lambda m, k, v: k == "bias",
    "containers_and_bias": lambda m, k, v: isinstance(v, (dict, list)) or k.endswith("bias"),
    "private_too": lambda m, k, v: isinstance(v, (dict, list, mx.array)),
}


def draw_apply(data, m):
    fn, flt = data.draw(st.sampled_from(sorted(MAPS))), data.draw(st.sampled_from(sorted(FILTERS)))
    return Op(f"apply({fn}, {flt})", lambda nn, model, tmp: model.apply(MAPS[fn], FILTERS[flt]))


def draw_set_dtype(data, m):
    dtype = data.draw(st.sampled_from(["float16", "bfloat16", "float32"]))
    every = data.draw(st.booleans())

    def run(nn, model, tmp):
        if every:
            return model.set_dtype(getattr(mx, dtype), predicate=None)
        return model.set_dtype(getattr(mx, dtype))

    return Op(f"set_dtype({dtype}, predicate={'None' if every else 'default'})", run)


def draw_train(data, m):
    mode = data.draw(st.sampled_from([True, False, "eval"]))
    if mode == "eval":
        return Op("eval()", lambda nn, model, tmp: model.eval())
    return Op(f"train({mode})", lambda nn, model, tmp: model.train(mode))


def weight_file(nn, tmp, ext):
    return tmp / f"{nn.__name__}{ext}"


def draw_save(data, m):
    ext = data.draw(st.sampled_from([".npz", ".safetensors"]))
    as_path = data.draw(st.booleans())

    def run(nn, model, tmp):
        path = weight_file(nn, tmp, ext)
        # funcnn improvement: pathlib.Path is accepted (mlx.nn: str only).
        res = model.save_weights(path if as_path and nn is fnn else str(path))
        return res, sorted(mx.load(str(path)).items())

    return Op(f"save_weights({ext}, path={as_path})", run, saves=ext)


def draw_load_file(data, m, ext):
    strict, as_path = data.draw(st.booleans()), data.draw(st.booleans())

    def run(nn, model, tmp):
        path = weight_file(nn, tmp, ext)
        return model.load_weights(path if as_path and nn is fnn else str(path), strict=strict)

    return Op(f"load_weights(<saved {ext}>, strict={strict}, path={as_path})", run, prefix_message=True)


def draw_load_list(data, m):
    params = tree_flatten(m.parameters())
    keep = [data.draw(st.booleans()) or data.draw(st.booleans()) for _ in params]  # mostly kept
    variants = [data.draw(st.sampled_from(["same", "same", "new", "f16", "shape", "list"])) for _ in params]
    extra = data.draw(st.sampled_from([None, None, "zz", "zz.q"]))
    kept = [k for (k, _), on in zip(params, keep) if on]
    duplicate = None  # a kept name given a second time, in one list out of four
    if kept and data.draw(st.booleans()) and data.draw(st.booleans()):
        duplicate = data.draw(st.sampled_from(kept))
    as_dict = duplicate is None and data.draw(st.booleans())
    strict = data.draw(st.booleans())

    def run(nn, model, tmp):
        entries = enumerate(zip(params, variants, keep))
        weights = [(k, new_value(var, v, j)) for j, ((k, v), var, on) in entries if on]
        if extra:
            weights.append((extra, mx.ones((2,))))
        if duplicate is not None:
            weights.append((duplicate, mx.full((1,), 9.0)))
        return model.load_weights(dict(weights) if as_dict else weights, strict=strict)

    shown = [(k, var) for (k, _), var, on in zip(params, variants, keep) if on]
    label = f"load_weights({shown}, extra={extra}, duplicate={duplicate}, dict={as_dict}, strict={strict})"
    return Op(label, run, prefix_message=True, duplicate=duplicate)


DRAWERS = [  # freeze/unfreeze twice: their effects need longer sequences to show
    draw_freeze,
    draw_freeze,
    draw_update,
    draw_update_modules,
    draw_apply,
    draw_set_dtype,
    draw_train,
    draw_save,
    draw_load_list,
]


# ----------------------------------------------------------------------
# Comparison
# ----------------------------------------------------------------------


def result_of(res, model):
    if isinstance(res, BaseException):
        return res
    value = res[1]
    return "self" if value is model else describe(value)


def assert_same_outcome(op, ours, theirs):
    if isinstance(theirs, BaseException) or isinstance(ours, BaseException):
        # funcnn may raise a subclass (load_weights: MismatchError(ValueError)).
        assert isinstance(ours, type(theirs)), (ours, theirs)
        if op.prefix_message:
            assert str(ours).startswith(str(theirs)), (str(ours), str(theirs))
        else:
            assert str(ours) == str(theirs)
    else:
        assert ours == theirs


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=STRUCTURES, data=st.data())
def test_random_operation_sequences(spec, data):
    ours, theirs = build(fnn, spec), build(mnn, spec)
    assert snapshot(ours) == snapshot(theirs)
    saved_ext = None
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = pathlib.Path(tmpdir)
        for step in range(data.draw(st.integers(1, 8), label="steps")):
            drawers = DRAWERS + ([lambda d, m: draw_load_file(d, m, saved_ext)] if saved_ext else [])
            op = data.draw(st.sampled_from(drawers))(data, ours)
            note(f"step {step}: {op.label}")
            if op.duplicate is not None:
                before = snapshot(ours)
                res = outcome(op.run, fnn, ours, tmp)
                assert isinstance(res, ValueError) and op.duplicate in str(res), res
                assert snapshot(ours) == before
                event("load_weights duplicate -> ValueError (funcnn only)")
                continue
            results = []
            for nn, model in ((fnn, ours), (mnn, theirs)):
                mx.random.seed(step)
                results.append(result_of(outcome(op.run, nn, model, tmp), model))
            assert_same_outcome(op, *results)
            raised = isinstance(results[1], BaseException)
            event(op.label.split("(")[0] + (f" -> {type(results[1]).__name__}" if raised else " -> ok"))
            assert snapshot(ours) == snapshot(theirs)
            if op.saves and not isinstance(results[0], BaseException):
                saved_ext = op.saves
