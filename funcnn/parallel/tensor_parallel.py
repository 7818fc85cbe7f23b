"""Tensor parallelism from a spec tree: shard, gather, reshard, Megatron blocks, gradient clipping.

A *spec* says, for every leaf of a parameter tree, how the leaf is laid out
over the ranks of a group:

* :class:`Shard` ``(axis, segments=1)``: each rank holds ``1/N`` of ``axis``.
  With ``segments`` the axis holds fused blocks (a QKV weight: 3), each block is
  split among the ranks separately and a rank's pieces are concatenated, as
  ``mlx.nn``'s ``shard_inplace``/``shard_linear`` do;
* :class:`Replicated` ``()`` or ``None``: every rank holds the whole leaf.

:func:`spec_from_patterns` builds a spec from path patterns; :func:`shard`
cuts this rank's shard tree and :func:`gather` reassembles the full tree on
every rank (bit for bit: both only move data).  :func:`shard_arrays`,
:func:`gather_arrays` and :func:`reshard_arrays` do the same offline on lists
of per-rank trees, which is how a checkpoint saved on ``N`` ranks loads on
``M``: save the gathered tree (or the ``N`` shard trees), then
``reshard_arrays([...], spec, M)``; no group is needed.

The Megatron edges are :func:`copy_to_parallel` (identity forward, ``all_sum``
backward) and :func:`reduce_from_parallel` (``all_sum`` forward, identity
backward).  With them, :func:`column_parallel_linear_apply` and
:func:`row_parallel_linear_apply` run a linear layer on a row (output) and a
column (input) shard; :func:`parallel_mlp_apply`,
:func:`parallel_attention_apply` and :func:`parallel_encoder_layer_apply` run
an MLP, a multi-head attention and a whole
:func:`funcnn.functional.transformer_encoder_layer` block on the shards that
:func:`megatron_spec` lays out, with one ``all_sum`` per sub-block forward and
one per sub-block backward.  :func:`clip_grad_norm` clips by the global norm,
counting replicated leaves once.

Every function takes its group explicitly: a real ``mx.distributed`` group or
an :class:`~funcnn.parallel.emulate.EmulatedGroup`.  Take gradients inside the
per-rank code (as a real rank does): the backward ``all_sum`` of
:func:`copy_to_parallel` runs in the rank's own gradient computation.

Example (two virtual ranks):
    >>> import mlx.core as mx
    >>> from funcnn.parallel.emulate import emulate
    >>> params = {"w": mx.arange(8.0).reshape(2, 4), "b": mx.ones(2)}
    >>> spec = spec_from_patterns(params, {"w": Shard(1)})
    >>> shards = emulate(lambda g, p: shard(p, spec, g), 2, params, in_axes=None)
    >>> shards["w"][1].tolist(), shards["b"].shape
    ([[2.0, 3.0], [6.0, 7.0]], (2, 2))
    >>> full = emulate(lambda g, s: gather(s, spec, g), 2, shards)
    >>> bool(mx.array_equal(full["w"][0], params["w"]))
    True
"""

from __future__ import annotations

import fnmatch
import itertools
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import mlx.core as mx

from ..functional.activations import relu
from ..functional.linear import linear_apply
from ..functional.normalization import layer_norm_apply
from ..functional.transformer import Mask, attend
from ..tree import tree_flatten, tree_leaves, tree_map, tree_structure
from .collectives import all_gather, all_sum

__all__ = [
    "Replicated",
    "Shard",
    "clip_grad_norm",
    "column_parallel_linear_apply",
    "copy_to_parallel",
    "gather",
    "gather_arrays",
    "megatron_spec",
    "parallel_attention_apply",
    "parallel_encoder_layer_apply",
    "parallel_mlp_apply",
    "reduce_from_parallel",
    "reshard_arrays",
    "row_parallel_linear_apply",
    "shard",
    "shard_arrays",
    "spec_from_patterns",
]

Segments = int | tuple[int, ...]


@dataclass(frozen=True)
class Shard:
    """A leaf split along ``axis`` over the ranks, ``segments`` fused blocks each split separately.

    ``segments`` is a number of equal blocks or the split points of the blocks
    along the full axis (as ``mx.split``'s indices); every block must divide by
    the number of ranks.

    Example:
        >>> Shard(0), Shard(-1, segments=3), Shard(0, segments=[4, 6]).segments
        (Shard(axis=0, segments=1), Shard(axis=-1, segments=3), (4, 6))
    """

    axis: int
    segments: Segments = 1

    def __post_init__(self) -> None:
        if type(self.axis) is not int:
            raise TypeError(f"Shard: expected an int axis, got {self.axis!r}")
        seg = self.segments
        if isinstance(seg, (list, tuple)):
            if not all(type(s) is int for s in seg) or list(seg) != sorted(set(seg)) or (
                seg and seg[0] <= 0
            ):
                raise ValueError(
                    f"Shard: expected increasing positive int split points, got {seg!r}"
                )
            object.__setattr__(self, "segments", tuple(seg))
        elif type(seg) is not int or seg < 1:
            raise ValueError(
                f"Shard: expected segments as a positive int or split points, got {seg!r}"
            )


@dataclass(frozen=True)
class Replicated:
    """A leaf held whole by every rank (``None`` in a spec means the same).

    Example:
        >>> Replicated()
        Replicated()
    """


Spec = Shard | Replicated | None


def _is_spec_leaf(x: Any) -> bool:
    return x is None or isinstance(x, (Shard, Replicated))


def _check_spec_leaf(path: str, s: Any) -> None:
    if not _is_spec_leaf(s):
        raise TypeError(
            f"{path or '<root>'}: expected a spec leaf (Shard, Replicated or None), "
            f"got {type(s).__name__}"
        )


def spec_from_patterns(
    params: Any, patterns: Mapping[str, Spec], default: Spec = Replicated()
) -> Any:
    """A spec tree for ``params``: the first pattern matching a leaf's dotted path gives its spec.

    Patterns are shell-style globs (:func:`fnmatch.fnmatchcase`) matched
    against the whole dotted path of :func:`funcnn.tree.tree_flatten`
    (``"layers.0.weight"``); ``*`` also matches dots, so ``"*.weight"``
    matches weights at any depth.  Patterns are tried in the mapping's order;
    leaves no pattern matches get ``default``, and non-array leaves (``None``)
    get ``None``.  A pattern that matches no array is a ``ValueError`` (a
    typo would otherwise silently replicate a large matrix).

    Example:
        >>> import mlx.core as mx
        >>> p = {"l1": {"weight": mx.ones((4, 2)), "bias": mx.ones(4)}, "l2": {"weight": mx.ones((2, 4))}}
        >>> spec_from_patterns(p, {"l1.*": Shard(0), "*.weight": Shard(1)})
        {'l1': {'weight': Shard(axis=0, segments=1), 'bias': Shard(axis=0, segments=1)}, 'l2': {'weight': Shard(axis=1, segments=1)}}
    """
    if not isinstance(patterns, Mapping):
        raise TypeError(f"spec_from_patterns: expected a mapping of patterns, got {type(patterns).__name__}")
    for pattern, s in patterns.items():
        _check_spec_leaf(f"pattern {pattern!r}", s)
    _check_spec_leaf("default", default)
    used: set[str] = set()

    def pick(path: str, leaf: Any) -> Spec:
        if not isinstance(leaf, mx.array):
            return None
        for pattern, s in patterns.items():
            if fnmatch.fnmatchcase(path, pattern):
                used.add(pattern)
                return s
        return default

    paths = [k for k, _ in tree_flatten(params)]
    spec = tree_structure(params).unflatten(
        [pick(k, v) for k, v in zip(paths, tree_leaves(params))]
    )
    unused = [p for p in patterns if p not in used]
    if unused:
        raise ValueError(
            f"spec_from_patterns: patterns matching no array: {unused}; paths: {paths}"
        )
    return spec


# --- per-leaf layout ---------------------------------------------------------------------


def _axis(path: str, s: Shard, ndim: int) -> int:
    if not -ndim <= s.axis < ndim:
        raise ValueError(f"{path}: Shard axis {s.axis} is out of range for an array with {ndim} dims")
    return s.axis % ndim


def _block_sizes(path: str, s: Shard, length: int, n: int) -> list[int]:
    """The full-axis sizes of the fused blocks, each checked to divide by ``n``."""
    if isinstance(s.segments, int):
        if length % s.segments:
            raise ValueError(
                f"{path}: cannot split an axis of size {length} into {s.segments} segments"
            )
        sizes = [length // s.segments] * s.segments
    else:
        if s.segments[-1] >= length:
            raise ValueError(
                f"{path}: split points {list(s.segments)} are out of range for an axis of size {length}"
            )
        bounds = [0, *s.segments, length]
        sizes = [b - a for a, b in itertools.pairwise(bounds)]
    for size in sizes:
        if size % n:
            raise ValueError(
                f"{path}: cannot shard a segment of size {size} (axis of size {length}) "
                f"across {n} ranks"
            )
    return sizes


def _split_points(sizes: list[int]) -> list[int]:
    points, at = [], 0
    for size in sizes[:-1]:
        at += size
        points.append(at)
    return points


def _cut(path: str, x: mx.array, s: Shard, n: int, rank: Any) -> mx.array:
    """This rank's shard of the full leaf ``x``; ``rank`` may be a traced array (emulator)."""
    axis = _axis(path, s, x.ndim)
    sizes = _block_sizes(path, s, x.shape[axis], n)
    pieces = []
    for block in mx.split(x, _split_points(sizes), axis=axis) if len(sizes) > 1 else [x]:
        per_rank = mx.unflatten(block, axis, (n, block.shape[axis] // n))
        pieces.append(mx.take(per_rank, rank, axis=axis))
    return pieces[0] if len(pieces) == 1 else mx.concatenate(pieces, axis=axis)


def _assemble(path: str, stacked: mx.array, s: Shard, n: int) -> mx.array:
    """The full leaf from ``stacked`` ``(n, *shard_shape)``, every rank's shard in rank order."""
    axis = _axis(path, s, stacked.ndim - 1)
    length = stacked.shape[axis + 1] * n
    sizes = _block_sizes(path, s, length, n)
    local = [size // n for size in sizes]
    blocks = mx.split(stacked, _split_points(local), axis=axis + 1) if len(local) > 1 else [stacked]
    # (n, ..., b/n, ...) -> (..., n, b/n, ...) -> (..., b, ...): each block in rank order.
    full = [mx.moveaxis(b, 0, axis).flatten(axis, axis + 1) for b in blocks]
    return full[0] if len(full) == 1 else mx.concatenate(full, axis=axis)


def _over_leaves(fn: Callable, tree: Any, spec: Any, name: str) -> Any:
    """``fn(path, leaf, spec_leaf)`` over the arrays of ``tree``; other leaves pass through."""
    flat = tree_flatten(tree)
    try:
        spec_leaves = tree_structure(tree).flatten_up_to(spec)
    except ValueError as e:
        raise ValueError(f"{name}: the spec does not match the tree's structure: {e}") from None
    out = []
    for (path, leaf), s in zip(flat, spec_leaves):
        _check_spec_leaf(path, s)
        out.append(fn(path, leaf, s) if isinstance(leaf, mx.array) and isinstance(s, Shard) else leaf)
    return tree_structure(tree).unflatten(out)


def _size(group: Any, name: str) -> int:
    if not (hasattr(group, "rank") and hasattr(group, "size")):
        raise TypeError(
            f"{name}: expected a group (mlx.core.distributed.Group or EmulatedGroup), "
            f"got {type(group).__name__}"
        )
    return group.size()


# --- shard, gather, reshard ------------------------------------------------------------------


def shard(params: Any, spec: Any, group: Any) -> Any:
    """This rank's shard of every leaf of ``params`` laid out by ``spec`` (a new tree).

    ``spec`` has ``params``' structure with a :class:`Shard`,
    :class:`Replicated` or ``None`` per leaf; replicated and non-array leaves
    are returned as they are.  A block that does not divide by the group's
    size is a ``ValueError`` naming the leaf.

    Example:
        >>> import mlx.core as mx
        >>> shard({"w": mx.ones((4, 2))}, {"w": Shard(0)}, mx.distributed.init())["w"].shape
        (4, 2)
    """
    n = _size(group, "shard")
    rank = group.rank()
    return _over_leaves(lambda p, x, s: _cut(p, x, s, n, rank), params, spec, "shard")


def gather(shards: Any, spec: Any, group: Any) -> Any:
    """The full tree on every rank from each rank's ``shards`` (an ``all_gather`` per sharded leaf).

    The inverse of :func:`shard`, bit for bit: each fused segment is
    reassembled from the ranks' pieces in rank order.  Differentiable: the
    gradient of a gathered leaf is this rank's shard of the cotangent.

    Example:
        >>> import mlx.core as mx
        >>> from funcnn.parallel.emulate import emulate
        >>> shards = {"w": mx.array([[0.0, 1.0], [2.0, 3.0]])}  # rank r holds row r of these
        >>> emulate(lambda g, s: gather(s, {"w": Shard(0, segments=2)}, g), 2, shards)["w"][0].tolist()
        [0.0, 2.0, 1.0, 3.0]
    """
    n = _size(group, "gather")

    def one(path: str, x: mx.array, s: Shard) -> mx.array:
        axis = _axis(path, s, x.ndim)
        rows = all_gather(mx.expand_dims(x, 0), group)  # (n, *shard_shape)
        return _assemble(path, rows, Shard(axis, s.segments), n)

    return _over_leaves(one, shards, spec, "gather")


def _check_count(n: Any, name: str) -> None:
    if type(n) is not int or n < 1:
        raise ValueError(f"{name}: expected a positive int number of ranks, got {n!r}")


def shard_arrays(params: Any, spec: Any, n: int) -> list:
    """The ``n`` ranks' shard trees of ``params``, without a group (offline).

    Example:
        >>> import mlx.core as mx
        >>> [s["w"].tolist() for s in shard_arrays({"w": mx.arange(4.0)}, {"w": Shard(0)}, 2)]
        [[0.0, 1.0], [2.0, 3.0]]
    """
    _check_count(n, "shard_arrays")
    return [
        _over_leaves(lambda p, x, s, r=r: _cut(p, x, s, n, r), params, spec, "shard_arrays")
        for r in range(n)
    ]


def gather_arrays(shards: Sequence[Any], spec: Any) -> Any:
    """The full tree from a list of every rank's shard tree, in rank order (offline).

    Replicated leaves are taken from rank 0.

    Example:
        >>> import mlx.core as mx
        >>> gather_arrays([{"w": mx.zeros(2)}, {"w": mx.ones(2)}], {"w": Shard(0)})["w"].tolist()
        [0.0, 0.0, 1.0, 1.0]
    """
    if not isinstance(shards, (list, tuple)) or not shards:
        raise TypeError(
            f"gather_arrays: expected a non-empty list of per-rank trees, got {type(shards).__name__}"
        )
    n = len(shards)
    structure = tree_structure(shards[0])
    for r, tree in enumerate(shards[1:], 1):
        if tree_structure(tree) != structure:
            raise ValueError(f"gather_arrays: rank {r}'s tree does not match rank 0's structure")
    per_rank = [dict(tree_flatten(t)) for t in shards]

    def one(path: str, x: mx.array, s: Shard) -> mx.array:
        rows = [t[path] for t in per_rank]
        if len({r.shape for r in rows}) != 1:
            raise ValueError(f"{path}: the ranks' shards differ in shape: {[r.shape for r in rows]}")
        return _assemble(path, mx.stack(rows), s, n)

    return _over_leaves(one, shards[0], spec, "gather_arrays")


def reshard_arrays(shards: Sequence[Any], spec: Any, n_to: int) -> list:
    """Turn ``N`` ranks' shard trees into ``n_to`` ranks' shard trees (offline, bit for bit).

    ``shards`` lists the ``N`` source ranks' trees in rank order; a gathered
    checkpoint is ``[full_tree]`` (``N = 1``).  The trees are gathered and
    cut again, so any ``N -> n_to`` works when every segment divides by
    ``n_to``.

    Example:
        >>> import mlx.core as mx
        >>> two = shard_arrays({"w": mx.arange(4.0)}, {"w": Shard(0)}, 2)
        >>> [s["w"].tolist() for s in reshard_arrays(two, {"w": Shard(0)}, 4)]
        [[0.0], [1.0], [2.0], [3.0]]
    """
    _check_count(n_to, "reshard_arrays")
    return shard_arrays(gather_arrays(shards, spec), spec, n_to)


# --- the Megatron edges ------------------------------------------------------------------------


def copy_to_parallel(x: mx.array, group: Any) -> mx.array:
    """The identity forward; the backward sums the cotangent over ``group``.

    Put at the entry of a column-parallel region: every rank's partial
    gradient of the replicated input adds up to the full one.

    Example:
        >>> import mlx.core as mx
        >>> from funcnn.parallel.emulate import emulate
        >>> w = mx.array([[1.0], [2.0]])  # rank r scales by w[r]
        >>> emulate(lambda g, w, x: mx.grad(lambda x: (copy_to_parallel(x, g) * w).sum())(x),
        ...         2, w, mx.array([5.0]), in_axes=(0, None)).tolist()
        [[3.0], [3.0]]
    """
    _size(group, "copy_to_parallel")

    @mx.custom_function
    def identity(v: mx.array) -> mx.array:
        return v

    @identity.vjp
    def _(primals: Any, cotangent: mx.array, output: Any) -> mx.array:
        return all_sum(cotangent, group)

    return identity(x)


def reduce_from_parallel(x: mx.array, group: Any) -> mx.array:
    """Sum ``x`` over ``group`` forward; the backward is the identity.

    Put at the exit of a row-parallel region.  (It is ``all_sum``, whose
    VJP is the identity on MLX's backends and on the emulator.)

    Example:
        >>> import mlx.core as mx
        >>> from funcnn.parallel.emulate import emulate
        >>> emulate(lambda g, x: reduce_from_parallel(x, g), 2, mx.array([[1.0], [2.0]])).tolist()
        [[3.0], [3.0]]
    """
    return all_sum(x, group)


def column_parallel_linear_apply(params: dict, x: mx.array, group: Any) -> mx.array:
    """A linear layer on this rank's output rows: ``copy_to_parallel`` then ``x @ W.T + b``.

    ``params`` holds the rank's rows of ``weight`` (and of ``bias``); the
    output is this rank's slice of the last axis.

    Example:
        >>> import mlx.core as mx
        >>> column_parallel_linear_apply({"weight": mx.ones((2, 3))}, mx.ones(3),
        ...                              mx.distributed.init()).tolist()
        [3.0, 3.0]
    """
    return linear_apply(params, copy_to_parallel(x, group))


def row_parallel_linear_apply(params: dict, x: mx.array, group: Any) -> mx.array:
    """A linear layer on this rank's input columns: partial products summed, then the whole ``bias``.

    Example:
        >>> import mlx.core as mx
        >>> row_parallel_linear_apply({"weight": mx.ones((2, 3)), "bias": mx.ones(2)}, mx.ones(3),
        ...                           mx.distributed.init()).tolist()
        [4.0, 4.0]
    """
    y = reduce_from_parallel(x @ params["weight"].T, group)
    return y + params["bias"] if "bias" in params else y


_COLUMN = ("query_proj", "key_proj", "value_proj", "linear1")
_ROW = ("out_proj", "linear2")


def megatron_spec(params: Any, column: Sequence[str] = _COLUMN, row: Sequence[str] = _ROW) -> Any:
    """The Megatron layout of a block: ``column`` layers split by output, ``row`` layers by input.

    A linear layer named in ``column`` (by its last path component) gets
    ``weight`` and ``bias`` as ``Shard(0)``; one named in ``row`` gets
    ``weight`` as ``Shard(1)`` and its ``bias`` replicated; everything else
    (layer norms) is replicated.  The defaults fit
    :func:`funcnn.functional.transformer_encoder_layer` and
    :func:`funcnn.functional.multi_head_attention` trees.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> spec = megatron_spec(F.transformer_encoder_layer(8, 2).init(mx.random.key(0)))
        >>> spec["attention"]["query_proj"]["weight"], spec["linear2"], spec["ln1"]["weight"]
        (Shard(axis=0, segments=1), {'weight': Shard(axis=1, segments=1), 'bias': Replicated()}, Replicated())
    """

    def pick(path: str, leaf: Any) -> Spec:
        if not isinstance(leaf, mx.array):
            return None
        *owner, name = path.split(".")
        layer = owner[-1] if owner else ""
        if layer in column and name in ("weight", "bias"):
            return Shard(0)
        if layer in row and name == "weight":
            return Shard(1)
        return Replicated()

    return tree_structure(params).unflatten([pick(k, v) for k, v in tree_flatten(params)])


def parallel_mlp_apply(
    params: dict,
    x: mx.array,
    group: Any,
    *,
    activation: Callable[[mx.array], mx.array] = relu,
    up: str = "linear1",
    down: str = "linear2",
) -> mx.array:
    """``down(activation(up(x)))`` with ``up`` column- and ``down`` row-parallel (one all-sum).

    Example:
        >>> import mlx.core as mx
        >>> p = {"linear1": {"weight": mx.ones((4, 2)), "bias": mx.zeros(4)},
        ...      "linear2": {"weight": mx.ones((2, 4)), "bias": mx.zeros(2)}}
        >>> parallel_mlp_apply(p, mx.ones(2), mx.distributed.init()).tolist()
        [8.0, 8.0]
    """
    h = activation(column_parallel_linear_apply(params[up], x, group))
    return row_parallel_linear_apply(params[down], h, group)


def _heads(num_heads: int, group: Any) -> int:
    n = group.size()
    if num_heads % n:
        raise ValueError(f"cannot split {num_heads} attention heads across {n} ranks")
    return num_heads // n


def parallel_attention_apply(
    params: dict,
    queries: mx.array,
    keys: mx.array,
    values: mx.array,
    mask: Mask = None,
    *,
    num_heads: int,
    group: Any,
) -> mx.array:
    """Multi-head attention with this rank's ``num_heads / N`` heads; ``out_proj`` row-parallel.

    ``params`` is a :func:`megatron_spec` shard of a
    :func:`funcnn.functional.multi_head_attention` tree; the math is
    :func:`funcnn.functional.attend` on the local heads.  An input given
    several times (self-attention) enters the parallel region once.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> p = F.multi_head_attention(8, 2).init(mx.random.key(0))
        >>> x = mx.ones((1, 3, 8))
        >>> parallel_attention_apply(p, x, x, x, num_heads=2, group=mx.distributed.init()).shape
        (1, 3, 8)
    """
    local_heads = _heads(num_heads, group)
    entered: dict[int, mx.array] = {}

    def enter(v: mx.array) -> mx.array:
        if id(v) not in entered:
            entered[id(v)] = copy_to_parallel(v, group)
        return entered[id(v)]

    out = attend(
        linear_apply(params["query_proj"], enter(queries)),
        linear_apply(params["key_proj"], enter(keys)),
        linear_apply(params["value_proj"], enter(values)),
        local_heads,
        mask,
    )
    return row_parallel_linear_apply(params["out_proj"], out, group)


def parallel_encoder_layer_apply(
    params: dict,
    x: mx.array,
    mask: Mask,
    *,
    num_heads: int,
    group: Any,
    activation: Callable[[mx.array], mx.array] = relu,
    norm_first: bool = True,
    eps: float = 1e-5,
) -> mx.array:
    """A :func:`funcnn.functional.transformer_encoder_layer` block on its :func:`megatron_spec` shards.

    The block's own math (:func:`funcnn.functional.transformer_encoder_layer_apply`)
    runs with the attention and the MLP made tensor-parallel and the layer
    norms replicated; ``eps`` is the norms' epsilon.  Dropout is not run (use
    the block with ``dropout=0.0`` or in evaluation): a replicated
    activation would need the same mask on every rank.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> p = F.transformer_encoder_layer(8, 2, mlp_dims=16).init(mx.random.key(0))
        >>> parallel_encoder_layer_apply(p, mx.ones((1, 3, 8)), None, num_heads=2,
        ...                              group=mx.distributed.init()).shape
        (1, 3, 8)
    """
    from ..functional._transformer_stack import transformer_encoder_layer_apply

    _heads(num_heads, group)
    children = types.SimpleNamespace(
        attention=lambda q, k, v, m: parallel_attention_apply(
            params["attention"], q, k, v, m, num_heads=num_heads, group=group
        ),
        ln1=lambda v: layer_norm_apply(params["ln1"], v, eps=eps),
        ln2=lambda v: layer_norm_apply(params["ln2"], v, eps=eps),
        linear1=lambda v: column_parallel_linear_apply(params["linear1"], v, group),
        linear2=lambda v: row_parallel_linear_apply(params["linear2"], v, group),
        dropout1=lambda v: v,
        dropout2=lambda v: v,
    )
    return transformer_encoder_layer_apply(
        children, x, mask, activation=activation, norm_first=norm_first
    )


# --- gradient clipping ---------------------------------------------------------------------------


def clip_grad_norm(
    grads: Any, max_norm: float, spec: Any, group: Any
) -> tuple[Any, mx.array]:
    """Clip this rank's gradient shards by the global L2 norm of the full gradient.

    Squares of sharded leaves are summed over ``group`` (one ``all_sum``);
    replicated leaves (identical on every rank) are counted once, locally.
    Every leaf is scaled by ``min(max_norm / (norm + 1e-6), 1)`` as
    :func:`funcnn.optimizers.clip_grad_norm` does; ``None`` leaves stay ``None``.
    Returns ``(clipped, norm)``.

    Example:
        >>> import mlx.core as mx
        >>> from funcnn.parallel.emulate import emulate
        >>> grads = {"w": mx.array([[3.0], [0.0]]), "b": mx.array([[4.0], [4.0]])}  # 2 ranks
        >>> spec = {"w": Shard(0), "b": Replicated()}
        >>> emulate(lambda g, gr: clip_grad_norm(gr, 1.0, spec, g)[1], 2, grads).tolist()
        [5.0, 5.0]
    """
    _size(group, "clip_grad_norm")
    sharded: Any = 0.0
    replicated: Any = 0.0

    def add(path: str, g: mx.array, s: Any) -> None:
        nonlocal sharded, replicated
        _check_spec_leaf(path, s)
        if isinstance(s, Shard):
            sharded = sharded + g.square().sum()
        else:
            replicated = replicated + g.square().sum()

    flat = tree_flatten(grads)
    try:
        spec_leaves = tree_structure(grads).flatten_up_to(spec)
    except ValueError as e:
        raise ValueError(f"clip_grad_norm: the spec does not match the tree's structure: {e}") from None
    for (path, g), s in zip(flat, spec_leaves):
        if isinstance(g, mx.array):
            add(path, g, s)
    norm = mx.sqrt(all_sum(mx.array(sharded), group) + replicated)
    normalizer = mx.minimum(max_norm / (norm + 1e-6), 1.0)
    return tree_map(lambda g: None if g is None else g * normalizer, grads), norm
