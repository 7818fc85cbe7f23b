"""Research transforms over funcnn's pure pairs: per-example gradients, ensembles, HVPs.

Because a pair's ``apply`` is a pure function of ``(params, inputs)`` and its
parameters are a plain tree, MLX's transforms compose with it directly:

* :func:`per_example_grads`: ``vmap`` of ``grad`` over the examples of a batch
  gives one gradient per example (a tree of stacked gradients), e.g. for
  per-example clipping (DP-SGD) or gradient-noise statistics.
* :func:`ensemble_step`: N models trained at once.  Their parameters are
  stacked (:func:`funcnn.tree.tree_stack` of N initialisations made with
  different keys), and so are their optimizer states; one compiled step
  ``vmap``s the loss, the gradient and the optimizer update over the stack.
* :func:`hvp`: a Hessian-vector product of a loss with respect to a parameter
  tree, forward-over-reverse (``jvp`` of ``grad``) or reverse-over-reverse
  (``grad`` of ``<grad, v>``), and :func:`hessian` (``vmap`` of HVPs over the
  basis vectors) for small problems.

MLX's own ``mx.grad``, ``mx.vmap`` and ``mx.compile`` take the plain
parameter trees as they are; ``mx.jvp`` takes lists of arrays only, so
:func:`hvp` uses :func:`funcnn.transforms.jvp`, which takes trees.

    python examples/research.py        # runs the three, with their checks (a few seconds)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import funcnn  # noqa: F401  (first: so MLX's matmuls use OpenBLAS, see funcnn.blas_info)
import mlx.core as mx
import numpy as np

import funcnn.functional as F
import funcnn.optimizers as optim
import funcnn.transforms as T
from funcnn.tree import tree_leaves, tree_map, tree_stack, tree_structure, tree_unstack

Params = Any
Loss = Callable[..., mx.array]  # loss(params, *batch) -> scalar


# --------------------------------------------------------------------------
# A small problem: an MLP classifier on noisy 2-D spirals
# --------------------------------------------------------------------------


def mlp(sizes: Sequence[int] = (2, 32, 32, 3)) -> F.Pair:
    """A tanh MLP (smooth, so that second derivatives are informative)."""
    layers: list = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        layers += [F.linear(i, o), mx.tanh]
    return F.sequential(*layers[:-1])


def spirals(n: int = 256, classes: int = 3, seed: int = 0) -> tuple[mx.array, mx.array]:
    """``n`` points on ``classes`` noisy spiral arms: float32 ``x (n, 2)``, int32 ``y (n,)``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    r = rng.uniform(0.1, 1.0, n)
    angle = 2 * np.pi * y / classes + 3.0 * r + rng.normal(0, 0.15, n)
    x = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)
    return mx.array(x.astype(np.float32)), mx.array(y.astype(np.int32))


def regression_data(n: int = 64, seed: int = 0, dtype: mx.Dtype = mx.float32):
    """``n`` points ``x`` in ``[-1, 1]^2``, targets ``sin(3 x0) cos(2 x1)`` of shape ``(n, 1)``."""
    x = np.random.default_rng(seed).uniform(-1, 1, (n, 2))
    y = np.sin(3 * x[:, :1]) * np.cos(2 * x[:, 1:])
    return mx.array(x, dtype=dtype), mx.array(y, dtype=dtype)


def regression_loss(model: F.Pair) -> Loss:
    """``loss(params, x, y)``: mean squared error of ``model`` on a batch."""

    def loss(params: Params, x: mx.array, y: mx.array) -> mx.array:
        return F.losses.mse_loss(model.apply(params, x), y, reduction="mean")

    return loss


def classification_loss(model: F.Pair) -> Loss:
    """``loss(params, x, y)``: mean cross entropy of ``model`` on a batch."""

    def loss(params: Params, x: mx.array, y: mx.array) -> mx.array:
        return F.losses.cross_entropy(model.apply(params, x), y, reduction="mean")

    return loss


# --------------------------------------------------------------------------
# 1. Per-example gradients
# --------------------------------------------------------------------------


def per_example_grads(loss: Loss, params: Params, *batch: mx.array) -> Params:
    """The gradient of ``loss`` for each example of ``batch``, stacked on a new leading axis.

    ``loss(params, *batch)`` is a loss over a batch (leading axis of every
    array in ``batch``).  Each example is given to it as a batch of one, and
    ``mx.vmap`` runs that over the examples with the parameters shared
    (``in_axes=None``).  The result has the structure of ``params`` with
    leaves of shape ``(batch_size, *param.shape)``; for a mean loss, their
    mean over the first axis is the batch gradient.
    """
    one = lambda p, *example: loss(p, *(a[None] for a in example))  # noqa: E731
    in_axes = (None,) + (0,) * len(batch)
    return mx.vmap(mx.grad(one), in_axes=in_axes)(params, *batch)


def per_example_norms(grads: Params) -> mx.array:
    """The global L2 norm of each example's gradient, from :func:`per_example_grads`."""
    squares = [mx.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) for g in tree_leaves(grads)]
    return mx.sqrt(sum(squares))


# --------------------------------------------------------------------------
# 2. An ensemble trained by vmap over stacked parameters
# --------------------------------------------------------------------------


def train_step(loss: Loss, opt: optim.Optimizer) -> Callable:
    """One model's step, ``step(params, state, *batch) -> (loss, params, state)`` (pure)."""

    def step(params: Params, state: dict, *batch: mx.array):
        value, grads = mx.value_and_grad(loss)(params, *batch)
        params, state = opt.update(grads, state, params)
        return value, params, state

    return step


def init_ensemble(model: F.Pair, opt: optim.Optimizer, keys: Sequence[mx.array]):
    """Stacked parameters (one init per key) and the stacked optimizer states for them."""
    members = [model.init(k) for k in keys]
    return tree_stack(members), tree_stack([opt.init(p) for p in members])


def ensemble_step(loss: Loss, opt: optim.Optimizer, num_batch_args: int = 2) -> Callable:
    """The compiled step of a whole ensemble: ``step(params, states, *batch)``.

    ``mx.vmap`` maps :func:`train_step` over the stacked parameters and
    optimizer states (axis 0), with the batch shared (``in_axes=None``); pass
    the batch with a leading ensemble axis instead and use ``in_axes=0`` to
    give each member its own data.  Returns the ``(N,)`` losses and the new
    stacked parameters and states.
    """
    in_axes = (0, 0) + (None,) * num_batch_args
    return mx.compile(mx.vmap(train_step(loss, opt), in_axes=in_axes))


# --------------------------------------------------------------------------
# 3. Hessian-vector products
# --------------------------------------------------------------------------


def _tree_dot(a: Params, b: Params) -> mx.array:
    return sum(mx.sum(x * y) for x, y in zip(tree_leaves(a), tree_leaves(b)))


def hvp(loss: Loss, params: Params, v: Params, *args: Any, mode: str = "forward") -> Params:
    """``H v``, the Hessian of ``loss(params, *args)`` w.r.t. ``params`` times the tree ``v``.

    ``mode="forward"`` (forward-over-reverse): the ``jvp`` of ``grad`` along
    ``v``; one forward-mode pass over the backward graph, the cheap way.
    ``mode="reverse"`` (reverse-over-reverse): the ``grad`` of
    ``<grad loss(params), v>``.  ``v`` has the structure of ``params``; so does
    the result.  Never forms the Hessian.
    """
    if mode == "reverse":
        return mx.grad(lambda p: _tree_dot(mx.grad(loss)(p, *args), v))(params)
    if mode != "forward":
        raise ValueError(f"mode must be 'forward' or 'reverse', not {mode!r}")
    # funcnn.transforms.jvp takes trees (mx.jvp takes lists of arrays).
    _, tangent = T.jvp(lambda p: mx.grad(loss)(p, *args), (params,), (v,))
    return tangent


def ravel(tree: Params) -> mx.array:
    """All leaves of ``tree``, flattened and concatenated (in tree order)."""
    return mx.concatenate([x.reshape(-1) for x in tree_leaves(tree)])


def unravel(vector: mx.array, like: Params) -> Params:
    """The inverse of :func:`ravel`: ``vector`` cut and shaped like the leaves of ``like``."""
    leaves, out, start = tree_leaves(like), [], 0
    for x in leaves:
        out.append(vector[start : start + x.size].reshape(x.shape))
        start += x.size
    return tree_structure(like).unflatten(out)


def hessian(loss: Loss, params: Params, *args: Any) -> mx.array:
    """The ``(P, P)`` Hessian over :func:`ravel`'s parameter order (small problems only).

    Row ``i`` is ``H e_i``: :func:`hvp` ``vmap``-ed over the identity's rows.
    """
    size = ravel(params).size
    dtype = tree_leaves(params)[0].dtype
    column = lambda e: ravel(hvp(loss, params, unravel(e, params), *args))  # noqa: E731
    return mx.vmap(column)(mx.eye(size, dtype=dtype))


def fd_hvp(loss: Loss, params: Params, v: Params, *args: Any, eps: float = 1e-3) -> Params:
    """``H v`` by central differences of the gradient: ``(g(p + eps v) - g(p - eps v)) / 2 eps``."""
    grad = mx.grad(loss)
    shift = lambda s: tree_map(lambda p, d: p + s * eps * d, params, v)  # noqa: E731
    return tree_map(lambda a, b: (a - b) / (2 * eps), grad(shift(1), *args), grad(shift(-1), *args))


# --------------------------------------------------------------------------
# The demo
# --------------------------------------------------------------------------


def _max_abs(a: Params, b: Params) -> float:
    return max(mx.max(mx.abs(x - y)).item() for x, y in zip(tree_leaves(a), tree_leaves(b)))


def _as(tree: Params, dtype: mx.Dtype) -> Params:
    return tree_map(lambda x: x.astype(dtype), tree)


def demo_per_example(seed: int = 0, batch: int = 32) -> float:
    model = mlp()
    loss = classification_loss(model)
    params = model.init(mx.random.key(seed))
    x, y = spirals(batch, seed=seed)
    grads = per_example_grads(loss, params, x, y)
    loop = tree_stack([mx.grad(loss)(params, x[i : i + 1], y[i : i + 1]) for i in range(batch)])
    err = _max_abs(grads, loop)
    mean_err = _max_abs(tree_map(lambda g: g.mean(0), grads), mx.grad(loss)(params, x, y))
    norms = per_example_norms(grads)
    print(
        f"per-example gradients: {batch} examples, "
        f"leaves {[g.shape for g in tree_leaves(grads)][:2]}...; "
        f"max |vmap - loop| = {err:.1e}, max |mean - batch grad| = {mean_err:.1e}; "
        f"norms {norms.min().item():.3f}..{norms.max().item():.3f}"
    )
    return err


def demo_ensemble(seed: int = 0, members: int = 4, steps: int = 50) -> float:
    model = mlp()
    loss = classification_loss(model)
    opt = optim.adam(learning_rate=3e-3)
    keys = mx.random.split(mx.random.key(seed), members)
    x, y = spirals(512, seed=seed)
    params, states = init_ensemble(model, opt, keys)
    step = ensemble_step(loss, opt)
    tic = time.perf_counter()
    for i in range(steps):
        losses, params, states = step(params, states, x, y)
        mx.eval(losses, params, states)
        if i == 0:
            first, tic = time.perf_counter() - tic, time.perf_counter()
    together = time.perf_counter() - tic

    single = mx.compile(train_step(loss, opt))
    tic = time.perf_counter()
    alone = []
    for k in keys:
        p = model.init(k)
        s = opt.init(p)
        for _ in range(steps):
            _, p, s = single(p, s, x, y)
            mx.eval(p, s)
        alone.append(p)
    one_by_one = time.perf_counter() - tic
    err = _max_abs(params, tree_stack(alone))
    accuracy = [
        mx.mean(mx.argmax(model.apply(p, x), axis=1) == y).item() for p in tree_unstack(params)
    ]
    print(
        f"ensemble: {members} MLPs x {steps} Adam steps in one vmapped compiled step "
        f"(first call {first:.2f} s, then {together:.2f} s; one by one {one_by_one:.2f} s); losses "
        f"{[round(v, 3) for v in losses.tolist()]}, "
        f"train accuracy {[round(a, 3) for a in accuracy]}; "
        f"max |ensemble - one by one| = {err:.1e}"
    )
    return err


def demo_hvp(seed: int = 0) -> float:
    # float64 (MLX supports it on the CPU) makes central differences accurate to
    # ~1e-10.  A tanh MLP with a squared error: in MLX 0.32, float64 exp (hence
    # softmax and cross entropy) is only float32-accurate, tanh is exact.
    model = mlp((2, 8, 1))
    loss = regression_loss(model)
    x, y = regression_data(64, seed=seed, dtype=mx.float64)
    k_params, k_v = mx.random.split(mx.random.key(seed))
    params = _as(model.init(k_params), mx.float64)
    v = unravel(mx.random.normal((ravel(params).size,), key=k_v).astype(mx.float64), params)
    forward = hvp(loss, params, v, x, y)
    reverse = hvp(loss, params, v, x, y, mode="reverse")
    fd = fd_hvp(loss, params, v, x, y, eps=1e-5)
    h = hessian(loss, params, x, y)
    explicit = h @ ravel(v)
    err_fd = _max_abs(forward, fd)
    print(
        f"Hessian-vector product ({ravel(params).size} float64 parameters): |Hv| = "
        f"{mx.linalg.norm(ravel(forward)).item():.4f}; max |fwd-over-rev - rev-over-rev| = "
        f"{_max_abs(forward, reverse):.1e}, vs central differences (eps 1e-5) {err_fd:.1e}, "
        f"vs explicit Hessian @ v {mx.max(mx.abs(explicit - ravel(forward))).item():.1e} "
        f"(H symmetric to {mx.max(mx.abs(h - h.T)).item():.1e})"
    )
    return err_fd


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Per-example gradients, a vmapped ensemble, HVPs.")
    parser.add_argument("--seed", type=int, default=0, help="keys for inits and data (default 0)")
    parser.add_argument("--quick", action="store_true", help="CI run: fewer ensemble steps")
    args = parser.parse_args(argv)
    checks = {
        "per-example gradients == loop of single-example gradients (1e-6)": (
            demo_per_example(args.seed) < 1e-6
        ),
        "vmapped ensemble == models trained one by one (1e-5)": (
            demo_ensemble(args.seed, steps=10 if args.quick else 50) < 1e-5
        ),
        "HVP == central differences of the gradient (1e-8, float64)": demo_hvp(args.seed) < 1e-8,
    }
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    if not all(checks.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
