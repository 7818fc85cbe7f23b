"""Recurrent layers beyond the registry matrix (``layer_registry/recurrent.py``).

* gradients through a whole sequence -- parameters, inputs and initial states,
  from a loss on the last step only -- equal mlx.nn's bit for bit;
* a pure LSTM training step under ``mx.compile`` is traced once per sequence
  length and equals the eager step; the facade ``LSTM`` trained under
  ``funcnn.transforms.compile`` equals eager funcnn and eager mlx.nn;
* the deliberate differences from mlx.nn (RNN's ``nonlinearity or tanh``),
  each pinned beside mlx.nn's behaviour; ``GRU.hidden_size`` read at call time.

Plus the parts of the positional-encoding family the matrix does not reach:
ALiBi's static methods against mlx.nn's, and its (absent) mask cache.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn
import numpy as np
import pytest
from _bits import normal
from mlx.utils import tree_flatten, tree_map

import funcnn
import funcnn.functional as F
import funcnn.transforms as T

LR = 0.5


def assert_same(got, want, rtol: float = 0.0, atol: float = 0.0) -> None:
    got_flat, want_flat = tree_flatten(got), tree_flatten(want)
    assert [k for k, _ in got_flat] == [k for k, _ in want_flat]
    for (name, g), (_, w) in zip(got_flat, want_flat):
        assert g.shape == w.shape and g.dtype == w.dtype, name
        np.testing.assert_allclose(
            np.array(g.astype(mx.float32)), np.array(w.astype(mx.float32)), rtol=rtol, atol=atol,
            err_msg=name,
        )


def perturbed_init(pair, seed: int) -> dict:
    params = pair.init(mx.random.key(seed))
    return tree_map(lambda a: a + 0.2 * normal(seed + a.size, *a.shape), params)


def last_step_loss(out, weights: list) -> mx.array:
    """A loss on the last step only: its gradient reaches step 0 only through the recurrence."""
    outs = out if isinstance(out, tuple) else (out,)
    return sum((o[..., -1, :] * w).sum() for o, w in zip(outs, weights))


# --- gradients through a sequence ------------------------------------------------------------

RECURRENT = [("RNN", "rnn", 1), ("GRU", "gru", 1), ("LSTM", "lstm", 2)]  # (class, factory, states)


@pytest.mark.parametrize("batch", [(2,), ()], ids=["batched", "unbatched"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("cls,factory,n_states", RECURRENT, ids=[r[0] for r in RECURRENT])
def test_gradients_through_a_sequence_match_mlx(cls, factory, n_states, bias, batch):
    pair = getattr(F, factory)(3, 4, bias=bias)
    params = perturbed_init(pair, 1)
    x = normal(2, *batch, 6, 3)
    states = [normal(3 + i, *batch, 4) for i in range(n_states)]
    weights = [normal(10 + i, *batch, 4) for i in range(n_states)]
    argnums = tuple(range(2 + n_states))

    def ours(p, x, *s):
        return last_step_loss(pair.apply(p, x, *s), weights)

    model = getattr(mlx.nn, cls)(3, 4, bias=bias)

    def theirs(p, x, *s):
        model.update(p)
        return last_step_loss(model(x, *s), weights)

    value, grads = mx.value_and_grad(ours, argnums)(params, x, *states)
    want_value, want_grads = mx.value_and_grad(theirs, argnums)(params, x, *states)
    assert_same(value, want_value)
    assert_same(list(grads), list(want_grads))
    # The first step and the initial states reach the last step's loss.
    assert mx.any(grads[1][..., 0, :] != 0).item()
    for g in grads[2:]:
        assert mx.any(g != 0).item()


def test_gradient_with_respect_to_the_initial_cell_alone_matches_mlx():
    pair = F.lstm(3, 4)
    params = perturbed_init(pair, 4)
    x, cell, w = normal(5, 2, 5, 3), normal(6, 2, 4), normal(7, 2, 4)
    model = mlx.nn.LSTM(3, 4)
    model.update(params)
    got = mx.grad(lambda c: last_step_loss(pair.apply(params, x, None, c), [w]))(cell)
    want = mx.grad(lambda c: last_step_loss(model(x, None, c), [w]))(cell)
    assert_same(got, want)
    assert mx.any(got != 0).item()


# --- compiled training steps ------------------------------------------------------------------


def test_compiled_pure_lstm_step_is_traced_once_per_sequence_length_and_equals_eager():
    pair = F.lstm(3, 5)

    def loss_fn(p, x, y):
        hidden, _ = pair.apply(p, x)
        return ((hidden[:, -1, :2] - y) ** 2).mean()

    def sgd_step(p, x, y):
        loss, grads = mx.value_and_grad(loss_fn)(p, x, y)
        return loss, tree_map(lambda a, g: a - LR * g, p, grads)

    traces = []

    def traced_step(p, x, y):
        traces.append(x.shape)  # runs only while MLX traces
        return sgd_step(p, x, y)

    compiled = mx.compile(traced_step)
    eager_params = compiled_params = pair.init(mx.random.key(0))
    losses = []
    for i in range(4):
        x, y = normal(20 + i, 4, 6, 3), normal(40 + i, 4, 2)
        loss, compiled_params = compiled(compiled_params, x, y)
        want_loss, eager_params = sgd_step(eager_params, x, y)
        assert_same(loss, want_loss, rtol=1e-6, atol=1e-6)
        assert_same(compiled_params, eager_params, rtol=1e-5, atol=1e-6)
        losses.append(loss.item())
    assert traces == [(4, 6, 3)]
    assert len(set(losses)) == 4  # new data and new parameters every call
    compiled(compiled_params, normal(60, 4, 7, 3), normal(61, 4, 2))  # another length
    assert traces == [(4, 6, 3), (4, 7, 3)]


def test_funcnn_compile_of_a_facade_lstm_step_equals_eager_funcnn_and_mlx():
    params = perturbed_init(F.lstm(3, 5), 8)
    traces = []

    def step(model, x, y):
        traces.append(1)
        loss, grads = T.value_and_grad(lambda m: ((m(x)[0][:, -1, :2] - y) ** 2).mean())(model)
        model.update({k: v - LR * grads[k] for k, v in model.parameters().items()})
        return loss

    compiled_step = T.compile(step)
    compiled, eager, oracle = funcnn.LSTM(3, 5), funcnn.LSTM(3, 5), mlx.nn.LSTM(3, 5)
    for m in (compiled, eager, oracle):
        m.update(params)
    oracle_vg = mlx.nn.value_and_grad(
        oracle, lambda x, y: ((oracle(x)[0][:, -1, :2] - y) ** 2).mean()
    )
    for i in range(3):
        x, y = normal(70 + i, 4, 6, 3), normal(80 + i, 4, 2)
        got = compiled_step(compiled, x, y)
        want = step(eager, x, y)
        oracle_loss, grads = oracle_vg(x, y)
        oracle.update(tree_map(lambda p, g: p - LR * g, oracle.parameters(), grads))
        assert_same(want, oracle_loss)
        assert_same(eager.parameters(), oracle.parameters())
        assert_same(got, want, rtol=1e-6, atol=1e-6)
        assert_same(compiled.parameters(), eager.parameters(), rtol=1e-5, atol=1e-6)
    assert len(traces) == 1 + 3  # one trace, three eager calls


# --- settings and deliberate differences ---------------------------------------------------


def test_gru_reads_hidden_size_at_call_time_as_mlx_does():
    x = normal(0, 2, 5, 3)
    errors = []
    for lib in (mlx.nn, funcnn):
        layer = lib.GRU(3, 4)
        layer.hidden_size = 3  # 12 gate columns no longer split evenly
        with pytest.raises(ValueError) as error:
            layer(x)
        errors.append(str(error.value))
    assert errors[0] == errors[1] and "split" in errors[0]


def test_rnn_keeps_an_empty_module_nonlinearity_that_mlx_nn_replaces_by_tanh():
    # mlx.nn tests ``nonlinearity or tanh``: a Module is a dict, an empty one is falsy.
    assert mlx.nn.RNN(3, 4, nonlinearity=mlx.nn.ReLU()).nonlinearity is mlx.nn.tanh
    layer = funcnn.RNN(3, 4, nonlinearity=funcnn.ReLU())
    assert isinstance(layer.nonlinearity, funcnn.ReLU)
    assert list(layer) == ["nonlinearity", "Wxh", "Whh", "bias"]  # a child Module, as in mlx.nn
    params = {k: v for k, v in layer.parameters().items() if k != "nonlinearity"}
    oracle = mlx.nn.RNN(3, 4, nonlinearity=mlx.nn.relu)  # a function: kept by both
    oracle.update(params)
    x = normal(1, 2, 5, 3)
    want = oracle(x)
    assert mx.min(want).item() == 0.0  # relu, not tanh
    assert_same(layer(x), want)
    pair = F.rnn(3, 4, nonlinearity=funcnn.ReLU())
    assert_same(pair.apply(params, x), want)


@pytest.mark.parametrize("value", [0, False, ""])
def test_rnn_rejects_a_falsy_non_callable_nonlinearity_that_mlx_nn_replaces_by_tanh(value):
    assert mlx.nn.RNN(3, 4, nonlinearity=value).nonlinearity is mlx.nn.tanh
    message = f"Nonlinearity must be callable. Current value: {value}."
    for make in (funcnn.RNN, F.rnn):
        with pytest.raises(ValueError) as error:
            make(3, 4, nonlinearity=value)
        assert str(error.value) == message


def test_rnn_default_nonlinearity_is_funcnn_tanh():
    assert funcnn.RNN(3, 4).nonlinearity is funcnn.tanh
    assert F.rnn_nonlinearity(None) is funcnn.tanh


# --- ALiBi (positional-encoding family): static methods and caching --------------------------


@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16])
def test_alibi_static_methods_match_mlx(dtype):
    for heads in range(1, 18):
        got = funcnn.ALiBi.create_alibi_slope(heads, dtype=dtype)
        assert_same(got, mlx.nn.ALiBi.create_alibi_slope(heads, dtype=dtype))
    for q, k, heads, offset in [(4, 4, 8, 0), (7, 5, 6, 3), (3, 9, 12, 2), (1, 1, 1, 0)]:
        got = funcnn.ALiBi.create_alibi_matrix(q, k, heads, offset=offset, dtype=dtype)
        want = mlx.nn.ALiBi.create_alibi_matrix(q, k, heads, offset=offset, dtype=dtype)
        assert got.shape == (1, heads, q - offset, k)
        assert_same(got, want)


def test_alibi_caches_nothing_as_mlx_nn_0_32_4():
    # Older mlx.nn kept the last mask on the class; 0.32.4 rebuilds it at every call.
    assert {k for k in vars(mlx.nn.ALiBi) if not k.startswith("__")} == {
        "create_alibi_matrix", "create_alibi_slope"
    }
    assert {k for k in vars(funcnn.ALiBi) if not k.startswith("__")} == {
        "create_alibi_matrix", "create_alibi_slope"
    }
    layer, oracle = funcnn.ALiBi(), mlx.nn.ALiBi()
    for shape, offset, dtype in [((1, 2, 3, 3), 0, mx.float32), ((2, 4, 2, 5), 3, mx.float16),
                                 ((1, 2, 3, 3), 0, mx.bfloat16), ((1, 2, 3, 3), 1, mx.float32)]:
        scores = normal(sum(shape), *shape).astype(dtype)
        assert_same(layer(scores, offset), oracle(scores, offset))
    assert vars(layer) == vars(oracle) and not layer.keys()


def test_pure_rnn_refuses_a_module_nonlinearity_with_parameters():
    # Its weight would be invisible to init/apply and to gradients; the class keeps it as a child.
    with pytest.raises(TypeError, match="PReLU module with parameters"):
        F.rnn(3, 4, nonlinearity=funcnn.PReLU())
    layer = funcnn.RNN(3, 4, nonlinearity=funcnn.PReLU())
    assert "nonlinearity.weight" in dict(tree_flatten(layer.parameters()))
    F.rnn(3, 4, nonlinearity=funcnn.ReLU())  # no parameters: accepted
