"""Differential tests of ``funcnn.Module`` against ``mlx.nn.Module``: freezing, modes, state.

Sections 1.10-1.12 of ``/work/shared/reference/mlx_nn_semantics.md``:
``freeze``/``unfreeze`` (with random sequences of calls), ``train``/``eval``
and ``state``.  Improvement over mlx.nn: a tuple of keys is a collection of
keys; the test asserts funcnn's behaviour and that mlx.nn still has the bug.

Every test builds the *same* structure with both namespaces (``funcnn`` and
``mlx.nn``, passed in as ``nn``), runs the identical code on both and compares
what comes out (see ``_compare.py``).
"""

from __future__ import annotations

import copy

import mlx.core as mx
import mlx.nn as mnn  # the oracle; the library itself never imports it
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import funcnn as fnn
from _compare import doc_model, keys_of, mlp3, no_grad_table, outcome, same, trainable_keys


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
