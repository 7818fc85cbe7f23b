"""Registry entries of MLX's ``layers/distributed.py`` family, on a group of one process.

``mx.distributed.init()`` on this machine is a group of size 1: every
collective is the identity, so outputs, gradients and parameters must equal
mlx.nn's bit for bit.  (Several processes: a later issue.)
"""

import mlx.core as mx

from ._types import Sub, kind, normal

GROUP = mx.distributed.init()
# Another Group object (of the same single process): a setting mlx.nn reads at call time.
OTHER_GROUP = mx.distributed.init()

AllToShardedLinear = kind("AllToShardedLinear", "all_to_sharded_linear",
                          mutations={"group": OTHER_GROUP})
ShardedToAllLinear = kind("ShardedToAllLinear", "sharded_to_all_linear",
                          mutations={"group": OTHER_GROUP})
_NO_VMAP = {
    "vmap_inputs": "mx.quantized_matmul has no vmap rule (QuantizedMatmul::vmap NYI)",
    "vmap_params": "mx.quantized_matmul has no vmap rule (QuantizedMatmul::vmap NYI)",
}
QuantizedAllToShardedLinear = kind(
    "QuantizedAllToShardedLinear", "quantized_all_to_sharded_linear",
    mutations={"group": OTHER_GROUP},
)
QuantizedShardedToAllLinear = kind(
    "QuantizedShardedToAllLinear", "quantized_sharded_to_all_linear",
    mutations={"group": OTHER_GROUP},
)
FullyShardedModule = kind("FullyShardedModule", "fully_sharded_module")


def x(*shape):
    return lambda s: (normal(s, *shape),)


# fmt: off
# Dense: with and without bias, 1-D to 4-D inputs, an explicit group.
AllToShardedLinear("all_to_sharded_linear", 4, 6, inputs=x(2, 5, 4))
AllToShardedLinear("all_to_sharded_linear_no_bias", 4, 6, bias=False, inputs=x(3, 4))
AllToShardedLinear("all_to_sharded_linear_1d_group", 5, 3, True, GROUP, inputs=x(5))
ShardedToAllLinear("sharded_to_all_linear", 4, 6, inputs=x(2, 5, 4))
ShardedToAllLinear("sharded_to_all_linear_no_bias", 4, 6, bias=False, inputs=x(3, 4))
ShardedToAllLinear("sharded_to_all_linear_4d_group", 5, 2, group=GROUP, inputs=x(2, 3, 2, 5))
# A size that the group cannot divide: one process divides every integer, not 2.5.
AllToShardedLinear.error("all_to_sharded_linear_fractional_output", 4, 2.5)
ShardedToAllLinear.error("sharded_to_all_linear_fractional_input", 2.5, 4)

# Quantized: every bit width's family, group sizes, mxfp4 (no biases), no bias, a group.
QuantizedAllToShardedLinear("quantized_all_to_sharded_linear", 64, 8, inputs=x(2, 3, 64),
                            known_failures=_NO_VMAP)
QuantizedAllToShardedLinear("quantized_all_to_sharded_linear_8bit_g32_no_bias", 64, 4,
                            bias=False, group_size=32, bits=8, inputs=x(3, 64),
                            known_failures=_NO_VMAP)
QuantizedAllToShardedLinear("quantized_all_to_sharded_linear_mxfp4", 64, 4, True, 32, 4,
                            "mxfp4", GROUP, inputs=x(3, 64), known_failures=_NO_VMAP)
QuantizedShardedToAllLinear("quantized_sharded_to_all_linear", 64, 8, inputs=x(2, 3, 64),
                            known_failures=_NO_VMAP)
QuantizedShardedToAllLinear("quantized_sharded_to_all_linear_2bit_g128_no_bias", 128, 4,
                            bias=False, group_size=128, bits=2, inputs=x(3, 128),
                            known_failures=_NO_VMAP)
QuantizedShardedToAllLinear("quantized_sharded_to_all_linear_mxfp4_group", 64, 4,
                            group_size=32, mode="mxfp4", group=GROUP, inputs=x(64),
                            known_failures=_NO_VMAP)
QuantizedAllToShardedLinear.error("quantized_all_to_sharded_linear_fractional_output", 64, 2.5)
QuantizedAllToShardedLinear.error("quantized_all_to_sharded_linear_group_size_48", 96, 4,
                                  group_size=48)
QuantizedShardedToAllLinear.error("quantized_sharded_to_all_linear_fractional_input", 2.5, 4)
QuantizedShardedToAllLinear.error("quantized_sharded_to_all_linear_indivisible", 96, 4)
QuantizedShardedToAllLinear.error("quantized_sharded_to_all_linear_bad_mode", 64, 4,
                                  mode="bogus")

# Fully sharded: a Linear, a stack, a compute dtype.
FullyShardedModule("fully_sharded_linear", Sub("Linear", "linear", 3, 4), inputs=x(2, 3))
FullyShardedModule(
    "fully_sharded_sequential_group",
    Sub("Sequential", "sequential", Sub("Linear", "linear", 4, 8), Sub("ReLU", "relu"),
        Sub("Linear", "linear", 8, 2, bias=False)),
    GROUP, inputs=x(3, 4),
)
# (float32 compute: half-precision parameters are gathered as float32.)
FullyShardedModule("fully_sharded_linear_float32_compute", Sub("Linear", "linear", 3, 4),
                   compute_dtype=mx.float32, inputs=x(2, 3), _output_dtype=mx.float32)
# fmt: on

# The key and training channels pass through the wrapper.
FullyShardedDropout = kind("FullyShardedModule", "fully_sharded_module", stochastic=True,
                           mode_dependent=True)
FullyShardedDropout(
    "fully_sharded_dropout",
    Sub("Sequential", "sequential", Sub("Linear", "linear", 6, 6), Sub("Dropout", "dropout", 0.5)),
    inputs=x(2, 6),
)
