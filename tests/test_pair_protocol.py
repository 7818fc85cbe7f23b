"""The pair protocol's helpers: ``merge_updates``, ``apply_layer``, ``Pair.trainable``, flags."""

from __future__ import annotations

import mlx.core as mx
import pytest

import funcnn as nn
import funcnn.functional as F

W, B = mx.ones((2, 2)), mx.zeros(2)


def test_merge_updates_is_pure_and_shares_untouched_subtrees():
    params = {"layers": [{"w": W}, {"mean": B, "var": W}], "head": {"b": B}}
    new_mean = mx.full((2,), 3.0)
    merged = F.merge_updates(params, {"layers": [{}, {"mean": new_mean}]})
    assert merged["layers"][1]["mean"] is new_mean and merged["layers"][1]["var"] is W
    assert merged["layers"][0] is params["layers"][0] and merged["head"] is params["head"]
    assert params["layers"][1]["mean"] is B  # the input is unchanged
    assert F.merge_updates(params, {}) is params


@pytest.mark.parametrize(
    "updates, message",
    [
        ({"layers": [{}, {"nope": B}]}, r"params has no entry 'layers\.1\.nope'"),
        ({"layers": [{}, {}, {}]}, r"a list of 3 at 'layers', where params has a list of 2"),
        ({"head": B}, r"an array at 'head', where params has a dict"),
        ({"head": {"b": {"x": B}}}, r"a dict at 'head\.b', where params has a array"),
        ({"head": {"b": 3}}, r"received int at 'head\.b'"),
    ],
)
def test_merge_updates_names_a_bad_path(updates, message):
    params = {"layers": [{"w": W}, {"mean": B}], "head": {"b": B}}
    with pytest.raises(ValueError, match=message):
        F.merge_updates(params, updates)


def test_apply_layer_passes_only_the_channels_a_layer_takes():
    seen = {}

    def apply(params, x, *, training=True):
        seen["training"] = training
        return x + 1

    plain = F.Pair(lambda key=None: {}, apply, "plain", takes_training=True)
    out, updates = F.apply_layer(plain, {}, [mx.zeros(1)], key=mx.random.key(0), training=False)
    assert out.tolist() == [1.0] and updates == {} and seen == {"training": False}
    out, updates = F.apply_layer(mx.tanh, {}, [mx.zeros(1)], key=None)  # a plain callable
    assert out.tolist() == [0.0] and updates == {}
    bn = F.batch_norm(2)
    out, updates = F.apply_layer(bn, bn.init(), [mx.ones((3, 2))])
    assert sorted(updates) == ["running_mean", "running_var"]


def test_default_trainable_mask_and_flags_of_a_hand_made_pair():
    pair = F.Pair(lambda key=None: {"w": W, "sub": [{"b": B}, {}]}, lambda p, x: x, "mine")
    assert pair.trainable(pair.init()) == {"w": True, "sub": [{"b": True}, {}]}
    assert (pair.takes_key, pair.takes_training, pair.stateful) == (False, False, False)


def test_a_batch_norm_model_updates_like_the_pair_through_module_update():
    # The same updates tree fits a Module (module.update) and a parameter tree (merge_updates).
    mx.random.seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm(4))
    pair = F.sequential(F.linear(3, 4), F.batch_norm(4))
    params = model.parameters()
    x = mx.random.normal((5, 3), key=mx.random.key(1))
    y, updates = pair.apply(params, x)
    assert mx.array_equal(model(x), y).item()
    fresh = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm(4)).update(params).update(updates)
    for a, b in zip(nn.tree_flatten(fresh.parameters()), nn.tree_flatten(model.parameters())):
        assert a[0] == b[0] and mx.array_equal(a[1], b[1]).item()
    merged = F.merge_updates(params, updates)
    assert mx.array_equal(merged["layers"][1]["running_var"], model.layers[1].running_var).item()
