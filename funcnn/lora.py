"""LoRA on Modules: :class:`LoRALinear` (as mlx-lm's), :func:`add_lora`, :func:`fuse_lora`.

The math is :mod:`funcnn.functional.lora`.  :class:`LoRALinear` holds the
wrapped layer as its ``linear`` child and a ``dropout`` child, and calls them,
so any linear-like Module works as the base (:class:`~funcnn.Linear`, or a
quantized linear layer: a Module with a packed ``uint32`` ``weight`` and
``bits``, ``group_size``, ``mode``, ``scales`` as :class:`mlx.nn.QuantizedLinear`
has them).

Example:
    >>> import mlx.core as mx
    >>> import funcnn as nn
    >>> from funcnn.lora import add_lora, fuse_lora
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> model = add_lora(model, r=2)
    >>> sorted(k for k, _ in nn.tree_flatten(model.trainable_parameters()))
    ['layers.0.lora_a', 'layers.0.lora_b', 'layers.2.lora_a', 'layers.2.lora_b']
    >>> type(fuse_lora(model).layers[0]).__name__
    'Linear'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

import mlx.core as mx

from .functional.dropout import keep_probability
from .functional.lora import lora_adapters, lora_update, merge_lora
from .layers import quantized as _quantized
from .layers._template import adopt
from .layers.base import Module
from .layers.dropout import Dropout
from .layers.linear import Linear
from .tree import tree_unflatten

__all__ = ["LoRALinear", "add_lora", "fuse_lora"]

Predicate = Callable[[str, Module], bool]


def _quantized_linear_class() -> Optional[type]:
    # Looked up at call time: the quantized family may gain the class later.
    return getattr(_quantized, "QuantizedLinear", None)


def _is_packed(linear: Module) -> bool:
    return linear["weight"].dtype == mx.uint32


class LoRALinear(Module):
    """A linear layer plus a trainable low-rank update; see :func:`funcnn.functional.lora.lora`.

    ``y = linear(x) + (scale * ((dropout(x) @ lora_a) @ lora_b)).astype(x.dtype)``.
    The constructor makes a fresh ``Linear(input_dims, output_dims, bias)``
    child, then the adapters, drawing from the global random state as mlx-lm
    does; :meth:`from_base` wraps an existing layer instead.  ``scale`` is
    read at every call.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> from funcnn.lora import LoRALinear
        >>> layer = LoRALinear.from_base(nn.Linear(4, 3), r=2, scale=10.0)
        >>> list(layer), layer.lora_a.shape, layer.scale
        (['linear', 'dropout', 'lora_a', 'lora_b'], (4, 2), 10.0)
        >>> layer(mx.ones((5, 4))).shape
        (5, 3)
    """

    @staticmethod
    def from_base(
        linear: Module, r: int = 8, dropout: float = 0.0, scale: float = 20.0
    ) -> LoRALinear:
        """Wrap the existing linear-like ``linear`` (it becomes the ``linear`` child).

        As in mlx-lm, a throwaway ``Linear`` is drawn by the constructor before
        the adapters (never computed, MLX being lazy), so a seeded
        ``from_base`` gives mlx-lm's ``lora_a``.

        Example:
            >>> import funcnn as nn
            >>> from funcnn.lora import LoRALinear
            >>> base = nn.Linear(6, 2)
            >>> LoRALinear.from_base(base).linear is base
            True
        """
        weight = linear.get("weight") if isinstance(linear, Module) else None
        if not isinstance(weight, mx.array) or weight.ndim != 2:
            raise ValueError(
                "LoRALinear.from_base wraps a linear-like Module with a 2-D weight "
                f"(output_dims, input_dims), received {type(linear).__name__}"
                + ("" if weight is None else f" with a weight of shape {weight.shape}")
                + "."
            )
        output_dims, input_dims = weight.shape
        if _is_packed(linear):
            input_dims = input_dims * 32 // linear.bits
        lora_lin = LoRALinear(
            input_dims=input_dims, output_dims=output_dims, r=r, dropout=dropout, scale=scale
        )
        lora_lin.linear = linear
        return lora_lin

    def __init__(
        self,
        input_dims: int,
        output_dims: int,
        r: int = 8,
        dropout: float = 0.0,
        scale: float = 20.0,
        bias: bool = False,
    ) -> None:
        super().__init__()
        keep_probability(dropout)  # checked before drawing anything
        self.linear = Linear(input_dims, output_dims, bias=bias)
        self.dropout = Dropout(p=dropout)
        self.scale = scale
        adopt(self, lora_adapters(input_dims, output_dims, r))

    def __call__(self, x: mx.array) -> mx.array:
        y = self.linear(x)
        return lora_update(self, self.dropout(x), y, scale=self.scale)

    def fuse(self, dequantize: bool = False) -> Module:
        """A plain layer computing what this one computes in evaluation mode.

        A ``Linear`` with the adapter folded into its weight
        (:func:`funcnn.functional.lora.merge_lora`); a quantized base gives a
        ``QuantizedLinear`` with its settings, unless ``dequantize``.

        Example:
            >>> import mlx.core as mx
            >>> import funcnn as nn
            >>> from funcnn.lora import LoRALinear
            >>> layer = LoRALinear(4, 3, r=2)
            >>> layer.lora_b = mx.ones((2, 3))
            >>> x = mx.ones((1, 4))
            >>> bool(mx.allclose(layer.fuse()(x), layer(x), atol=1e-5))
            True
        """
        linear = self.linear
        bias = "bias" in linear
        packed = _is_packed(linear)
        params = {"base": dict(linear), "lora_a": self.lora_a, "lora_b": self.lora_b}
        if packed:
            merged = merge_lora(
                params,
                scale=self.scale,
                group_size=linear.group_size,
                bits=linear.bits,
                mode=linear.mode,
            )
        else:
            merged = merge_lora(params, scale=self.scale)
        output_dims, input_dims = merged["weight"].shape
        fused = Linear(input_dims, output_dims, bias=bias)
        fused.weight = merged["weight"]
        if bias:
            fused.bias = merged["bias"]
        if packed and not dequantize:
            quantized_linear = _quantized_linear_class()
            if quantized_linear is None:
                raise NotImplementedError(
                    "LoRALinear.fuse: re-quantizing needs funcnn.QuantizedLinear, which this "
                    "funcnn lacks; pass dequantize=True for a float Linear."
                )
            fused = quantized_linear.from_linear(
                fused, linear.group_size, linear.bits, mode=linear.mode
            )
        return fused


def _is_linear_like(module: Any) -> bool:
    quantized_linear = _quantized_linear_class()
    return isinstance(module, Linear) or (
        quantized_linear is not None and isinstance(module, quantized_linear)
    )


def add_lora(
    model: Module,
    predicate: Optional[Predicate] = None,
    *,
    r: int = 8,
    scale: float = 20.0,
    dropout: float = 0.0,
) -> Module:
    """Wrap ``model``'s linear layers in :class:`LoRALinear` and train only the adapters.

    Every ``Linear`` (and ``QuantizedLinear``) below ``model`` for which
    ``predicate(path, module)`` is true (all of them without a predicate) is
    replaced, via :meth:`Module.update_modules`, by
    ``LoRALinear.from_base(module, r, dropout, scale)``; layers already inside
    a :class:`LoRALinear` are left alone, so calling it twice adds nothing.
    Then the whole model is frozen except the adapters (``lora_a``,
    ``lora_b``) of every :class:`LoRALinear`.  Returns ``model``.

    Example:
        >>> import funcnn as nn
        >>> from funcnn.lora import add_lora
        >>> mha = nn.MultiHeadAttention(8, 2)
        >>> mha = add_lora(mha, lambda path, m: path in ("query_proj", "value_proj"), r=4)
        >>> [type(mha[k]).__name__ for k in ("query_proj", "key_proj", "value_proj")]
        ['LoRALinear', 'Linear', 'LoRALinear']
        >>> [k for k, _ in nn.tree_flatten(mha.trainable_parameters())]
        ['query_proj.lora_a', 'query_proj.lora_b', 'value_proj.lora_a', 'value_proj.lora_b']
    """
    if not isinstance(model, Module):
        raise TypeError(f"add_lora takes a funcnn Module, received {type(model).__name__}.")
    if isinstance(model, LoRALinear) or _is_linear_like(model):
        raise ValueError(
            f"add_lora replaces layers inside a model, received a {type(model).__name__} "
            "itself; use LoRALinear.from_base(layer) for a single layer."
        )
    keep_probability(dropout)  # fail before any layer is replaced
    named = model.named_modules()
    inside_lora = [p for p, m in named if isinstance(m, LoRALinear)]

    def under_lora(path: str) -> bool:
        return any(path.startswith(p + ".") for p in inside_lora)

    replacements = [
        (path, LoRALinear.from_base(m, r=r, dropout=dropout, scale=scale))
        for path, m in named
        if path
        and _is_linear_like(m)
        and not under_lora(path)
        and (predicate is None or predicate(path, m))
    ]
    if replacements:
        model.update_modules(tree_unflatten(replacements))
    model.freeze()
    for _, m in model.named_modules():
        if isinstance(m, LoRALinear):
            m.unfreeze(recurse=False, keys=["lora_a", "lora_b"])
    return model


def fuse_lora(model: Module, dequantize: bool = False) -> Module:
    """Replace every :class:`LoRALinear` below ``model`` by its :meth:`~LoRALinear.fuse`.

    The fused layers are new (unfrozen) Modules; the rest of the model is
    untouched.  Returns ``model``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> from funcnn.lora import add_lora, fuse_lora
        >>> model = add_lora(nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1)), r=1)
        >>> [type(m).__name__ for m in fuse_lora(model).layers]
        ['Linear', 'Linear']
    """
    if isinstance(model, LoRALinear):
        raise ValueError(
            "fuse_lora replaces layers inside a model, received a LoRALinear itself; "
            "use its fuse() method."
        )
    fused = [
        (path, m.fuse(dequantize=dequantize))
        for path, m in model.named_modules()
        if path and isinstance(m, LoRALinear)
    ]
    if fused:
        model.update_modules(tree_unflatten(fused))
    return model
