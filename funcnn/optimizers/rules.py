"""Optimizer factories: the rules of :mod:`mlx.optimizers` with explicit state.

Each factory takes the hyper-parameters of the :mod:`mlx.optimizers` class of
the same name (same names, same defaults; ``betas`` defaults are tuples where
MLX uses lists), builds that class once (so invalid values raise MLX's own
errors right away) and returns an :class:`~funcnn.optimizers.Optimizer`
whose per-parameter math is the class's ``init_single``/``apply_single``.
``learning_rate`` may be a float, an :class:`mlx.core.array` or a schedule
(any callable of the step, such as :func:`~funcnn.optimizers.cosine_decay`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Optional, Union

import mlx.core as mx
import mlx.optimizers as _mo  # imports mlx.nn; only funcnn.optimizers does this

from ._base import Optimizer

__all__ = [
    "sgd",
    "rmsprop",
    "adagrad",
    "adadelta",
    "adam",
    "adamw",
    "adamax",
    "lion",
    "adafactor",
    "muon",
]

LearningRate = Union[float, mx.array, Callable[[mx.array], mx.array]]


def _make(factory: Callable, cls: type, args: dict) -> Optimizer:
    """Build ``cls(**args)``; the repr shows ``learning_rate`` and the non-default arguments."""
    shown = {
        name: args[name]
        for name, p in inspect.signature(factory).parameters.items()
        if name == "learning_rate" or not _same(args[name], p.default)
    }
    return Optimizer(cls(**args), factory.__name__, shown)


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # noqa: BLE001 - not comparable: show it
        return False


def sgd(
    learning_rate: LearningRate,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
) -> Optimizer:
    r"""Stochastic gradient descent, as :class:`mlx.optimizers.SGD`.

    ``v = momentum * v + (1 - dampening) * g``; ``w -= lr * v`` (or, with
    ``nesterov``, ``w -= lr * (g + momentum * v)``).  ``weight_decay`` adds
    ``weight_decay * w`` to the gradient (L2).  The state holds ``v`` for every
    trainable parameter, also without momentum, as MLX does.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.optimizers as optim
        >>> opt = optim.sgd(learning_rate=0.5, momentum=0.9, nesterov=True)
        >>> params = {"w": mx.array([1.0])}
        >>> state = opt.init(params)
        >>> params, state = opt.update({"w": mx.array([1.0])}, state, params)
        >>> round(params["w"].item(), 4), state["per_param"]["w"]["v"].item()
        (0.05, 1.0)
    """
    return _make(sgd, _mo.SGD, locals())


def rmsprop(learning_rate: LearningRate, alpha: float = 0.99, eps: float = 1e-8) -> Optimizer:
    r"""RMSprop, as :class:`mlx.optimizers.RMSprop`: ``v = alpha v + (1 - alpha) g^2``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.optimizers as optim
        >>> opt = optim.rmsprop(learning_rate=0.01)
        >>> params = {"w": mx.array([1.0])}
        >>> params, state = opt.update({"w": mx.array([2.0])}, opt.init(params), params)
        >>> round(params["w"].item(), 4)
        0.9
    """
    return _make(rmsprop, _mo.RMSprop, locals())


def adagrad(learning_rate: LearningRate, eps: float = 1e-8) -> Optimizer:
    r"""Adagrad, as :class:`mlx.optimizers.Adagrad`: ``v += g^2``; ``w -= lr g / (sqrt(v) + eps)``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.optimizers as optim
        >>> opt = optim.adagrad(learning_rate=0.1)
        >>> params = {"w": mx.array([1.0])}
        >>> params, state = opt.update({"w": mx.array([3.0])}, opt.init(params), params)
        >>> round(params["w"].item(), 4), state["per_param"]["w"]["v"].item()
        (0.9, 9.0)
    """
    return _make(adagrad, _mo.Adagrad, locals())


def adadelta(learning_rate: LearningRate, rho: float = 0.9, eps: float = 1e-6) -> Optimizer:
    r"""AdaDelta, as :class:`mlx.optimizers.AdaDelta` (state ``v`` and ``u``).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.optimizers as optim
        >>> state = optim.adadelta(learning_rate=1.0).init({"w": mx.zeros(3)})
        >>> sorted(state["per_param"]["w"])
        ['u', 'v']
    """
    return _make(adadelta, _mo.AdaDelta, locals())


def adam(
    learning_rate: LearningRate,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    bias_correction: bool = False,
) -> Optimizer:
    r"""Adam, as :class:`mlx.optimizers.Adam` (no bias correction unless asked, as in MLX).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.optimizers as optim
        >>> opt = optim.adam(learning_rate=0.1, bias_correction=True)
        >>> params = {"w": mx.array([1.0])}
        >>> params, state = opt.update({"w": mx.array([5.0])}, opt.init(params), params)
        >>> round(params["w"].item(), 4)     # a first bias-corrected step moves by lr
        0.9
    """
    return _make(adam, _mo.Adam, locals())


def adamw(
    learning_rate: LearningRate,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.01,
    bias_correction: bool = False,
) -> Optimizer:
    r"""AdamW, as :class:`mlx.optimizers.AdamW`: Adam on ``w * (1 - lr * weight_decay)``.

    Frozen parameters (see ``Optimizer.init``'s ``mask``) are not decayed.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.optimizers as optim
        >>> opt = optim.adamw(learning_rate=0.1, weight_decay=0.5)
        >>> params = {"w": mx.array([2.0])}
        >>> params, _ = opt.update({"w": mx.array([0.0])}, opt.init(params), params)
        >>> round(params["w"].item(), 4)      # zero gradient: only the decay acts
        1.9
    """
    return _make(adamw, _mo.AdamW, locals())


def adamax(
    learning_rate: LearningRate, betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8
) -> Optimizer:
    r"""Adamax, as :class:`mlx.optimizers.Adamax` (Adam with the infinity norm).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.optimizers as optim
        >>> opt = optim.adamax(learning_rate=0.1)
        >>> params = {"w": mx.array([1.0])}
        >>> params, state = opt.update({"w": mx.array([-2.0])}, opt.init(params), params)
        >>> state["per_param"]["w"]["v"].item()
        2.0
    """
    return _make(adamax, _mo.Adamax, locals())


def lion(
    learning_rate: LearningRate,
    betas: Sequence[float] = (0.9, 0.99),
    weight_decay: float = 0.0,
) -> Optimizer:
    r"""Lion, as :class:`mlx.optimizers.Lion`: ``w -= lr * (sign(c) + weight_decay * w)``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.optimizers as optim
        >>> opt = optim.lion(learning_rate=0.1)
        >>> params = {"w": mx.array([1.0, 1.0])}
        >>> params, _ = opt.update({"w": mx.array([3.0, -0.5])}, opt.init(params), params)
        >>> [round(x, 4) for x in params["w"].tolist()]
        [0.9, 1.1]
    """
    return _make(lion, _mo.Lion, locals())


def adafactor(
    learning_rate: Optional[LearningRate] = None,
    eps: tuple[float, float] = (1e-30, 1e-3),
    clip_threshold: float = 1.0,
    decay_rate: float = -0.8,
    beta_1: Optional[float] = None,
    weight_decay: float = 0.0,
    scale_parameter: bool = True,
    relative_step: bool = True,
    warmup_init: bool = False,
) -> Optimizer:
    r"""Adafactor, as :class:`mlx.optimizers.Adafactor` (factored second moments).

    Without a ``learning_rate`` the state has no ``"learning_rate"`` entry (the
    relative step size comes from the step count).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.optimizers as optim
        >>> state = optim.adafactor().init({"w": mx.zeros((4, 3))})
        >>> sorted(state), sorted(state["per_param"]["w"])
        (['per_param', 'step'], ['exp_avg_sq_col', 'exp_avg_sq_row'])
    """
    return _make(adafactor, _mo.Adafactor, locals())


def muon(
    learning_rate: LearningRate,
    momentum: float = 0.95,
    weight_decay: float = 0.01,
    nesterov: bool = True,
    ns_steps: int = 5,
) -> Optimizer:
    r"""Muon, as :class:`mlx.optimizers.Muon` (orthogonalized momentum for matrices).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.optimizers as optim
        >>> opt = optim.muon(learning_rate=0.02)
        >>> params = {"w": mx.ones((3, 2))}
        >>> new, _ = opt.update({"w": mx.ones((3, 2))}, opt.init(params), params)
        >>> new["w"].shape
        (3, 2)
    """
    return _make(muon, _mo.Muon, locals())
