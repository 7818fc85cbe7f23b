"""The ``(init, apply)`` pair that every functional layer returns, and key helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Optional

import mlx.core as mx

__all__ = ["Pair", "split_key"]

Params = Any
Key = Optional[mx.array]


class Pair:
    """A pure layer: ``init(key=None) -> params`` and ``apply(params, *inputs) -> output``.

    ``init`` builds a plain parameter tree (dicts and lists of arrays).  With
    an explicit ``key`` it is deterministic and leaves MLX's global random
    state alone; without one it draws from the global state exactly as the
    matching :mod:`mlx.nn` constructor does.  ``apply`` reads nothing but its
    arguments, so it can be differentiated, vmapped and compiled.

    A pair unpacks like stax's: ``init, apply = F.linear(4, 2)``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> layer = F.linear(4, 2)
        >>> params = layer.init(mx.random.key(0))
        >>> layer.apply(params, mx.ones((3, 4))).shape
        (3, 2)
    """

    __slots__ = ("init", "apply", "name")

    def __init__(self, init: Callable[..., Params], apply: Callable[..., Any], name: str) -> None:
        self.init = init
        self.apply = apply
        self.name = name

    def __iter__(self) -> Iterator[Callable]:
        yield self.init
        yield self.apply

    def __repr__(self) -> str:
        return f"<funcnn pair {self.name}>"


def split_key(key: Key, num: int) -> list[Key]:
    """``num`` independent keys from ``key``; ``None`` (the global RNG) stays ``None``."""
    if key is None:
        return [None] * num
    return list(mx.random.split(key, num)) if num > 1 else [key]


def no_params(key: Key = None) -> dict:
    """The ``init`` of a layer without parameters."""
    return {}
