"""Learning-rate schedules: :mod:`mlx.optimizers`' schedules, as named callables.

A schedule maps the step count (the number of updates done so far, an
``mx.uint64`` array) to a value.  Pass one as ``learning_rate=`` to any
optimizer factory: each :meth:`~funcnn.optimizers.Optimizer.update` uses
``schedule(state["step"])`` and stores it in ``state["learning_rate"]``,
exactly as :mod:`mlx.optimizers` does.  The math is MLX's (each
:class:`Schedule` calls the function of the same name in
:mod:`mlx.optimizers.schedulers`); the wrapper adds a readable ``repr``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import mlx.core as mx
from mlx.optimizers import schedulers as _schedulers  # imports mlx.nn, as funcnn.optimizers may

__all__ = [
    "Schedule",
    "step_decay",
    "exponential_decay",
    "cosine_decay",
    "linear_schedule",
    "join_schedules",
]


class Schedule:
    """A callable ``step -> value`` that remembers how it was made (for ``repr``).

    Example:
        >>> import mlx.core as mx
        >>> from funcnn.optimizers import exponential_decay
        >>> lr = exponential_decay(0.1, 0.5)
        >>> lr
        exponential_decay(0.1, 0.5)
        >>> lr(mx.array(2)).item()
        0.02500000037252903
    """

    __slots__ = ("fn", "name", "args")

    def __init__(self, fn: Callable[[mx.array], mx.array], name: str, args: tuple) -> None:
        self.fn = fn
        self.name = name
        self.args = args

    def __call__(self, step: Any) -> mx.array:
        return self.fn(step)

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(map(repr, self.args))})"


def exponential_decay(init: float, decay_rate: float) -> Schedule:
    """``init * decay_rate ** step``, as :func:`mlx.optimizers.exponential_decay`.

    Example:
        >>> import mlx.core as mx
        >>> from funcnn.optimizers import exponential_decay
        >>> round(exponential_decay(0.1, 0.9)(mx.array(4)).item(), 6)
        0.06561
    """
    return Schedule(
        _schedulers.exponential_decay(init, decay_rate), "exponential_decay", (init, decay_rate)
    )


def step_decay(init: float, decay_rate: float, step_size: int) -> Schedule:
    """``init * decay_rate ** (step // step_size)``, as :func:`mlx.optimizers.step_decay`.

    Example:
        >>> import mlx.core as mx
        >>> from funcnn.optimizers import step_decay
        >>> [round(step_decay(1.0, 0.5, 10)(mx.array(s)).item(), 3) for s in (0, 9, 10, 25)]
        [1.0, 1.0, 0.5, 0.25]
    """
    return Schedule(
        _schedulers.step_decay(init, decay_rate, step_size),
        "step_decay",
        (init, decay_rate, step_size),
    )


def cosine_decay(init: float, decay_steps: int, end: float = 0.0) -> Schedule:
    """Cosine from ``init`` to ``end`` over ``decay_steps``, as :func:`mlx.optimizers.cosine_decay`.

    Example:
        >>> import mlx.core as mx
        >>> from funcnn.optimizers import cosine_decay
        >>> [round(cosine_decay(1.0, 100)(mx.array(s)).item(), 3) for s in (0, 50, 100, 200)]
        [1.0, 0.5, 0.0, 0.0]
    """
    return Schedule(
        _schedulers.cosine_decay(init, decay_steps, end), "cosine_decay", (init, decay_steps, end)
    )


def linear_schedule(init: float, end: float, steps: int) -> Schedule:
    """Linear from ``init`` to ``end`` over ``steps``, then ``end`` (a linear warm-up).

    As :func:`mlx.optimizers.linear_schedule`.

    Example:
        >>> import mlx.core as mx
        >>> from funcnn.optimizers import linear_schedule
        >>> [round(linear_schedule(0.0, 1.0, 4)(mx.array(s)).item(), 2) for s in (0, 1, 4, 9)]
        [0.0, 0.25, 1.0, 1.0]
    """
    return Schedule(
        _schedulers.linear_schedule(init, end, steps), "linear_schedule", (init, end, steps)
    )


def join_schedules(schedules: Sequence[Callable], boundaries: Sequence[int]) -> Schedule:
    """Schedule ``i + 1`` takes over at ``boundaries[i]``, counting steps from there.

    As :func:`mlx.optimizers.join_schedules`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.optimizers as optim
        >>> warmup = optim.linear_schedule(0.0, 1e-1, steps=10)
        >>> lr = optim.join_schedules([warmup, optim.cosine_decay(1e-1, 200)], [10])
        >>> [round(lr(mx.array(s)).item(), 4) for s in (0, 5, 10, 110)]
        [0.0, 0.05, 0.1, 0.05]
        >>> opt = optim.adamw(learning_rate=lr)
    """
    schedules, boundaries = list(schedules), list(boundaries)
    return Schedule(
        _schedulers.join_schedules(schedules, boundaries),
        "join_schedules",
        (schedules, boundaries),
    )
