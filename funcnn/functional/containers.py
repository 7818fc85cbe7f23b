"""Composition: ``sequential``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Union

import mlx.core as mx

from ._pair import Key, Pair, pair_factory, split_key

__all__ = ["sequential"]

Layer = Union[Pair, Callable[[mx.array], mx.array]]


@pair_factory
def sequential(*layers: Layer) -> Pair:
    """Apply ``layers`` in order (as :class:`mlx.nn.Sequential`).

    Each layer is a pair or a plain callable (``mx.tanh``).  Parameters are
    ``{"layers": [params_0, params_1, ...]}`` with ``{}`` for callables and
    parameter-less pairs, so names match ``mlx.nn`` (``"layers.0.weight"``).
    An explicit key is split into one key per layer.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> mlp = F.sequential(F.linear(4, 8), F.relu(), F.linear(8, 2), mx.tanh)
        >>> params = mlp.init(mx.random.key(0))
        >>> mlp.apply(params, mx.ones((3, 4))).shape
        (3, 2)
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

    def init(key: Key = None) -> dict:
        keys = split_key(key, len(layers))
        return {
            "layers": [
                layer.init(k) if isinstance(layer, Pair) else {}
                for layer, k in zip(layers, keys)
            ]
        }

    def apply(params: dict, x: mx.array) -> mx.array:
        for layer, p in zip(layers, params["layers"]):
            x = layer.apply(p, x) if isinstance(layer, Pair) else layer(x)
        return x

    return Pair(init, apply, "sequential")
