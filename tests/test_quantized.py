"""Quantization beyond the layer matrix: ``quantize``, ``to_quantized``, checkpoints, QQLinear.

mlx.nn is the oracle: the same seed gives bit-identical quantized models,
outputs, frozen sets and checkpoints, both ways.  The pure twin
``F.quantize_params`` gives the facade's parameters.
"""

from __future__ import annotations

import inspect
import subprocess
import sys

import mlx.core as mx
import mlx.nn
import numpy as np
import pytest
from _layer_helpers import assert_params_identical, rng_state
from mlx.utils import tree_flatten

import funcnn
import funcnn.functional as F

LIBS = (mlx.nn, funcnn)


def model_of(nn, seed=0):
    mx.random.seed(seed)
    return nn.Sequential(
        nn.Embedding(16, 64),
        nn.Linear(64, 128),
        nn.ReLU(),
        nn.LayerNorm(128),
        nn.Linear(128, 32, bias=False),
    )


TOKENS = mx.array([[1, 5, 9], [0, 15, 3]])


def quantized_pair(**kwargs):
    """The model quantized by each library with ``kwargs``; the RNG state after each."""
    models, states = [], []
    for nn in LIBS:
        model = model_of(nn)
        mx.random.seed(7)
        assert nn.quantize(model, **kwargs) is None
        states.append(rng_state())
        models.append(model)
    np.testing.assert_array_equal(states[0], states[1])  # the same (discarded) draws
    return models


def assert_same_model(want, got):
    assert repr(got) == repr(want)
    assert [type(m).__name__ for m in got.modules()] == [type(m).__name__ for m in want.modules()]
    assert_params_identical(got.parameters(), want.parameters())
    assert [k for k, _ in tree_flatten(got.trainable_parameters())] == [
        k for k, _ in tree_flatten(want.trainable_parameters())
    ]
    for m_got, m_want in zip(got.modules(), want.modules()):
        assert vars(m_got) == vars(m_want)
    assert mx.array_equal(got(TOKENS), want(TOKENS)).item()


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"group_size": 32, "bits": 8},
        {"bits": 3, "group_size": 128 // 2},
        {"mode": "mxfp4"},
        {"mode": "nvfp4"},
        {"mode": "mxfp8"},
        {"class_predicate": lambda path, m: isinstance(m, (mlx.nn.Linear, funcnn.Linear))},
        {"class_predicate": lambda path, m: path == "layers.4"},
        {
            "bits": 8,
            "class_predicate": lambda path, m: (
                {"bits": 2, "group_size": 32} if path == "layers.1"
                else {"mode": "mxfp8", "quantize_input": False} if path == "layers.0"
                else hasattr(m, "to_quantized")
            ),
        },
    ],
    ids=["default", "8bit", "3bit", "mxfp4", "nvfp4", "mxfp8", "linear_only", "one_path", "dict"],
)
def test_quantize_matches_mlx(kwargs):
    want, got = quantized_pair(**kwargs)
    assert_same_model(want, got)
    # Quantizing again leaves quantized layers alone (they have no to_quantized).
    quantized = [m for m in got.layers if type(m).__name__.startswith("Quantized")]
    for nn, model in zip(LIBS, (want, got)):
        nn.quantize(model, bits=8)
    assert all(any(m is q for m in got.layers) for q in quantized)
    assert_same_model(want, got)


def test_quantize_leaves_converted_layers_frozen_as_mlx_does():
    want, got = quantized_pair()
    # from_linear copies the bias after the constructor froze the layer: it stays trainable.
    assert [k for k, _ in tree_flatten(got.trainable_parameters())] == [
        "layers.1.bias", "layers.3.weight", "layers.3.bias"
    ]
    for model in (want, got):
        model.unfreeze()
    assert [k for k, _ in tree_flatten(got.trainable_parameters())] == [
        k for k, _ in tree_flatten(want.trainable_parameters())
    ]
    assert "layers.1.scales" in dict(tree_flatten(got.trainable_parameters()))
    assert funcnn.QuantizedLinear(64, 2).trainable_parameters() == {}
    assert sorted(funcnn.QuantizedEmbedding(4, 64)._no_grad) == ["biases", "scales", "weight"]


def test_quantize_errors_match_mlx():
    cases = [
        dict(class_predicate=lambda p, m: 1),
        dict(mode="int4"),
        dict(quantize_input=True),  # affine: no quantized activations
        dict(quantize_input=True, mode="mxfp8"),  # the Embedding refuses it
        dict(class_predicate=lambda p, m: {"quantize_input": True, "mode": "nvfp4"}),
        dict(class_predicate=lambda p, m: {"bits": 4, "colour": "red"}),
    ]
    for kwargs in cases:
        errors = []
        for nn in LIBS:
            with pytest.raises(Exception) as e:
                nn.quantize(model_of(nn), **kwargs)
            errors.append(e.value)
        assert type(errors[1]) is type(errors[0]), kwargs
        assert str(errors[1]) == str(errors[0]).replace("mlx.nn.layers", "funcnn.layers"), kwargs
    # A selected module without to_quantized: the message names its (library's) type.
    for nn in LIBS:
        with pytest.raises(ValueError, match="Unable to quantize model of type .*ReLU"):
            nn.quantize(model_of(nn), class_predicate=lambda p, m: True)


def test_to_quantized_matches_mlx():
    for kwargs in [{}, {"bits": 5, "group_size": 32}, {"mode": "nvfp4"}, {"mode": "mxfp8"}]:
        for cls, args in [("Linear", (64, 8)), ("Embedding", (12, 64))]:
            layers = []
            for nn in LIBS:
                mx.random.seed(3)
                layers.append(getattr(nn, cls)(*args).to_quantized(**kwargs))
            want, got = layers
            assert repr(got) == repr(want) and vars(got) == vars(want)
            assert_params_identical(dict(got), dict(want))
    for nn in LIBS:
        with pytest.raises(ValueError, match="Quantized input is not supported."):
            nn.Embedding(4, 64).to_quantized(mode="nvfp4", quantize_input=True)
        with pytest.raises(NotImplementedError, match="QQLinear does not support bias yet."):
            nn.Linear(64, 4).to_quantized(mode="nvfp4", quantize_input=True)
        with pytest.raises(ValueError, match="got affine"):
            nn.Linear(64, 4, bias=False).to_quantized(quantize_input=True)
        qq = nn.Linear(64, 4, bias=False).eval().to_quantized(mode="mxfp8", quantize_input=True)
        assert type(qq).__name__ == "QQLinear" and qq.weight.dtype == mx.uint32


def test_signatures_match_mlx():
    pairs = [
        (funcnn.quantize, mlx.nn.quantize),
        (funcnn.QQLinear.__init__, mlx.nn.QQLinear.__init__),
        (funcnn.QQLinear.__call__, mlx.nn.QQLinear.__call__),
        (funcnn.QuantizedLinear.from_linear, mlx.nn.QuantizedLinear.from_linear),
        (funcnn.QuantizedEmbedding.from_embedding, mlx.nn.QuantizedEmbedding.from_embedding),
        (funcnn.QQLinear.from_linear, mlx.nn.QQLinear.from_linear),
        (funcnn.Linear.to_quantized, mlx.nn.Linear.to_quantized),
        (funcnn.Embedding.to_quantized, mlx.nn.Embedding.to_quantized),
        (funcnn.QuantizedEmbedding.as_linear, mlx.nn.QuantizedEmbedding.as_linear),
    ]
    for got, want in pairs:
        g, w = inspect.signature(got), inspect.signature(want)
        assert [(p.name, p.kind, p.default) for p in g.parameters.values()] == [
            (p.name, p.kind, p.default) for p in w.parameters.values()
        ], got
    g = list(inspect.signature(F.qq_linear).parameters.values())
    w = list(inspect.signature(mlx.nn.QQLinear.__init__).parameters.values())[1:]
    assert [(p.name, p.kind, p.default) for p in g] == [(p.name, p.kind, p.default) for p in w]


@pytest.mark.parametrize("lib", ["mlx", "funcnn"], ids=["mlx_to_funcnn", "funcnn_to_mlx"])
def test_checkpoints_interchange_with_mlx(lib, tmp_path):
    kwargs = dict(bits=8, class_predicate=lambda p, m: hasattr(m, "to_quantized") and p != "layers.0")
    src_nn, dst_nn = (mlx.nn, funcnn) if lib == "mlx" else (funcnn, mlx.nn)
    source = model_of(src_nn, seed=1)
    src_nn.quantize(source, **kwargs)
    source.save_weights(str(tmp_path / "q.safetensors"))
    # As mlx-lm loads a quantized checkpoint: a fresh float model, quantized, then loaded.
    target = model_of(dst_nn, seed=2)
    dst_nn.quantize(target, **kwargs)
    target.load_weights(str(tmp_path / "q.safetensors"))
    assert_params_identical(target.parameters(), source.parameters())
    assert mx.array_equal(target(TOKENS), source(TOKENS)).item()


def test_quantize_params_is_the_facade_quantize():
    for kwargs, predicate in [
        ({}, None),
        ({"bits": 8, "mode": "affine"}, lambda p, t: p != "layers.4"),
        ({"mode": "mxfp4"}, lambda p, t: {"bits": 8, "mode": "mxfp8"} if p == "layers.1" else True),
    ]:
        model = model_of(funcnn)
        params = model.parameters()
        got = F.quantize_params(params, predicate=predicate, **kwargs)
        funcnn.quantize(
            model, **kwargs, class_predicate=predicate
            and (lambda p, m: hasattr(m, "to_quantized") and predicate(p, m.parameters()))
        )
        assert_params_identical(got, model.parameters())
        assert got["layers"][3] is params["layers"][3]  # LayerNorm untouched, shared
    # The packed subtrees run with the pure apply functions, bit-identical to the classes.
    model = model_of(funcnn)
    got = F.quantize_params(model.parameters(), 32, 5)
    funcnn.quantize(model, 32, 5)
    s = dict(group_size=32, bits=5, mode="affine")
    h = F.quantized_embedding_apply(got["layers"][0], TOKENS, **s)
    h = F.quantized_linear_apply(got["layers"][1], h, **s)
    assert mx.array_equal(h, model.layers[1](model.layers[0](TOKENS))).item()
    out = F.quantized_embedding_as_linear(got["layers"][0], h[..., :64], **s)
    assert mx.array_equal(out, model.layers[0].as_linear(h[..., :64])).item()


def test_quantize_params_options_and_errors():
    params = {"emb": {"weight": mx.ones((4, 64))}, "proj": {"weight": mx.ones((2, 64))},
              "conv": {"weight": mx.ones((2, 3, 64))}, "odd": [{"weight": mx.ones((2, 64)),
                                                                  "bias": mx.ones(2)}]}
    out = F.quantize_params(params, predicate=lambda p, t: p != "odd.0")
    assert out["conv"] is params["conv"] and out["odd"][0] is params["odd"][0]
    assert out["emb"]["weight"].dtype == mx.uint32
    qq = F.quantize_params(params, mode="nvfp4", quantize_input=True,
                           predicate=lambda p, t: p == "proj")
    assert qq["proj"] is params["proj"]  # QQLinear's training layout: the float weight
    with pytest.raises(ValueError, match="Quantized input is not supported."):
        F.quantize_params(params, mode="nvfp4", quantize_input=True, embeddings=["emb"])
    with pytest.raises(NotImplementedError, match="QQLinear does not support bias yet."):
        F.quantize_params(params, mode="mxfp8", quantize_input=True)
    with pytest.raises(ValueError, match="'emb'.*divisible by the quantization group size 128"):
        F.quantize_params(params, 128)
    with pytest.raises(ValueError, match="must return a bool"):
        F.quantize_params(params, predicate=lambda p, t: "yes")
    with pytest.raises(TypeError, match=r"'emb'.*\['colour'\]"):
        F.quantize_params(params, predicate=lambda p, t: {"colour": 1})
    with pytest.raises(ValueError, match="Invalid quantization mode 'fp4'"):
        F.quantize_params(params, mode="fp4")


def test_a_lora_branch_on_a_frozen_quantized_linear_gets_mlx_gradients():
    x = mx.random.normal((3, 64), key=mx.random.key(0))

    def lora_model(nn):
        class LoRA(nn.Module):
            def __init__(self):
                super().__init__()
                mx.random.seed(5)
                self.base = nn.QuantizedLinear.from_linear(nn.Linear(64, 8))
                self.base.freeze()
                self.a = mx.random.normal((64, 4)) * 0.1
                self.b = mx.random.normal((4, 8)) * 0.1

            def __call__(self, v):
                return self.base(v) + (v @ self.a) @ self.b

        return LoRA()

    results = []
    for nn in LIBS:
        model = lora_model(nn)
        value, grads = nn.value_and_grad(model, lambda v: (model(v) ** 2).sum())(x)
        assert [k for k, _ in tree_flatten(grads)] == ["a", "b"]
        results.append((value, grads, model))
    (v_want, g_want, m_want), (v_got, g_got, _) = results
    g_want = {"a": g_want["a"], "b": g_want["b"]}
    assert mx.array_equal(v_got, v_want).item()
    assert_params_identical({"a": g_got["a"], "b": g_got["b"]}, g_want)

    # Pure: the frozen packed base closed over, the branch differentiated.
    base = dict(m_want.base.parameters())
    s = dict(group_size=64, bits=4, mode="affine")

    def loss(lora, v):
        return ((F.quantized_linear_apply(base, v, **s) + (v @ lora["a"]) @ lora["b"]) ** 2).sum()

    lora = {"a": m_want.a, "b": m_want.b}
    value, grads = mx.value_and_grad(loss)(lora, x)
    assert mx.array_equal(value, v_want).item()
    assert_params_identical(grads, dict(g_want))
    # The whole tree too, once the packed integers are kept out of the differentiation.
    def full_loss(p, v):
        q = {**p["base"], "weight": mx.stop_gradient(p["base"]["weight"])}
        return ((F.quantized_linear_apply(q, v, **s) + (v @ p["a"]) @ p["b"]) ** 2).sum()

    full = mx.grad(full_loss)({"base": base, **lora}, x)
    full["lora"] = {"a": full["a"], "b": full["b"]}
    assert_params_identical(full["lora"], dict(g_want))
    assert full["base"]["scales"].shape == base["scales"].shape


@pytest.mark.parametrize(
    "cls,args,inputs",
    [("QuantizedLinear", (128, 4), (mx.ones((2, 128)),)),
     ("QuantizedEmbedding", (6, 128), (mx.array([1, 2]),))],
)
@pytest.mark.parametrize("name,value", [("bits", 8), ("group_size", 128), ("mode", "mxfp4"),
                                        ("bits", 2), ("group_size", 32)])
def test_settings_are_read_at_call_time_errors_included(cls, args, inputs, name, value):
    outcomes = []
    for nn in LIBS:
        mx.random.seed(0)
        layer = getattr(nn, cls)(*args, group_size=64)
        setattr(layer, name, value)
        try:
            outcomes.append(layer(*inputs))
        except Exception as e:  # mlx rejects packed arrays inconsistent with the setting
            outcomes.append((type(e), str(e)))
    if isinstance(outcomes[0], tuple):
        assert outcomes[1] == outcomes[0]
    else:
        assert mx.array_equal(outcomes[1], outcomes[0]).item()


def test_a_zero_group_size_is_an_error_not_a_crash():
    # mlx.nn hands group_size=0 to mx.quantize, which divides by it: SIGFPE.
    code = "import mlx.nn as nn; nn.QuantizedLinear(64, 8, group_size=0)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode != 0 and b"Error" not in proc.stderr  # killed, no Python error
    for make in (lambda: funcnn.QuantizedLinear(64, 8, group_size=0),
                 lambda: F.quantized_embedding(4, 64, group_size=0, mode="mxfp4")):
        with pytest.raises(ValueError, match="group_size 0"):
            make()


# --- QQLinear (mx.qqmm has no CPU kernel in mlx 0.32.4) ---------------------------------


@pytest.mark.parametrize("kwargs", [{}, {"mode": "mxfp8"}, {"mode": "nvfp4", "group_size": 16}])
def test_qq_linear_matches_mlx_in_both_layouts(kwargs):
    layers = []
    for nn in LIBS:
        mx.random.seed(2)
        layers.append(nn.QQLinear(64, 8, **kwargs))
    np.testing.assert_array_equal(np.array(mx.random.state[0]), rng_state())
    want, got = layers
    pair = F.qq_linear(64, 8, **kwargs)
    mx.random.seed(2)
    assert_params_identical(pair.init(), want.parameters())
    assert pair.trainable(pair.init(mx.random.key(0))) == {"weight": True}
    for mode in (False, True, False):
        for layer in layers:
            layer.train(mode)
        assert repr(got) == repr(want) and vars(got) == vars(want)
        assert_params_identical(got.parameters(), want.parameters())
        assert [k for k, _ in tree_flatten(got.trainable_parameters())] == [
            k for k, _ in tree_flatten(want.trainable_parameters())
        ]
        errors = []
        for layer in layers:
            try:
                out = layer(mx.ones((2, 64)))
                mx.eval(out)
                errors.append(out)
            except RuntimeError as e:  # CPU: "[QQMatmul] NYI for the general case"
                errors.append(str(e))
        if isinstance(errors[0], str):
            assert errors[1] == errors[0]
        else:
            assert mx.array_equal(errors[1], errors[0]).item()
    s = dict(group_size=got.group_size, bits=got.bits, mode=got.mode)
    packed = F.qq_linear_quantize(pair.init(mx.random.key(1)), **s)
    assert sorted(packed) == ["scales", "weight"] and F.qq_linear_quantize(packed, **s) is packed


def test_qq_linear_in_an_affine_mode_refuses_to_pack_with_a_clear_error():
    # mlx.nn unpacks affine's (weight, scales, biases) into two names.
    with pytest.raises(ValueError, match="too many values to unpack"):
        mlx.nn.QQLinear(64, 4, mode="affine").eval()
    with pytest.raises(ValueError, match="'nvfp4' or 'mxfp8' mode, received mode='affine'"):
        funcnn.QQLinear(64, 4, mode="affine").eval()
