"""The pure core: every layer as an ``(init, apply)`` :class:`Pair` over a plain parameter tree.

One file per family of MLX's ``python/mlx/nn/layers/`` (``linear``,
``convolution``, ``normalization``, ``dropout``, ...), each holding the math
as named pure functions whose settings are explicit arguments
(``layer_norm_apply(params, x, *, eps)``) and the pair factories that bind
them, named after the :mod:`mlx.nn` classes in snake case (``layer_norm`` for
``LayerNorm``, ``batch_norm``, ``dropout2d``, ...).  Array functions stay where
:mod:`mlx.nn` has them (:mod:`funcnn.functional.activations` for
``funcnn.relu``, :mod:`funcnn.functional.losses`,
:mod:`funcnn.functional.init`).  The names exported here are the union of the
family modules' ``__all__``.

Keys, training mode and state travel through ``apply`` (see :class:`Pair`):

Example:
    >>> import mlx.core as mx
    >>> import funcnn.functional as F
    >>> net = F.sequential(F.linear(2, 16), F.batch_norm(16), F.relu(), F.dropout(0.2),
    ...                    F.linear(16, 1))
    >>> params = net.init(mx.random.key(0))
    >>> def loss(p, x, key):
    ...     y, updates = net.apply(p, x, key=key, training=True)
    ...     return (y ** 2).mean(), updates
    >>> (value, updates), grads = mx.value_and_grad(loss)(params, mx.ones((4, 2)), mx.random.key(1))
    >>> params = F.merge_updates(params, updates)     # BatchNorm's running statistics
    >>> grads["layers"][0]["weight"].shape
    (16, 2)
"""

import sys

from . import (
    _pair,
    activation_layers,
    activations,
    containers,
    convolution,
    convolution_transpose,
    distributed,
    dropout,
    embedding,
    linear,
    lora,
    losses,
    normalization,
    pooling,
    positional_encoding,
    quantized,
    recurrent,
    transformer,
    upsample,
)
from ._pair import Pair, apply_layer, merge_updates, pair_factory, split_key
from .activation_layers import *  # noqa: F403
from .containers import *  # noqa: F403
from .convolution import *  # noqa: F403
from .convolution_transpose import *  # noqa: F403
from .distributed import *  # noqa: F403
from .dropout import *  # noqa: F403
from .embedding import *  # noqa: F403
from .linear import *  # noqa: F403
from .lora import *  # noqa: F403
from .normalization import *  # noqa: F403
from .pooling import *  # noqa: F403
from .positional_encoding import *  # noqa: F403
from .quantized import *  # noqa: F403
from .recurrent import *  # noqa: F403
from .transformer import *  # noqa: F403
from .upsample import *  # noqa: F403

# The family modules whose names this namespace holds.  Several share their
# name with their pair factory (``linear``, ``dropout``, ``embedding``): the
# attribute is the factory, the module is ``sys.modules[...]`` (and
# ``from funcnn.functional.linear import linear_apply`` works as usual).
FAMILIES = tuple(
    sys.modules[f"{__name__}.{name}"]
    for name in (
        "activation_layers",
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
)

__all__ = [
    *_pair.__all__,
    *(name for family in FAMILIES for name in family.__all__),
    # funcnn's own: LoRA adapters over any linear-like pair
    *sys.modules[f"{__name__}.lora"].__all__,
    "activations",
    "losses",
]
