"""The activation layers as parameter-less pairs, for :func:`funcnn.functional.sequential`.

The math is in :mod:`funcnn.functional.activations` (the array functions,
named as in :mod:`mlx.nn`); the pair factories here are named after the layer
classes (``ReLU`` -> ``relu()``), so they live in a module of their own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import mlx.core as mx

from . import activations as act
from ._pair import Pair, no_params, pair_factory

__all__ = ["relu", "silu", "gelu"]


def _activation(fn: Callable[[mx.array], mx.array], name: str) -> Pair:
    def apply(params: dict, x: mx.array) -> mx.array:
        return fn(x)

    return Pair(no_params, apply, name)


@pair_factory
def relu() -> Pair:
    """:func:`funcnn.relu` as a pair (as :class:`mlx.nn.ReLU`)."""
    return _activation(act.relu, "relu")


@pair_factory
def silu() -> Pair:
    """:func:`funcnn.silu` as a pair (as :class:`mlx.nn.SiLU`)."""
    return _activation(act.silu, "silu")


@pair_factory
def gelu(approx: str = "none") -> Pair:
    """GELU as a pair (as :class:`mlx.nn.GELU`); ``apply`` is :func:`~funcnn.functional.activations.gelu_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.gelu("tanh").apply({}, mx.array([0.0])).tolist()
        [0.0]
    """
    act.check_gelu_approx(approx)
    return Pair(no_params, functools.partial(act.gelu_apply, approx=approx), "gelu")
