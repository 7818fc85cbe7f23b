"""Activations as parameter-less pairs, for :func:`funcnn.functional.sequential`."""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx

from . import activations as act
from ._pair import Pair, no_params, pair_factory

__all__ = ["relu", "silu", "gelu", "gelu_function"]


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


def gelu_function(approx: str = "none") -> Callable[[mx.array], mx.array]:
    """The GELU variant named by ``approx``: ``"none"``, ``"precise"``/``"tanh"`` or ``"fast"``."""
    allowed = list(act.GELU_APPROXIMATIONS)
    if approx not in allowed:
        raise ValueError(f"The approximation should be in {allowed} but '{approx}' was given")
    return act.GELU_APPROXIMATIONS[approx]


@pair_factory
def gelu(approx: str = "none") -> Pair:
    """GELU as a pair (as :class:`mlx.nn.GELU`); see :func:`gelu_function` for ``approx``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> F.gelu("tanh").apply({}, mx.array([0.0])).tolist()
        [0.0]
    """
    return _activation(gelu_function(approx), "gelu")
