"""Tests of ``funcnn.summary``: counts, shapes, sharing, dtypes, pairs, mlx.nn, purity, laziness."""

from __future__ import annotations


import mlx.core as mx
import mlx.nn as mnn  # an oracle and a second kind of model; the library never imports it
import pytest

import funcnn as nn
import funcnn.functional as F
from funcnn.summary import ModelSummary, summary
from funcnn.tree import tree_flatten


def mlp(lib=nn):
    return lib.Sequential(lib.Linear(4, 8), lib.ReLU(), lib.Linear(8, 2))


def by_path(s: ModelSummary) -> dict:
    return {r.path: r for r in s.rows}


def param_size(tree) -> int:
    return sum(x.size for _, x in tree_flatten(tree))


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        lin = nn.Linear(4, 4)
        self.a = lin
        self.b = lin
        self.head = nn.Linear(4, 2)

    def __call__(self, x):
        return self.head(self.b(self.a(x)))


class Structured(nn.Module):
    """Outputs of several kinds, own params in containers, a child never called."""

    def __init__(self):
        super().__init__()
        self.ws = [mx.zeros((3,)), mx.zeros((4,))]
        self.d = {"a": mx.zeros((2,), dtype=mx.float16)}
        self.lin = nn.Linear(3, 5)
        self.pair_out = TupleOut()
        self.unused = nn.Linear(2, 2)

    def __call__(self, x):
        y = self.lin(x)
        self.lin(x[:1])
        first, info = self.pair_out(y)
        return {"y": first, "info": info}


class TupleOut(nn.Module):
    def __call__(self, x):
        return x * 2, (x.sum(-1), None)


# ----------------------------------------------------------------------
# Counts
# ----------------------------------------------------------------------


def test_counts_equal_parameters_and_bytes():
    model = mlp()
    s = summary(model, mx.zeros((3, 4)))
    params = tree_flatten(model.parameters())
    assert s.total_params == param_size(model.parameters()) == 58
    assert s.trainable_params == 58 and s.frozen_params == 0
    assert s.total_bytes == sum(x.nbytes for _, x in params)
    assert sum(r.trainable + r.frozen for r in s.rows) == s.total_params
    assert [r.path for r in s.rows] == ["", "layers.0", "layers.1", "layers.2"]
    assert [r.type for r in s.rows] == ["Sequential", "Linear", "ReLU", "Linear"]


def test_trainable_frozen_split_after_freeze():
    model = mlp()
    model.freeze(keys="bias")
    s = summary(model, mx.zeros((3, 4)))
    rows = by_path(s)
    assert (rows["layers.0"].trainable, rows["layers.0"].frozen) == (32, 8)
    assert (rows["layers.2"].trainable, rows["layers.2"].frozen) == (16, 2)
    assert s.trainable_params == param_size(model.trainable_parameters()) == 48
    assert s.frozen_params == 10
    assert s.total_params == 58


def test_own_parameters_include_lists_and_dicts_but_not_children():
    model = Structured()
    model.freeze(keys="ws.0", recurse=False)
    rows = by_path(summary(model, mx.zeros((2, 3))))
    root = rows[""]
    assert (root.trainable, root.frozen) == (6, 3)  # ws.1 + d.a trainable, ws.0 frozen
    assert root.dtypes == "float32, float16"
    assert root.nbytes == 3 * 4 + 4 * 4 + 2 * 2
    assert (rows["lin"].trainable, rows["lin"].frozen) == (20, 0)


# ----------------------------------------------------------------------
# Output shapes
# ----------------------------------------------------------------------


def test_shapes_match_running_each_submodule():
    model = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8), nn.Linear(8, 3), nn.SiLU())
    x = mx.zeros((5, 4))
    rows = by_path(summary(model, x))
    h = x
    for i, layer in enumerate(model.layers):
        h = layer(h)
        assert rows[f"layers.{i}"].output_shapes == [h.shape]
    assert rows[""].output_shapes == [model(x).shape]


def test_structured_outputs_repeated_calls_and_uncalled_modules():
    model = Structured()
    s = summary(model, mx.zeros((2, 3)))
    rows = by_path(s)
    assert rows["lin"].output_shapes == [(2, 5), (1, 5)]
    assert rows["pair_out"].output_shapes == [((2, 5), ((2,), None))]
    assert rows[""].output_shapes == [{"y": (2, 5), "info": ((2,), None)}]
    assert rows["unused"].output_shapes == []
    text = str(s)
    assert "(2, 5); (1, 5)" in text
    assert "((2, 5), ((2,), None))" in text
    unused_line = next(line for line in text.splitlines() if line.startswith("unused"))
    assert unused_line.split()[2] == "-"


def test_parameterless_layers_appear_with_zero_params():
    rows = by_path(summary(mlp(), mx.zeros((3, 4))))
    relu = rows["layers.1"]
    assert (relu.type, relu.trainable, relu.frozen) == ("ReLU", 0, 0)
    assert (relu.nbytes, relu.dtypes) == (0, "")
    assert relu.output_shapes == [(3, 8)]


def test_shared_module_one_row_per_path_counted_once():
    model = Shared()
    s = summary(model, mx.zeros((2, 4)))
    rows = by_path(s)
    assert rows["a"].trainable == rows["b"].trainable == 20
    assert rows["a"].shared_with is None and rows["b"].shared_with == "a"
    assert rows["a"].output_shapes == [(2, 4), (2, 4)]
    assert s.total_params == param_size(model.parameters()) - 20 == 30
    text = str(s)
    assert "Linear (= a)" in text and "(2, 4) x2" in text


def test_multi_head_attention():
    model = nn.MultiHeadAttention(16, 4, bias=True)
    q, kv = mx.zeros((2, 5, 16)), mx.zeros((2, 7, 16))
    s = summary(model, q, kv, kv, mask=None)
    rows = by_path(s)
    assert list(rows) == ["", "query_proj", "key_proj", "value_proj", "out_proj"]
    assert rows[""].output_shapes == [(2, 5, 16)]
    assert rows["key_proj"].output_shapes == [(2, 7, 16)]
    assert all(rows[p].trainable == 16 * 16 + 16 for p in list(rows)[1:])
    assert s.total_params == param_size(model.parameters())
    assert s.inputs == "(2, 5, 16), (2, 7, 16), (2, 7, 16), mask=None"


def test_float16_dtypes_and_bytes():
    model = mlp()
    model.set_dtype(mx.float16)
    model.layers[2].bias = model.layers[2].bias.astype(mx.float32)
    s = summary(model, mx.zeros((3, 4), dtype=mx.float16))
    rows = by_path(s)
    assert rows["layers.0"].dtypes == "float16" and rows["layers.0"].nbytes == 40 * 2
    assert rows["layers.2"].dtypes == "float16, float32"
    assert rows["layers.2"].nbytes == 16 * 2 + 2 * 4
    assert s.total_bytes == 40 * 2 + 16 * 2 + 2 * 4


# ----------------------------------------------------------------------
# Functional pairs and mlx.nn models
# ----------------------------------------------------------------------


def test_functional_pair():
    pair = F.sequential(F.linear(4, 8), F.relu(), F.linear(8, 2))
    params = pair.init(mx.random.key(0))
    s = summary(pair, params, mx.zeros((3, 4)))
    rows = by_path(s)
    assert list(rows) == ["", "layers.0", "layers.2"]
    assert rows[""].type == "sequential" and rows[""].output_shapes == [(3, 2)]
    assert rows["layers.0"].trainable == 40 and rows["layers.0"].output_shapes == []
    assert s.total_params == s.trainable_params == param_size(params) == 58
    assert s.frozen_params == 0
    flat = summary(F.linear(4, 3), F.linear(4, 3).init(), mx.zeros((1, 4)))
    assert [(r.path, r.trainable) for r in flat.rows] == [("", 15)]
    with pytest.raises(TypeError, match="params"):
        summary(pair)


def test_stateful_pair_counts_state_as_frozen_like_the_facade():
    pair = F.sequential(F.linear(4, 8), F.batch_norm(8), F.dropout(0.5), F.linear(8, 2))
    params = pair.init(mx.random.key(0))
    s = summary(pair, params, mx.zeros((3, 4)))
    assert by_path(s)[""].output_shapes == [(3, 2)]
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm(8), nn.Dropout(0.5), nn.Linear(8, 2))
    facade = summary(model, mx.zeros((3, 4)))
    assert (s.total_params, s.trainable_params, s.frozen_params) == (90, 74, 16)
    assert (facade.total_params, facade.trainable_params, facade.frozen_params) == (90, 74, 16)


def test_mlx_nn_model_gives_the_same_table():
    mx.random.seed(0)
    ours, theirs = mlp(nn), mlp(mnn)
    ours.freeze(keys="bias")
    theirs.freeze(keys="bias")
    call_before = mnn.Linear.__dict__["__call__"]
    a, b = summary(ours, mx.zeros((3, 4))), summary(theirs, mx.zeros((3, 4)))
    assert a.rows == b.rows  # same paths, types, shapes, counts, dtypes and bytes
    assert (a.total_params, a.trainable_params, a.frozen_params, a.total_bytes) == (
        b.total_params, b.trainable_params, b.frozen_params, b.total_bytes
    )
    assert str(a) == str(b)
    assert mnn.Linear.__dict__["__call__"] is call_before


def test_subclass_calls_are_recorded_once_and_classes_restored():
    class Plain(nn.Linear):  # inherits __call__
        pass

    class Calling(nn.Linear):  # reaches the base's (patched) __call__ through super()
        def __call__(self, x):
            return super().__call__(x) + 1

    own_call = Calling.__dict__["__call__"]
    model = nn.Sequential(nn.Linear(2, 3), Plain(3, 3), Calling(3, 4))
    rows = by_path(summary(model, mx.zeros((1, 2))))
    assert [rows[f"layers.{i}"].output_shapes for i in range(3)] == [[(1, 3)], [(1, 3)], [(1, 4)]]
    assert "__call__" not in Plain.__dict__
    assert Calling.__dict__["__call__"] is own_call


# ----------------------------------------------------------------------
# Never changes the model, never evaluates
# ----------------------------------------------------------------------


class Stateful(nn.Module):
    """A forward with side effects (running stats, a log), then optionally a failure."""

    def __init__(self, fail: bool):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 4), nn.Linear(3, 3))
        self.running = mx.zeros((4,))
        self.log = []
        self.fail = fail

    def __call__(self, x):
        self.running = self.running * 0.9 + x.mean(0)
        self.log.append(x)
        self.calls = 1
        self.freeze(keys="running", recurse=False)
        return self.body(x) if self.fail else self.body.layers[0](x)


def snapshot(model):
    return [
        (path, type(m), {k: id(v) for k, v in m.items()}, dict(vars(m)), set(m._no_grad))
        for path, m in model.named_modules()
    ]


@pytest.mark.parametrize("fail", [False, True])
def test_model_unchanged_even_when_forward_mutates_or_raises(fail):
    model = Stateful(fail)
    model.body.layers[1].freeze()
    model.eval()
    before = snapshot(model)
    params = [(k, id(v)) for k, v in tree_flatten(model.parameters())]
    log, running = model.log, model.running
    calls = {c: c.__dict__.get("__call__") for c in (Stateful, nn.Sequential, nn.Linear)}
    if fail:
        with pytest.raises(ValueError) as info:
            summary(model, mx.zeros((2, 4)))
        assert any("body.layers.1" in note for note in info.value.__notes__)
    else:
        assert by_path(summary(model, mx.zeros((2, 4))))["body.layers.1"].output_shapes == []
    assert snapshot(model) == before
    assert [(k, id(v)) for k, v in tree_flatten(model.parameters())] == params
    assert not model.training and model.body.layers[1].trainable_parameters() == {}
    assert model.log is log and log == [] and model.running is running
    assert not hasattr(model, "calls")
    assert {c: c.__dict__.get("__call__") for c in calls} == calls
    model.fail = False
    assert model(mx.zeros((2, 4))).shape == (2, 4)  # still callable normally


def test_exception_in_root_is_noted_and_restored():
    class Broken(nn.Module):
        def __call__(self, x):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom") as info:
        summary(Broken(), mx.zeros(1))
    assert info.value.__notes__ == ["funcnn.summary: raised in sub-module (root)"]
    assert "__call__" in Broken.__dict__ and Broken.__dict__["__call__"].__name__ == "__call__"
    assert not hasattr(Broken.__dict__["__call__"], "__wrapped__")


class Expensive(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.proj = nn.Linear(n, n, bias=False)

    def __call__(self, x):
        for _ in range(50):
            x = self.proj(x @ x)
        return x


def test_never_evaluates(monkeypatch):
    evaluated = []
    monkeypatch.setattr(mx, "eval", lambda *a, **k: evaluated.append(a))
    monkeypatch.setattr(mx, "async_eval", lambda *a, **k: evaluated.append(a))
    n = 2048  # any evaluation (even implicit, e.g. .item()) would allocate 16 MB per result
    model, x = Expensive(n), mx.zeros((n, n))
    mx.reset_peak_memory()
    s = summary(model, x)
    assert mx.get_peak_memory() < 1 << 20
    assert evaluated == []
    assert by_path(s)["proj"].output_shapes == [(n, n)] * 50
    assert s.total_params == n * n


# ----------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------


def test_str_has_header_rows_and_totals():
    big = nn.Sequential(nn.Linear(64, 64), nn.ReLU())
    s = summary(big, mx.zeros((2, 64)))
    text = str(s)
    assert repr(s) == text
    lines = text.splitlines()
    assert lines[0] == "Sequential summary, inputs: (2, 64)"
    assert lines[-1] == "Total params: 4,160 (16.2 KB), trainable: 4,160, frozen: 0"
    assert any(line.startswith("(root)") for line in lines)
    assert "16.2 KB" in next(line for line in lines if line.startswith("layers.0"))
    assert s.total_bytes == 4160 * 4
    widths = {len(line) for line in lines[1:-1] if set(line) == {"-"}}
    assert len(widths) == 1


def test_rejects_non_models():
    with pytest.raises(TypeError, match="Module or a functional Pair"):
        summary(lambda x: x, mx.zeros(1))
