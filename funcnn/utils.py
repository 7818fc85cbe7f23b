"""Training helpers over modules and gradient trees: the twin of :mod:`mlx.nn.utils`.

* :func:`value_and_grad` differentiates a function of a model with respect to
  the model's trainable parameters;
* :func:`checkpoint` trades compute for memory: the wrapped call keeps only
  its inputs and outputs and recomputes the rest on the backward pass;
* :func:`average_gradients` and :func:`clip_grad_norm_sharded` are the
  data-parallel and sharded-training steps over :mod:`mlx.core.distributed`.

Nothing here depends on funcnn's own module class: the model is only asked
for ``trainable_parameters()`` and ``update(params)`` (and called, for
:func:`checkpoint`), so an :class:`mlx.nn.Module` works as well.

Where :mod:`mlx.nn.utils` crashes or loses information, funcnn does better:

* gradient trees keep their structure and node types (tuples stay tuples,
  empty containers stay), where MLX rebuilds them as plain dicts and lists;
* ``None`` leaves (funcnn's marker for frozen or non-array entries, see
  :func:`funcnn.tree.tree_partition`) pass through unchanged, where MLX
  raises ``AttributeError``/``TypeError``;
* :func:`average_gradients` keeps ``communication_stream`` when mixed dtypes
  make it reduce array by array (MLX drops it there).

Example:
    >>> import mlx.core as mx
    >>> import funcnn as nn
    >>> from funcnn.utils import value_and_grad
    >>> model = nn.Linear(3, 1)
    >>> loss, grads = value_and_grad(model, lambda x: model(x).square().mean())(mx.ones((4, 3)))
    >>> sorted(grads)
    ['bias', 'weight']
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any, Optional, Protocol

import mlx.core as mx

from .tree import tree_leaves, tree_map, tree_structure

__all__ = ["value_and_grad", "checkpoint", "average_gradients", "clip_grad_norm_sharded"]


class _Trainable(Protocol):
    """What these helpers need of a model (funcnn's and mlx.nn's modules both qualify)."""

    def trainable_parameters(self) -> dict: ...

    def update(self, parameters: dict, strict: bool = True) -> Any: ...


# --------------------------------------------------------------------------
# Transforms over a model's parameters
# --------------------------------------------------------------------------


def value_and_grad(model: _Trainable, fn: Callable) -> Callable:
    """Wrap ``fn`` to return ``(value, grads)`` over ``model``'s trainable parameters.

    As :func:`mlx.nn.value_and_grad`: the gradients have the structure of
    ``model.trainable_parameters()``; ``fn`` returns a scalar array or a tuple
    whose first element is one.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> from funcnn.utils import value_and_grad
        >>> model = nn.Linear(2, 1)
        >>> loss, grads = value_and_grad(model, lambda x: model(x).sum())(mx.ones((3, 2)))
        >>> grads["weight"].shape
        (1, 2)
    """

    def inner(params: dict, *args: Any, **kwargs: Any) -> Any:
        model.update(params)
        return fn(*args, **kwargs)

    value_grad_fn = mx.value_and_grad(inner)

    # ``functools.wraps`` as in MLX: name, qualname, doc, module, __dict__ and
    # ``__wrapped__`` all come from ``fn``.
    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return value_grad_fn(model.trainable_parameters(), *args, **kwargs)

    return wrapped


def checkpoint(module: _Trainable, fn: Optional[Callable] = None) -> Callable:
    """Gradient checkpointing of a module call, as :func:`mlx.nn.utils.checkpoint`.

    The returned callable computes what ``fn`` (by default ``module`` itself)
    computes, with the same gradients with respect to its inputs and to the
    module's trainable parameters, but the backward pass recomputes the
    intermediate values instead of keeping them: less memory for more compute.
    Use it inside :func:`value_and_grad` (or ``mx.grad``) on a large block.

    With ``fn`` left out, later calls go through ``module(...)``, so a
    ``__call__`` patched onto the module's class afterwards is the one used.
    The callable carries ``fn``'s (or the module's) metadata via
    :func:`functools.wraps`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> from funcnn.utils import checkpoint, value_and_grad
        >>> model = nn.Linear(2, 3)
        >>> forward = checkpoint(model)
        >>> loss, grads = value_and_grad(model, lambda x: forward(x).sum())(mx.ones((4, 2)))
        >>> grads["weight"].tolist()
        [[4.0, 4.0], [4.0, 4.0], [4.0, 4.0]]
    """
    if fn is None:
        # The module, not its bound ``__call__``: the call is resolved at each
        # use, so a ``__call__`` replaced on the class later still applies.
        fn = module

    def inner(params: dict, *args: Any, **kwargs: Any) -> Any:
        module.update(params)
        return fn(*args, **kwargs)

    checkpointed = mx.checkpoint(inner)

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        # Passing the parameters in (rather than reading them inside) makes
        # them inputs of the checkpoint, so gradients reach them.
        return checkpointed(module.trainable_parameters(), *args, **kwargs)

    return wrapped


# --------------------------------------------------------------------------
# Distributed helpers
# --------------------------------------------------------------------------


def _buckets(sizes: list[int], itemsize: int, limit: int) -> list[list[int]]:
    """Split positions ``0..len(sizes)-1`` into consecutive runs of at least ``limit`` bytes.

    A run closes as soon as it reaches ``limit``; the last one may be
    smaller.  Same rule as MLX, so the number of collectives is the same.
    """
    buckets: list[list[int]] = []
    current: list[int] = []
    nbytes = 0
    for i, size in enumerate(sizes):
        current.append(i)
        nbytes += size * itemsize
        if nbytes >= limit:
            buckets.append(current)
            current, nbytes = [], 0
    if current:
        buckets.append(current)
    return buckets


def average_gradients(
    gradients: Any,
    group: Optional[mx.distributed.Group] = None,
    all_reduce_size: int = 32 * 1024**2,
    communication_stream: Optional[mx.Stream] = None,
) -> Any:
    """Average a gradient tree over the processes of ``group`` (data parallelism).

    As :func:`mlx.nn.average_gradients`: ``group=None`` means
    ``mx.distributed.init()``; a group of one process gives back
    ``gradients`` itself.  Otherwise every array is summed over the group
    with ``mx.distributed.all_sum`` and divided by the group size.  To make
    fewer, larger messages, arrays (taken in tree order) are flattened and
    concatenated into buckets of at least ``all_reduce_size`` bytes, one
    ``all_sum`` per bucket; ``all_reduce_size <= 0`` sends each array alone,
    and so do trees whose arrays have different dtypes.  Every process must
    pass a tree of the same structure, shapes and dtypes.

    Differences from :mod:`mlx.nn` (which this otherwise matches call for
    call):

    * the result has the structure and node types of ``gradients`` (tuples,
      ``OrderedDict``, modules, empty containers); MLX's bucketed path
      rebuilds plain dicts and lists and drops empty containers;
    * ``None`` leaves are returned as ``None`` and take no part in the
      communication; MLX raises on them;
    * leaves that are not arrays (Python numbers) are reduced one by one
      instead of crashing the bucketed path;
    * ``communication_stream`` is used on the per-array fallback for mixed
      dtypes too; MLX forgets it there.

    Args:
        gradients: A tree of gradient arrays (``None`` leaves allowed).
        group: The processes to average over; ``None`` for the global group.
        all_reduce_size: Minimum bucket size in bytes; ``<= 0`` disables
            bucketing.
        communication_stream: Stream for the collectives; ``None`` lets the
            backend choose.

    Returns:
        The averaged tree.

    Example:
        >>> import mlx.core as mx
        >>> from funcnn.utils import average_gradients
        >>> grads = {"w": mx.ones(3), "frozen": None}
        >>> average_gradients(grads) is grads  # one process: nothing to average
        True
    """
    group = group or mx.distributed.init()
    n = group.size()
    if n == 1:
        return gradients

    # ``mx.distributed.all_sum`` is looked up at each call (as MLX does), so
    # a test or a tracer may substitute it.
    def reduce_one(x: Any) -> Any:
        if x is None:
            return None
        return mx.distributed.all_sum(x, group=group, stream=communication_stream) / n

    if all_reduce_size <= 0:
        return tree_map(reduce_one, gradients)

    leaves = tree_leaves(gradients)
    arrays = [i for i, x in enumerate(leaves) if isinstance(x, mx.array)]
    if all(x is None for x in leaves):
        return gradients
    dtypes = {leaves[i].dtype for i in arrays}
    if len(dtypes) > 1:
        # One buffer needs one dtype; casting would change the values sent.
        return tree_map(reduce_one, gradients)

    out = [x if isinstance(x, mx.array) else reduce_one(x) for x in leaves]
    if arrays:
        itemsize = dtypes.pop().size
        sizes = [leaves[i].size for i in arrays]
        for bucket in _buckets(sizes, itemsize, all_reduce_size):
            members = [arrays[b] for b in bucket]
            flat = mx.concatenate([leaves[i].reshape(-1) for i in members])
            summed = mx.distributed.all_sum(flat, group=group, stream=communication_stream) / n
            offsets = list(itertools.accumulate(leaves[i].size for i in members))[:-1]
            for i, part in zip(members, mx.split(summed, offsets)):
                out[i] = part.reshape(leaves[i].shape)
    return tree_structure(gradients).unflatten(out)


def clip_grad_norm_sharded(
    gradients: Any,
    max_norm: float,
    group: Optional[mx.distributed.Group] = None,
) -> tuple[Any, mx.array]:
    """Rescale a sharded gradient tree so that its global L2 norm is at most ``max_norm``.

    As :func:`mlx.nn.utils.clip_grad_norm_sharded`: each process holds one
    shard of the gradients; the squared norms of the local shards are summed
    over ``group`` (``None``: the global group) with one
    ``mx.distributed.all_sum``, and every shard is multiplied by
    ``min(max_norm / (norm + 1e-6), 1)``.  With a group of one process this
    is ordinary norm clipping.  The sum is only the true norm when every
    element lives on exactly one process: on replicated (data-parallel)
    gradients it overstates the norm by ``sqrt(group size)``.

    Differences from :mod:`mlx.nn`: ``None`` leaves are skipped in the norm
    and stay ``None`` (MLX raises ``AttributeError``), and dict subclasses
    such as modules keep their type (MLX rebuilds plain dicts).

    Args:
        gradients: This process's shard, a tree of arrays (``None`` allowed).
        max_norm: The largest global norm allowed.
        group: The processes the gradients are sharded over.

    Returns:
        ``(clipped_gradients, global_norm)``.

    Example:
        >>> import mlx.core as mx
        >>> from funcnn.utils import clip_grad_norm_sharded
        >>> grads = {"w": mx.array([3.0, 4.0]), "frozen": None}
        >>> clipped, norm = clip_grad_norm_sharded(grads, max_norm=1.0)
        >>> norm.item(), [round(v, 4) for v in clipped["w"].tolist()], clipped["frozen"]
        (5.0, [0.6, 0.8], None)
    """
    # Same accumulation order and starting value as MLX, for identical bits.
    local_norm_squared: Any = 0.0
    for g in tree_leaves(gradients):
        if g is not None:
            local_norm_squared = local_norm_squared + g.square().sum()
    global_norm_squared = mx.distributed.all_sum(local_norm_squared, group=group)
    grad_norm = mx.sqrt(global_norm_squared)
    normalizer = mx.minimum(max_norm / (grad_norm + 1e-6), 1.0)
    clipped = tree_map(lambda g: None if g is None else g * normalizer, gradients)
    return clipped, grad_norm
