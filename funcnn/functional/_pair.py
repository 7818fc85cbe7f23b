"""The ``(init, apply)`` pair that every functional layer returns, and key helpers."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, Optional, TypeVar

import mlx.core as mx

__all__ = ["Pair", "pair_factory", "split_key"]

Params = Any
Key = Optional[mx.array]


class Pair:
    """A pure layer: ``init(key=None) -> params`` and ``apply(params, *inputs) -> output``.

    ``init`` builds a plain parameter tree (dicts and lists of arrays).  With
    an explicit ``key`` it is deterministic and leaves MLX's global random
    state alone; without one it draws from the global state exactly as the
    matching :mod:`mlx.nn` constructor does.  ``apply`` reads nothing but its
    arguments, so it can be differentiated, vmapped and compiled.

    A pair unpacks like stax's: ``init, apply = F.linear(4, 2)``.  Pairs made
    by funcnn's factories pickle (as their factory call), and so do the layer
    classes that hold them.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> layer = F.linear(4, 2)
        >>> params = layer.init(mx.random.key(0))
        >>> layer.apply(params, mx.ones((3, 4))).shape
        (3, 2)
    """

    __slots__ = ("init", "apply", "name", "recipe")

    def __init__(self, init: Callable[..., Params], apply: Callable[..., Any], name: str) -> None:
        self.init = init
        self.apply = apply
        self.name = name
        self.recipe: Optional[tuple] = None

    def __reduce__(self) -> tuple:
        if self.recipe is None:
            raise TypeError(
                f"Cannot pickle the pair {self.name!r}: its init/apply are closures. "
                "Decorate the function that makes it with funcnn.functional.pair_factory."
            )
        return (_remake, self.recipe)

    def __iter__(self) -> Iterator[Callable]:
        yield self.init
        yield self.apply

    def __repr__(self) -> str:
        return f"<funcnn pair {self.name}>"


def _remake(factory: Callable[..., Pair], args: tuple, kwargs: dict) -> Pair:
    return factory(*args, **kwargs)


Factory = TypeVar("Factory", bound=Callable[..., Pair])


def pair_factory(factory: Factory) -> Factory:
    """Record, on each pair ``factory`` makes, the call that made it.

    A pair's ``init`` and ``apply`` are closures, which :mod:`pickle` cannot
    store; the recorded call lets a pair (and a Module holding one) pickle as
    "call this factory with these arguments".  Every funcnn factory uses it.
    """

    @functools.wraps(factory)
    def make(*args: Any, **kwargs: Any) -> Pair:
        pair = factory(*args, **kwargs)
        pair.recipe = (make, args, kwargs)
        return pair

    return make  # type: ignore[return-value]


def split_key(key: Key, num: int) -> list[Key]:
    """``num`` independent keys from ``key``; ``None`` (the global RNG) stays ``None``."""
    if key is None:
        return [None] * num
    return list(mx.random.split(key, num)) if num > 1 else [key]


def no_params(key: Key = None) -> dict:
    """The ``init`` of a layer without parameters."""
    return {}
