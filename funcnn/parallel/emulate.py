"""Run per-rank code for N virtual ranks in one process: ``emulate(fn, n, *args)``.

The ranks become a leading axis mapped with :func:`funcnn.transforms.vmap`;
each virtual rank calls ``fn(group, *its_args)`` with an :class:`EmulatedGroup`
whose collectives are :class:`mlx.core.custom_function` s with vmap rules:

* ``all_sum``: sum over the rank axis, broadcast back to every rank;
* ``all_gather``: the rank axis folded into axis 0 (``(n, d, ...) -> (n*d, ...)``),
  broadcast back to every rank;
* ``all_max``/``all_min``: max/min over the rank axis, broadcast back.

A value that does not depend on the rank (a replicated parameter passed with
``in_axes=None``, a constant) stays unmapped: its all-sum is ``n`` copies added.
Gradients follow MLX's real collectives: the VJP of ``all_sum`` is the identity
and that of ``all_gather`` is this rank's slice of the cotangent; ``all_max``
and ``all_min`` are not differentiable.  The rules are plain MLX ops, so
:func:`mlx.core.compile`, :func:`mlx.core.grad` and
:func:`funcnn.transforms.compile` work on the per-rank code and around
``emulate``.

Per-rank code must not branch in Python on ``group.rank()`` (a traced array
here); ranks that hold different amounts of data are padded to one shape with a
mask (:func:`stack_shards`), which is also what makes uneven shards testable.

Example:
    >>> import mlx.core as mx
    >>> from funcnn.parallel.collectives import all_sum
    >>> def global_mean(group, x, mask):  # each rank: its padded shard and its mask
    ...     return all_sum((x * mask).sum(), group) / all_sum(mask.sum(), group)
    >>> shards, mask = stack_shards([mx.array([1.0, 2.0, 3.0]), mx.array([10.0])])
    >>> emulate(global_mean, 2, shards, mask).tolist()
    [4.0, 4.0]
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import mlx.core as mx

__all__ = ["EmulatedGroup", "emulate", "stack_shards"]


def _to_front(x: mx.array, ax: int) -> mx.array:
    return x if ax == 0 else mx.moveaxis(x, ax, 0)


def _spread(x: mx.array, n: int) -> mx.array:
    return mx.broadcast_to(mx.expand_dims(x, 0), (n, *x.shape))


@functools.cache
def _collectives(n: int) -> dict[str, Any]:
    """The custom functions of a group of ``n`` ranks (built once per size)."""

    @mx.custom_function
    def all_sum(x: mx.array) -> mx.array:
        # Unmapped input: every rank holds x.
        return _spread(x, n).sum(axis=0)

    @all_sum.vjp
    def _(primals: Any, cotangent: mx.array, output: Any) -> Any:
        return cotangent  # as MLX's AllReduce: this rank's share only

    @all_sum.vmap
    def _(x: mx.array, ax: Any) -> Any:
        if ax is None:
            return all_sum(x), None
        return _spread(_to_front(x, ax).sum(axis=0), n), 0

    def reduce_rule(op: Callable) -> Callable:
        @mx.custom_function
        def reduce(x: mx.array) -> mx.array:
            return x

        @reduce.vjp
        def _(primals: Any, cotangent: Any, output: Any) -> Any:
            raise ValueError(f"{op.__name__} over ranks is not differentiable (as in MLX)")

        @reduce.vmap
        def _(x: mx.array, ax: Any) -> Any:
            if ax is None:
                return x, None
            return _spread(op(_to_front(x, ax), axis=0), n), 0

        return reduce

    @mx.custom_function
    def all_gather(x: mx.array, rank: mx.array) -> mx.array:
        return mx.concatenate([x] * n, axis=0)

    @all_gather.vjp
    def _(primals: Any, cotangent: mx.array, output: Any) -> Any:
        x, rank = primals
        rows = cotangent.reshape(n, *x.shape)
        return mx.take(rows, rank, axis=0), mx.zeros_like(rank)

    @all_gather.vmap
    def _(inputs: Any, axes: Any) -> Any:
        (x, _), (ax, _) = inputs, axes
        if ax is None:
            return all_gather(x, mx.array(0)), None
        per_rank = _to_front(x, ax)
        gathered = per_rank.reshape(n * per_rank.shape[1], *per_rank.shape[2:])
        return _spread(gathered, n), 0

    return {
        "all_sum": all_sum,
        "all_gather": all_gather,
        "all_max": reduce_rule(mx.max),
        "all_min": reduce_rule(mx.min),
    }


class EmulatedGroup:
    """A group of ``n`` virtual ranks; ``rank`` is this rank's index (an array under vmap).

    Built by :func:`emulate` for each virtual rank; its collectives are meant to
    run inside that mapping (outside it, every rank is taken to hold the same
    value).  Arrays given to ``all_gather`` need at least one dimension.

    Example:
        >>> import mlx.core as mx
        >>> g = EmulatedGroup(4)
        >>> g.size(), g.all_sum(mx.array(1.0)).item()  # unmapped: all ranks hold 1
        (4, 4.0)
    """

    def __init__(self, n: int, rank: Any = 0) -> None:
        if type(n) is not int or n < 1:
            raise ValueError(f"EmulatedGroup: expected a positive int size, got {n!r}")
        self._n = n
        self._rank = rank
        self._ops = _collectives(n)

    def rank(self) -> Any:
        """This rank's index (an int outside :func:`emulate`, an array inside)."""
        return self._rank

    def size(self) -> int:
        """The number of virtual ranks."""
        return self._n

    def all_sum(self, x: mx.array) -> mx.array:
        """Sum over the ranks (see :func:`funcnn.parallel.collectives.all_sum`)."""
        return self._ops["all_sum"](x)

    def all_gather(self, x: mx.array) -> mx.array:
        """Concatenate the ranks' ``x`` along axis 0, in rank order."""
        if x.ndim == 0:
            raise ValueError("all_gather: expected an array with at least one dimension, got a scalar")
        rank = self._rank if isinstance(self._rank, mx.array) else mx.array(self._rank)
        return self._ops["all_gather"](x, rank)

    def all_max(self, x: mx.array) -> mx.array:
        """Elementwise maximum over the ranks."""
        return self._ops["all_max"](x)

    def all_min(self, x: mx.array) -> mx.array:
        """Elementwise minimum over the ranks."""
        return self._ops["all_min"](x)

    def __repr__(self) -> str:
        return f"EmulatedGroup(size={self._n})"


def emulate(fn: Callable, n: int, *args: Any, in_axes: Any = 0, out_axes: Any = 0) -> Any:
    """Call ``fn(group, *rank_args)`` on ``n`` virtual ranks at once.

    Args:
        fn: Per-rank code; its first argument is the rank's :class:`EmulatedGroup`.
        n: The number of virtual ranks.
        *args: Per-rank arguments, stacked along ``in_axes`` (size ``n``), or
            replicated where ``in_axes`` is ``None``.
        in_axes: As :func:`funcnn.transforms.vmap`: one entry (int, ``None``
            or tree prefix) per argument in a tuple, or one for all of them.
        out_axes: Where the rank axis goes in the results.

    Returns:
        ``fn``'s results with the rank axis at ``out_axes``.

    Example:
        >>> import mlx.core as mx
        >>> from funcnn.parallel.collectives import all_sum
        >>> w = mx.array([1.0, 2.0])  # replicated
        >>> emulate(lambda g, w, x: all_sum(w @ x, g), 3, w, mx.ones((3, 2)),
        ...         in_axes=(None, 0)).tolist()
        [9.0, 9.0, 9.0]
    """
    if type(n) is not int or n < 1:
        raise ValueError(f"emulate: expected a positive int number of ranks, got {n!r}")
    if not callable(fn):
        raise TypeError(f"emulate: expected a callable, got {type(fn).__name__}")
    axes = tuple(in_axes) if type(in_axes) is tuple else (in_axes,) * len(args)
    if len(axes) != len(args):
        raise ValueError(f"emulate: expected {len(args)} in_axes entries, got {len(axes)}")
    # Imported here: funcnn.transforms imports more than this module needs.
    from ..transforms import vmap
    from ..tree import tree_map

    def one_rank(rank: mx.array, *rank_args: Any) -> Any:
        out = fn(EmulatedGroup(n, rank), *rank_args)
        # MLX returns a rank-independent output without the rank axis; every result
        # gets it, so callers can index ranks whatever fn computed.
        return tree_map(lambda a: mx.where(rank >= 0, a, a) if isinstance(a, mx.array) else a, out)

    return vmap(one_rank, in_axes=(0, *axes), out_axes=out_axes)(mx.arange(n), *args)


def stack_shards(shards: Sequence[mx.array]) -> tuple[mx.array, mx.array]:
    """Pad per-rank shards of unequal length to one shape and stack them.

    Returns ``(stacked, mask)``: ``stacked`` has shape ``(n, longest, ...)``
    (zeros after each shard's end) and ``mask`` (bool, ``(n, longest)``) marks
    the real examples.

    Example:
        >>> import mlx.core as mx
        >>> x, mask = stack_shards([mx.array([1, 2, 3]), mx.array([4])])
        >>> x.tolist(), mask.tolist()
        ([[1, 2, 3], [4, 0, 0]], [[True, True, True], [True, False, False]])
    """
    if not shards:
        raise ValueError("stack_shards: expected at least one shard, got none")
    tails = {s.shape[1:] for s in shards}
    if len(tails) != 1:
        raise ValueError(f"stack_shards: expected shards with one trailing shape, got {sorted(tails)}")
    longest = max(s.shape[0] for s in shards)
    padded = [mx.pad(s, [(0, longest - s.shape[0])] + [(0, 0)] * (s.ndim - 1)) for s in shards]
    mask = mx.arange(longest)[None] < mx.array([s.shape[0] for s in shards])[:, None]
    return mx.stack(padded), mask
