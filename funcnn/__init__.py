"""funcnn: neural networks for MLX, functional at the core, familiar on the surface.

``import funcnn as nn`` stands in for ``import mlx.nn as nn``: the layer
classes (:mod:`funcnn.layers`, one module per MLX family), :class:`Module`,
the activation functions, :mod:`funcnn.init`, :mod:`funcnn.losses` and
:mod:`funcnn.utils`, under :mod:`mlx.nn`'s names.  Every layer is also a pure
``(init, apply)`` pair in :mod:`funcnn.functional`; beyond :mod:`mlx.nn` are
:mod:`funcnn.transforms`, :mod:`funcnn.tree`, checkpoints (:func:`save`,
:func:`load`) and :func:`summary`.

Example:
    >>> import mlx.core as mx
    >>> import funcnn as nn
    >>> import funcnn.functional as F
    >>> model = nn.Linear(3, 2)                       # stateful, as mlx.nn
    >>> layer = F.linear(3, 2)                        # pure
    >>> params = layer.init(mx.random.key(0))
    >>> layer.apply(params, mx.ones((1, 3))).shape == model(mx.ones((1, 3))).shape
    True
"""

# First, before anything imports mlx.core: let MLX's CPU matmuls use OpenBLAS (see funcnn/_blas.py).
from . import _blas

_blas.preload()

from . import functional, init, layers, lora, losses, transforms, tree, utils  # noqa: E402
from ._blas import blas_info  # noqa: E402
from .checkpoint import load, save  # noqa: E402
from .layers import *  # noqa: E402, F403
from .layers import FAMILIES as _FAMILIES  # noqa: E402
from .layers import FAMILY_NAMES as _FAMILY_NAMES  # noqa: E402
from .layers import base  # noqa: E402, F401

# The family modules, as mlx.nn exposes them (``nn.linear`` is ``mlx.nn.layers.linear``).
globals().update(zip(_FAMILY_NAMES, _FAMILIES))
from .summary import ModelSummary, summary  # noqa: E402
from .transforms import functional_call, stateful_call  # noqa: E402
from .tree import (  # noqa: E402
    tree_flatten,
    tree_map,
    tree_map_with_path,
    tree_reduce,
    tree_unflatten,
)
from .utils import average_gradients, value_and_grad  # noqa: E402

__version__ = "0.1.0"

# What mlx.nn exports (its layers, Module, the utilities it re-exports and its
# submodules), then what funcnn adds.
__all__ = [
    *layers.__all__,
    "value_and_grad",
    "average_gradients",
    "init",
    "losses",
    "utils",
    "layers",
    *_FAMILY_NAMES,
    "base",
    # funcnn's own
    "functional",
    "transforms",
    "functional_call",
    "stateful_call",
    "tree",
    "tree_flatten",
    "tree_unflatten",
    "tree_map",
    "tree_map_with_path",
    "tree_reduce",
    "save",
    "load",
    "summary",
    "ModelSummary",
    "blas_info",
    "lora",
]
