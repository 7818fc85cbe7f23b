"""The layer classes of the facade, one module per family of MLX's ``python/mlx/nn/layers/``.

``funcnn.layers.<family>`` mirrors ``mlx.nn.layers.<family>`` (and
``funcnn.layers.base`` holds :class:`~funcnn.Module`), so code importing from
MLX's submodules finds the same names here.  Each family module's ``__all__``
is the only list of its names; this package, and :mod:`funcnn`, assemble
theirs from them.
"""

from . import (
    activations,
    base,
    containers,
    convolution,
    convolution_transpose,
    distributed,
    dropout,
    embedding,
    linear,
    normalization,
    pooling,
    positional_encoding,
    quantized,
    recurrent,
    transformer,
    upsample,
)
from .activations import *  # noqa: F403
from .base import Module
from .containers import *  # noqa: F403
from .convolution import *  # noqa: F403
from .convolution_transpose import *  # noqa: F403
from .distributed import *  # noqa: F403
from .dropout import *  # noqa: F403
from .embedding import *  # noqa: F403
from .linear import *  # noqa: F403
from .normalization import *  # noqa: F403
from .pooling import *  # noqa: F403
from .positional_encoding import *  # noqa: F403
from .quantized import *  # noqa: F403
from .recurrent import *  # noqa: F403
from .transformer import *  # noqa: F403
from .upsample import *  # noqa: F403

# The family modules, in MLX's file order; each one's __all__ lists its names.
FAMILIES = (
    activations,
    containers,
    convolution,
    convolution_transpose,
    distributed,
    dropout,
    embedding,
    linear,
    normalization,
    pooling,
    positional_encoding,
    quantized,
    recurrent,
    transformer,
    upsample,
)
FAMILY_NAMES = tuple(family.__name__.rpartition(".")[2] for family in FAMILIES)

# Names mlx.nn has in their family module only (``mlx.nn.layers.upsample.upsample_nearest``),
# not in ``mlx.nn.layers`` nor ``mlx.nn``: listed by their family, not re-exported here.
FAMILY_ONLY = frozenset(
    {
        "upsample_nearest", "upsample_linear", "upsample_cubic",
        "shard_linear", "shard_inplace", "sum_gradients",
    }
)  # fmt: skip

__all__ = [
    "Module",
    *(name for family in FAMILIES for name in family.__all__ if name not in FAMILY_ONLY),
]
