"""The research transforms of examples/research.py: per-example gradients, vmapped ensembles, HVPs.

Tolerances:
* per-example gradients vs a Python loop of single-example gradients, float32:
  ``rtol=1e-5, atol=1e-6`` (the same arithmetic; on MLX 0.32 CPU they agree exactly);
* ensemble vs members trained one by one, float32, 10 steps (Adam; clipped AdamW
  on a schedule): ``rtol=1e-5, atol=1e-6`` (they agree exactly here too);
* HVP vs central differences of the gradient: float64 with ``eps=1e-5`` on a
  tanh MLP with a squared error (truncation ~eps^2, round-off ~1e-16/eps; not
  cross entropy: MLX 0.32's float64 ``exp`` is only float32-accurate):
  ``1e-8`` relative to ``|Hv|`` (seen: 2e-10); float32 cross entropy, ``eps=1e-2``: ``5e-3``;
* HVP vs the explicit Hessian times v (float64): ``1e-12`` relative.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

import char_lm  # noqa: E402
import research as R  # noqa: E402

import funcnn.optimizers as optim  # noqa: E402
from funcnn.tree import tree_leaves, tree_map, tree_stack, tree_unstack  # noqa: E402


def assert_trees_close(a, b, rtol: float, atol: float) -> None:
    leaves_a, leaves_b = tree_leaves(a), tree_leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b):
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_allclose(np.array(x), np.array(y), rtol=rtol, atol=atol)


def relative_error(a, b) -> float:
    a, b = R.ravel(a), R.ravel(b)
    return (mx.linalg.norm(a - b) / mx.linalg.norm(b)).item()


# --------------------------------------------------------------------------
# Per-example gradients
# --------------------------------------------------------------------------


def loop_of_single_grads(loss, params, *batch):
    n = batch[0].shape[0]
    return tree_stack([mx.grad(loss)(params, *(a[i : i + 1] for a in batch)) for i in range(n)])


def test_per_example_grads_equal_a_loop_of_single_example_grads():
    model = R.mlp()
    loss = R.classification_loss(model)
    params = model.init(mx.random.key(0))
    x, y = R.spirals(16, seed=1)
    grads = R.per_example_grads(loss, params, x, y)
    assert [g.shape for g in tree_leaves(grads)] == [(16,) + p.shape for p in tree_leaves(params)]
    assert_trees_close(grads, loop_of_single_grads(loss, params, x, y), rtol=1e-5, atol=1e-6)
    # a mean loss: the per-example gradients average to the batch gradient
    mean = tree_map(lambda g: g.mean(axis=0), grads)
    assert_trees_close(mean, mx.grad(loss)(params, x, y), rtol=1e-5, atol=1e-6)
    norms = R.per_example_norms(grads)
    first = mx.sqrt(sum(mx.sum(g[0] ** 2) for g in tree_leaves(grads)))
    assert norms.shape == (16,) and abs(norms[0].item() - first.item()) < 1e-5


def test_per_example_grads_of_the_language_model():
    # RoPE and the fused attention of char_lm vmap too.
    model = char_lm.build_model(vocab_size=11, dims=16, num_heads=2, num_layers=1, mlp_ratio=2)
    params = model.init(mx.random.key(0))
    k_x, k_y = mx.random.split(mx.random.key(1))
    x, y = mx.random.randint(0, 11, (4, 8), key=k_x), mx.random.randint(0, 11, (4, 8), key=k_y)
    loss = lambda p, x, y: char_lm.loss_nats(model, p, x, y)  # noqa: E731
    grads = R.per_example_grads(loss, params, x, y)
    assert_trees_close(grads, loop_of_single_grads(loss, params, x, y), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------
# Ensembles
# --------------------------------------------------------------------------


OPTIMIZERS = {
    "adam": optim.adam(3e-3),
    "adamw_schedule_clip": optim.clip_by_global_norm(
        0.5, optim.adamw(optim.cosine_decay(1e-2, 10), weight_decay=0.1)
    ),
}


@pytest.mark.parametrize("opt", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_vmapped_ensemble_equals_models_trained_one_by_one(opt):
    model = R.mlp((2, 16, 3))
    loss = R.classification_loss(model)
    keys = mx.random.split(mx.random.key(3), 3)
    params, states = R.init_ensemble(model, opt, keys)
    members = tree_unstack(params)
    assert R.ravel(members[0]).size == R.ravel(model.init(keys[0])).size
    assert not mx.array_equal(R.ravel(members[0]), R.ravel(members[1]))  # different inits
    step = R.ensemble_step(loss, opt)
    single = mx.compile(R.train_step(loss, opt))
    alone = [(model.init(k), None) for k in keys]
    alone = [(p, opt.init(p)) for p, _ in alone]
    for i in range(10):
        x, y = R.spirals(64, seed=i)  # a new batch each step, shared by the members
        losses, params, states = step(params, states, x, y)
        results = [single(p, s, x, y) for p, s in alone]
        alone = [(p, s) for _, p, s in results]
        np.testing.assert_allclose(
            np.array(losses), [v.item() for v, _, _ in results], rtol=1e-5, atol=1e-6
        )
    assert_trees_close(params, tree_stack([p for p, _ in alone]), rtol=1e-5, atol=1e-6)
    assert_trees_close(states, tree_stack([s for _, s in alone]), rtol=1e-5, atol=1e-6)
    assert states["step"].tolist() == [10, 10, 10]


def test_ensemble_members_can_see_their_own_data():
    model = R.mlp((2, 8, 3))
    loss = R.classification_loss(model)
    opt = optim.sgd(0.1)
    keys = mx.random.split(mx.random.key(0), 2)
    params, states = R.init_ensemble(model, opt, keys)
    data = [R.spirals(32, seed=s) for s in (0, 1)]
    x, y = mx.stack([d[0] for d in data]), mx.stack([d[1] for d in data])
    step = mx.vmap(R.train_step(loss, opt), in_axes=0)  # data with an ensemble axis too
    _, new, _ = step(params, states, x, y)
    for i, member in enumerate(tree_unstack(new)):
        p = model.init(keys[i])
        expected, _ = opt.update(mx.grad(loss)(p, *data[i]), opt.init(p), p)
        assert_trees_close(member, expected, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------
# Hessian-vector products
# --------------------------------------------------------------------------


def float64_problem(seed: int = 0, sizes=(2, 8, 1), n: int = 32):
    model = R.mlp(sizes)
    loss = R.regression_loss(model)
    x, y = R.regression_data(n, seed=seed, dtype=mx.float64)
    k_params, k_v = mx.random.split(mx.random.key(seed))
    params = tree_map(lambda p: p.astype(mx.float64), model.init(k_params))
    v = R.unravel(mx.random.normal((R.ravel(params).size,), key=k_v).astype(mx.float64), params)
    return loss, params, v, x, y


@pytest.mark.parametrize("mode", ["forward", "reverse"])
@pytest.mark.parametrize("seed", [0, 1])
def test_hvp_equals_central_differences_float64(mode, seed):
    loss, params, v, x, y = float64_problem(seed)
    hv = R.hvp(loss, params, v, x, y, mode=mode)
    assert [a.shape for a in tree_leaves(hv)] == [p.shape for p in tree_leaves(params)]
    assert all(a.dtype == mx.float64 for a in tree_leaves(hv))
    assert relative_error(hv, R.fd_hvp(loss, params, v, x, y, eps=1e-5)) < 1e-8


def test_hvp_equals_central_differences_float32_cross_entropy():
    model = R.mlp((2, 16, 3))
    loss = R.classification_loss(model)
    x, y = R.spirals(64, seed=0)
    params = model.init(mx.random.key(0))
    v = R.unravel(mx.random.normal((R.ravel(params).size,), key=mx.random.key(1)), params)
    hv = R.hvp(loss, params, v, x, y)
    assert relative_error(hv, R.hvp(loss, params, v, x, y, mode="reverse")) < 1e-5
    assert relative_error(hv, R.fd_hvp(loss, params, v, x, y, eps=1e-2)) < 5e-3  # seen: 4e-4


def test_hvp_equals_the_explicit_hessian_times_v():
    loss, params, v, x, y = float64_problem(seed=2, sizes=(2, 3, 1), n=16)  # 13 parameters
    h = R.hessian(loss, params, x, y)  # vmap of HVPs over the basis vectors
    size = R.ravel(params).size
    assert h.shape == (size, size) and size == 13
    np.testing.assert_allclose(np.array(h), np.array(h).T, atol=1e-12)
    # an independent Hessian: central differences of the gradient along each basis vector
    grad = lambda flat: R.ravel(mx.grad(loss)(R.unravel(flat, params), x, y))  # noqa: E731
    p0, eps = R.ravel(params), 1e-5
    columns = [(grad(p0 + eps * e) - grad(p0 - eps * e)) / (2 * eps)
               for e in mx.eye(size, dtype=mx.float64)]  # fmt: skip
    np.testing.assert_allclose(np.array(h), np.array(mx.stack(columns)), rtol=1e-7, atol=1e-9)
    for mode in ("forward", "reverse"):
        hv = R.ravel(R.hvp(loss, params, v, x, y, mode=mode))
        np.testing.assert_allclose(np.array(hv), np.array(h @ R.ravel(v)), rtol=1e-12, atol=1e-12)


def test_hessian_of_a_linear_least_squares_loss_is_exact():
    # loss = mean((x w^T + b - y)^2): the Hessian is 2/n A^T A with A = [x, 1].
    model = R.mlp((3, 1))
    loss = R.regression_loss(model)
    rng = np.random.default_rng(0)
    x = mx.array(rng.normal(size=(10, 3)), dtype=mx.float64)
    y = mx.array(rng.normal(size=(10, 1)), dtype=mx.float64)
    params = tree_map(lambda p: p.astype(mx.float64), model.init(mx.random.key(0)))
    a = np.concatenate([np.array(x), np.ones((10, 1))], axis=1)  # ravel order: weight, bias
    expected = 2 / 10 * a.T @ a
    np.testing.assert_allclose(np.array(R.hessian(loss, params, x, y)), expected, rtol=1e-12)
    v = R.unravel(mx.array(rng.normal(size=4), dtype=mx.float64), params)
    np.testing.assert_allclose(
        np.array(R.ravel(R.hvp(loss, params, v, x, y))), expected @ np.array(R.ravel(v)), rtol=1e-12
    )


def test_hvp_rejects_an_unknown_mode():
    loss, params, v, x, y = float64_problem()
    with pytest.raises(ValueError, match="mode"):
        R.hvp(loss, params, v, x, y, mode="sideways")


@pytest.mark.parametrize("argv", [[], ["--quick", "--seed", "3"]], ids=["default", "quick"])
def test_main_runs_and_prints_its_checks(capsys, argv):
    R.main(argv)
    out = capsys.readouterr().out
    assert out.count("\nok   ") + out.startswith("ok   ") == 3, out
    assert "FAIL" not in out
