"""Registry entries of MLX's ``layers/containers.py`` family: Sequential.

Sub-layers are :class:`Sub` (pairs for the factory, modules for the classes),
plain callables, nesting, equal-shaped sub-layers, the empty container, and
members that take keys, training mode and state.
"""

import mlx.core as mx

from ._types import Sub, kind, normal

Sequential = kind("Sequential", "sequential")


def lin(i, o, **kw):
    return Sub("Linear", "linear", i, o, **kw)


def x34(s):
    return (normal(s, 3, 4),)


# fmt: off
Sequential("sequential_mlp", lin(4, 8), Sub("ReLU", "relu"), lin(8, 2), inputs=x34)
Sequential(
    "sequential_callables", lin(4, 8), mx.tanh, Sub("GELU", "gelu", "tanh"),
    lin(8, 3, bias=False), Sub("SiLU", "silu"), mx.sigmoid, inputs=x34,
)
Sequential(
    "sequential_nested",
    Sub("Sequential", "sequential", lin(4, 8), Sub("LayerNorm", "layer_norm", 8)),
    Sub("RMSNorm", "rms_norm", 8),
    Sub("Conv1d", "conv1d", 8, 2, 3, padding=1),
    inputs=lambda s: (normal(s, 2, 6, 4),),
)
Sequential(  # explicit-key init must give each equal-shaped sub-layer its own key
    "sequential_same_shapes", lin(6, 6), Sub("ReLU", "relu"), lin(6, 6), lin(6, 6, bias=False),
    inputs=lambda s: (normal(s, 2, 3, 6),),
)
Sequential("sequential_empty", inputs=x34)

# Keys, training mode and state through a composite: two dropouts (each its
# own key), a batch norm nested one level down (updates at "layers.1.layers.0").
_stochastic_stateful = kind("Sequential", "sequential", stochastic=True, mode_dependent=True,
                            stateful=True)
_stochastic_stateful(
    "sequential_bn_dropout",
    lin(4, 8),
    Sub("Sequential", "sequential", Sub("BatchNorm", "batch_norm", 8), Sub("ReLU", "relu")),
    Sub("Dropout", "dropout", 0.3),
    lin(8, 8),
    Sub("Dropout", "dropout", 0.5),
    lin(8, 2),
    inputs=lambda s: (normal(s, 6, 4),),
)
_stochastic = kind("Sequential", "sequential", stochastic=True, mode_dependent=True)
_stochastic(
    "sequential_conv_dropout2d",
    Sub("Conv2d", "conv2d", 3, 4, 3, padding=1), Sub("Dropout2d", "dropout2d", 0.25),
    Sub("InstanceNorm", "instance_norm", 4, affine=True),
    inputs=lambda s: (normal(s, 2, 5, 5, 3),),
)
_mode = kind("Sequential", "sequential", mode_dependent=True)
_mode(
    "sequential_batch_norm_no_stats",
    lin(4, 6), Sub("BatchNorm", "batch_norm", 6, track_running_stats=False), lin(6, 2),
    inputs=lambda s: (normal(s, 5, 4),),
)
# fmt: on
