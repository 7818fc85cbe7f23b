"""The ``(init, apply)`` pair every functional layer returns, and the protocol around it.

A pair's ``apply`` reads nothing but its arguments.  Three optional channels
carry what :mod:`mlx.nn` keeps on a module, each announced by a flag of the
pair so that composite pairs (and you) know what to pass and what comes back:

* ``takes_key``: ``apply(..., key=None)``.  Without a key the layer draws from
  MLX's global random state exactly as the :mod:`mlx.nn` layer does (same
  ``mx.random.seed``, same masks); with a key it is deterministic and leaves
  the global state alone.
* ``takes_training``: ``apply(..., training=True)``; the default is the mode of
  a fresh :mod:`mlx.nn` module.
* ``stateful``: ``apply`` returns ``(output, updates)``.  ``updates`` is a
  partial parameter tree holding the new values of the layer's state (BatchNorm's
  running statistics), with ``{}`` where nothing changed; fold it in with
  :func:`merge_updates` (pure) or ``module.update(updates)`` (a Module).  The
  state lives in ``params`` under :mod:`mlx.nn`'s names, so checkpoints
  interchange; ``pair.trainable(params)`` marks it ``False`` for optimizers and
  gradient filters.

Composite pairs (``sequential``, ...) always accept ``key`` and ``training``:
they pass ``training`` to the members that take it and split ``key`` among the
members that take one, and they are stateful when a member is.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Optional, TypeVar

import mlx.core as mx

from ..tree import tree_map

__all__ = ["Pair", "pair_factory", "split_key", "merge_updates", "apply_layer"]

Params = Any
Key = Optional[mx.array]


def _all_trainable(params: Params) -> Any:
    return tree_map(lambda x: isinstance(x, mx.array), params)


class Pair:
    """A pure layer: ``init(key=None) -> params`` and ``apply(params, *inputs) -> output``.

    ``init`` builds a plain parameter tree (dicts and lists of arrays).  With
    an explicit ``key`` it is deterministic and leaves MLX's global random
    state alone; without one it draws from the global state exactly as the
    matching :mod:`mlx.nn` constructor does.  ``apply`` reads nothing but its
    arguments, so it can be differentiated, vmapped and compiled.  See the
    module docstring for the ``key``/``training``/state channels and their
    flags ``takes_key``, ``takes_training`` and ``stateful``.

    A pair unpacks like stax's: ``init, apply = F.linear(4, 2)``.  Pairs made
    by funcnn's factories pickle (as their factory call).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> layer = F.linear(4, 2)
        >>> params = layer.init(mx.random.key(0))
        >>> layer.apply(params, mx.ones((3, 4))).shape
        (3, 2)
        >>> layer.takes_key, layer.takes_training, layer.stateful
        (False, False, False)
    """

    __slots__ = (
        "init", "apply", "name", "recipe", "takes_key", "takes_training", "stateful", "_trainable"
    )

    def __init__(
        self,
        init: Callable[..., Params],
        apply: Callable[..., Any],
        name: str,
        *,
        takes_key: bool = False,
        takes_training: bool = False,
        stateful: bool = False,
        trainable: Optional[Callable[[Params], Any]] = None,
    ) -> None:
        self.init = init
        self.apply = apply
        self.name = name
        self.recipe: Optional[tuple] = None
        self.takes_key = takes_key
        self.takes_training = takes_training
        self.stateful = stateful
        self._trainable = trainable or _all_trainable

    def trainable(self, params: Params) -> Any:
        """A tree shaped like ``params``: ``True`` at arrays an optimizer should update.

        ``False`` marks state (BatchNorm's running statistics).  Use it as the
        ``mask`` of :func:`funcnn.optimizers` and the ``filter`` of
        :mod:`funcnn.transforms`' gradients.

        Example:
            >>> import funcnn.functional as F
            >>> F.batch_norm(2).trainable(F.batch_norm(2).init())
            {'weight': True, 'bias': True, 'running_mean': False, 'running_var': False}
        """
        return self._trainable(params)

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
    store; the recorded call lets a pair pickle as "call this factory with
    these arguments".  Every funcnn factory uses it.

    Example:
        >>> import funcnn.functional as F
        >>> @F.pair_factory
        ... def scale(factor):
        ...     return F.Pair(lambda key=None: {}, lambda params, x: factor * x, "scale")
        >>> scale(2.0).recipe[1:]
        ((2.0,), {})
    """

    @functools.wraps(factory)
    def make(*args: Any, **kwargs: Any) -> Pair:
        pair = factory(*args, **kwargs)
        pair.recipe = (make, args, kwargs)
        return pair

    return make  # type: ignore[return-value]


def split_key(key: Key, num: int) -> list[Key]:
    """``num`` independent keys from ``key``; ``None`` (the global RNG) stays ``None``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> len(F.split_key(mx.random.key(0), 3)), F.split_key(None, 2)
        (3, [None, None])
    """
    if key is None:
        return [None] * num
    return list(mx.random.split(key, num)) if num > 1 else [key]


def no_params(key: Key = None) -> dict:
    """The ``init`` of a layer without parameters."""
    return {}


def apply_layer(
    layer: Any, params: Params, inputs: Sequence, key: Key = None, training: bool = True
) -> tuple[Any, Any]:
    """Run one member of a composite: ``(output, updates)``, ``updates`` ``{}`` when it has none.

    ``layer`` is a :class:`Pair` (given ``key`` and ``training`` only if it
    takes them) or a plain callable on the inputs.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> bn = F.batch_norm(3)
        >>> y, updates = F.apply_layer(bn, bn.init(), [mx.ones((4, 3))], training=False)
        >>> updates
        {}
    """
    if not isinstance(layer, Pair):
        return layer(*inputs), {}
    kwargs = {}
    if layer.takes_key:
        kwargs["key"] = key
    if layer.takes_training:
        kwargs["training"] = training
    out = layer.apply(params, *inputs, **kwargs)
    return out if layer.stateful else (out, {})


def merge_updates(params: Params, updates: Params) -> Params:
    """``params`` with the arrays of ``updates`` in place: what a stateful ``apply`` changed.

    ``updates`` is a partial tree of ``params`` (``{}`` leaves it unchanged),
    as returned by a stateful pair.  Nothing is modified: the result shares
    every untouched subtree with ``params`` and has new containers along the
    updated paths.  A path of ``updates`` that ``params`` lacks, or a
    non-array where ``params`` has an array, is a ``ValueError`` naming it.
    (For a Module the same tree goes to ``module.update(updates)``.)

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> net = F.sequential(F.linear(3, 3), F.batch_norm(3))
        >>> params = net.init(mx.random.key(0))
        >>> y, updates = net.apply(params, mx.ones((4, 3)))
        >>> new = F.merge_updates(params, updates)
        >>> sorted(updates["layers"][1]), new["layers"][0] is params["layers"][0]
        (['running_mean', 'running_var'], True)
    """
    return _merge(params, updates, "")


def _merge(dst: Any, new: Any, path: str) -> Any:
    if isinstance(new, mx.array):
        if not isinstance(dst, mx.array):
            raise ValueError(
                f"merge_updates: an array at {path or '<root>'!r}, where params has "
                f"a {type(dst).__name__}."
            )
        return new
    if isinstance(new, dict):
        if not new:
            return dst
        if not isinstance(dst, dict):
            raise ValueError(
                f"merge_updates: a dict at {path or '<root>'!r}, where params has "
                f"a {type(dst).__name__}."
            )
        out = dict(dst)
        for k, v in new.items():
            sub = f"{path}.{k}" if path else str(k)
            if k not in dst:
                raise ValueError(f"merge_updates: params has no entry {sub!r}.")
            out[k] = _merge(dst[k], v, sub)
        return out
    if isinstance(new, list):
        if not isinstance(dst, list) or len(new) > len(dst):
            had = f"a list of {len(dst)}" if isinstance(dst, list) else f"a {type(dst).__name__}"
            raise ValueError(
                f"merge_updates: a list of {len(new)} at {path or '<root>'!r}, where params "
                f"has {had}."
            )
        out_list = list(dst)
        for i, v in enumerate(new):
            out_list[i] = _merge(dst[i], v, f"{path}.{i}" if path else str(i))
        return out_list
    raise ValueError(
        f"merge_updates: updates hold arrays, dicts and lists; received "
        f"{type(new).__name__} at {path or '<root>'!r}."
    )
