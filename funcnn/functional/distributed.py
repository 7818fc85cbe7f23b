"""Tensor-parallel layers and parameter sharding (MLX's ``layers/distributed.py``).

A group of ``N`` processes (:func:`mlx.core.distributed.init`) splits a dense
layer two ways:

* ``all_to_sharded_linear``: every member holds ``output_dims / N`` rows of
  the weight; the input is common, the output sharded.  The input's gradient
  is summed over the group in the backward pass (:func:`sum_gradients`).
* ``sharded_to_all_linear``: every member holds ``input_dims / N`` columns;
  the input is sharded, the partial products are summed over the group
  (``all_sum``) and the output is common.

Their quantized twins hold an ``mx.quantize``-d weight (frozen, as
:class:`mlx.nn.QuantizedLinear`'s).  :func:`shard_params` cuts a parameter
tree for one member; :func:`gather_function` and ``fully_sharded_module``
shard every parameter along axis 0 and gather it for each call (FSDP).

Every group setting is explicit: the factories resolve ``group=None`` to
``mx.distributed.init()`` once, as the :mod:`mlx.nn` constructors do, and bind
it.  On a single process the group has size 1 and every collective is the
identity.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from functools import reduce
from typing import Any, Optional, Union

import mlx.core as mx

from ..tree import tree_flatten, tree_map, tree_map_with_path
from ._pair import Key, Pair, apply_layer, pair_factory, split_key
from .quantized import packed_matmul

__all__ = [
    "sum_gradients",
    "shard_params",
    "all_to_sharded_linear",
    "all_to_sharded_linear_apply",
    "sharded_to_all_linear",
    "sharded_to_all_linear_apply",
    "quantized_all_to_sharded_linear",
    "quantized_all_to_sharded_linear_apply",
    "quantized_sharded_to_all_linear",
    "quantized_sharded_to_all_linear_apply",
    "gather_function",
    "fully_sharded_module",
]

Group = mx.distributed.Group
Segments = Union[int, list]
Sharding = Union[str, Callable[[str, mx.array], Any]]


def _resolve_group(group: Optional[Group]) -> Group:
    """``group``, or the global group for ``None`` (as :mod:`mlx.nn` resolves it)."""
    group = group or mx.distributed.init()
    if not isinstance(group, Group):
        # mlx.nn fails later with "'int' object has no attribute 'size'".
        raise TypeError(
            f"group must be an mlx.core.distributed.Group or None, received {group!r}."
        )
    return group


@functools.lru_cache
def sum_gradients(group: Group) -> Callable[[mx.array], mx.array]:
    """The identity whose backward pass sums the cotangent over ``group``.

    Cached per group, so each group has one function (and one compiled graph).
    For a group of one process it is a plain identity.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> f = F.sum_gradients(mx.distributed.init())
        >>> f(mx.ones(2)).tolist(), mx.grad(lambda x: (3 * f(x)).sum())(mx.ones(2)).tolist()
        ([1.0, 1.0], [3.0, 3.0])
    """
    if group.size() == 1:
        return lambda x: x

    @mx.custom_function
    def f(x):
        return x

    @f.vjp
    def f(x, dx, _):
        return mx.distributed.all_sum(dx, group=group)

    return f


# --- sharding parameter trees ----------------------------------------------------------


def _split(weight: mx.array, segments: Any, axis: int) -> list:
    # Integer segments (or split indices) go to mx.split; fractions of the axis
    # become indices first.
    if isinstance(segments, int) or isinstance(segments[0], int):
        return mx.split(weight, segments, axis=axis)
    n = weight.shape[axis]
    return mx.split(weight, [int(s * n) for s in segments], axis=axis)


def _all_to_sharded(segments: Segments) -> Callable:
    def predicate(path: str, weight: mx.array) -> Any:
        if path.endswith("bias"):
            return -1, segments
        return max(weight.ndim - 2, 0), segments

    return predicate


def _sharded_to_all(segments: Segments) -> Callable:
    def predicate(path: str, weight: mx.array) -> Any:
        if path.endswith("bias"):
            return None
        return -1, segments

    return predicate


def _check_sharding(sharding: Any) -> None:
    if sharding not in ("all-to-sharded", "sharded-to-all"):
        raise ValueError(
            f"Sharding type {sharding=} not supported, "
            "choose one of 'all-to-sharded' or 'sharded-to-all'"
        )


def _predicate_for(sharding: Sharding, segments: Segments = 1) -> Callable:
    """The sharding predicate of ``sharding``: a callable is returned unchanged."""
    if isinstance(sharding, str):
        _check_sharding(sharding)
        return _all_to_sharded(segments) if sharding == "all-to-sharded" else (
            _sharded_to_all(segments)
        )
    return sharding


def shard_params(
    params: Any,
    sharding: Sharding,
    *,
    segments: Segments = 1,
    group: Optional[Group] = None,
) -> Any:
    """This member's shard of every array of ``params`` (a new tree; nothing is modified).

    ``sharding`` is ``"all-to-sharded"`` (weights split along their output
    axis, biases too), ``"sharded-to-all"`` (weights split along their input
    axis, biases whole) or a callable ``(path, array) -> axis | (axis,
    segments) | None`` (``None`` keeps the array whole).  ``segments`` says
    how many fused blocks (an int, split indices, or fractions of the axis)
    the axis holds; each block is split among the group separately, so a
    fused QKV weight shards into matching query, key and value parts.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> p = {"weight": mx.ones((6, 4)), "bias": mx.ones(6)}
        >>> {k: v.shape for k, v in F.shard_params(p, "sharded-to-all", segments=2).items()}
        {'weight': (6, 4), 'bias': (6,)}
    """
    predicate = _predicate_for(sharding, segments)
    group = _resolve_group(group)
    n, r = group.size(), group.rank()

    def shard(path: str, weight: Any) -> Any:
        if not isinstance(weight, mx.array):
            return weight
        s = predicate(path, weight)
        if s is None:
            return weight
        if isinstance(s, int):
            axis, parts = s, 1
        elif isinstance(s, tuple):
            axis, parts = s
        else:
            raise ValueError("The sharding function should return int or tuple[int, list]")
        return mx.contiguous(
            mx.concatenate(
                [_split(part, n, axis)[r] for part in _split(weight, parts, axis)], axis=axis
            )
        )

    return tree_map_with_path(shard, params)


# --- dense layers ----------------------------------------------------------------------


def all_to_sharded_linear_apply(params: dict, x: mx.array, *, group: Group) -> mx.array:
    """``x @ weight.T + bias`` on this member's output rows; the input gradient is summed.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> p = {"weight": mx.ones((2, 3))}
        >>> F.all_to_sharded_linear_apply(p, mx.ones(3), group=mx.distributed.init()).tolist()
        [3.0, 3.0]
    """
    x = sum_gradients(group)(x)
    if "bias" in params:
        return mx.addmm(params["bias"], x, params["weight"].T)
    return x @ params["weight"].T


def sharded_to_all_linear_apply(params: dict, x: mx.array, *, group: Group) -> mx.array:
    """This member's partial ``x @ weight.T``, summed over ``group``, plus ``bias``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> p = {"weight": mx.ones((2, 3)), "bias": mx.ones(2)}
        >>> F.sharded_to_all_linear_apply(p, mx.ones(3), group=mx.distributed.init()).tolist()
        [4.0, 4.0]
    """
    x = x @ params["weight"].T
    x = mx.distributed.all_sum(x, group=group)
    if "bias" in params:
        x = x + params["bias"]
    return x


def _uniform_init(weight_shape: tuple, bias_dims: Optional[int], scale: float) -> Callable:
    def init(key: Key = None) -> dict:
        k_weight, k_bias = split_key(key, 2)
        params = {
            "weight": mx.random.uniform(low=-scale, high=scale, shape=weight_shape, key=k_weight)
        }
        if bias_dims is not None:
            params["bias"] = mx.random.uniform(
                low=-scale, high=scale, shape=(bias_dims,), key=k_bias
            )
        return params

    return init


def _check_output_split(output_dims: int, n: int) -> None:
    if (output_dims % n) != 0:
        raise ValueError(f"Cannot shard the output of size {output_dims} across {n} devices.")


def _check_input_split(input_dims: int, n: int) -> None:
    if (input_dims % n) != 0:
        raise ValueError(f"The input of size {input_dims} cannot be sharded across {n} devices.")


@pair_factory
def all_to_sharded_linear(
    input_dims: int, output_dims: int, bias: bool = True, group: Optional[Group] = None
) -> Pair:
    """A linear layer whose output is sharded across ``group`` (as :class:`mlx.nn.AllToShardedLinear`).

    Parameters of one member: ``weight`` ``(output_dims / N, input_dims)`` and
    ``bias`` ``(output_dims / N,)``, uniform on ``[-k, k]``, ``k =
    1/sqrt(input_dims)``.  ``apply`` is :func:`all_to_sharded_linear_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> layer = F.all_to_sharded_linear(4, 6)
        >>> {k: v.shape for k, v in layer.init(mx.random.key(0)).items()}
        {'weight': (6, 4), 'bias': (6,)}
    """
    scale = math.sqrt(1.0 / input_dims)
    group = _resolve_group(group)
    n = group.size()
    _check_output_split(output_dims, n)
    init = _uniform_init((output_dims // n, input_dims), output_dims // n if bias else None, scale)
    apply = functools.partial(all_to_sharded_linear_apply, group=group)
    return Pair(init, apply, "all_to_sharded_linear")


@pair_factory
def sharded_to_all_linear(
    input_dims: int, output_dims: int, bias: bool = True, group: Optional[Group] = None
) -> Pair:
    """A linear layer whose input is sharded across ``group`` (as :class:`mlx.nn.ShardedToAllLinear`).

    Parameters of one member: ``weight`` ``(output_dims, input_dims / N)`` and
    ``bias`` ``(output_dims,)``, uniform on ``[-k, k]``, ``k =
    1/sqrt(input_dims)``.  ``apply`` is :func:`sharded_to_all_linear_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> layer = F.sharded_to_all_linear(4, 6, bias=False)
        >>> layer.apply(layer.init(mx.random.key(0)), mx.ones((2, 4))).shape
        (2, 6)
    """
    scale = math.sqrt(1.0 / input_dims)
    group = _resolve_group(group)
    n = group.size()
    _check_input_split(input_dims, n)
    init = _uniform_init((output_dims, input_dims // n), output_dims if bias else None, scale)
    apply = functools.partial(sharded_to_all_linear_apply, group=group)
    return Pair(init, apply, "sharded_to_all_linear")


# --- quantized dense layers --------------------------------------------------------------


def quantized_all_to_sharded_linear_apply(
    params: dict, x: mx.array, *, group_size: int, bits: int, mode: str, group: Group
) -> mx.array:
    """:func:`all_to_sharded_linear_apply` with an ``mx.quantize``-d ``weight``.

    ``params`` holds ``weight``, ``scales``, ``biases`` (modes with a bias
    term only) and optionally ``bias``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> w, scales, biases = mx.quantize(mx.ones((2, 64)), 64, 4)
        >>> p = {"weight": w, "scales": scales, "biases": biases}
        >>> F.quantized_all_to_sharded_linear_apply(
        ...     p, mx.ones(64), group_size=64, bits=4, mode="affine", group=mx.distributed.init()
        ... ).tolist()
        [64.0, 64.0]
    """
    x = sum_gradients(group)(x)
    x = packed_matmul(params, x, group_size=group_size, bits=bits, mode=mode)
    if "bias" in params:
        x = x + params["bias"]
    return x


def quantized_sharded_to_all_linear_apply(
    params: dict, x: mx.array, *, group_size: int, bits: int, mode: str, group: Group
) -> mx.array:
    """:func:`sharded_to_all_linear_apply` with an ``mx.quantize``-d ``weight``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> w, scales, biases = mx.quantize(mx.ones((2, 64)), 64, 4)
        >>> p = {"weight": w, "scales": scales, "biases": biases, "bias": mx.ones(2)}
        >>> F.quantized_sharded_to_all_linear_apply(
        ...     p, mx.ones(64), group_size=64, bits=4, mode="affine", group=mx.distributed.init()
        ... ).tolist()
        [65.0, 65.0]
    """
    x = packed_matmul(params, x, group_size=group_size, bits=bits, mode=mode)
    x = mx.distributed.all_sum(x, group=group)
    if "bias" in params:
        x = x + params["bias"]
    return x


def _frozen(params: Any) -> Any:
    return tree_map(lambda _: False, params)


def _quantized_init(
    weight_shape: tuple, bias_dims: Optional[int], scale: float, group_size: int, bits: int,
    mode: str,
) -> Callable:
    def init(key: Key = None) -> dict:
        weight = mx.random.uniform(low=-scale, high=scale, shape=weight_shape, key=key)
        weight, scales, *biases = mx.quantize(weight, group_size, bits, mode=mode)
        params = {"weight": weight, "scales": scales}
        if biases:
            params["biases"] = biases[0]
        if bias_dims is not None:
            params["bias"] = mx.zeros((bias_dims,))
        return params

    return init


def _check_quantization(weight_shape: tuple, group_size: int, bits: int, mode: str) -> None:
    # mx.quantize checks its arguments when called, not when evaluated: a lazy
    # stand-in of the weight's shape raises mlx.nn's errors without a draw.
    mx.quantize(mx.zeros(weight_shape), group_size, bits, mode=mode)


@pair_factory
def quantized_all_to_sharded_linear(
    input_dims: int,
    output_dims: int,
    bias: bool = True,
    group_size: int = 64,
    bits: int = 4,
    mode: str = "affine",
    group: Optional[Group] = None,
) -> Pair:
    """:func:`all_to_sharded_linear` with a quantized, frozen weight (as :class:`mlx.nn.QuantizedAllToShardedLinear`).

    ``init`` draws the weight as :func:`all_to_sharded_linear` does and
    quantizes it (``weight``, ``scales``, ``biases``); ``bias`` starts at
    zero.  ``trainable`` marks everything ``False``.  ``apply`` is
    :func:`quantized_all_to_sharded_linear_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> layer = F.quantized_all_to_sharded_linear(64, 4)
        >>> {k: v.shape for k, v in layer.init(mx.random.key(0)).items()}
        {'weight': (4, 8), 'scales': (4, 1), 'biases': (4, 1), 'bias': (4,)}
    """
    scale = math.sqrt(1.0 / input_dims)
    group = _resolve_group(group)
    n = group.size()
    _check_output_split(output_dims, n)
    shape = (output_dims // n, input_dims)
    _check_quantization(shape, group_size, bits, mode)
    init = _quantized_init(shape, shape[0] if bias else None, scale, group_size, bits, mode)
    apply = functools.partial(
        quantized_all_to_sharded_linear_apply, group_size=group_size, bits=bits, mode=mode,
        group=group,
    )
    return Pair(init, apply, "quantized_all_to_sharded_linear", trainable=_frozen)


@pair_factory
def quantized_sharded_to_all_linear(
    input_dims: int,
    output_dims: int,
    bias: bool = True,
    group_size: int = 64,
    bits: int = 4,
    mode: str = "affine",
    group: Optional[Group] = None,
) -> Pair:
    """:func:`sharded_to_all_linear` with a quantized, frozen weight (as :class:`mlx.nn.QuantizedShardedToAllLinear`).

    ``init`` draws the weight as :func:`sharded_to_all_linear` does and
    quantizes it; ``bias`` starts at zero.  ``trainable`` marks everything
    ``False``.  ``apply`` is :func:`quantized_sharded_to_all_linear_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> layer = F.quantized_sharded_to_all_linear(64, 4, bits=8, mode="affine")
        >>> layer.apply(layer.init(mx.random.key(0)), mx.ones((2, 64))).shape
        (2, 4)
    """
    scale = math.sqrt(1.0 / input_dims)
    group = _resolve_group(group)
    n = group.size()
    _check_input_split(input_dims, n)
    shape = (output_dims, input_dims // n)
    _check_quantization(shape, group_size, bits, mode)
    init = _quantized_init(shape, output_dims if bias else None, scale, group_size, bits, mode)
    apply = functools.partial(
        quantized_sharded_to_all_linear_apply, group_size=group_size, bits=bits, mode=mode,
        group=group,
    )
    return Pair(init, apply, "quantized_sharded_to_all_linear", trainable=_frozen)


# --- fully sharded parameters (FSDP) --------------------------------------------------------


def _check_shardable(flat: Sequence[tuple[str, mx.array]], n: int) -> None:
    """Raise :mod:`mlx.nn`'s ``ValueError`` unless every array can be split ``n`` ways on axis 0."""
    for path, a in flat:
        if a.ndim == 0:
            raise ValueError(f"Cannot shard parameter '{path}' because it is a scalar.")
        if a.shape[0] % n != 0:
            raise ValueError(
                f"Cannot shard parameter '{path}' with shape {a.shape} "
                f"across {n} devices: axis 0 must be divisible by {n}."
            )


@functools.lru_cache
def _sum_scatter_failure(group: Group) -> Optional[str]:
    """The backend's error for ``sum_scatter`` on ``group``, or ``None`` if it works.

    The ring backend fails at evaluation, without communicating, so the probe
    cannot hang; on a backend that has it, it is one tiny collective that
    every member runs at the same point of its backward pass.
    """
    try:
        mx.eval(mx.distributed.sum_scatter(mx.zeros((group.size(),)), group=group))
    except RuntimeError as e:
        return str(e)
    return None


def _check_sum_scatter(group: Group) -> None:
    """Raise a clear error, while the backward pass is built, if ``group`` lacks ``sum_scatter``.

    mlx.nn's backward pass fails later, at ``mx.eval``, with only the
    backend's terse message.
    """
    if group.size() == 1:
        return
    failure = _sum_scatter_failure(group)
    if failure is None:
        return
    found = re.match(r"\[(\w+)\]", failure)
    backend = f"the {found.group(1)} backend" if found else "this distributed backend"
    raise RuntimeError(
        f"The backward pass of a fully sharded module needs mx.distributed.sum_scatter, "
        f"which {backend} does not support ({failure!r}). Its forward pass works there; "
        "to train on this backend replicate the parameters and average the gradients "
        "(funcnn.utils.average_gradients), or shard layers with shard_linear; "
        "fully sharded training needs a backend with sum_scatter (NCCL)."
    )


def gather_function(
    group: Group,
    full_shapes: Sequence[tuple],
    shard_sizes: Sequence[int],
    compute_dtype: Optional[mx.Dtype] = None,
) -> Callable[[list], list]:
    """``gather(shards) -> full arrays``: ``all_gather`` forward, mean ``sum_scatter`` backward.

    ``shards`` are this member's axis-0 shards of arrays of ``full_shapes``
    (``shard_sizes`` elements each), cast to ``compute_dtype`` when given;
    their gradients come back in the shards' own dtypes.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> gather = F.gather_function(mx.distributed.init(), [(2, 3), (2,)], [6, 2])
        >>> [a.shape for a in gather([mx.ones((2, 3)), mx.ones(2)])]
        [(2, 3), (2,)]
    """
    n = group.size()
    indices = reduce(lambda acc, w: acc + [acc[-1] + w], shard_sizes, [0])
    split_indices = indices[1:-1]
    shard_shapes = [(shape[0] // n,) + tuple(shape[1:]) for shape in full_shapes]

    def cast(x: mx.array, dtype: Optional[mx.Dtype]) -> mx.array:
        if dtype is None or x.dtype == dtype:
            return x
        return x.astype(dtype)

    @mx.custom_function
    def gather(shards):
        shard = mx.concatenate([cast(s.reshape(1, -1), compute_dtype) for s in shards], axis=1)
        full = mx.distributed.all_gather(shard, group=group)
        parts = mx.split(full, split_indices, axis=1)
        return [p.reshape(shape) for p, shape in zip(parts, full_shapes)]

    @gather.vjp
    def gather_vjp(shards, cotangents, _):
        _check_sum_scatter(group)
        local_full = mx.concatenate([c.reshape(n, -1) for c in cotangents], axis=1)
        local_shard = mx.distributed.sum_scatter(local_full, group=group) / n
        parts = mx.split(local_shard, split_indices, axis=1)
        return [
            cast(p.reshape(shape), s.dtype) for p, shape, s in zip(parts, shard_shapes, shards)
        ]

    return gather


@pair_factory
def fully_sharded_module(
    module: Pair, group: Optional[Group] = None, compute_dtype: Optional[mx.Dtype] = None
) -> Pair:
    """``module`` with every parameter sharded on axis 0 and gathered per call (as :class:`mlx.nn.FullyShardedModule`).

    ``init`` is ``{"module": <this member's shard of module.init()>}``;
    ``apply`` gathers the full parameters (cast to ``compute_dtype`` when
    given) and runs ``module``, passing ``key`` and ``training`` through; as
    in :mod:`mlx.nn`, state that ``module`` updates (BatchNorm's running
    statistics) is not kept.  Every array of ``module`` is sharded; a scalar
    or an axis 0 not divisible by the group's size is mlx.nn's ``ValueError``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> layer = F.fully_sharded_module(F.linear(3, 4))
        >>> p = layer.init(mx.random.key(0))
        >>> layer.apply(p, mx.ones((2, 3))).shape
        (2, 4)
    """
    group = _resolve_group(group)
    n = group.size()
    # The shapes only: the arrays of a keyed init stay unevaluated (lazy).
    flat = tree_flatten(module.init(mx.random.key(0)))
    _check_shardable(flat, n)
    paths = [k for k, _ in flat]
    gather = gather_function(
        group, [a.shape for _, a in flat], [a.size // n for _, a in flat], compute_dtype
    )

    def init(key: Key = None) -> dict:
        return {"module": shard_params(module.init(key), lambda p, w: 0, group=group)}

    def apply(params: dict, *inputs: Any, key: Key = None, training: bool = True) -> Any:
        shards = [a for _, a in tree_flatten(params["module"])]
        # Without parameters there is nothing to gather (mlx.nn's class fails there).
        # The full arrays go back in place (not by path: the empty entries of
        # parameterless members must stay).
        fulls = iter(gather(shards) if paths else [])
        full = tree_map(lambda _: next(fulls), params["module"])
        # State updates of ``module`` are dropped, as mlx.nn's class restores the old
        # shards after the call.
        return apply_layer(module, full, inputs, key, training)[0]

    return Pair(
        init,
        apply,
        "fully_sharded_module",
        takes_key=module.takes_key,
        takes_training=module.takes_training,
        trainable=lambda params: {"module": module.trainable(params["module"])},
    )
