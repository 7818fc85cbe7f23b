"""Containers, as ``mlx.nn.layers.containers``: :class:`Sequential`."""

from __future__ import annotations

from typing import Any

import mlx.core as mx

from .base import Module

__all__ = ["Sequential"]


class Sequential(Module):
    """Calls its layers in order; plain callables are allowed (pure twin: :func:`funcnn.functional.sequential`).

    Example:
        >>> import funcnn as nn
        >>> nn.Sequential(nn.Linear(2, 3), nn.ReLU())
        Sequential(
          (layers.0): Linear(input_dims=2, output_dims=3, bias=True)
          (layers.1): ReLU()
        )
    """

    def __init__(self, *modules: Any) -> None:
        super().__init__()
        self.layers = list(modules)

    def __call__(self, x: mx.array) -> mx.array:
        for layer in self.layers:
            x = layer(x)
        return x
