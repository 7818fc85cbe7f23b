"""Shared machinery of the workloads: one model spec, seven ways to run it.

A :class:`ModelSpec` describes one network three times over, with the same
parameter names everywhere:

* ``make_module(nn)``: the network as a Module class body written once against
  ``nn``, so the very same source builds it on :mod:`mlx.nn` and on the funcnn
  facade (``import funcnn as nn`` is a drop-in);
* ``pair()``: the network as a :mod:`funcnn.functional` pair;
* ``hand_order`` / ``hand_forward(flat, x)``: the math written by hand in
  :mod:`mlx.core` on a flat list of arrays (the engine's own limit).

:func:`build` turns a spec, a mode (``"train"``, ``"vag"``, ``"forward"``) and a
variant key into a :class:`Bench`: ``step()`` runs one step and evaluates its
results, ``check()`` summarises them (to assert that every variant computes the
same thing), ``traces()`` counts how often a compiled function's Python body ran.

Every variant starts from the same parameters: an ``mlx.nn`` model built with
``mx.random.seed(SEED)`` (see :func:`reference`), copied in by name.  All of
them pay the same set-up (reference model, data), which is not timed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import mlx.core as mx
import numpy as np

SEED = 0
LEARNING_RATE = 1e-3  # mlx.optimizers' defaults otherwise: betas (0.9, 0.999), eps 1e-8
WEIGHT_DECAY = 0.01  # AdamW
CHECK_STEPS = 3  # check() is taken after this many steps, in every variant and mode

TRAIN_VARIANTS = (
    "mlxnn_eager",
    "mlxnn_compiled",
    "facade_eager",
    "facade_compiled",
    "pure_eager",
    "pure_compiled",
    "handwritten_compiled",
)
ALL_VARIANTS = TRAIN_VARIANTS[:-1] + ("handwritten_eager", "handwritten_compiled")


@dataclass
class Bench:
    """One built variant: ``step()`` (evaluated), ``check()`` -> dict, ``traces()`` or ``None``."""

    step: Callable[[], Any]
    check: Callable[[], dict]
    traces: Optional[Callable[[], int]] = None


class Counter:
    """Counts the runs of a compiled function's Python body (it runs only while MLX traces)."""

    def __init__(self) -> None:
        self.n = 0

    def tick(self) -> None:
        self.n += 1

    def __call__(self) -> int:
        return self.n


@dataclass
class ModelSpec:
    make_module: Callable[[Any], Any]  # nn (mlx.nn or funcnn) -> Module
    pair: Callable[[], Any]  # -> funcnn.functional.Pair with apply(params, x)
    hand_order: list  # parameter names, in the order of the hand-written flat list
    hand_forward: Callable[[list, mx.array], mx.array]
    data: Callable[[], tuple]  # -> (x, y): fixed, synthetic
    loss: str = "xent"  # "xent" (mean cross entropy over class ids) or "mse"
    optimizer: str = "adam"  # "adam" or "adamw"
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------
# Reference parameters, data, summaries
# --------------------------------------------------------------------------


def reference(spec: ModelSpec) -> list:
    """``[(name, array)]`` of an ``mlx.nn`` model built with ``mx.random.seed(SEED)``."""
    import mlx.nn
    from mlx.utils import tree_flatten

    mx.random.seed(SEED)
    model = spec.make_module(mlx.nn)
    pairs = tree_flatten(model.parameters())
    mx.eval([x for _, x in pairs])
    return pairs


def rng(offset: int = 1) -> np.random.Generator:
    return np.random.default_rng(SEED + offset)


def _f64(x: mx.array) -> np.ndarray:
    return np.asarray(x.astype(mx.float32), dtype=np.float64)


def array_summary(x: mx.array, points: int = 16) -> dict:
    """Sum, sum of |x| and ``points`` evenly spaced elements: enough to tell outputs apart."""
    a = _f64(x).ravel()
    idx = np.linspace(0, a.size - 1, min(points, a.size)).astype(int)
    return {"sum": float(a.sum()), "abs_sum": float(np.abs(a).sum()), "points": a[idx].tolist()}


def arrays_summary(arrays: list, prefix: str) -> dict:
    """Order-independent sums over many arrays (parameters, gradients)."""
    leaves = [_f64(x) for x in arrays if x is not None]
    return {
        f"{prefix}_count": len(leaves),
        f"{prefix}_sumsq": float(sum((a * a).sum() for a in leaves)),
        f"{prefix}_abs_sum": float(sum(np.abs(a).sum() for a in leaves)),
    }


def exact_digest(named: list) -> dict:
    """Names and bit patterns of ``[(name, array)]``, hashed: for results that must be identical."""
    names = hashlib.sha1("\n".join(k for k, _ in named).encode()).hexdigest()
    values = hashlib.sha1()
    for _, x in named:
        values.update(np.asarray(x).tobytes())
    return {"count": len(named), "names_sha1": names, "values_sha1": values.hexdigest()}


def _array_leaves(tree: Any) -> list:
    from funcnn.tree import tree_leaves

    return [x for x in tree_leaves(tree) if isinstance(x, mx.array)]


# --------------------------------------------------------------------------
# Losses and the hand-written optimizer
# --------------------------------------------------------------------------


def library_loss(kind: str, losses: Any) -> Callable:
    """The loss from ``losses`` (``mlx.nn.losses`` or ``funcnn.losses``)."""
    if kind == "xent":
        return lambda out, y: losses.cross_entropy(out, y, reduction="mean")
    return lambda out, y: losses.mse_loss(out, y, reduction="mean")


def hand_loss(kind: str) -> Callable:
    if kind == "xent":

        def xent(out: mx.array, y: mx.array) -> mx.array:
            score = mx.take_along_axis(out, mx.expand_dims(y, -1), -1).squeeze(-1)
            return mx.mean(mx.logsumexp(out, axis=-1) - score)

        return xent
    return lambda out, y: mx.mean(mx.square(out - y))


def hand_adam(params: list, grads: list, m: list, v: list, weight_decay: float = 0.0):
    """``mlx.optimizers.Adam`` (``AdamW`` with ``weight_decay``), no bias correction, by hand."""
    lr, (b1, b2), eps = LEARNING_RATE, (0.9, 0.999), 1e-8
    new_p, new_m, new_v = [], [], []
    for w, g, mi, vi in zip(params, grads, m, v):
        if weight_decay:
            w = w * (1 - lr * weight_decay)
        mi = b1 * mi + (1 - b1) * g
        vi = b2 * vi + (1 - b2) * mx.square(g)
        new_p.append(w - lr * mi / (mx.sqrt(vi) + eps))
        new_m.append(mi)
        new_v.append(vi)
    return new_p, new_m, new_v


# --------------------------------------------------------------------------
# The variants
# --------------------------------------------------------------------------


def build(spec: ModelSpec, mode: str, variant: str, ref: list, data: tuple) -> Bench:
    """The ``variant`` of ``spec`` in ``mode``, starting from the parameters ``ref``."""
    family, _, how = variant.rpartition("_")
    compiled = how == "compiled"
    if family in ("mlxnn", "facade"):
        return _module_bench(spec, mode, family, compiled, ref, data)
    if family == "pure":
        return _pure_bench(spec, mode, compiled, ref, data)
    if family == "handwritten":
        return _hand_bench(spec, mode, compiled, ref, data)
    raise ValueError(f"unknown variant {variant!r}")


def _module_bench(
    spec: ModelSpec, mode: str, family: str, compiled: bool, ref: list, data: tuple
) -> Bench:
    """``mlx.nn`` or the funcnn facade, eager or compiled with MLX's documented state capture."""
    import mlx.optimizers as optim

    if family == "mlxnn":
        import mlx.nn as nn

        value_and_grad = nn.value_and_grad
    else:
        import funcnn as nn

        value_and_grad = nn.value_and_grad
    model = spec.make_module(nn)
    model.load_weights(list(ref))  # strict: same names and shapes as the reference
    mx.eval(model.parameters())
    x, y = data
    loss = library_loss(spec.loss, nn.losses)
    counter = Counter()
    last: dict = {}

    def loss_fn(model, x, y):
        return loss(model(x), y)

    if mode == "forward":

        def forward(x):
            counter.tick()
            return model(x)

        fn = mx.compile(forward, inputs=model.state) if compiled else forward

        def step():
            last["out"] = out = fn(x)
            mx.eval(out)

        return Bench(step, lambda: array_summary(last["out"]), counter if compiled else None)

    grad_fn = value_and_grad(model, loss_fn)
    if mode == "vag":
        state = [model.state]

        def vag(x, y):
            counter.tick()
            return grad_fn(model, x, y)

        fn = mx.compile(vag, inputs=state, outputs=state) if compiled else vag

        def step():
            value, grads = fn(x, y)
            mx.eval(value, grads)
            last.update(loss=value, grads=grads)

        def check():
            return {"loss": last["loss"].item(), **arrays_summary(_array_leaves(last["grads"]), "grad")}

        return Bench(step, check, counter if compiled else None)

    if spec.optimizer == "adamw":
        opt = optim.AdamW(learning_rate=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    else:
        opt = optim.Adam(learning_rate=LEARNING_RATE)
    opt.init(model.trainable_parameters())  # before capture: the state's leaves never change
    state = [model.state, opt.state]

    def train_step(x, y):
        counter.tick()
        value, grads = grad_fn(model, x, y)
        opt.update(model, grads)
        return value

    fn = mx.compile(train_step, inputs=state, outputs=state) if compiled else train_step

    def step():
        last["loss"] = value = fn(x, y)
        mx.eval(value, model.parameters(), opt.state)

    def check():
        params = _array_leaves(model.parameters())
        return {"loss": last["loss"].item(), **arrays_summary(params, "param")}

    return Bench(step, check, counter if compiled else None)


def _pure_bench(spec: ModelSpec, mode: str, compiled: bool, ref: list, data: tuple) -> Bench:
    """funcnn.functional + funcnn.transforms (+ funcnn.optimizers), compiled with ``T.compile``."""
    import funcnn.optimizers as fopt
    import funcnn.transforms as T
    from funcnn import losses
    from funcnn.tree import tree_flatten, tree_map_with_path

    pair = spec.pair()
    params = pair.init(mx.random.key(SEED))
    given = dict(ref)
    names = [k for k, _ in tree_flatten(params)]
    if sorted(names) != sorted(given):
        raise AssertionError(f"pure parameter names differ from mlx.nn's: {names[:5]} ...")
    params = tree_map_with_path(lambda k, _: given[k], params)
    x, y = data
    loss = library_loss(spec.loss, losses)
    counter = Counter()
    wrap = T.compile if compiled else (lambda f: f)
    traces = counter if compiled else None
    last: dict = {}

    def loss_fn(p, x, y):
        return loss(pair.apply(p, x), y)

    if mode == "forward":

        def forward(p, x):
            counter.tick()
            return pair.apply(p, x)

        fn = wrap(forward)

        def step():
            last["out"] = out = fn(params, x)
            mx.eval(out)

        return Bench(step, lambda: array_summary(last["out"]), traces)

    grad_fn = T.value_and_grad(loss_fn)
    if mode == "vag":

        def vag(p, x, y):
            counter.tick()
            return grad_fn(p, x, y)

        fn = wrap(vag)

        def step():
            value, grads = fn(params, x, y)
            mx.eval(value, grads)
            last.update(loss=value, grads=grads)

        def check():
            return {"loss": last["loss"].item(), **arrays_summary(_array_leaves(last["grads"]), "grad")}

        return Bench(step, check, traces)

    if spec.optimizer == "adamw":
        opt = fopt.adamw(LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    else:
        opt = fopt.adam(LEARNING_RATE)
    holder = {"params": params, "state": opt.init(params)}

    def train_step(p, s, x, y):
        counter.tick()
        value, grads = grad_fn(p, x, y)
        p, s = opt.update(grads, s, p)
        return value, p, s

    fn = wrap(train_step)

    def step():
        value, holder["params"], holder["state"] = fn(holder["params"], holder["state"], x, y)
        mx.eval(value, holder["params"], holder["state"])
        last["loss"] = value

    def check():
        return {"loss": last["loss"].item(), **arrays_summary(_array_leaves(holder["params"]), "param")}

    return Bench(step, check, traces)


def _hand_bench(spec: ModelSpec, mode: str, compiled: bool, ref: list, data: tuple) -> Bench:
    """Plain mlx.core on a flat list: ``mx.value_and_grad``, a hand-written Adam, ``mx.compile``."""
    given = dict(ref)
    if sorted(spec.hand_order) != sorted(given):
        raise AssertionError("hand-written parameter names differ from mlx.nn's")
    flat = [given[k] for k in spec.hand_order]
    x, y = data
    loss = hand_loss(spec.loss)
    counter = Counter()
    wrap = mx.compile if compiled else (lambda f: f)
    traces = counter if compiled else None
    last: dict = {}

    def loss_fn(flat, x, y):
        return loss(spec.hand_forward(flat, x), y)

    if mode == "forward":

        def forward(flat, x):
            counter.tick()
            return spec.hand_forward(flat, x)

        fn = wrap(forward)

        def step():
            last["out"] = out = fn(flat, x)
            mx.eval(out)

        return Bench(step, lambda: array_summary(last["out"]), traces)

    grad_fn = mx.value_and_grad(loss_fn)
    if mode == "vag":

        def vag(flat, x, y):
            counter.tick()
            return grad_fn(flat, x, y)

        fn = wrap(vag)

        def step():
            value, grads = fn(flat, x, y)
            mx.eval(value, grads)
            last.update(loss=value, grads=grads)

        def check():
            return {"loss": last["loss"].item(), **arrays_summary(last["grads"], "grad")}

        return Bench(step, check, traces)

    decay = WEIGHT_DECAY if spec.optimizer == "adamw" else 0.0
    holder = {"p": flat, "m": [mx.zeros_like(w) for w in flat], "v": [mx.zeros_like(w) for w in flat]}

    def train_step(p, m, v, x, y):
        counter.tick()
        value, grads = grad_fn(p, x, y)
        p, m, v = hand_adam(p, grads, m, v, decay)
        return value, p, m, v

    fn = wrap(train_step)

    def step():
        value, holder["p"], holder["m"], holder["v"] = fn(
            holder["p"], holder["m"], holder["v"], x, y
        )
        mx.eval(value, holder["p"], holder["m"], holder["v"])
        last["loss"] = value

    def check():
        return {"loss": last["loss"].item(), **arrays_summary(holder["p"], "param")}

    return Bench(step, check, traces)
