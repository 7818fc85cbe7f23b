"""Differential tests of ``funcnn.Module`` against ``mlx.nn.Module``: training with modules.

Section 3.1 of ``/work/shared/reference/mlx_nn_semantics.md``
(``value_and_grad``), the documentation's examples, ``mlx.optimizers`` and
``mx.compile`` driving funcnn modules, and ``repr`` of composite models.

Every test builds the *same* structure with both namespaces (``funcnn`` and
``mlx.nn``, passed in as ``nn``), runs the identical code on both and compares
what comes out (see ``_compare.py``).
"""

from __future__ import annotations

import functools

import mlx.core as mx
import mlx.optimizers as optim
import pytest

from _compare import describe, module_paths, outcome, same, shapes, trainable_keys


# ----------------------------------------------------------------------
# 3.1 value_and_grad
# ----------------------------------------------------------------------


def small_net(nn):
    return nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))


X = mx.array([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5], [1.0, 1.0]])
Y = mx.array([[1.0], [0.0], [-1.0], [0.5]])


def mse(model, x, y):
    return mx.mean((model(x) - y) ** 2)


def test_value_and_grad_structure_and_values():
    def run(nn):
        out = []
        for setup in (lambda m: None, lambda m: m.layers[0].freeze(), lambda m: m.freeze(keys="bias")):
            m = small_net(nn)
            setup(m)
            loss, grads = nn.value_and_grad(m, mse)(m, X, Y)
            out.append((loss, grads, shapes(grads)))
        return out

    res = same(run)
    assert res[0][1]["layers"][1] == {}
    assert res[0][2] == [
        ("layers.0.weight", (3, 2)),
        ("layers.0.bias", (3,)),
        ("layers.2.weight", (1, 3)),
        ("layers.2.bias", (1,)),
    ]
    assert res[1][1]["layers"][0] == {}
    assert [k for k, _ in res[2][2]] == ["layers.0.weight", "layers.2.weight"]


def test_value_and_grad_aux_errors_kwargs_name():
    def run(nn):
        m = small_net(nn)

        def with_aux(x, *, scale=1.0):
            """Doc of with_aux."""
            y = m(x)
            return (y.sum() * scale, 3, "s", None, y)

        f = nn.value_and_grad(m, with_aux)
        (loss, *aux), grads = f(X, scale=2.0)
        unused = nn.Sequential(nn.Linear(2, 1), nn.Linear(1, 1))
        _, g_unused = nn.value_and_grad(unused, lambda x: unused.layers[0](x).sum())(X)
        frozen = small_net(nn).freeze()
        return [
            loss,
            aux,
            grads,
            (f.__name__, f.__qualname__, f.__doc__, f.__module__, f.__wrapped__ is with_aux),
            outcome(nn.value_and_grad(m, lambda x: [m(x).sum()]), X),
            outcome(nn.value_and_grad(m, lambda x: m(x)), X),
            outcome(nn.value_and_grad(frozen, lambda x: frozen(x).sum()), X),
            g_unused["layers"][1],
        ]

    res = same(run)
    assert res[3][0] == "with_aux" and res[3][2] == "Doc of with_aux." and res[3][4] is True
    assert res[3][3] == __name__
    assert isinstance(res[4], ValueError) and "[value_and_grad]" in str(res[4])
    assert str(res[5]) == "[vjp] Output shape (4,1) does not match cotangent shape ()."
    assert str(res[6]) == "[grad] Must specify at least one argument."
    assert res[7]["weight"].tolist() == [[0.0]] and res[7]["bias"].tolist() == [0.0]


def test_value_and_grad_tied_weights_and_new_arrays():
    def run(nn):
        class Tied(nn.Module):
            def __init__(self):
                super().__init__()
                lin = nn.Linear(2, 2)
                self.a = lin
                self.b = lin

            def __call__(self, x):
                return self.b(self.a(x))

        m = Tied()
        w, b = m.a.weight, m.a.bias
        before = describe(m.parameters())
        _, g = nn.value_and_grad(m, lambda x: m(x).sum())(X)

        def pure(params):
            pw, pb = params
            return ((X @ pw.T + pb) @ pw.T + pb).sum()

        true_w, true_b = mx.grad(pure)((w, b))
        return [
            g,
            m.a.weight is w,
            describe(m.parameters()) == before,
            mx.all(g["a"]["weight"] == 0).item() and mx.all(g["a"]["bias"] == 0).item(),
            mx.allclose(g["b"]["weight"], true_w, atol=1e-5).item() and mx.allclose(g["b"]["bias"], true_b, atol=1e-5).item(),
        ]

    res = same(run)
    # The whole gradient goes to the last alias, zeros to the first.
    assert res[1:] == [False, True, True, True]


# ----------------------------------------------------------------------
# Documentation examples, optimizers, compile, repr
# ----------------------------------------------------------------------


def test_module_docstring_my_mlp():
    def run(nn):
        class MyMLP(nn.Module):
            def __init__(self, in_dims: int, out_dims: int, hidden_dims: int = 16):
                super().__init__()
                self.in_proj = nn.Linear(in_dims, hidden_dims)
                self.out_proj = nn.Linear(hidden_dims, out_dims)

            def __call__(self, x):
                x = self.in_proj(x)
                x = mx.maximum(x, 0)
                return self.out_proj(x)

        model = MyMLP(2, 1)
        mx.eval(model.parameters())
        model.in_proj.weight = model.in_proj.weight * 2
        mx.eval(model.parameters())
        return [model, model(X), repr(model), module_paths(model)]

    res = same(run, seed=7)
    assert [k for k, _ in res[3]] == ["", "out_proj", "in_proj"]


def test_quick_start_mlp():
    def run(nn):
        class MLP(nn.Module):
            def __init__(self, num_layers: int, input_dim: int, hidden_dim: int, output_dim: int):
                super().__init__()
                layer_sizes = [input_dim] + [hidden_dim] * num_layers + [output_dim]
                self.layers = [nn.Linear(idim, odim) for idim, odim in zip(layer_sizes[:-1], layer_sizes[1:])]

            def __call__(self, x):
                for l in self.layers[:-1]:
                    x = mx.maximum(l(x), 0.0)
                return self.layers[-1](x)

        def loss_fn(model, X, y):
            return mx.mean(nn.losses.cross_entropy(model(X), y))

        mx.random.seed(42)
        data = mx.random.normal((16, 8))
        labels = mx.random.randint(0, 4, (16,))
        model = MLP(2, 8, 16, 4)
        mx.eval(model.parameters())
        init = model.parameters()
        optimizer = optim.SGD(learning_rate=0.1)
        loss_and_grad_fn = nn.value_and_grad(model, loss_fn)
        losses, all_grads = [], []
        for _ in range(3):
            loss, grads = loss_and_grad_fn(model, data, labels)
            optimizer.update(model, grads)
            mx.eval(model.parameters(), optimizer.state)
            losses.append(loss)
            all_grads.append(grads)
        return [init, losses, all_grads, model]

    res = same(run)
    assert res[1][2].item() < res[1][0].item()


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda: optim.SGD(learning_rate=0.05, momentum=0.9),
        lambda: optim.SGD(learning_rate=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
        lambda: optim.Adam(learning_rate=0.01),
        lambda: optim.AdamW(learning_rate=0.01, weight_decay=0.1),
    ],
    ids=["sgd_momentum", "sgd_nesterov", "adam", "adamw"],
)
def test_optimizers_train_funcnn_modules_like_mlx(make_opt):
    def run(nn):
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.LayerNorm(8), nn.Linear(8, 8), nn.GELU())
                self.frozen = nn.Linear(8, 8)
                self.frozen.freeze()
                self.heads = [nn.ReLU(), nn.Linear(8, 1)]

            def __call__(self, x):
                x = self.frozen(self.body(x))
                for layer in self.heads:
                    x = layer(x)
                return x

        model = Net()
        opt = make_opt()
        grad_fn = nn.value_and_grad(model, mse)
        losses = []
        for _ in range(4):
            loss, grads = grad_fn(model, X, Y)
            opt.update(model, grads)
            mx.eval(model.parameters(), opt.state)
            losses.append(loss)
        return [losses, model, opt.state, trainable_keys(model)]

    res = same(run, seed=3)
    assert "frozen.weight" not in res[3]


def test_compile_with_state_capture():
    def run(nn):
        model = small_net(nn)
        optimizer = optim.Adam(learning_rate=0.05)
        state = [model.state, optimizer.state]

        @functools.partial(mx.compile, inputs=state, outputs=state)
        def step(x, y):
            loss, grads = nn.value_and_grad(model, mse)(model, x, y)
            optimizer.update(model, grads)
            return loss

        losses = []
        for _ in range(6):
            losses.append(step(X, Y))
            mx.eval(state)
        return [losses, model]

    res = same(run, seed=5)
    assert res[0][-1].item() < res[0][0].item()


def test_repr_of_composite_models():
    def run(nn):
        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.attn = nn.MultiHeadAttention(8, 2)
                self.norms = {"pre": nn.LayerNorm(8), "post": nn.RMSNorm(8)}
                self.mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))
                self.rope = nn.RoPE(4)
                self.w = mx.ones((2,))
                self.t = (nn.Linear(1, 1),)

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(10, 8)
                self.convs = [nn.Conv1d(8, 8, 3), nn.Conv2d(4, 6, (3, 2), stride=2, padding=1)]
                self.blocks = [Block(), Block()]
                self.gn = nn.GroupNorm(2, 8)
                self.act = nn.SiLU()

        return [repr(Model()), repr(Block()), repr(nn.Module()), repr(nn.Sequential())]

    res = same(run)
    assert res[2] == "Module()"
    assert "(blocks.1): Block(" in res[0]
    assert "    (norms.post): RMSNorm(8, eps=1e-05)" in res[0]
    assert "(t" not in res[1]  # tuple members are not children
