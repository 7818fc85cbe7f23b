"""BatchNorm (with Dropout) trained on every path ends where mlx.nn ends.

One small CNN -- ``Conv2d, BatchNorm, ReLU, Dropout, flatten, Linear`` -- is
trained for a few SGD steps by ``mlx.nn`` (eager ``nn.value_and_grad`` and
``mlx.optimizers.SGD``: the reference) and by funcnn on every path a user may
take, from the same initial parameters and the same global seed (so dropout
draws the same masks):

* the facade, eagerly with ``nn.value_and_grad`` and ``mlx.optimizers``;
* the facade under MLX's documented ``mx.compile(step, inputs=state, outputs=state)``;
* the facade under ``funcnn.transforms.value_and_grad``, eagerly and inside
  ``funcnn.transforms.compile`` with the model as an argument (the running
  statistics and the updated weights reach the caller's model);
* the pure pair with ``funcnn.optimizers`` and ``merge_updates``, eagerly,
  under ``funcnn.transforms.compile`` and under ``mx.compile`` (the random
  state captured as MLX documents).

After the steps the weights *and* the running statistics must equal the
reference's: bit for bit on the eager paths, to float32 round-off on the
compiled ones (compiled graphs may fuse operations differently).
"""

from __future__ import annotations

from functools import partial

import mlx.core as mx
import mlx.nn
import mlx.optimizers
import numpy as np
import pytest
from mlx.utils import tree_flatten

import funcnn as nn
import funcnn.functional as F
import funcnn.optimizers as optim
import funcnn.transforms as T

STEPS = 4
LR = 0.1
X = mx.random.normal((8, 6, 6, 1), key=mx.random.key(0)) * 2 + 0.5
Y = mx.random.randint(0, 3, (8,), key=mx.random.key(1))
COMPILED_TOL = dict(rtol=2e-5, atol=2e-6)


def flatten(x):
    return x.reshape(x.shape[0], -1)


def cnn(lib):
    return lib.Sequential(
        lib.Conv2d(1, 4, 3, padding=1), lib.BatchNorm(4, momentum=0.3), lib.ReLU(),
        lib.Dropout(0.25), flatten, lib.Linear(4 * 6 * 6, 3),
    )


PAIR = F.sequential(
    F.conv2d(1, 4, 3, padding=1), F.batch_norm(4, momentum=0.3), F.relu(), F.dropout(0.25),
    flatten, F.linear(4 * 6 * 6, 3),
)


def xent(logits, y):
    return nn.losses.cross_entropy(logits, y, reduction="mean")


def initial():
    mx.random.seed(7)
    return PAIR.init()


def assert_same(got, want, **tol):
    got, want = dict(tree_flatten(got)), dict(tree_flatten(want))
    assert sorted(got) == sorted(want)
    for name, w in want.items():
        if tol:
            np.testing.assert_allclose(np.array(got[name]), np.array(w), **tol, err_msg=name)
        else:
            np.testing.assert_array_equal(np.array(got[name]), np.array(w), err_msg=name)


@pytest.fixture(scope="module")
def reference():
    model = cnn(mlx.nn)
    model.update(initial())
    opt = mlx.optimizers.SGD(LR)
    loss_and_grad = mlx.nn.value_and_grad(model, lambda x, y: xent(model(x), y))
    mx.random.seed(0)
    losses = []
    for _ in range(STEPS):
        loss, grads = loss_and_grad(X, Y)
        opt.update(model, grads)
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    stats = model.layers[1]
    assert not mx.array_equal(stats.running_mean, mx.zeros(4)).item()
    return model.parameters()


def facade():
    model = cnn(nn)
    model.update(initial())
    return model


def test_facade_eager_nn_value_and_grad(reference):
    model = facade()
    opt = mlx.optimizers.SGD(LR)
    loss_and_grad = nn.value_and_grad(model, lambda x, y: xent(model(x), y))
    mx.random.seed(0)
    for _ in range(STEPS):
        _, grads = loss_and_grad(X, Y)
        opt.update(model, grads)
    assert_same(model.parameters(), reference)


def test_facade_mx_compile_with_captured_state(reference):
    model = facade()
    opt = mlx.optimizers.SGD(LR)
    loss_and_grad = nn.value_and_grad(model, lambda x, y: xent(model(x), y))
    state = [model.state, opt.state, mx.random.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(x, y):
        loss, grads = loss_and_grad(x, y)
        opt.update(model, grads)
        return loss

    mx.random.seed(0)
    for _ in range(STEPS):
        step(X, Y)
        mx.eval(state)
    assert_same(model.parameters(), reference, **COMPILED_TOL)


def _funcnn_step(opt):
    def step(model, opt_state, x, y):
        loss, grads = T.value_and_grad(lambda m: xent(m(x), y))(model)
        params, opt_state = opt.update(grads, opt_state, model)
        model.update(params)  # stored on the (rebuilt) model: reaches the caller's
        return loss, opt_state

    return step


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_facade_funcnn_transforms(reference, compiled):
    model = facade()
    opt = optim.sgd(LR)
    opt_state = opt.init(model)
    step = _funcnn_step(opt)
    if compiled:
        step = T.compile(step)
    mx.random.seed(0)
    for _ in range(STEPS):
        _, opt_state = step(model, opt_state, X, Y)
    assert_same(model.parameters(), reference, **(COMPILED_TOL if compiled else {}))
    assert sorted(model.layers[1]._no_grad) == ["running_mean", "running_var"]


def _pure_step(opt, mask):
    def loss_fn(params, x, y):
        logits, updates = PAIR.apply(params, x)  # key=None: MLX's global RNG, as mlx.nn
        return xent(logits, y), updates

    def step(params, opt_state, x, y):
        (loss, updates), grads = T.value_and_grad(loss_fn, filter=mask)(params, x, y)
        params, opt_state = opt.update(grads, opt_state, params)
        return loss, F.merge_updates(params, updates), opt_state

    return step


@pytest.mark.parametrize("how", ["eager", "funcnn_compile", "mx_compile"])
def test_pure_pair(reference, how):
    params = initial()
    mask = PAIR.trainable(params)
    opt = optim.sgd(LR)
    opt_state = opt.init(params, mask=mask)
    step = _pure_step(opt, mask)
    if how == "funcnn_compile":
        step = T.compile(step)
    elif how == "mx_compile":
        step = mx.compile(step, inputs=[mx.random.state], outputs=[mx.random.state])
    mx.random.seed(0)
    for _ in range(STEPS):
        _, params, opt_state = step(params, opt_state, X, Y)
    assert_same(params, reference, **({} if how == "eager" else COMPILED_TOL))
    # Running statistics are state, not trained: the optimizer holds nothing for them.
    assert "running_mean" not in opt_state["per_param"]["layers"][1]


def test_batch_norm_in_vmap_is_refused_with_a_clear_error():
    model = facade()
    with pytest.raises(ValueError, match=r"BatchNorm at args\[0\]\.layers\.1: item 'running_mean'"):
        T.vmap(lambda m, x: m(x), in_axes=(None, 0))(model, mx.stack([X, X]))
    model.eval()  # evaluation mode changes nothing: allowed
    assert T.vmap(lambda m, x: m(x), in_axes=(None, 0))(model, mx.stack([X, X])).shape == (2, 8, 3)
