"""Collectives that name their group: one interface, a real or an emulated group behind it.

Every function takes the group explicitly (no hidden global group), so the same
per-rank code runs on a real :class:`mlx.core.distributed.Group` (``mlx.launch``,
``mpirun``) and on the in-process :class:`~funcnn.parallel.emulate.EmulatedGroup`
that :func:`~funcnn.parallel.emulate.emulate` hands to each virtual rank.

A group is anything with ``rank()`` and ``size()``; an emulated group also has
``all_sum``/``all_gather``/``all_max``/``all_min`` methods, which these functions
call.  Otherwise the call goes to :mod:`mlx.core.distributed`.

Semantics, identical for both kinds of group:

* ``all_sum(x, group)``: the elementwise sum of ``x`` over the ranks, on every
  rank.  Its vector-Jacobian product is the identity (as MLX's): the gradient
  of ``all_sum(local)`` on a rank is that rank's share only;
* ``all_gather(x, group)``: the ranks' ``x`` concatenated along axis 0, in rank
  order (a scalar becomes one row per rank);
* ``all_max``/``all_min``: elementwise maximum/minimum over the ranks.

Example:
    >>> import mlx.core as mx
    >>> from funcnn.parallel.collectives import all_sum, all_gather
    >>> from funcnn.parallel.emulate import emulate
    >>> def per_rank(group, x):
    ...     return all_sum(x, group), all_gather(x, group)
    >>> total, gathered = emulate(per_rank, 2, mx.array([[1.0], [2.0]]))
    >>> total.tolist(), gathered.tolist()
    ([[3.0], [3.0]], [[1.0, 2.0], [1.0, 2.0]])
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import mlx.core as mx

__all__ = ["Group", "all_gather", "all_max", "all_min", "all_sum", "rank", "rank_key", "size"]


@runtime_checkable
class Group(Protocol):
    """What the collectives need of a group: its ``rank()`` and ``size()``.

    :class:`mlx.core.distributed.Group` satisfies it, and so does
    :class:`~funcnn.parallel.emulate.EmulatedGroup` (whose ``rank()`` is a
    traced array under :func:`~funcnn.parallel.emulate.emulate`).

    Example:
        >>> import mlx.core as mx
        >>> isinstance(mx.distributed.init(), Group)
        True
    """

    def rank(self) -> Any: ...

    def size(self) -> int: ...


def _check(group: Any, name: str) -> None:
    if not isinstance(group, Group):
        raise TypeError(
            f"{name}: expected a group (mlx.core.distributed.Group or EmulatedGroup), "
            f"got {type(group).__name__}"
        )


def _collective(name: str, x: mx.array, group: Any) -> mx.array:
    _check(group, name)
    if not isinstance(x, mx.array):
        raise TypeError(f"{name}: expected an mlx.core.array, got {type(x).__name__}")
    own = getattr(group, name, None)
    if own is not None:
        return own(x)
    return getattr(mx.distributed, name)(x, group=group)


def all_sum(x: mx.array, group: Any) -> mx.array:
    """Sum ``x`` over the ranks of ``group``; every rank gets the total.

    Example:
        >>> import mlx.core as mx
        >>> all_sum(mx.array([1.0, 2.0]), mx.distributed.init()).tolist()  # one process
        [1.0, 2.0]
    """
    return _collective("all_sum", x, group)


def all_gather(x: mx.array, group: Any) -> mx.array:
    """Concatenate every rank's ``x`` along axis 0, in rank order.

    Example:
        >>> import mlx.core as mx
        >>> all_gather(mx.array([[1.0, 2.0]]), mx.distributed.init()).shape
        (1, 2)
    """
    return _collective("all_gather", x, group)


def all_max(x: mx.array, group: Any) -> mx.array:
    """Elementwise maximum of ``x`` over the ranks of ``group``.

    Example:
        >>> import mlx.core as mx
        >>> all_max(mx.array([3.0]), mx.distributed.init()).tolist()
        [3.0]
    """
    return _collective("all_max", x, group)


def all_min(x: mx.array, group: Any) -> mx.array:
    """Elementwise minimum of ``x`` over the ranks of ``group``.

    Example:
        >>> import mlx.core as mx
        >>> all_min(mx.array([3.0]), mx.distributed.init()).tolist()
        [3.0]
    """
    return _collective("all_min", x, group)


def rank(group: Any) -> Any:
    """This process's rank in ``group`` (a traced array on an emulated rank).

    Example:
        >>> import mlx.core as mx
        >>> rank(mx.distributed.init())
        0
    """
    _check(group, "rank")
    return group.rank()


def size(group: Any) -> int:
    """The number of ranks in ``group``.

    Example:
        >>> import mlx.core as mx
        >>> size(mx.distributed.init())
        1
    """
    _check(group, "size")
    return group.size()


def rank_key(key: mx.array, group: Any) -> mx.array:
    """This rank's own key from a key shared by every rank: per-rank randomness, explicitly.

    ``key`` is split into one key per rank and this rank takes its own, so
    every rank draws differently (dropout masks, data order) while the shared
    ``key`` itself stays available for what must be replicated (initial
    parameters).  The rank may be a traced array (an emulated rank).

    Example:
        >>> import mlx.core as mx
        >>> from funcnn.parallel import emulate
        >>> keys = emulate(lambda g: rank_key(mx.random.key(0), g), 2)
        >>> bool(mx.array_equal(keys[0], keys[1]))
        False
        >>> bool(mx.array_equal(keys[1], mx.random.split(mx.random.key(0), 2)[1]))
        True
    """
    _check(group, "rank_key")
    return mx.random.split(key, group.size())[group.rank()]
