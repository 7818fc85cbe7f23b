"""The layer classes of the facade, one module per family of MLX's ``python/mlx/nn/layers/``.

``funcnn.layers.<family>`` mirrors ``mlx.nn.layers.<family>`` (and
``funcnn.layers.base`` holds :class:`~funcnn.Module`), so code importing from
MLX's submodules finds the same names here.  Each family module's ``__all__``
is the only list of its names; this package, and :mod:`funcnn`, assemble
theirs from them.
"""

import sys

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

FAMILY_NAMES = (
    "activations",
    "containers",
    "convolution",
    "convolution_transpose",
    "distributed",
    "dropout",
    "embedding",
    "linear",
    "normalization",
    "pooling",
    "positional_encoding",
    "quantized",
    "recurrent",
    "transformer",
    "upsample",
)
FAMILIES = tuple(sys.modules[f"{__name__}.{name}"] for name in FAMILY_NAMES)

__all__ = ["Module", *(name for family in FAMILIES for name in family.__all__)]
