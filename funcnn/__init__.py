"""funcnn: neural networks for MLX, functional at the core, familiar on the surface.

``import funcnn as nn`` stands in for ``import mlx.nn as nn``; every layer is
also a pure ``(init, apply)`` pair in :mod:`funcnn.functional`.

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

from . import functional, losses, transforms, tree
from ._blas import blas_info
from ._functional_call import functional_call
from .checkpoint import load, save
from .functional.activations import gelu, gelu_approx, gelu_fast_approx, relu, silu
from .layers import (
    GELU,
    Conv1d,
    Conv2d,
    Embedding,
    GroupNorm,
    LayerNorm,
    Linear,
    MultiHeadAttention,
    ReLU,
    RMSNorm,
    RoPE,
    Sequential,
    SiLU,
)
from .module import Module, value_and_grad
from .summary import ModelSummary, summary
from .tree import tree_flatten, tree_map, tree_map_with_path, tree_reduce, tree_unflatten

__version__ = "0.1.0"

__all__ = [
    "blas_info",
    "Module",
    "value_and_grad",
    "functional_call",
    "save",
    "load",
    "summary",
    "ModelSummary",
    "transforms",
    "Linear",
    "Embedding",
    "Conv1d",
    "Conv2d",
    "LayerNorm",
    "RMSNorm",
    "GroupNorm",
    "RoPE",
    "MultiHeadAttention",
    "Sequential",
    "ReLU",
    "GELU",
    "SiLU",
    "relu",
    "silu",
    "gelu",
    "gelu_approx",
    "gelu_fast_approx",
    "functional",
    "losses",
    "tree",
    "tree_flatten",
    "tree_unflatten",
    "tree_map",
    "tree_map_with_path",
    "tree_reduce",
]
