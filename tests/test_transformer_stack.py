"""Transformer blocks and stacks beyond the registry matrix.

Swapped children run, checkpointing keeps outputs and gradients, custom
encoders and decoders (a falsy one included) are used, and the pure pairs
under ``mx.compile``/``mx.grad`` with dropout keys: each key is split among the
dropouts, and a checkpointed pair given a key has the gradients of the
unchecked one (mlx.nn's checkpoint draws new masks in the backward pass).
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn
import numpy as np
import pytest
from layer_registry import normal
from mlx.utils import tree_flatten

import funcnn as nn
import funcnn.functional as F


def _equal(a, b) -> bool:
    fa, fb = tree_flatten(a), tree_flatten(b)
    return [k for k, _ in fa] == [k for k, _ in fb] and all(
        mx.array_equal(x, y).item() for (_, x), (_, y) in zip(fa, fb)
    )


def _state() -> list:
    return np.array(mx.random.state[0]).tolist()


def _weighted(out: mx.array) -> mx.array:
    return (out * normal(77, *out.shape)).sum()


X, MEMORY = normal(1, 2, 4, 8), normal(2, 2, 5, 8)


class Doubled:
    """A child wrapper for either library: the module's output, times two."""

    @staticmethod
    def of(lib, inner):
        class _Doubled(lib.Module):
            def __init__(self):
                super().__init__()
                self.inner = inner

            def __call__(self, *args):
                return 2 * self.inner(*args)

        return _Doubled()


# --- swapped children ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls,args,path,inputs",
    [
        ("TransformerEncoderLayer", (8, 2, 16), ["linear1"], (X, None)),
        ("TransformerEncoderLayer", (8, 2, 16, 0.0, mx.tanh, False), ["attention"], (X, "causal")),
        ("TransformerDecoderLayer", (8, 2, 16), ["cross_attention"], (X, MEMORY, None, None)),
        ("TransformerEncoder", (2, 8, 2, 16), ["layers", 1], (X, None)),
        ("TransformerDecoder", (1, 8, 2, 16), ["ln"], (X, MEMORY, "causal", None)),
        ("Transformer", (8, 2, 1, 1, 16), ["encoder"], (MEMORY, X, None, "causal", None)),
    ],
    ids=["encoder_layer_linear1", "post_norm_attention", "cross_attention", "encoder_layer",
         "decoder_ln", "transformer_encoder"],
)
def test_a_swapped_child_is_the_one_that_runs(cls, args, path, inputs):
    outputs = {}
    for lib in (mlx.nn, nn):
        mx.random.seed(3)
        model = getattr(lib, cls)(*args)
        before = model(*inputs)
        parent = model
        for part in path[:-1]:
            parent = parent[part]
        swapped = Doubled.of(lib, parent[path[-1]])
        if isinstance(path[-1], int):
            parent[path[-1]] = swapped
        else:
            parent.update_modules({path[-1]: swapped})
        after = model(*inputs)
        assert not mx.array_equal(before, after).item()
        outputs[lib] = after
    assert _equal(outputs[nn], outputs[mlx.nn])


# --- checkpoint ------------------------------------------------------------------------------


def _grads(model, inputs, lib):
    loss = lib.value_and_grad(model, lambda *a: _weighted(model(*a)))
    return loss(*inputs)


@pytest.mark.parametrize("cls,args,inputs", [
    ("TransformerEncoder", (2, 8, 2, 16, 0.2), (X, "causal")),
    ("TransformerDecoder", (2, 8, 2, 12, 0.2, mx.tanh, False), (X, MEMORY, None, None)),
], ids=["encoder", "decoder"])
def test_checkpoint_keeps_output_and_gradients(cls, args, inputs):
    # Without dropout in action (evaluation mode) checkpointing changes nothing; bit for bit.
    results = {}
    for checkpoint in (False, True):
        mx.random.seed(5)
        model = getattr(nn, cls)(*args, checkpoint=checkpoint).eval()
        results[checkpoint] = _grads(model, inputs, nn)
    assert _equal(results[True], results[False])
    assert tree_flatten(results[True][1])  # there are gradients to compare


def test_checkpointed_pair_with_a_key_has_the_gradients_of_the_unchecked_one():
    keyed = {}
    for checkpoint in (False, True):
        pair = F.transformer_encoder(2, 8, 2, 16, 0.3, checkpoint=checkpoint)
        params = pair.init(mx.random.key(0))

        def loss(p, x, pair=pair):
            return _weighted(pair.apply(p, x, "causal", key=mx.random.key(4)))

        keyed[checkpoint] = mx.value_and_grad(loss, argnums=(0, 1))(params, X)
    assert _equal(keyed[True], keyed[False])


def test_checkpoint_with_dropout_draws_new_masks_without_a_key_as_mlx_nn_does():
    # mlx.nn's backward pass calls each checkpointed layer again, and its dropouts draw
    # again from the global random state: the gradients are not those of the forward pass.
    # Without a key funcnn is the same layer (bit for bit, same draws); with a key the
    # backward pass reuses the forward's masks (the test above).
    grads, states = {}, {}
    for lib in (mlx.nn, nn):
        for checkpoint in (False, True):
            mx.random.seed(0)
            model = lib.TransformerEncoder(1, 8, 2, 16, 0.5, checkpoint=checkpoint)
            mx.random.seed(6)
            grads[lib, checkpoint] = _grads(model, (X, None), lib)[1]
            states[lib, checkpoint] = _state()
    assert not _equal(grads[mlx.nn, True], grads[mlx.nn, False])  # mlx.nn's behaviour
    assert states[mlx.nn, True] != states[mlx.nn, False]  # two more draws
    for checkpoint in (False, True):
        assert _equal(grads[nn, checkpoint], grads[mlx.nn, checkpoint])
        assert states[nn, checkpoint] == states[mlx.nn, checkpoint]


# --- custom encoder and decoder --------------------------------------------------------------


def _passthrough(lib):
    class Passthrough(lib.Module):  # no items: an empty dict, so falsy
        def __call__(self, x, mask):
            return x

    return Passthrough()


def test_a_falsy_custom_encoder_is_used():
    outputs = {}
    for lib in (mlx.nn, nn):
        encoder = _passthrough(lib)
        assert not encoder
        mx.random.seed(2)
        model = lib.Transformer(8, 2, 1, 1, 16, custom_encoder=encoder)
        assert model.encoder is encoder and list(model.keys()) == ["encoder", "decoder"]
        assert tree_flatten(model.parameters()["encoder"]) == []
        outputs[lib] = model(MEMORY, X, None, None, None)
    assert _equal(outputs[nn], outputs[mlx.nn])

    class Falsy:  # a plain callable, falsy, for the pair
        def __len__(self):
            return 0

        def __call__(self, x, mask):
            return 3 * x

    pair = F.transformer(8, 2, 1, 1, 16, custom_encoder=Falsy())
    params = pair.init(mx.random.key(1))
    assert params["encoder"] == {} and list(params) == ["encoder", "decoder"]
    decoder = F.transformer_decoder(1, 8, 2, 16)
    want = decoder.apply(params["decoder"], X, 3 * MEMORY, None, None)
    assert _equal(pair.apply(params, MEMORY, X, None, None, None), want)


def test_custom_pairs_replace_the_stacks_and_carry_their_state():
    # A stateful custom encoder (a batch norm) makes the transformer stateful.
    bn = F.batch_norm(8)
    encoder = F.Pair(
        bn.init, lambda p, x, mask, training=True: bn.apply(p, x, training=training),
        "bn_encoder", takes_training=True, stateful=True, trainable=bn.trainable,
    )
    decoder = F.transformer_decoder(1, 8, 2, 16, 0.5)
    pair = F.transformer(custom_encoder=encoder, custom_decoder=decoder)
    assert (pair.takes_key, pair.takes_training, pair.stateful) == (True, True, True)
    params = pair.init(mx.random.key(0))
    assert list(params["encoder"]) == ["weight", "bias", "running_mean", "running_var"]
    assert pair.trainable(params)["encoder"]["running_mean"] is False
    key = mx.random.key(3)
    out, updates = pair.apply(params, MEMORY, X, None, None, None, key=key)
    memory, enc_updates = bn.apply(params["encoder"], MEMORY)
    assert _equal(out, decoder.apply(params["decoder"], X, memory, None, None, key=key))
    assert _equal(updates, {"encoder": enc_updates, "decoder": {"layers": [{
        name: {} for name in params["decoder"]["layers"][0]}], "ln": {}}})
    assert _equal(F.merge_updates(params, updates)["encoder"]["running_mean"],
                  enc_updates["running_mean"])
    _, updates = pair.apply(params, MEMORY, X, None, None, None, training=False)
    assert tree_flatten(updates) == []


@pytest.mark.parametrize("kwargs,message", [
    ({"custom_encoder": nn.TransformerEncoder(1, 8, 2)},
     r"custom_encoder is a TransformerEncoder module.*F.transformer_encoder\(...\)"),
    ({"custom_decoder": mlx.nn.TransformerDecoder(1, 8, 2)},
     r"custom_decoder is a TransformerDecoder module.*F.transformer_decoder\(...\)"),
    ({"custom_encoder": 3}, "custom_encoder must be a pair or a callable, got int"),
])
def test_the_transformer_pair_refuses_modules_and_non_callables(kwargs, message):
    with pytest.raises(TypeError, match=message):
        F.transformer(8, 2, 1, 1, **kwargs)


# --- activations -------------------------------------------------------------------------


def test_mlx_and_funcnn_activation_functions_are_interchangeable():
    outputs = []
    for lib, activation in ((mlx.nn, mlx.nn.gelu), (nn, nn.gelu), (nn, mlx.nn.gelu)):
        mx.random.seed(1)
        outputs.append(lib.TransformerEncoderLayer(8, 2, 16, activation=activation)(X, None))
    assert all(_equal(o, outputs[0]) for o in outputs[1:])
    pair = F.transformer_encoder_layer(8, 2, 16, activation=nn.gelu)
    mx.random.seed(1)
    assert _equal(pair.apply(pair.init(), X, None), outputs[0])


@pytest.mark.parametrize("activation,message", [
    (nn.GELU(), r"activation is a GELU module.*\(funcnn.gelu\) or its pair \(F.gelu\(\)\)"),
    ("relu", "activation must be a pair or a callable, got str"),
    (F.batch_norm(16), "activation must be a stateless pair .* got the stateful pair 'batch_norm'"),
])
def test_block_pairs_refuse_module_and_non_callable_activations(activation, message):
    for factory in (F.transformer_encoder_layer, F.transformer_decoder_layer):
        with pytest.raises(TypeError, match=message):
            factory(8, 2, activation=activation)
    with pytest.raises(TypeError, match=message):
        F.transformer_encoder(1, 8, 2, activation=activation)


def test_an_activation_pair_is_a_child_with_its_own_parameters():
    prelu = F.prelu()
    encoder = F.transformer_encoder(2, 8, 2, 16, activation=prelu)
    params = encoder.init(mx.random.key(0))
    assert [list(p)[-1] for p in params["layers"]] == ["activation", "activation"]
    # Its gradient reaches it.
    grads = mx.grad(lambda p: _weighted(encoder.apply(p, X, None)))(params)
    assert mx.any(grads["layers"][0]["activation"]["weight"] != 0).item()


# --- pure pairs under mx.compile / mx.grad with keys -------------------------------------------


def test_the_key_is_split_among_the_dropouts_in_order():
    layer = F.transformer_encoder_layer(8, 2, 16, dropout=0.5)
    params = layer.init(mx.random.key(0))
    key = mx.random.key(7)
    k1, k2 = mx.random.split(key, 2)
    drop = F.dropout(0.5)
    mha, ln, lin = F.multi_head_attention(8, 2), F.layer_norm(8), F.linear(8, 16)
    y = ln.apply(params["ln1"], X)
    x = X + drop.apply({}, mha.apply(params["attention"], y, y, y, None), key=k1)
    y = lin.apply(params["linear1"], ln.apply(params["ln2"], x))
    y = F.linear(16, 8).apply(params["linear2"], drop.apply({}, nn.relu(y), key=k2))
    assert _equal(layer.apply(params, X, None, key=key), x + y)

    stack = F.transformer_encoder(2, 8, 2, 16, dropout=0.5)
    stack_params = stack.init(mx.random.key(0))
    want = X
    for p, k in zip(stack_params["layers"], mx.random.split(key, 2)):
        want = layer.apply(p, want, None, key=k)
    want = ln.apply(stack_params["ln"], want)
    assert _equal(stack.apply(stack_params, X, None, key=key), want)


@pytest.mark.parametrize("checkpoint", [False, True], ids=["plain", "checkpoint"])
def test_pure_transformer_under_compile_and_grad_with_keys(checkpoint):
    pair = F.transformer(8, 2, 1, 1, 16, dropout=0.3, checkpoint=checkpoint)
    params = pair.init(mx.random.key(0))

    def loss(p, src, tgt, key):
        return _weighted(pair.apply(p, src, tgt, None, "causal", None, key=key))

    step = mx.compile(mx.value_and_grad(loss))
    mx.random.seed(0)
    before = _state()
    eager = mx.value_and_grad(loss)(params, MEMORY, X, mx.random.key(1))
    compiled = step(params, MEMORY, X, mx.random.key(1))
    again = step(params, MEMORY, X, mx.random.key(1))
    other = step(params, MEMORY, X, mx.random.key(2))
    mx.eval(eager, compiled, again, other)
    assert _state() == before  # keyed: the global random state is left alone
    for a, b in zip(tree_flatten(compiled), tree_flatten(eager)):
        np.testing.assert_allclose(np.array(a[1]), np.array(b[1]), rtol=1e-5, atol=1e-6)
    assert _equal(again, compiled)
    assert not mx.array_equal(other[0], compiled[0]).item()
    # Evaluation mode ignores the key.
    x0 = pair.apply(params, MEMORY, X, None, None, None, key=mx.random.key(1), training=False)
    x1 = pair.apply(params, MEMORY, X, None, None, None, key=mx.random.key(2), training=False)
    assert _equal(x0, x1)
