"""The recipe every facade layer follows (and the one helper it needs).

A layer class of :mod:`funcnn.layers` holds no math:

* its constructor builds its functional pair (which checks the arguments,
  raising :mod:`mlx.nn`'s errors) and stores the pair's fresh parameters as
  items with :func:`adopt` -- drawing from MLX's global random state exactly
  as the :mod:`mlx.nn` constructor does -- then stores its settings as the
  same attributes :mod:`mlx.nn` stores;
* its ``__call__`` calls the family's pure math function with ``self`` as the
  parameter tree and ``self.<setting>`` for every setting, so that changing
  a setting after construction (``layer.eps = 0.1``) acts exactly as in
  :mod:`mlx.nn`, also under :mod:`funcnn.transforms` (plain attributes are
  part of a compiled function's cache key);
* a composite class (``MultiHeadAttention``, ``Sequential``) composes child
  Modules and calls them, so a child swapped with ``update_modules`` (LoRA,
  quantization) is the one that runs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["adopt"]


def adopt(module: Any, params: dict) -> None:
    """Store ``params`` (a pair's ``init()``) on ``module`` as attributes, in order.

    ``setattr`` rather than item assignment: arrays and containers become
    items through :meth:`funcnn.Module.__setattr__`, exactly as an
    :mod:`mlx.nn` constructor's ``self.weight = ...`` does.
    """
    for name, value in params.items():
        setattr(module, name, value)
