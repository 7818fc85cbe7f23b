"""Interop with :mod:`mlx.nn` and :mod:`mlx.optimizers` (bit for bit).

1. **Checkpoints.** For every entry of ``layer_registry.LAYERS`` and both
   formats: a checkpoint written by the :mod:`mlx.nn` layer loads (strictly)
   into the funcnn facade layer and, through ``funcnn.load(path, like=...)``,
   into the functional pair's parameters; and a funcnn checkpoint loads into
   the :mod:`mlx.nn` layer.  Parameters (names, order, dtypes, shapes, bits)
   and outputs on the registry's inputs are identical.  The same for a small
   transformer defined once and built in both namespaces, in float32, float16
   and bfloat16.
2. **mlx.optimizers train funcnn Modules** exactly as they train mlx.nn
   Modules, with the documented pattern (``value_and_grad``,
   ``opt.update(model, grads)``, ``mx.eval``), eagerly and under
   ``mx.compile(step, inputs=state, outputs=state)``; models include
   parameter-less layers in a list and a frozen submodule.
3. **Resume.** Model + optimizer state (mlx.optimizers' and funcnn's) saved
   mid-run and loaded into a fresh model and optimizer continue exactly the
   uninterrupted trajectory (with a learning-rate schedule, so the restored
   step counter matters), also across libraries.

Everything is compared bitwise: on mlx 0.32.4 (CPU) the two libraries run
the same ops in the same order.
"""

from __future__ import annotations

from functools import partial

import mlx.core as mx
import mlx.nn
import mlx.optimizers as mo
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_map, tree_unflatten

import funcnn
import funcnn.optimizers as fo
from layer_registry import FACADE, FUNCTIONAL, LAYERS, MLX, make, normal

FORMATS = (".safetensors", ".npz")
HALF = (mx.float32, mx.float16, mx.bfloat16)


# ----------------------------------------------------------------------
# Bitwise comparison
# ----------------------------------------------------------------------


def bits(a: mx.array) -> np.ndarray:
    """The raw bits of ``a`` (numpy has no bfloat16; ``-0.0 != 0.0``, NaN payloads count)."""
    if a.dtype == mx.bool_:
        return np.array(a)
    view = {1: mx.uint8, 2: mx.uint16, 4: mx.uint32, 8: mx.uint64}[a.dtype.size]
    return np.array(mx.view(a, view))


def layout(tree):
    """The containers of ``tree`` with each array as ``(shape, dtype)`` (empty ``{}`` kept)."""
    if isinstance(tree, mx.array):
        return (tuple(tree.shape), tree.dtype)
    if isinstance(tree, dict):
        return {k: layout(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [layout(v) for v in tree]
    return tree


def assert_identical(got, want, same_order=True):
    """Same names (in the same flatten order), dtypes, shapes and bits."""
    got_flat, want_flat = dict(tree_flatten(got)), dict(tree_flatten(want))
    if same_order:
        assert list(got_flat) == list(want_flat)
    assert sorted(got_flat) == sorted(want_flat)
    for name, w in want_flat.items():
        g = got_flat[name]
        assert isinstance(g, mx.array) and isinstance(w, mx.array), name
        assert (g.dtype, g.shape) == (w.dtype, w.shape), name
        np.testing.assert_array_equal(bits(g), bits(w), err_msg=name)


def identical(a, b) -> bool:
    try:
        assert_identical(a, b)
    except AssertionError:
        return False
    return True


def perturbed(module, seed):
    """``module`` with noise added to every parameter: no ones/zeros init passes by luck."""
    counter = iter(range(10_000))
    module.update(tree_map(
        lambda a: a + (0.5 * normal(seed * 1000 + next(counter), *a.shape)).astype(a.dtype),
        module.parameters()))
    mx.eval(module.parameters())
    return module


def as_list(out):
    return out if isinstance(out, (list, tuple)) else [out]


# ----------------------------------------------------------------------
# 1. Checkpoints: every registry layer, both directions, both formats
# ----------------------------------------------------------------------


def _pair_load_matches(case, path, want_params, want_out, inputs):
    pair = make(case, FUNCTIONAL)
    template = pair.init(mx.random.key(123))
    params = funcnn.load(path, like=template, check_dtype=True)
    assert layout(params) == layout(template)  # the template's containers, not the file's
    assert_identical(params, want_params)
    out = pair.apply(params, *inputs, **({"training": False} if pair.takes_training else {}))
    assert_identical(as_list(out[0] if pair.stateful else out), as_list(want_out))


# Outputs are compared in evaluation mode: deterministic (no dropout mask) and
# computed from every loaded array (BatchNorm normalises with its running statistics).


@pytest.mark.parametrize("ext", FORMATS)
@pytest.mark.parametrize("case", LAYERS, ids=[c.id for c in LAYERS])
def test_mlx_checkpoint_loads_into_funcnn(case, ext, tmp_path):
    mx.random.seed(1)
    source = perturbed(make(case, MLX), 1)
    mx.random.seed(2)
    target = make(case, FACADE)
    if tree_flatten(source.parameters()):
        assert not identical(target.parameters(), source.parameters())
    path = str(tmp_path / f"w{ext}")
    source.save_weights(path)
    assert target.load_weights(path) is target  # strict
    assert_identical(target.parameters(), source.parameters())
    inputs = case.inputs(0)
    want = source.eval()(*inputs)
    assert_identical(as_list(target.eval()(*inputs)), as_list(want))
    _pair_load_matches(case, path, source.parameters(), want, inputs)


@pytest.mark.parametrize("ext", FORMATS)
@pytest.mark.parametrize("case", LAYERS, ids=[c.id for c in LAYERS])
def test_funcnn_checkpoint_loads_into_mlx(case, ext, tmp_path):
    mx.random.seed(3)
    source = perturbed(make(case, FACADE), 3)
    mx.random.seed(4)
    target = make(case, MLX)
    if tree_flatten(source.parameters()):
        assert not identical(target.parameters(), source.parameters())
    path = str(tmp_path / f"w{ext}")
    source.save_weights(path)
    target.load_weights(path)  # strict
    assert_identical(target.parameters(), source.parameters())
    inputs = case.inputs(1)
    want = target.eval()(*inputs)
    assert_identical(as_list(source.eval()(*inputs)), as_list(want))
    _pair_load_matches(case, path, target.parameters(), want, inputs)


# --- a composite model, defined once for both namespaces -----------------------


def define_tiny_lm(nn):
    class Block(nn.Module):
        def __init__(self, dims, heads):
            super().__init__()
            self.norm1 = nn.LayerNorm(dims)
            self.attention = nn.MultiHeadAttention(dims, heads, bias=True)
            self.norm2 = nn.RMSNorm(dims)
            self.mlp = [nn.Linear(dims, 2 * dims), nn.ReLU(), nn.Linear(2 * dims, dims), nn.GELU()]

        def __call__(self, x, mask):
            y = self.norm1(x)
            x = x + self.attention(y, y, y, mask)
            y = self.norm2(x)
            for layer in self.mlp:
                y = layer(y)
            return x + y

    class TinyLM(nn.Module):
        def __init__(self, vocab=13, dims=8, heads=2, depth=2):
            super().__init__()
            self.embedding = nn.Embedding(vocab, dims)
            self.rope = nn.RoPE(dims)
            self.conv = nn.Conv1d(dims, dims, 3, padding=1)
            self.blocks = [Block(dims, heads) for _ in range(depth)]
            self.norm = nn.GroupNorm(2, dims)
            self.out = nn.Sequential(nn.Linear(dims, dims), nn.SiLU(), nn.Linear(dims, vocab))

        def __call__(self, ids):
            x = self.rope(self.embedding(ids))
            x = x + self.conv(x)
            mask = mlx.nn.MultiHeadAttention.create_additive_causal_mask(ids.shape[1])
            mask = mask.astype(x.dtype)
            for block in self.blocks:
                x = block(x, mask)
            return self.out(self.norm(x))

    return TinyLM


def tiny_lm(nn, seed, dtype):
    mx.random.seed(seed)
    model = define_tiny_lm(nn)()
    model.set_dtype(dtype)
    return perturbed(model, seed)


TOKENS = mx.random.randint(0, 13, (2, 7), key=mx.random.key(42))


@pytest.mark.parametrize("ext", FORMATS)
@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("direction", ["mlx_to_funcnn", "funcnn_to_mlx"])
def test_composite_model_checkpoint(direction, dtype, ext, tmp_path):
    namespaces = (mlx.nn, funcnn) if direction == "mlx_to_funcnn" else (funcnn, mlx.nn)
    source, target = tiny_lm(namespaces[0], 5, dtype), tiny_lm(namespaces[1], 6, dtype)
    assert len(tree_flatten(source.parameters())) == 39
    assert all(v.dtype == dtype for _, v in tree_flatten(source.parameters()))
    assert not identical(target.parameters(), source.parameters())
    path = str(tmp_path / f"lm{ext}")
    source.save_weights(path)
    if namespaces[1] is funcnn:
        target.load_weights(path, check_dtype=True)
    else:
        target.load_weights(path)
    assert_identical(target.parameters(), source.parameters())
    want = source(TOKENS)
    assert want.dtype == dtype and want.shape == (2, 7, 13)
    assert_identical(target(TOKENS), want)
    # funcnn.load with a template of either library gives the template's tree.
    for like in (source, target):
        assert_identical(funcnn.load(path, like=like, check_dtype=True), source.parameters())


# ----------------------------------------------------------------------
# 2. mlx.optimizers train funcnn Modules as they train mlx.nn Modules
# ----------------------------------------------------------------------


X = mx.random.normal((16, 3), key=mx.random.key(10))
Y = mx.random.normal((16, 2), key=mx.random.key(11))


def define_net(nn):
    class Net(nn.Module):
        """Parameter-less layers inside a list, and a frozen submodule."""

        def __init__(self):
            super().__init__()
            self.layers = [nn.Linear(3, 8), nn.ReLU(), nn.GELU(), nn.Linear(8, 2)]
            self.head = nn.Linear(2, 2)
            self.head.freeze()

        def __call__(self, x):
            for layer in self.layers:
                x = layer(x)
            return self.head(x)

    return Net


MODELS = {
    "sequential": lambda nn: nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2)),
    "list_frozen": lambda nn: define_net(nn)(),
}

OPTIMIZERS = {
    "sgd_momentum": lambda: mo.SGD(0.1, momentum=0.9, weight_decay=0.01, nesterov=True),
    "adam": lambda: mo.Adam(1e-2, bias_correction=True),
    "adamw": lambda: mo.AdamW(mo.cosine_decay(1e-2, 10), weight_decay=0.1),
    "rmsprop": lambda: mo.RMSprop(1e-2),
    "lion": lambda: mo.Lion(1e-2, weight_decay=0.1),
    "adafactor": lambda: mo.Adafactor(),
}

def build_model(nn, model="list_frozen", seed=0):
    mx.random.seed(seed)
    return MODELS[model](nn)


def mse(model):
    return lambda x, y: mx.mean((model(x) - y) ** 2)


def train(nn, model, opt, steps, compiled=False):
    """The documented mlx training loop, with ``nn`` the namespace of ``model``."""
    loss_and_grad = nn.value_and_grad(model, mse(model))

    def step(x, y):
        loss, grads = loss_and_grad(x, y)
        opt.update(model, grads)
        return loss

    if compiled:
        state = [model.state, opt.state]
        step = partial(mx.compile, inputs=state, outputs=state)(step)
    for _ in range(steps):
        step(X, Y)
        mx.eval(model.parameters(), opt.state)
    return model, opt


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_mlx_optimizers_train_funcnn_modules_exactly(optimizer, model, compiled):
    make_opt = OPTIMIZERS[optimizer]
    theirs, their_opt = train(mlx.nn, build_model(mlx.nn, model), make_opt(), 5, compiled)
    ours, our_opt = train(funcnn, build_model(funcnn, model), make_opt(), 5, compiled)
    initial = build_model(funcnn, model).parameters()
    assert_identical(ours.parameters(), theirs.parameters())
    assert_identical(our_opt.state, their_opt.state)
    assert layout(our_opt.state) == layout(their_opt.state)  # {} placeholders included
    assert our_opt.state["step"].item() == 5
    moved = {k for k, v in tree_flatten(ours.parameters())
             if not np.array_equal(bits(v), bits(dict(tree_flatten(initial))[k]))}
    trainable = {k for k, _ in tree_flatten(ours.trainable_parameters())}
    assert moved == trainable  # every trainable parameter trained, the frozen head untouched
    if model == "list_frozen":
        assert trainable == {f"layers.{i}.{p}" for i in (0, 3) for p in ("weight", "bias")}
        assert our_opt.state["layers"][1] == {} and our_opt.state["layers"][2] == {}
        assert our_opt.state["head"] == {}  # a placeholder (as mlx.nn's), no slots


# ----------------------------------------------------------------------
# 3. Save and resume
# ----------------------------------------------------------------------


def mlx_adamw():
    # A schedule: a resumed run that lost the step counter takes other steps.
    return mo.AdamW(learning_rate=mo.cosine_decay(0.1, 6), weight_decay=0.1)


def load_mlx_state(opt, path, model, with_like):
    """Restore an mlx.optimizers state saved with ``funcnn.save(path, opt.state)``.

    ``opt.state = tree`` is what mlx.optimizers offers: the setter replaces the
    whole dict (step, learning rate, per-parameter slots) and marks the
    optimizer uninitialised, so the next ``update`` calls ``init(grads)``, which
    only *adds* slots that are missing (``{}`` for parameter-less layers,
    list tails) and keeps every restored one.  So ``funcnn.load(path)`` (the
    tree rebuilt from the dotted names) works as it is.  With ``like=`` the
    template must already hold the per-parameter slots: a fresh optimizer's
    state is only ``{step, learning_rate}`` (strict loading would report the
    slots as unexpected), so call ``opt.init(model.trainable_parameters())``
    first; loading then returns that exact layout.
    """
    if with_like:
        opt.init(model.trainable_parameters())
        template = opt.state
        opt.state = funcnn.load(path, like=template, check_dtype=True)
        assert layout(opt.state) == layout(template)
    else:
        opt.state = funcnn.load(path)


@pytest.mark.parametrize("with_like", [False, True], ids=["tree", "like"])
@pytest.mark.parametrize("ext", FORMATS)
def test_mlx_optimizer_state_resumes_on_funcnn_model(ext, with_like, tmp_path):
    straight, straight_opt = train(funcnn, build_model(funcnn), mlx_adamw(), 6)

    half, half_opt = train(funcnn, build_model(funcnn), mlx_adamw(), 3)
    half.save_weights(tmp_path / f"model{ext}")
    funcnn.save(tmp_path / f"opt{ext}", half_opt.state)

    model, opt = build_model(funcnn, seed=99), mlx_adamw()
    assert not identical(model.parameters(), half.parameters())
    model.load_weights(tmp_path / f"model{ext}")
    load_mlx_state(opt, tmp_path / f"opt{ext}", model, with_like)
    assert opt.state["step"].dtype == mx.uint64 and opt.state["step"].item() == 3
    assert_identical(opt.state, half_opt.state, same_order=False)
    train(funcnn, model, opt, 3)
    assert_identical(model.parameters(), straight.parameters())
    assert_identical(opt.state, straight_opt.state, same_order=False)

    # Controls: resuming without the optimizer state, or with its step reset, goes elsewhere.
    control, _ = train(funcnn, build_model(funcnn, seed=99).load_weights(tmp_path / f"model{ext}"),
                       mlx_adamw(), 3)
    assert not identical(control.parameters(), straight.parameters())
    control, control_opt = build_model(funcnn, seed=99), mlx_adamw()
    control.load_weights(tmp_path / f"model{ext}")
    load_mlx_state(control_opt, tmp_path / f"opt{ext}", control, with_like)
    control_opt.state["step"] = mx.array(0, mx.uint64)
    train(funcnn, control, control_opt, 3)
    assert not identical(control.parameters(), straight.parameters())


def train_pure(model, opt, state, steps, compiled=False):
    """funcnn.optimizers (explicit state) on a funcnn Module."""
    loss_and_grad = funcnn.value_and_grad(model, mse(model))

    def step(x, y, state):
        _, grads = loss_and_grad(x, y)
        new_params, state = opt.update(grads, state, model)
        model.update(new_params)
        return state

    if compiled:
        step = partial(mx.compile, inputs=model.state, outputs=model.state)(step)
    for _ in range(steps):
        state = step(X, Y, state)
        mx.eval(model.parameters(), state)
    return model, state


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("ext", FORMATS)
def test_funcnn_optimizer_state_resumes(ext, compiled, tmp_path):
    opt = fo.adamw(fo.cosine_decay(0.1, 6), weight_decay=0.1)
    model = build_model(funcnn)
    straight, straight_state = train_pure(model, opt, opt.init(model), 6, compiled)

    half = build_model(funcnn)
    half, half_state = train_pure(half, opt, opt.init(half), 3, compiled)
    half.save_weights(tmp_path / f"model{ext}")
    funcnn.save(tmp_path / f"opt{ext}", half_state)

    model = build_model(funcnn, seed=99).load_weights(tmp_path / f"model{ext}")
    template = opt.init(model)
    state = funcnn.load(tmp_path / f"opt{ext}", like=template, check_dtype=True)
    assert layout(state) == layout(template)
    assert state["step"].item() == 3
    model, state = train_pure(model, opt, state, 3, compiled)
    assert_identical(model.parameters(), straight.parameters())
    assert_identical(state, straight_state)
    # The pure optimizer follows mlx.optimizers driving the same model.
    mlx_model, _ = train(funcnn, build_model(funcnn), mlx_adamw(), 6)
    assert_identical(straight.parameters(), mlx_model.parameters())


@pytest.mark.parametrize("ext", FORMATS)
@pytest.mark.parametrize("direction", ["mlx_to_funcnn", "funcnn_to_mlx"])
def test_cross_library_resume(direction, ext, tmp_path):
    """A run checkpointed in one library continues in the other on the same trajectory."""
    first, second = (mlx.nn, funcnn) if direction == "mlx_to_funcnn" else (funcnn, mlx.nn)
    straight, straight_opt = train(first, build_model(first), mlx_adamw(), 6)

    half, half_opt = train(first, build_model(first), mlx_adamw(), 3)
    half.save_weights(str(tmp_path / f"model{ext}"))
    if first is mlx.nn:  # mlx's own way of saving optimizer state
        if ext == ".npz":
            mx.savez(str(tmp_path / f"opt{ext}"), **dict(tree_flatten(half_opt.state)))
        else:
            mx.save_safetensors(str(tmp_path / f"opt{ext}"), dict(tree_flatten(half_opt.state)))
    else:
        funcnn.save(tmp_path / f"opt{ext}", half_opt.state)

    model, opt = build_model(second, seed=99), mlx_adamw()
    model.load_weights(str(tmp_path / f"model{ext}"))
    if second is funcnn:
        opt.state = funcnn.load(tmp_path / f"opt{ext}")
    else:  # mlx's own way of loading it
        opt.state = tree_unflatten(list(mx.load(str(tmp_path / f"opt{ext}")).items()))
    train(second, model, opt, 3)
    assert_identical(model.parameters(), straight.parameters())
    assert_identical(opt.state, straight_opt.state, same_order=False)
