"""Exact data parallelism: the gradient of the global mean loss, with one bucketed all-reduce.

Averaging the ranks' *mean* gradients (what ``mlx.nn.average_gradients`` does
with per-rank mean losses) is biased as soon as the ranks hold different
numbers of examples.  Here the per-rank loss returns ``(sum, count)``: the
ranks' sums, counts and gradients of sums are added over the group in one
bucketed all-reduce and divided once, giving the gradient of::

    sum over ranks of loss sums / sum over ranks of counts

which is the single-process full-batch gradient (to float32 round-off),
whatever the shards' sizes.

* :func:`local_sums` -- this rank's ``Sums(loss, count, grads)``, no communication;
  gradient accumulation over micro-batches is adding ``Sums`` (:func:`add_sums`);
* :func:`reduce_sums` -- one bucketed all-reduce of a ``Sums``, then the division;
* :func:`value_and_grad` -- both: ``(global mean loss, its gradient)``;
* :func:`all_sum_tree` -- the bucketed all-reduce of any tree (buckets by byte size
  as ``mlx.nn.average_gradients``'s ``all_reduce_size``, ``None`` leaves kept);
* :func:`check_replicated` -- are the parameters identical on every rank?  (a hash
  per leaf, one all-gather).

Replicated initial parameters come by construction from a shared key: every
rank calls ``pair.init(mx.random.key(seed))``.  Everything here is pure and works
inside :func:`mlx.core.compile` / :func:`funcnn.transforms.compile`, with the
gradients going to :mod:`funcnn.optimizers` unchanged.

Example (two virtual ranks holding 3 and 1 examples):
    >>> import mlx.core as mx
    >>> from funcnn.parallel.emulate import emulate, stack_shards
    >>> def loss(w, x, mask):
    ...     return (((x @ w) ** 2) * mask).sum(), mask.sum()
    >>> w = mx.array([1.0, -1.0])
    >>> xs = mx.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [3.0, 0.0]])
    >>> x, mask = stack_shards([xs[:3], xs[3:]])
    >>> value, grads = emulate(value_and_grad(loss), 2, w, x, mask, in_axes=(None, 0, 0))
    >>> full_value, full_grads = mx.value_and_grad(lambda w: ((xs @ w) ** 2).mean())(w)
    >>> bool(mx.allclose(grads[1], full_grads)), value[0].item() == full_value.item()
    (True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import mlx.core as mx

from .. import tree as _tree
from .collectives import all_gather, all_sum
from .emulate import EmulatedGroup, emulate

__all__ = [
    "Sums",
    "add_sums",
    "all_sum_tree",
    "check_replicated",
    "leaf_mismatch",
    "local_sums",
    "reduce_sums",
    "value_and_grad",
]

DEFAULT_ALL_REDUCE_SIZE = 32 * 1024**2  # bytes per bucket, mlx.nn.average_gradients' default


class Sums(NamedTuple):
    """One rank's (or micro-batch's) sums: loss sum, example count, gradient of the loss sum.

    Example:
        >>> import mlx.core as mx
        >>> Sums(mx.array(2.0), mx.array(4), {"w": mx.ones(2)}).count.item()
        4
    """

    loss: mx.array
    count: mx.array
    grads: Any


def local_sums(loss_fn: Callable) -> Callable[..., Sums]:
    """Wrap ``loss_fn(params, *args) -> (loss_sum, count)`` to return this rank's :class:`Sums`.

    Gradients are taken with :func:`funcnn.transforms.value_and_grad` with
    respect to ``params`` (any funcnn tree or Module; for a Module only its
    trainable parameters, ``None`` elsewhere).  No communication happens.

    Example:
        >>> import mlx.core as mx
        >>> s = local_sums(lambda w, x: ((x * w).sum(), x.shape[0]))(mx.array(2.0), mx.ones(3))
        >>> s.loss.item(), s.count.item(), s.grads.item()
        (6.0, 3, 3.0)
    """
    if not callable(loss_fn):
        raise TypeError(f"local_sums: expected a callable loss, got {type(loss_fn).__name__}")
    from ..transforms import value_and_grad as _value_and_grad

    def wrapped(params: Any, *args: Any, **kwargs: Any) -> Sums:
        def split(p: Any) -> Any:
            out = loss_fn(p, *args, **kwargs)
            if not (isinstance(out, tuple) and len(out) == 2):
                raise ValueError(
                    f"local_sums: expected the loss to return (sum, count), got {type(out).__name__}"
                )
            return out

        (total, count), grads = _value_and_grad(split)(params)
        return Sums(total, mx.array(count), grads)

    return wrapped


def add_sums(a: Sums, b: Sums) -> Sums:
    """Add two :class:`Sums` (gradient accumulation; ``None`` gradient leaves stay ``None``).

    Example:
        >>> import mlx.core as mx
        >>> s = add_sums(Sums(mx.array(1.0), mx.array(2), [mx.array(1.0), None]),
        ...              Sums(mx.array(3.0), mx.array(1), [mx.array(2.0), None]))
        >>> s.loss.item(), s.count.item(), s.grads[0].item(), s.grads[1]
        (4.0, 3, 3.0, None)
    """
    return Sums(*_tree.tree_map(lambda x, y: None if x is None else x + y, tuple(a), tuple(b)))


def _hashable_leaf(leaf: Any) -> bool:
    return isinstance(leaf, mx.array)


def _buckets(sizes: list[int], itemsize: int, all_reduce_size: int) -> list[list[int]]:
    # Same grouping as mlx.nn.average_gradients: close a bucket once it reaches the size.
    if all_reduce_size <= 0:
        return [[i] for i in range(len(sizes))]
    groups: list[list[int]] = [[]]
    filled = 0
    for i, n in enumerate(sizes):
        groups[-1].append(i)
        filled += n * itemsize
        if filled >= all_reduce_size:
            groups.append([])
            filled = 0
    return [g for g in groups if g]


def all_sum_tree(tree: Any, group: Any, *, all_reduce_size: int = DEFAULT_ALL_REDUCE_SIZE) -> Any:
    """Sum every array of ``tree`` over the ranks, in buckets of ``all_reduce_size`` bytes.

    Arrays of one dtype are flattened and concatenated in tree order into
    buckets that close once they reach ``all_reduce_size`` bytes; each bucket
    is one ``all_sum``.  ``all_reduce_size <= 0`` reduces each array alone.
    Non-array leaves (``None``, ints) are returned unchanged.  The result does
    not depend on the bucketing: each element is summed over the ranks alone.

    Example:
        >>> import mlx.core as mx
        >>> from funcnn.parallel.emulate import emulate
        >>> tree = {"a": mx.ones((2, 3)), "b": None, "c": mx.arange(4.0).reshape(2, 2)}  # 2 ranks
        >>> out = emulate(lambda g, t: all_sum_tree(t, g, all_reduce_size=8), 2, tree)
        >>> out["a"].tolist(), out["b"], out["c"].tolist()
        ([[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]], None, [[2.0, 4.0], [2.0, 4.0]])
    """
    if type(all_reduce_size) is not int:
        raise TypeError(f"all_sum_tree: expected an int all_reduce_size, got {all_reduce_size!r}")
    leaves = _tree.tree_leaves(tree)
    spec = _tree.tree_structure(tree)
    out = list(leaves)
    by_dtype: dict[Any, list[int]] = {}
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, mx.array):
            by_dtype.setdefault(leaf.dtype, []).append(i)
    for dtype, idx in by_dtype.items():
        sizes = [leaves[i].size for i in idx]
        for bucket in _buckets(sizes, dtype.size, all_reduce_size):
            members = [idx[b] for b in bucket]
            if len(members) == 1:
                out[members[0]] = all_sum(leaves[members[0]], group)
                continue
            flat = all_sum(mx.concatenate([leaves[i].reshape(-1) for i in members]), group)
            offsets, start = [], 0
            for i in members[:-1]:
                start += leaves[i].size
                offsets.append(start)
            for i, part in zip(members, mx.split(flat, offsets)):
                out[i] = part.reshape(leaves[i].shape)
    return spec.unflatten(out)


def reduce_sums(
    sums: Sums, group: Any, *, all_reduce_size: int = DEFAULT_ALL_REDUCE_SIZE
) -> tuple[mx.array, Any]:
    """Add ``sums`` over the ranks (one bucketed all-reduce) and return ``(mean loss, mean grads)``.

    The loss sum and the count travel as float32 in the float32 bucket (counts
    are exact up to 2**24 examples per step), so a float32 model needs one
    all-reduce per ``all_reduce_size`` bytes of gradients.  Each gradient is
    divided by the global count in float32 and cast back to its dtype.

    Example:
        >>> import mlx.core as mx
        >>> from funcnn.parallel.emulate import emulate
        >>> s = Sums(mx.array([2.0, 6.0]), mx.array([1, 3]), mx.array([4.0, 4.0]))  # 2 ranks
        >>> loss, grads = emulate(lambda g, s: reduce_sums(s, g), 2, s)
        >>> loss.tolist(), grads.tolist()
        ([2.0, 2.0], [2.0, 2.0])
    """
    if not isinstance(sums, Sums):
        raise TypeError(f"reduce_sums: expected Sums, got {type(sums).__name__}")
    packed = (mx.array(sums.loss).astype(mx.float32), mx.array(sums.count).astype(mx.float32))
    total, count, grads = all_sum_tree((*packed, sums.grads), group, all_reduce_size=all_reduce_size)
    mean = _tree.tree_map(
        lambda g: g if not isinstance(g, mx.array) else (g / count).astype(g.dtype), grads
    )
    return total / count, mean


def value_and_grad(
    loss_fn: Callable, group: Any = None, *, all_reduce_size: int = DEFAULT_ALL_REDUCE_SIZE
) -> Callable[..., tuple[mx.array, Any]]:
    """Wrap a per-rank ``(sum, count)`` loss to return the global mean loss and its gradient.

    The wrapper is ``(params, *args) -> (mean_loss, grads)``; the same on every
    rank, and equal to the single-process gradient of the mean over all the
    ranks' examples.  ``group`` is the group to reduce over; when it is
    ``None`` the wrapper takes the group as its first argument instead,
    ``(group, params, *args)``, as :func:`~funcnn.parallel.emulate.emulate` calls it.

    Example:
        >>> import mlx.core as mx
        >>> step = value_and_grad(lambda w, x: ((x * w).sum(), x.size), mx.distributed.init())
        >>> loss, g = step(mx.array(2.0), mx.array([1.0, 3.0]))
        >>> loss.item(), g.item()
        (4.0, 2.0)
    """
    sums_fn = local_sums(loss_fn)

    def with_group(group: Any, params: Any, *args: Any, **kwargs: Any) -> tuple[mx.array, Any]:
        return reduce_sums(sums_fn(params, *args, **kwargs), group, all_reduce_size=all_reduce_size)

    if group is None:
        return with_group
    return lambda params, *args, **kwargs: with_group(group, params, *args, **kwargs)


_MIX = 2654435761  # Knuth's multiplicative constant: odd, so one changed element always shows


def _leaf_hash(x: mx.array) -> mx.array:
    flat = x.reshape(-1)
    if flat.dtype.size in (4, 8):
        bits = flat.view(mx.uint32)
    elif flat.dtype.size == 2:
        bits = flat.view(mx.uint16).astype(mx.uint32)
    else:
        bits = flat.astype(mx.uint8).astype(mx.uint32)
    weights = (mx.arange(bits.size, dtype=mx.uint32) * 2 + 1) * mx.array(_MIX, mx.uint32)
    return (bits * weights).sum() if bits.size else mx.array(0, mx.uint32)


def leaf_mismatch(params: Any, group: Any) -> dict[str, mx.array]:
    """For each array of ``params`` (by dotted path): does any rank hold different bits?

    Pure (one ``all_gather`` of a 32-bit hash per leaf, sent as two exact
    float32 halves), so it runs under :func:`~funcnn.parallel.emulate.emulate`
    and :func:`mlx.core.compile`; :func:`check_replicated` is the eager check.

    Example:
        >>> import mlx.core as mx
        >>> from funcnn.parallel.emulate import emulate
        >>> p = {"w": mx.array([[1.0, 2.0], [1.0, 2.5]]), "b": mx.zeros((2, 1))}  # 2 ranks
        >>> {k: v.tolist() for k, v in emulate(lambda g, p: leaf_mismatch(p, g), 2, p).items()}
        {'w': [True, True], 'b': [False, False]}
    """
    named = [(k, v) for k, v in _tree.tree_flatten(params) if isinstance(v, mx.array)]
    if not named:
        return {}
    hashes = mx.stack([_leaf_hash(v) for _, v in named])
    halves = mx.concatenate([hashes >> 16, hashes & 0xFFFF]).astype(mx.float32)
    every = all_gather(halves[None], group)
    differs = (every != every[:1]).any(axis=0)
    differs = differs[: len(named)] | differs[len(named) :]
    return {k: differs[i] for i, (k, _) in enumerate(named)}


def check_replicated(params: Any, group: Any) -> None:
    """Raise ``ValueError`` naming the parameters that are not identical on every rank.

    With a real group every rank passes its own ``params`` and every rank
    raises (or none does).  With an :class:`~funcnn.parallel.emulate.EmulatedGroup`
    of ``n`` ranks, ``params`` holds the ranks' trees stacked along axis 0, as
    :func:`~funcnn.parallel.emulate.emulate` returns them.

    Example:
        >>> import mlx.core as mx
        >>> from funcnn.parallel.emulate import EmulatedGroup
        >>> check_replicated({"w": mx.ones((3, 2))}, EmulatedGroup(3))  # identical: silent
        >>> check_replicated({"w": mx.array([[1.0], [1.0], [2.0]])}, EmulatedGroup(3))
        Traceback (most recent call last):
        ...
        ValueError: check_replicated: parameters differ across the 3 ranks: w
    """
    if isinstance(group, EmulatedGroup):
        flags = emulate(lambda g, p: leaf_mismatch(p, g), group.size(), params)
        flags = {k: v[0] for k, v in flags.items()}
    else:
        flags = leaf_mismatch(params, group)
    bad = [k for k, v in flags.items() if v.item()]
    if bad:
        raise ValueError(
            f"check_replicated: parameters differ across the {group.size()} ranks: {', '.join(bad)}"
        )
