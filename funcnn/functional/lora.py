"""Low-rank adapters (LoRA) around linear-like pairs; math as ``mlx_lm.tuner.lora.LoRALinear``.

Not an :mod:`mlx.nn` family: a funcnn extra, with :mod:`funcnn.lora` as its
facade.  :func:`lora` wraps any pair whose ``init`` gives a ``weight`` of
shape ``(output_dims, input_dims)`` -- :func:`~funcnn.functional.linear`, or a
quantized linear pair whose packed ``uint32`` weight holds ``32 // bits``
values per element -- and adds two adapter matrices, ``lora_a``
``(input_dims, r)`` and ``lora_b`` ``(r, output_dims)``:

    ``y = base(x) + (scale * ((dropout(x) @ lora_a) @ lora_b)).astype(x.dtype)``

Only the adapters train (``pair.trainable``); :func:`merge_lora` folds them
into the base weight.  ``scale`` is mlx-lm's multiplier itself (its LoRA
configs say ``scale``, not ``alpha``): for a PEFT-style ``alpha`` pass
``scale=alpha / r``.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Optional

import mlx.core as mx

from ..tree import tree_map
from ._pair import Key, Pair, apply_layer, pair_factory, split_key
from .dropout import dropout_apply, keep_probability

__all__ = ["lora", "lora_apply", "lora_update", "lora_adapters", "merge_lora"]


def lora_adapters(input_dims: int, output_dims: int, r: int = 8, key: Key = None) -> dict:
    """Fresh adapters: ``lora_a`` uniform on ``[-k, k]`` (``k = 1/sqrt(input_dims)``), ``lora_b`` 0.

    Without ``key``, ``lora_a`` is one draw from MLX's global random state, as
    ``mlx_lm``'s ``LoRALinear`` constructor makes it.  A zero ``lora_b`` makes
    a fresh adapter leave its base's output unchanged.

    Example:
        >>> import mlx.core as mx
        >>> from funcnn.functional.lora import lora_adapters
        >>> p = lora_adapters(6, 3, r=2, key=mx.random.key(0))
        >>> p["lora_a"].shape, p["lora_b"].tolist()
        ((6, 2), [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    """
    scale = 1 / math.sqrt(input_dims)
    return {
        "lora_a": mx.random.uniform(low=-scale, high=scale, shape=(input_dims, r), key=key),
        "lora_b": mx.zeros(shape=(r, output_dims)),
    }


def lora_update(params: dict, x: mx.array, y: mx.array, *, scale: float) -> mx.array:
    """``y + (scale * ((x @ lora_a) @ lora_b)).astype(x.dtype)``: the adapter added to ``y``.

    ``x`` is the adapter's input (already through dropout), ``y`` the base
    layer's output on the undropped input.  Shared by :func:`lora_apply` and
    :class:`funcnn.lora.LoRALinear`, in mlx-lm's op order.

    Example:
        >>> import mlx.core as mx
        >>> from funcnn.functional.lora import lora_update
        >>> p = {"lora_a": mx.ones((3, 1)), "lora_b": mx.ones((1, 2))}
        >>> lora_update(p, mx.ones((1, 3)), mx.zeros((1, 2)), scale=0.5).tolist()
        [[1.5, 1.5]]
    """
    z = (x @ params["lora_a"]) @ params["lora_b"]
    return y + (scale * z).astype(x.dtype)


def lora_apply(
    params: dict,
    x: mx.array,
    *,
    base: Pair,
    scale: float,
    keep: float = 1.0,
    key: Key = None,
    training: bool = True,
) -> Any:
    """The base pair on ``params["base"]`` plus the adapter on dropped-out ``x``.

    ``keep`` is the dropout's keep probability ``1 - p``.  Without ``key`` the
    dropout mask is drawn from MLX's global random state (the draw of
    ``mlx.nn.Dropout``); with one it is a function of the key.  If ``base``
    takes a key too, ``key`` is split between the two, base first.  A
    stateful ``base`` makes the result ``(output, updates)``, the updates under
    ``"base"``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> from funcnn.functional.lora import lora_apply
        >>> params = {"base": {"weight": mx.ones((2, 3))},
        ...           "lora_a": mx.ones((3, 1)), "lora_b": mx.ones((1, 2))}
        >>> lora_apply(params, mx.ones((1, 3)), base=F.linear(3, 2), scale=2.0).tolist()
        [[9.0, 9.0]]
    """
    if base.takes_key:
        base_key, drop_key = split_key(key, 2)
    else:
        base_key, drop_key = None, key
    y, updates = apply_layer(base, params["base"], [x], base_key, training)
    x_drop = dropout_apply({}, x, keep=keep, key=drop_key, training=training)
    out = lora_update(params, x_drop, y, scale=scale)
    if base.stateful:
        return out, ({"base": updates} if updates else {})
    return out


def _bound_setting(pair: Pair, name: str) -> Any:
    """A setting the factory bound into ``pair.apply`` with :func:`functools.partial`, or None."""
    apply = pair.apply
    return apply.keywords.get(name) if isinstance(apply, functools.partial) else None


def _base_dims(base: Pair) -> tuple[int, int]:
    """``(input_dims, output_dims)`` of a linear-like pair, read from the shape of its weight.

    MLX is lazy: a keyed ``init`` builds the parameters' graph (shapes known)
    without computing them, and leaves the global random state alone.
    """
    params = base.init(mx.random.key(0))
    weight = params.get("weight") if isinstance(params, dict) else None
    if not isinstance(weight, mx.array) or weight.ndim != 2:
        shape = getattr(weight, "shape", weight)
        got = "no 'weight'" if weight is None else f"a 'weight' of shape {shape}"
        raise ValueError(
            f"lora wraps a linear-like pair whose params hold a 2-D 'weight' "
            f"(output_dims, input_dims); the pair {base.name!r} has {got}."
        )
    output_dims, input_dims = weight.shape
    if weight.dtype == mx.uint32:
        # A packed quantized weight: each uint32 holds 32 // bits values.
        bits = _bound_setting(base, "bits")
        if not isinstance(bits, int):
            raise ValueError(
                f"lora: the pair {base.name!r} has a packed uint32 'weight', whose "
                "input_dims depend on the bits per value; its apply must bind an int "
                f"'bits' setting (functools.partial), found {bits!r}."
            )
        input_dims = input_dims * 32 // bits
    return input_dims, output_dims


def _lora_trainable(params: dict) -> dict:
    return {
        "base": tree_map(lambda _: False, params["base"]),
        "lora_a": True,
        "lora_b": True,
    }


@pair_factory
def lora(base: Pair, r: int = 8, dropout: float = 0.0, scale: float = 20.0) -> Pair:
    """A LoRA adapter around the linear-like pair ``base`` (as mlx-lm's ``LoRALinear``).

    Parameters: ``{"base": base's params, "lora_a": (input_dims, r),
    "lora_b": (r, output_dims)}`` (:func:`lora_adapters`).  ``init()`` without a
    key draws the base's parameters, then ``lora_a``, from the global random
    state: for ``base = F.linear(i, o, bias)`` the draws of
    ``LoRALinear(i, o, r, dropout, scale, bias)``.  ``apply(params, x,
    key=None, training=True)`` is :func:`lora_apply`; ``trainable(params)``
    marks only ``lora_a`` and ``lora_b``.  ``dropout`` is the probability of
    zeroing an input of the adapter (not of the base).  A base with a packed
    quantized weight must bind its ``bits`` in its ``apply``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> from funcnn.functional.lora import lora
        >>> layer = lora(F.linear(4, 3), r=2, dropout=0.1)
        >>> params = layer.init(mx.random.key(0))
        >>> list(params), params["lora_a"].shape, params["lora_b"].shape
        (['base', 'lora_a', 'lora_b'], (4, 2), (2, 3))
        >>> layer.trainable(params)
        {'base': {'weight': False, 'bias': False}, 'lora_a': True, 'lora_b': True}
        >>> y = layer.apply(params, mx.ones((5, 4)), training=False)   # lora_b = 0: the base
        >>> bool(mx.array_equal(y, F.linear_apply(params["base"], mx.ones((5, 4)))))
        True
    """
    if not isinstance(base, Pair):
        raise TypeError(
            f"lora wraps a funcnn pair (such as F.linear(...)), received {type(base).__name__}."
        )
    keep = keep_probability(dropout)
    input_dims, output_dims = _base_dims(base)

    def init(key: Key = None) -> dict:
        base_key, adapter_key = split_key(key, 2)
        params = {"base": base.init(base_key)}
        params.update(lora_adapters(input_dims, output_dims, r, adapter_key))
        return params

    apply = functools.partial(lora_apply, base=base, scale=scale, keep=keep)
    return Pair(
        init,
        apply,
        "lora",
        takes_key=True,
        takes_training=True,
        stateful=base.stateful,
        trainable=_lora_trainable,
    )


def merge_lora(
    params: dict,
    *,
    scale: float,
    group_size: Optional[int] = None,
    bits: Optional[int] = None,
    mode: str = "affine",
) -> dict:
    """The base's linear parameters with the adapter folded into ``weight``.

    ``weight + ((scale * lora_b.T) @ lora_a.T).astype(weight.dtype)``, as
    mlx-lm's ``LoRALinear.fuse``; ``bias`` is kept.  The result is parameters
    of :func:`~funcnn.functional.linear` that compute what the adapted layer
    computes in evaluation mode.  A packed quantized base weight is first
    dequantized with its ``scales``/``biases`` and ``group_size``, ``bits``,
    ``mode`` (mlx-lm's ``fuse(dequantize=True)``).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> from funcnn.functional.lora import lora, merge_lora
        >>> layer = lora(F.linear(4, 3), r=2)
        >>> params = layer.init(mx.random.key(0))
        >>> params["lora_b"] = mx.ones((2, 3))
        >>> merged = merge_lora(params, scale=20.0)
        >>> x = mx.ones((1, 4))
        >>> bool(mx.allclose(F.linear_apply(merged, x), layer.apply(params, x), atol=1e-5))
        True
    """
    base = params["base"]
    weight = base["weight"]
    if weight.dtype == mx.uint32:
        if group_size is None or bits is None:
            raise ValueError(
                "merge_lora: the base weight is packed (uint32); pass its group_size and "
                f"bits to dequantize it, received group_size={group_size!r}, bits={bits!r}."
            )
        weight = mx.dequantize(
            weight,
            base["scales"],
            base.get("biases"),
            group_size=group_size,
            bits=bits,
            mode=mode,
        )
    elif not mx.issubdtype(weight.dtype, mx.floating):
        raise ValueError(
            f"merge_lora folds the adapter into a floating-point or packed uint32 weight, "
            f"received a weight of dtype {weight.dtype}."
        )
    delta = ((scale * params["lora_b"].T) @ params["lora_a"].T).astype(weight.dtype)
    merged = {"weight": weight + delta}
    if "bias" in base:
        merged["bias"] = base["bias"]
    return merged
