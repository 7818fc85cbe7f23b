"""Tensor-parallel and fully sharded layers, as ``mlx.nn.layers.distributed``.

:class:`AllToShardedLinear` and :class:`ShardedToAllLinear` (and their
quantized twins) split a dense layer across the processes of a
``mx.distributed`` group; :func:`shard_linear` turns a :class:`~funcnn.Linear`
or :class:`~funcnn.QuantizedLinear` into one, :func:`shard_inplace` cuts any
module's parameters, and :func:`fully_shard` wraps a module so that each
process stores a shard of every parameter (:class:`FullyShardedModule`).

The math is :mod:`funcnn.functional.distributed`.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import mlx.core as mx

from ..functional.distributed import (
    _check_shardable,
    _check_sharding,
    _predicate_for,
    _resolve_group,
    all_to_sharded_linear,
    all_to_sharded_linear_apply,
    gather_function,
    quantized_all_to_sharded_linear,
    quantized_all_to_sharded_linear_apply,
    quantized_sharded_to_all_linear,
    quantized_sharded_to_all_linear_apply,
    shard_params,
    sharded_to_all_linear,
    sharded_to_all_linear_apply,
    sum_gradients,
)
from ..tree import tree_flatten, tree_unflatten
from ._template import adopt
from .base import Module
from .linear import Linear

__all__ = [
    "sum_gradients",
    "shard_inplace",
    "shard_linear",
    "AllToShardedLinear",
    "ShardedToAllLinear",
    "QuantizedAllToShardedLinear",
    "QuantizedShardedToAllLinear",
    "FullyShardedModule",
    "fully_shard",
]

Group = mx.distributed.Group
Segments = Union[int, list]


def shard_inplace(
    module: Module,
    sharding: Union[str, Callable],
    *,
    segments: Union[int, list] = 1,
    group: Optional[mx.distributed.Group] = None,
) -> None:
    """Replace ``module``'s parameters by this process's shard of them.

    ``sharding`` is ``"all-to-sharded"``, ``"sharded-to-all"`` or a callable
    ``(path, array) -> axis | (axis, segments) | None``; see
    :func:`funcnn.functional.shard_params`.  The module's code is unchanged,
    so it must do its own communication.

    Example:
        >>> import funcnn as nn
        >>> from funcnn.layers.distributed import shard_inplace
        >>> layer = nn.Linear(4, 6)
        >>> shard_inplace(layer, "all-to-sharded")   # one process: the whole weight
        >>> layer.weight.shape
        (6, 4)
    """
    predicate = _predicate_for(sharding, segments)
    module.update(shard_params(module.parameters(), predicate, group=group))


def shard_linear(
    module: Module,
    sharding: str,
    *,
    segments: Union[int, list] = 1,
    group: Optional[mx.distributed.Group] = None,
) -> Module:
    """A new sharded layer from a :class:`~funcnn.Linear` or :class:`~funcnn.QuantizedLinear`.

    ``"all-to-sharded"`` gives an :class:`AllToShardedLinear` (quantized:
    :class:`QuantizedAllToShardedLinear`), ``"sharded-to-all"`` a
    :class:`ShardedToAllLinear` (:class:`QuantizedShardedToAllLinear`).
    ``module`` is left unchanged.

    Example:
        >>> import funcnn as nn
        >>> from funcnn.layers.distributed import shard_linear
        >>> shard_linear(nn.Linear(4, 6), "sharded-to-all")
        ShardedToAllLinear(input_dims=4, output_dims=6, bias=True)
    """
    _check_sharding(sharding)
    is_linear = isinstance(module, Linear)
    if not is_linear and not hasattr(module, "bits"):
        # mlx.nn sends any non-Linear down the quantized path, to fail with
        # "'X' object has no attribute 'bits'".
        raise TypeError(
            "shard_linear expects a Linear or QuantizedLinear module, "
            f"received {type(module).__name__}."
        )
    fns = {
        ("all-to-sharded", True): AllToShardedLinear.from_linear,
        ("all-to-sharded", False): QuantizedAllToShardedLinear.from_quantized_linear,
        ("sharded-to-all", True): ShardedToAllLinear.from_linear,
        ("sharded-to-all", False): QuantizedShardedToAllLinear.from_quantized_linear,
    }
    return fns[sharding, is_linear](module, segments=segments, group=group)


def _from_linear(cls: type, layer: Module, sharding: str, segments: Segments, group: Any):
    group = group or mx.distributed.init()
    output_dims, input_dims = layer.weight.shape
    sharded = cls(input_dims, output_dims, hasattr(layer, "bias"), group)
    sharded.update(shard_params(layer.parameters(), sharding, segments=segments, group=group))
    return sharded


def _from_quantized(cls: type, layer: Module, sharding: str, segments: Segments, group: Any):
    group = group or mx.distributed.init()
    output_dims, input_dims = layer.weight.shape
    input_dims = (input_dims * 32) // layer.bits
    sharded = cls(
        input_dims,
        output_dims,
        hasattr(layer, "bias"),
        group_size=layer.group_size,
        bits=layer.bits,
        mode=getattr(layer, "mode", "affine"),
        group=group,
    )
    sharded.update(shard_params(layer.parameters(), sharding, segments=segments, group=group))
    return sharded


class AllToShardedLinear(Module):
    """A linear layer whose output is sharded across ``group``; see :func:`funcnn.functional.all_to_sharded_linear`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> layer = nn.AllToShardedLinear(4, 6)
        >>> layer
        AllToShardedLinear(input_dims=4, output_dims=6, bias=True)
        >>> layer(mx.ones((2, 4))).shape
        (2, 6)
    """

    def __init__(
        self,
        input_dims: int,
        output_dims: int,
        bias: bool = True,
        group: Optional[mx.distributed.Group] = None,
    ) -> None:
        super().__init__()
        self.group = _resolve_group(group)
        adopt(self, all_to_sharded_linear(input_dims, output_dims, bias, self.group).init())

    def _extra_repr(self) -> str:
        out_dims, in_dims = self.weight.shape
        out_dims *= self.group.size()
        return f"input_dims={in_dims}, output_dims={out_dims}, bias={'bias' in self}"

    def __call__(self, x: mx.array) -> mx.array:
        return all_to_sharded_linear_apply(self, x, group=self.group)

    @classmethod
    def from_linear(
        cls,
        linear_layer: Module,
        *,
        segments: Union[int, list] = 1,
        group: Optional[mx.distributed.Group] = None,
    ) -> AllToShardedLinear:
        """This process's output rows of ``linear_layer``, as a new layer.

        Example:
            >>> import funcnn as nn
            >>> nn.AllToShardedLinear.from_linear(nn.Linear(4, 6, bias=False))
            AllToShardedLinear(input_dims=4, output_dims=6, bias=False)
        """
        return _from_linear(cls, linear_layer, "all-to-sharded", segments, group)


class ShardedToAllLinear(Module):
    """A linear layer whose input is sharded across ``group``; see :func:`funcnn.functional.sharded_to_all_linear`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> layer = nn.ShardedToAllLinear(4, 6, bias=False)
        >>> layer
        ShardedToAllLinear(input_dims=4, output_dims=6, bias=False)
        >>> layer(mx.ones((2, 4))).shape
        (2, 6)
    """

    def __init__(
        self,
        input_dims: int,
        output_dims: int,
        bias: bool = True,
        group: Optional[mx.distributed.Group] = None,
    ) -> None:
        super().__init__()
        self.group = _resolve_group(group)
        adopt(self, sharded_to_all_linear(input_dims, output_dims, bias, self.group).init())

    def _extra_repr(self) -> str:
        out_dims, in_dims = self.weight.shape
        in_dims *= self.group.size()
        return f"input_dims={in_dims}, output_dims={out_dims}, bias={'bias' in self}"

    def __call__(self, x: mx.array) -> mx.array:
        return sharded_to_all_linear_apply(self, x, group=self.group)

    @classmethod
    def from_linear(
        cls,
        linear_layer: Module,
        *,
        segments: Union[int, list] = 1,
        group: Optional[mx.distributed.Group] = None,
    ) -> ShardedToAllLinear:
        """This process's input columns of ``linear_layer``, as a new layer.

        Example:
            >>> import funcnn as nn
            >>> nn.ShardedToAllLinear.from_linear(nn.Linear(4, 6))
            ShardedToAllLinear(input_dims=4, output_dims=6, bias=True)
        """
        return _from_linear(cls, linear_layer, "sharded-to-all", segments, group)


def _init_quantized(module: Module, pair: Any) -> None:
    params = pair.init()
    module.weight, module.scales = params["weight"], params["scales"]
    # mlx.nn stores ``biases = None`` (a plain attribute) for modes without them.
    module.biases = params.get("biases")
    if "bias" in params:
        module.bias = params["bias"]
    module.freeze()


def _quantized_repr(module: Module, in_dims: int, out_dims: int) -> str:
    return (
        f"input_dims={in_dims}, output_dims={out_dims}, bias={'bias' in module}, "
        f"group_size={module.group_size}, bits={module.bits}, mode={module.mode}"
    )


_UNFREEZE_DOC = """Unfreeze the sub-modules; this layer's own parameters stay frozen.

        Returns the module, as :meth:`funcnn.Module.unfreeze` does (mlx.nn's
        override returns ``None``).

        Example:
            >>> import funcnn as nn
            >>> nn.{name}(64, 4).unfreeze().trainable_parameters()
            {{}}
        """


class QuantizedAllToShardedLinear(Module):
    """:class:`AllToShardedLinear` with a quantized, frozen weight; see :func:`funcnn.functional.quantized_all_to_sharded_linear`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> layer = nn.QuantizedAllToShardedLinear(64, 4)
        >>> layer
        QuantizedAllToShardedLinear(input_dims=64, output_dims=4, bias=True, group_size=64, bits=4, mode=affine)
        >>> layer(mx.ones((2, 64))).shape
        (2, 4)
    """

    def __init__(
        self,
        input_dims: int,
        output_dims: int,
        bias: bool = True,
        group_size: int = 64,
        bits: int = 4,
        mode: str = "affine",
        group: Optional[mx.distributed.Group] = None,
    ) -> None:
        super().__init__()
        self.group_size = group_size
        self.bits = bits
        self.mode = mode
        self.group = _resolve_group(group)
        _init_quantized(
            self, quantized_all_to_sharded_linear(input_dims, output_dims, bias, group_size, bits, mode, self.group)
        )

    def unfreeze(self, *args: Any, **kwargs: Any) -> Module:
        super().unfreeze(*args, **kwargs)
        self.freeze(recurse=False)
        return self

    unfreeze.__doc__ = _UNFREEZE_DOC.format(name="QuantizedAllToShardedLinear")

    def _extra_repr(self) -> str:
        out_dims, in_dims = self.weight.shape
        in_dims = (in_dims * 32) // self.bits
        return _quantized_repr(self, in_dims, out_dims * self.group.size())

    def __call__(self, x: mx.array) -> mx.array:
        return quantized_all_to_sharded_linear_apply(
            self, x, group_size=self.group_size, bits=self.bits, mode=self.mode,
            group=self.group,
        )

    @classmethod
    def from_quantized_linear(
        cls,
        quantized_linear_layer: Module,
        *,
        segments: Union[int, list] = 1,
        group: Optional[mx.distributed.Group] = None,
    ) -> QuantizedAllToShardedLinear:
        """This process's output rows of a :class:`~funcnn.QuantizedLinear`, as a new layer.

        Example:
            >>> import funcnn as nn
            >>> layer = nn.QuantizedAllToShardedLinear(64, 4)
            >>> nn.QuantizedAllToShardedLinear.from_quantized_linear(layer).weight.shape
            (4, 8)
        """
        return _from_quantized(cls, quantized_linear_layer, "all-to-sharded", segments, group)


class QuantizedShardedToAllLinear(Module):
    """:class:`ShardedToAllLinear` with a quantized, frozen weight; see :func:`funcnn.functional.quantized_sharded_to_all_linear`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> layer = nn.QuantizedShardedToAllLinear(64, 4, bias=False, bits=8)
        >>> layer
        QuantizedShardedToAllLinear(input_dims=64, output_dims=4, bias=False, group_size=64, bits=8, mode=affine)
        >>> layer(mx.ones((2, 64))).shape
        (2, 4)
    """

    def __init__(
        self,
        input_dims: int,
        output_dims: int,
        bias: bool = True,
        group_size: int = 64,
        bits: int = 4,
        mode: str = "affine",
        group: Optional[mx.distributed.Group] = None,
    ) -> None:
        super().__init__()
        self.group_size = group_size
        self.bits = bits
        self.mode = mode
        self.group = _resolve_group(group)
        _init_quantized(
            self, quantized_sharded_to_all_linear(input_dims, output_dims, bias, group_size, bits, mode, self.group)
        )

    def unfreeze(self, *args: Any, **kwargs: Any) -> Module:
        super().unfreeze(*args, **kwargs)
        self.freeze(recurse=False)
        return self

    unfreeze.__doc__ = _UNFREEZE_DOC.format(name="QuantizedShardedToAllLinear")

    def _extra_repr(self) -> str:
        out_dims, in_dims = self.weight.shape
        in_dims = (in_dims * 32) // self.bits * self.group.size()
        return _quantized_repr(self, in_dims, out_dims)

    def __call__(self, x: mx.array) -> mx.array:
        return quantized_sharded_to_all_linear_apply(
            self, x, group_size=self.group_size, bits=self.bits, mode=self.mode,
            group=self.group,
        )

    @classmethod
    def from_quantized_linear(
        cls,
        quantized_linear_layer: Module,
        *,
        segments: Union[int, list] = 1,
        group: Optional[mx.distributed.Group] = None,
    ) -> QuantizedShardedToAllLinear:
        """This process's input columns of a :class:`~funcnn.QuantizedLinear`, as a new layer.

        Example:
            >>> import funcnn as nn
            >>> layer = nn.QuantizedShardedToAllLinear(64, 4)
            >>> nn.QuantizedShardedToAllLinear.from_quantized_linear(layer).scales.shape
            (4, 1)
        """
        return _from_quantized(cls, quantized_linear_layer, "sharded-to-all", segments, group)


def _maybe_shard(module: Module, key: str, value: Any) -> bool:
    # A nested FullyShardedModule shards (and gathers) its own parameters.
    if isinstance(value, FullyShardedModule):
        return False
    return Module.valid_parameter_filter(module, key, value)


class FullyShardedModule(Module):
    """``module`` holding one shard (axis 0) of every parameter, gathered for each call.

    The forward pass gathers the full parameters (cast to ``compute_dtype``
    when given) with :func:`funcnn.functional.gather_function`; the backward
    pass reduce-scatters their gradients, so each process stores and updates
    only its shard.  Build it with :func:`fully_shard`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> layer = nn.FullyShardedModule(nn.Linear(3, 4))
        >>> layer
        FullyShardedModule(num_sharded_params=2
          (module): Linear(input_dims=3, output_dims=4, bias=True)
        )
        >>> layer(mx.ones((2, 3))).shape
        (2, 4)
    """

    def __init__(
        self,
        module: Module,
        group: Optional[mx.distributed.Group] = None,
        compute_dtype: Optional[mx.Dtype] = None,
    ) -> None:
        super().__init__()
        group = _resolve_group(group)
        n = group.size()
        shard_tree = module.filter_and_map(_maybe_shard)
        flat = tree_flatten(shard_tree)
        _check_shardable(flat, n)
        # Private state outside the items, as mlx.nn keeps it.
        object.__setattr__(self, "_paths", [k for k, _ in flat])
        module.update(shard_params(shard_tree, lambda p, w: 0, group=group))
        self.module = module
        self._gather_fn = gather_function(
            group, [a.shape for _, a in flat], [a.size // n for _, a in flat], compute_dtype
        )

    def _extra_repr(self) -> str:
        return f"num_sharded_params={len(self._paths)}"

    def _gathered_call(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        if not self._paths:
            # Nothing to gather (mlx.nn fails in mx.concatenate on an empty list).
            return fn(*args, **kwargs)
        shard_tree = self.module.filter_and_map(_maybe_shard)
        shards = [a for _, a in tree_flatten(shard_tree)]
        fulls = self._gather_fn(shards)
        self.module.update(tree_unflatten(list(zip(self._paths, fulls))))
        try:
            return fn(*args, **kwargs)
        finally:
            # The old shards come back, so state the call replaced (BatchNorm's running
            # statistics) is lost -- as in mlx.nn.
            self.module.update(shard_tree)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._gathered_call(self.module, *args, **kwargs)

    def as_linear(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped module's ``as_linear`` (an embedding's output projection), gathered.

        Example:
            >>> import mlx.core as mx
            >>> import funcnn as nn
            >>> layer = nn.FullyShardedModule(nn.Embedding(5, 3))
            >>> layer.as_linear(mx.ones((2, 3))).shape
            (2, 5)
        """
        return self._gathered_call(self.module.as_linear, *args, **kwargs)


def fully_shard(
    module: Module,
    *,
    group: Optional[mx.distributed.Group] = None,
    compute_dtype: Optional[mx.Dtype] = None,
) -> Module:
    """``module`` wrapped in a :class:`FullyShardedModule`, or ``module`` itself.

    ``module`` comes back unchanged on a single process, when it is already
    wrapped, or when it has no parameters to shard.

    Example:
        >>> import funcnn as nn
        >>> layer = nn.Linear(3, 4)
        >>> nn.fully_shard(layer) is layer   # one process: nothing to shard
        True
    """
    group = _resolve_group(group)
    if group.size() == 1:
        return module
    if isinstance(module, FullyShardedModule):
        return module
    wrapped = FullyShardedModule(module, group=group, compute_dtype=compute_dtype)
    return wrapped if wrapped._paths else module
