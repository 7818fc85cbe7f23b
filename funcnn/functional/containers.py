"""Composition (MLX's ``layers/containers.py``): ``sequential``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Union

import mlx.core as mx

from ._pair import Key, Pair, apply_layer, pair_factory, split_key

__all__ = ["sequential"]

Layer = Union[Pair, Callable[[mx.array], mx.array]]


@pair_factory
def sequential(*layers: Layer) -> Pair:
    """Apply ``layers`` in order (as :class:`mlx.nn.Sequential`).

    Each layer is a pair or a plain callable (``mx.tanh``).  Parameters are
    ``{"layers": [params_0, params_1, ...]}`` with ``{}`` for callables and
    parameter-less pairs, so names match ``mlx.nn`` (``"layers.0.weight"``).
    An explicit ``init`` key is split into one key per layer.

    ``apply(params, x, key=None, training=True)``: ``training`` goes to the
    layers that take it (dropout, batch norm, ...), and ``key`` is split
    among the layers that take one, in order (without a key they draw from
    MLX's global random state in order, as ``mlx.nn.Sequential`` does).  When
    a layer is stateful the sequential is too, and returns ``(output,
    updates)`` with ``updates = {"layers": [...]}`` (``{}`` for layers
    without state).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> mlp = F.sequential(F.linear(4, 8), F.relu(), F.dropout(0.1), F.linear(8, 2), mx.tanh)
        >>> params = mlp.init(mx.random.key(0))
        >>> mlp.apply(params, mx.ones((3, 4)), key=mx.random.key(1)).shape
        (3, 2)
        >>> mlp.takes_key, mlp.stateful
        (True, False)
    """
    for i, layer in enumerate(layers):
        if isinstance(layer, dict):
            # A Module is callable, but its parameters would be hidden from
            # init/apply (and from gradients): ask for its pair instead.
            raise TypeError(
                f"sequential: layer {i} is a {type(layer).__name__} module, whose "
                "parameters a pure pair cannot see; pass its functional pair "
                f"(e.g. F.linear(...) for nn.Linear(...)) or use nn.Sequential."
            )
        if not isinstance(layer, Pair) and not callable(layer):
            raise TypeError(
                f"sequential: layer {i} must be a pair or a callable, got {type(layer).__name__}"
            )
    pairs = [layer for layer in layers if isinstance(layer, Pair)]
    keyed = [i for i, layer in enumerate(layers) if isinstance(layer, Pair) and layer.takes_key]
    stateful = any(p.stateful for p in pairs)

    def init(key: Key = None) -> dict:
        keys = split_key(key, len(layers))
        return {
            "layers": [
                layer.init(k) if isinstance(layer, Pair) else {}
                for layer, k in zip(layers, keys)
            ]
        }

    def apply(params: dict, x: mx.array, *, key: Key = None, training: bool = True) -> Any:
        keys = dict(zip(keyed, split_key(key, len(keyed))))
        updates = []
        for i, (layer, p) in enumerate(zip(layers, params["layers"])):
            x, u = apply_layer(layer, p, (x,), keys.get(i), training)
            updates.append(u)
        return (x, {"layers": updates}) if stateful else x

    def trainable(params: dict) -> dict:
        return {
            "layers": [
                layer.trainable(p) if isinstance(layer, Pair) else {}
                for layer, p in zip(layers, params["layers"])
            ]
        }

    return Pair(
        init,
        apply,
        "sequential",
        takes_key=bool(keyed),
        takes_training=any(p.takes_training for p in pairs),
        stateful=stateful,
        trainable=trainable,
    )
