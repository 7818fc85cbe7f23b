"""Pure layers: each factory returns a :class:`Pair` ``(init, apply)`` over a plain parameter tree.

Example:
    >>> import mlx.core as mx
    >>> import funcnn.functional as F
    >>> mlp = F.sequential(F.linear(2, 16), F.relu(), F.linear(16, 1))
    >>> params = mlp.init(mx.random.key(0))   # {"layers": [{...}, {}, {...}]}
    >>> loss = lambda p, x: mlp.apply(p, x).sum()
    >>> grads = mx.grad(loss)(params, mx.ones((4, 2)))
    >>> grads["layers"][0]["weight"].shape
    (16, 2)
"""

from . import activations, losses
from ._pair import Pair, pair_factory, split_key
from .activation_layers import gelu, relu, silu
from .attention import attend, create_additive_causal_mask, multi_head_attention
from .containers import sequential
from .conv import conv1d, conv2d
from .linear import embedding, embedding_as_linear, linear, linear_apply
from .normalization import group_norm, layer_norm, rms_norm
from .positional import rope

__all__ = [
    "Pair",
    "pair_factory",
    "split_key",
    "linear",
    "linear_apply",
    "embedding",
    "embedding_as_linear",
    "conv1d",
    "conv2d",
    "layer_norm",
    "rms_norm",
    "group_norm",
    "rope",
    "multi_head_attention",
    "attend",
    "create_additive_causal_mask",
    "sequential",
    "relu",
    "gelu",
    "silu",
    "activations",
    "losses",
]
