"""LoRA, pure (:mod:`funcnn.functional.lora`) and on Modules (:mod:`funcnn.lora`), against mlx-lm.

The oracle is ``mlx_lm.tuner.lora.LoRALinear`` (mlx-lm imports mlx.nn: tests
only).  Given the same weights, both funcnn paths give its outputs and
gradients bit for bit, seeded construction draws its adapters, a few training
steps end on its adapter weights, and fusing gives its fused weight.  A
quantized base is covered with a minimal packed-weight pair/Module made here
(MLX's own ``mx.quantize``/``mx.quantized_matmul``), and with funcnn's
``quantized_linear``/``QuantizedLinear`` when the quantized family has them.
"""

from __future__ import annotations

import functools

import mlx.core as mx
import mlx.nn as mnn
import pytest
from _bits import assert_identical, normal
from mlx_lm.tuner.lora import LoRALinear as RefLoRA

import funcnn as nn
import funcnn.functional as F
import funcnn.transforms as T
from funcnn.functional import quantized as F_quantized
from funcnn.functional._pair import Pair
from funcnn.functional.lora import lora, merge_lora
from funcnn.layers import quantized as L_quantized
from funcnn.lora import LoRALinear, add_lora, fuse_lora
from funcnn.tree import tree_flatten, tree_map


def _pure_params(layer) -> dict:
    """The pure pair's parameter tree of a (funcnn or mlx-lm) LoRALinear."""
    return {
        "base": dict(layer.linear.parameters()),
        "lora_a": layer.lora_a,
        "lora_b": layer.lora_b,
    }


def _twins(inp=5, out=3, r=2, dropout=0.0, scale=20.0, bias=True, seed=0):
    """Ours and mlx-lm's LoRALinear after the same seed, with a non-zero lora_b on both."""
    mx.random.seed(seed)
    ours = LoRALinear(inp, out, r=r, dropout=dropout, scale=scale, bias=bias)
    mx.random.seed(seed)
    ref = RefLoRA(inp, out, r=r, dropout=dropout, scale=scale, bias=bias)
    lora_b = normal(seed + 100, r, out)
    ours.lora_b = lora_b
    ref.lora_b = lora_b
    return ours, ref


# --- construction -----------------------------------------------------------------


@pytest.mark.parametrize("bias", [False, True])
def test_seeded_construction_draws_as_mlx_lm(bias):
    ours, ref = _twins(bias=bias, seed=3)
    mx.random.seed(3)
    pure = lora(F.linear(5, 3, bias=bias), r=2).init()
    after_pure = mx.random.uniform(shape=(4,))
    mx.random.seed(3)
    RefLoRA(5, 3, r=2, bias=bias)
    after_ref = mx.random.uniform(shape=(4,))
    assert_identical(after_pure, after_ref)  # the same number of draws
    assert list(ours) == list(ref) == ["linear", "dropout", "lora_a", "lora_b"]
    for key in ("weight", "bias") if bias else ("weight",):
        assert_identical(ours.linear[key], ref.linear[key])
        assert_identical(pure["base"][key], ref.linear[key])
    assert_identical(ours.lora_a, ref.lora_a)
    assert_identical(pure["lora_a"], ref.lora_a)
    assert_identical(pure["lora_b"], mx.zeros((2, 3)))
    assert repr(ours) == repr(ref)
    assert ours.scale == ref.scale == 20.0
    assert ours.dropout._p_1 == ref.dropout._p_1


def test_from_base_draws_and_wraps_as_mlx_lm():
    mx.random.seed(7)
    base = nn.Linear(6, 4)
    ours = LoRALinear.from_base(base, r=3, dropout=0.25, scale=5.0)
    mx.random.seed(7)
    ref_base = mnn.Linear(6, 4)
    ref = RefLoRA.from_base(ref_base, r=3, dropout=0.25, scale=5.0)
    assert ours.linear is base
    assert_identical(base.weight, ref_base.weight)
    assert_identical(ours.lora_a, ref.lora_a)
    assert_identical(ours.lora_b, ref.lora_b)
    assert repr(ours) == repr(ref)
    assert (ours.scale, ours.dropout._p_1) == (ref.scale, ref.dropout._p_1)


def test_keyed_init_is_deterministic_and_leaves_the_global_state():
    pair = lora(F.linear(4, 2), r=3)
    mx.random.seed(1)
    a = pair.init(mx.random.key(5))
    b = pair.init(mx.random.key(5))
    after = mx.random.uniform(shape=(3,))
    mx.random.seed(1)
    assert_identical(after, mx.random.uniform(shape=(3,)))
    for x, y in zip(tree_flatten(a), tree_flatten(b)):
        assert x[0] == y[0]
        assert_identical(x[1], y[1])
    # The adapter's key differs from the base's: lora_a is not the weight's draw.
    assert not mx.array_equal(a["lora_a"].T[:2], a["base"]["weight"][:, :2]).item()


def test_errors():
    with pytest.raises(TypeError, match="received Linear"):
        lora(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="'relu' has no 'weight'"):
        lora(F.relu())
    with pytest.raises(ValueError, match=r"shape \(2, 3, 4\)"):
        lora(F.bilinear(4, 3, 2))
    # mlx-lm's Dropout error, on every path.
    with pytest.raises(ValueError) as ref_err:
        RefLoRA(2, 2, dropout=1.0)
    for make in (
        lambda: lora(F.linear(2, 2), dropout=1.0),
        lambda: LoRALinear(2, 2, dropout=1.0),
        lambda: LoRALinear.from_base(nn.Linear(2, 2), dropout=1.0),
        lambda: add_lora(nn.Sequential(nn.Linear(2, 2)), dropout=-0.1),
    ):
        with pytest.raises(ValueError, match=r"is not in \[0, 1\)"):
            make()
    assert "1.0 is not in [0, 1)" in str(ref_err.value)
    with pytest.raises(ValueError, match="received ReLU"):
        LoRALinear.from_base(nn.ReLU())
    with pytest.raises(ValueError, match="received a Linear itself"):
        add_lora(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="received dict"):
        add_lora({})
    with pytest.raises(ValueError, match="received a LoRALinear itself"):
        fuse_lora(LoRALinear(2, 2))
    params = lora(F.linear(2, 2)).init(mx.random.key(0))
    params["base"]["weight"] = params["base"]["weight"].astype(mx.int32)
    with pytest.raises(ValueError, match="dtype mlx.core.int32"):
        merge_lora(params, scale=1.0)


# --- outputs and gradients --------------------------------------------------------


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(
    "param_dtype,x_dtype",
    [(mx.float32, mx.float32), (mx.float32, mx.float16), (mx.bfloat16, mx.bfloat16)],
    ids=str,
)
@pytest.mark.parametrize("training", [False, True])
def test_outputs_and_gradients_match_mlx_lm(bias, param_dtype, x_dtype, training):
    ours, ref = _twins(inp=6, out=4, r=3, dropout=0.3, scale=2.5, bias=bias, seed=2)
    for m in (ours, ref):
        m.set_dtype(param_dtype)
        m.train(training)
        m.linear.freeze()
    x = normal(9, 2, 5, 6, dtype=x_dtype)
    pair = lora(F.linear(6, 4, bias=bias), r=3, dropout=0.3, scale=2.5)
    params = _pure_params(ours)

    mx.random.seed(11)
    want = ref(x)
    mx.random.seed(11)
    assert_identical(ours(x), want, "facade")
    mx.random.seed(11)
    assert_identical(pair.apply(params, x, training=training), want, "pure")

    cot = normal(12, *want.shape, dtype=want.dtype)

    def loss(model, v):
        return (model(v) * cot).sum()

    mx.random.seed(11)
    ref_val, ref_grads = mnn.value_and_grad(ref, loss)(ref, x)
    mx.random.seed(11)
    val, grads = nn.value_and_grad(ours, loss)(ours, x)
    assert_identical(val, ref_val)
    assert sorted(k for k, _ in tree_flatten(grads)) == ["lora_a", "lora_b"]
    for k in ("lora_a", "lora_b"):
        assert_identical(grads[k], ref_grads[k], k)

    mx.random.seed(11)
    pure_grads = T.grad(
        lambda p: (pair.apply(p, x, training=training) * cot).sum(),
        filter=pair.trainable(params),
    )(params)
    assert pure_grads["base"] == dict.fromkeys(params["base"])  # the frozen base: None
    for k in ("lora_a", "lora_b"):
        assert_identical(pure_grads[k], ref_grads[k], "pure " + k)


def test_dropout_key_and_training_channels():
    pair = lora(F.linear(8, 8), r=2, dropout=0.5)
    params = pair.init(mx.random.key(0))
    params["lora_b"] = normal(1, 2, 8)
    x = normal(2, 4, 8)
    assert pair.takes_key and pair.takes_training and not pair.stateful
    mx.random.seed(0)
    y1 = pair.apply(params, x, key=mx.random.key(3))
    y2 = pair.apply(params, x, key=mx.random.key(3))
    after = mx.random.uniform(shape=(2,))
    mx.random.seed(0)
    assert_identical(after, mx.random.uniform(shape=(2,)))  # a key leaves the global state
    assert_identical(y1, y2)
    assert not mx.array_equal(y1, pair.apply(params, x, key=mx.random.key(4))).item()
    # Evaluation mode: no dropout, so the adapter sees x itself.
    no_drop = lora(F.linear(8, 8), r=2).apply(params, x)
    assert_identical(pair.apply(params, x, training=False), no_drop)
    # The dropout reaches the adapter only: a zero adapter leaves the base output.
    params["lora_b"] = mx.zeros((2, 8))
    assert_identical(pair.apply(params, x), F.linear_apply(params["base"], x))


def test_facade_reads_scale_at_call_time_as_mlx_lm():
    ours, ref = _twins(scale=20.0, seed=4)
    x = normal(5, 3, 5)
    ours.scale = ref.scale = -0.75
    assert_identical(ours(x), ref(x))


def test_children_are_called():
    """A swapped base or dropout child is the one that runs."""
    ours, ref = _twins(seed=6)
    ours.update_modules({"linear": nn.Linear(5, 3, bias=False)})
    ref.linear = mnn.Linear(5, 3, bias=False)
    ref.linear.weight = ours.linear.weight
    x = normal(7, 2, 5)
    assert_identical(ours(x), ref(x))
    ours.dropout = nn.Identity()
    ours.train()
    assert_identical(ours(x), ref.eval()(x))


def test_pure_apply_under_vmap_and_compile():
    pair = lora(F.linear(4, 3), r=2, dropout=0.2)
    params = pair.init(mx.random.key(1))
    params["lora_b"] = normal(3, 2, 3)
    xs = normal(4, 6, 4)
    eager = pair.apply(params, xs, training=False)
    compiled = mx.compile(lambda p, v: pair.apply(p, v, training=False))(params, xs)
    assert_identical(compiled, eager)
    vmapped = mx.vmap(lambda v: pair.apply(params, v, training=False))(xs)
    assert mx.allclose(vmapped, eager, rtol=1e-6, atol=1e-6).item()
    key = mx.random.key(9)
    assert_identical(
        mx.compile(lambda p, v: pair.apply(p, v, key=key))(params, xs),
        pair.apply(params, xs, key=key),
    )


def test_pair_pickles():
    import pickle

    pair = lora(F.linear(4, 3, bias=False), r=2, dropout=0.1, scale=3.0)
    again = pickle.loads(pickle.dumps(pair))
    params = pair.init(mx.random.key(0))
    x = normal(1, 2, 4)
    key = mx.random.key(2)
    assert_identical(again.apply(params, x, key=key), pair.apply(params, x, key=key))


# --- whole models: add_lora, training, fuse ----------------------------------------


def _mlp(ns):
    return ns.Sequential(ns.Linear(4, 8), ns.ReLU(), ns.Linear(8, 8), ns.ReLU(), ns.Linear(8, 2))


def test_add_lora_selects_freezes_and_draws_as_mlx_lm():
    mx.random.seed(0)
    model = _mlp(nn)
    mx.random.seed(0)
    ref = _mlp(mnn)
    ref.freeze()
    mx.random.seed(1)
    out = add_lora(model, lambda path, m: path != "layers.2", r=2, scale=4.0, dropout=0.1)
    assert out is model
    mx.random.seed(1)
    # mlx-lm's linear_to_lora_layers: from_base in named_modules order.
    chosen = [(p, m) for p, m in ref.named_modules() if p in ("layers.0", "layers.4")]
    ref.update_modules(
        mnn.utils.tree_unflatten(
            [(p, RefLoRA.from_base(m, r=2, scale=4.0, dropout=0.1)) for p, m in chosen]
        )
    )
    assert [type(m).__name__ for m in model.layers] == [type(m).__name__ for m in ref.layers]
    assert type(model.layers[2]).__name__ == "Linear"
    trainable = tree_flatten(model.trainable_parameters())
    want = tree_flatten(ref.trainable_parameters())
    assert [k for k, _ in trainable] == [k for k, _ in want] == [
        "layers.0.lora_a", "layers.0.lora_b", "layers.4.lora_a", "layers.4.lora_b"
    ]
    for (k, a), (_, b) in zip(trainable, want):
        assert_identical(a, b, k)
    # Twice adds nothing (the wrapped Linear children are not wrapped again).
    add_lora(model, r=2)
    assert type(model.layers[0].linear).__name__ == "Linear"
    assert type(model.layers[2]).__name__ == "LoRALinear"
    assert len(tree_flatten(model.trainable_parameters())) == 6


def test_add_lora_reaches_composite_children():
    mha = nn.MultiHeadAttention(8, 2)
    x = normal(0, 1, 3, 8)
    before = mha(x, x, x)
    add_lora(mha, lambda path, m: path.startswith("value"), r=2)
    assert_identical(mha(x, x, x), before)  # lora_b = 0
    mha.value_proj.lora_b = normal(1, 2, 8)
    assert not mx.allclose(mha(x, x, x), before).item()


def _pure_mlp(r, dropout, scale):
    def adapted(i, o):
        return lora(F.linear(i, o), r=r, dropout=dropout, scale=scale)

    return F.sequential(adapted(4, 8), F.relu(), adapted(8, 8), F.relu(), adapted(8, 2))


def test_training_steps_match_on_both_paths_and_mlx_lm():
    r, dropout, scale, lr = 2, 0.2, 3.0, 0.5
    mx.random.seed(0)
    model = add_lora(_mlp(nn), r=r, dropout=dropout, scale=scale)
    mx.random.seed(0)
    ref = _mlp(mnn)
    ref.freeze()
    ref.update_modules(
        mnn.utils.tree_unflatten(
            [
                (p, RefLoRA.from_base(m, r=r, dropout=dropout, scale=scale))
                for p, m in ref.named_modules()
                if isinstance(m, mnn.Linear)
            ]
        )
    )
    pair = _pure_mlp(r, dropout, scale)
    params = {
        "layers": [_pure_params(m) if isinstance(m, LoRALinear) else {} for m in model.layers]
    }
    mask = pair.trainable(params)
    x, y = normal(1, 16, 4), normal(2, 16, 2)

    def loss(m, v, t):
        return ((m(v) - t) ** 2).mean()

    def pure_loss(p, v, t):
        return ((pair.apply(p, v) - t) ** 2).mean()

    ours_step = nn.value_and_grad(model, loss)
    ref_step = mnn.value_and_grad(ref, loss)
    pure_step = T.value_and_grad(pure_loss, filter=mask)
    for step in range(3):
        mx.random.seed(100 + step)
        ref_loss, g_ref = ref_step(ref, x, y)
        ref.update(mnn.utils.tree_map(lambda p, g: p - lr * g, ref.trainable_parameters(), g_ref))
        mx.random.seed(100 + step)
        our_loss, g = ours_step(model, x, y)
        model.update(tree_map(lambda p, g: p - lr * g, model.trainable_parameters(), g))
        mx.random.seed(100 + step)
        pure_loss_value, g_pure = pure_step(params, x, y)
        params = tree_map(
            lambda p, g, m: p - lr * g if m else p,
            params, g_pure, mask, is_leaf=lambda v: v is None,
        )
        assert_identical(our_loss, ref_loss, f"step {step}")
        assert_identical(pure_loss_value, ref_loss, f"pure step {step}")
    for i in (0, 2, 4):
        for k in ("lora_a", "lora_b"):
            assert_identical(model.layers[i][k], ref.layers[i][k], f"{i}.{k}")
            assert_identical(params["layers"][i][k], ref.layers[i][k], f"pure {i}.{k}")
        # The frozen base did not move.
        assert_identical(params["layers"][i]["base"]["weight"], ref.layers[i].linear.weight)
    assert not mx.array_equal(model.layers[4].lora_b, mx.zeros((r, 2))).item()


@pytest.mark.parametrize("bias", [False, True])
def test_fuse_matches_mlx_lm_and_the_unfused_layer(bias):
    ours, ref = _twins(inp=6, out=4, r=3, scale=1.5, bias=bias, seed=8)
    fused, ref_fused = ours.fuse(), ref.fuse()
    assert type(fused).__name__ == "Linear" and repr(fused) == repr(ref_fused)
    assert_identical(fused.weight, ref_fused.weight)
    pure = merge_lora(_pure_params(ours), scale=1.5)
    assert list(pure) == (["weight", "bias"] if bias else ["weight"])
    assert_identical(pure["weight"], ref_fused.weight)
    if bias:
        assert_identical(fused.bias, ref_fused.bias)
    x = normal(3, 2, 6)
    assert mx.allclose(fused(x), ours(x), rtol=1e-5, atol=1e-5).item()


def test_fuse_lora_on_a_model():
    model = add_lora(_mlp(nn), r=2)
    for i in (0, 2, 4):
        model.layers[i].lora_b = normal(i, 2, model.layers[i].lora_b.shape[1])
    x = normal(9, 5, 4)
    unfused = model(x)
    assert fuse_lora(model) is model
    assert [type(m).__name__ for m in model.layers] == ["Linear", "ReLU"] * 2 + ["Linear"]
    assert mx.allclose(model(x), unfused, rtol=1e-4, atol=1e-4).item()


# --- quantized bases ---------------------------------------------------------------


def _packed(weight, group_size=32, bits=4):
    w, scales, biases = mx.quantize(weight, group_size, bits)
    return {"weight": w, "scales": scales, "biases": biases}


def _packed_apply(params, x, *, group_size, bits):
    return mx.quantized_matmul(
        x, params["weight"], params["scales"], params["biases"],
        transpose=True, group_size=group_size, bits=bits,
    )


def _packed_pair(in_dims, out_dims, bind_bits=True):
    """A minimal quantized linear pair (no bias), its settings bound by functools.partial."""

    def init(key=None):
        return _packed(mx.random.normal((out_dims, in_dims), key=key))

    if bind_bits:
        apply = functools.partial(_packed_apply, group_size=32, bits=4)
    else:
        apply = lambda p, x: _packed_apply(p, x, group_size=32, bits=4)  # noqa: E731
    return Pair(init, apply, "packed_linear")


class _PackedLinear(nn.Module):
    """A minimal quantized linear Module with mlx.nn.QuantizedLinear's attributes."""

    def __init__(self, params):
        super().__init__()
        self.group_size, self.bits, self.mode = 32, 4, "affine"
        for k, v in params.items():
            setattr(self, k, v)

    def __call__(self, x):
        return _packed_apply(self, x, group_size=self.group_size, bits=self.bits)


def _ref_quantized(params):
    ref_base = mnn.QuantizedLinear(64, 3, bias=False, group_size=32, bits=4)
    ref_base.update(params)
    return ref_base


def test_packed_base_pure_and_facade_match_mlx_lm():
    base = _packed_pair(64, 3)
    pair = lora(base, r=2, scale=2.0)
    params = pair.init(mx.random.key(0))
    assert params["lora_a"].shape == (64, 2) and params["lora_b"].shape == (2, 3)
    assert pair.trainable(params)["base"] == {"weight": False, "scales": False, "biases": False}
    params["lora_b"] = normal(1, 2, 3)
    ref_base, our_base = _ref_quantized(params["base"]), _PackedLinear(params["base"])
    mx.random.seed(0)
    ref = RefLoRA.from_base(ref_base, r=2, scale=2.0)
    mx.random.seed(0)
    ours = LoRALinear.from_base(our_base, r=2, scale=2.0)
    assert_identical(ours.lora_a, ref.lora_a)
    for m in (ours, ref):
        m.lora_a, m.lora_b = params["lora_a"], params["lora_b"]
    x = normal(2, 4, 64)
    want = ref(x)
    assert_identical(pair.apply(params, x), want)
    assert_identical(ours(x), want)
    ref_fused = ref.fuse(dequantize=True)
    assert_identical(ours.fuse(dequantize=True).weight, ref_fused.weight)
    merged = merge_lora(params, scale=2.0, group_size=32, bits=4)
    assert_identical(merged["weight"], ref_fused.weight)
    with pytest.raises(ValueError, match="pass its group_size and bits"):
        merge_lora(params, scale=2.0)
    with pytest.raises(ValueError, match="must bind an int 'bits'"):
        lora(_packed_pair(64, 3, bind_bits=False))


@pytest.mark.skipif(
    not hasattr(F_quantized, "quantized_linear") or not hasattr(L_quantized, "QuantizedLinear"),
    reason="funcnn's quantized family has no quantized_linear/QuantizedLinear yet",
)
@pytest.mark.parametrize("bias", [False, True])
def test_funcnn_quantized_linear_base(bias):
    pair = lora(F_quantized.quantized_linear(64, 3, bias=bias, group_size=32, bits=4), r=2)
    params = pair.init(mx.random.key(0))
    assert params["lora_a"].shape == (64, 2)
    params["lora_b"] = normal(1, 2, 3)
    base = L_quantized.QuantizedLinear(64, 3, bias=bias, group_size=32, bits=4)
    base.update(params["base"])
    ref_base = mnn.QuantizedLinear(64, 3, bias=bias, group_size=32, bits=4)
    ref_base.update(params["base"])
    model = add_lora(nn.Sequential(base), r=2, scale=20.0)
    ours = model.layers[0]
    assert isinstance(ours, LoRALinear) and ours.linear is base
    ref = RefLoRA.from_base(ref_base, r=2)
    for m in (ours, ref):
        m.lora_a, m.lora_b = params["lora_a"], params["lora_b"]
    x = normal(2, 4, 64)
    assert_identical(ours(x), ref(x))
    assert_identical(pair.apply(params, x), ref(x))
    fused, ref_fused = ours.fuse(), ref.fuse()
    assert type(fused).__name__ == "QuantizedLinear"
    for k in ("weight", "scales", "biases"):
        assert_identical(fused[k], ref_fused[k], k)
