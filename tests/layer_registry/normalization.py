"""Registry entries of MLX's ``layers/normalization.py`` family.

LayerNorm, RMSNorm, GroupNorm, InstanceNorm and BatchNorm; inputs are shifted
and scaled so that normalising matters.
"""

from ._types import kind, normal

LayerNorm = kind("LayerNorm", "layer_norm", mutations={"eps": 0.5})
RMSNorm = kind("RMSNorm", "rms_norm", mutations={"eps": 0.5})
GroupNorm = kind(
    "GroupNorm", "group_norm",
    mutations={"eps": 0.5, "num_groups": 1, "pytorch_compatible": True},
)
InstanceNorm = kind("InstanceNorm", "instance_norm", mutations={"eps": 0.5})
BatchNorm = kind(
    "BatchNorm", "batch_norm", mode_dependent=True, stateful=True,
    mutations={"eps": 0.5, "momentum": 0.5, "track_running_stats": False},
)


def blc(d, *lead):
    return lambda s: (3 * normal(s, *(lead or (2, 5)), d) + 1,)


# fmt: off
LayerNorm("layer_norm", 8, inputs=blc(8))
LayerNorm("layer_norm_eps", 8, eps=1e-2, inputs=blc(8))
LayerNorm("layer_norm_no_affine", 8, affine=False, inputs=blc(8))
LayerNorm("layer_norm_no_bias", 8, bias=False, inputs=blc(8))
LayerNorm("layer_norm_no_affine_no_bias", 8, affine=False, bias=False, inputs=blc(8))
LayerNorm.error("layer_norm_eps_zero", 8, eps=0)
LayerNorm.error("layer_norm_eps_negative", 8, eps=-1e-5)
LayerNorm.error("layer_norm_eps_none", 8, eps=None, _raises=TypeError)

RMSNorm("rms_norm", 8, inputs=blc(8))
RMSNorm("rms_norm_eps", 6, eps=1e-1, inputs=blc(6))
RMSNorm.error("rms_norm_eps_zero", 8, eps=0.0)
RMSNorm.error("rms_norm_eps_negative", 8, -2.0)

GroupNorm("group_norm", 2, 8, inputs=blc(8, 2, 4, 3))
GroupNorm("group_norm_1d_spatial", 4, 8, inputs=blc(8))
GroupNorm("group_norm_eps", 2, 6, eps=1e-1, inputs=blc(6))
GroupNorm("group_norm_no_affine", 2, 8, affine=False, inputs=blc(8))
GroupNorm("group_norm_pytorch", 2, 8, pytorch_compatible=True, inputs=blc(8, 2, 4, 3))
GroupNorm(
    "group_norm_pytorch_no_affine", 4, 8, affine=False, pytorch_compatible=True, inputs=blc(8)
)
GroupNorm.error("group_norm_eps", 2, 8, eps=0.0)
GroupNorm.error("group_norm_zero_groups", 0, 8)
GroupNorm.error("group_norm_negative_groups", -2, 8)
GroupNorm.error("group_norm_zero_dims", 2, 0)
GroupNorm.error("group_norm_negative_dims", 2, -4)
GroupNorm.error("group_norm_indivisible", 3, 8)
GroupNorm.error("group_norm_eps_checked_first", 3, 8, eps=-1.0)

InstanceNorm("instance_norm", 6, inputs=blc(6, 2, 5))
InstanceNorm("instance_norm_2d_spatial", 4, inputs=blc(4, 2, 3, 5))
InstanceNorm("instance_norm_affine", 4, affine=True, inputs=blc(4, 3, 2, 2))
InstanceNorm("instance_norm_eps", 4, eps=1e-1, affine=True, inputs=blc(4, 2, 6))
InstanceNorm.error("instance_norm_eps_zero", 4, eps=0.0)
InstanceNorm.call_error("instance_norm_2d_input", 4, inputs=blc(4, 3))

# BatchNorm: 2-D, 3-D and 4-D inputs; affine, running statistics, momentum, eps.
BatchNorm("batch_norm", 8, inputs=blc(8, 6))
BatchNorm("batch_norm_3d_input", 8, inputs=blc(8, 3, 5))
BatchNorm("batch_norm_4d_input", 4, inputs=blc(4, 2, 3, 5))
BatchNorm("batch_norm_no_affine", 6, affine=False, inputs=blc(6, 2, 5))
BatchNorm("batch_norm_momentum_eps", 6, eps=1e-2, momentum=0.3, inputs=blc(6, 4))
BatchNorm("batch_norm_no_running_stats", 6, track_running_stats=False, inputs=blc(6, 4),
          _stateful=False)
BatchNorm(
    "batch_norm_bare", 5, affine=False, track_running_stats=False, inputs=blc(5, 3, 2),
    _stateful=False,
)
BatchNorm.error("batch_norm_eps_zero", 4, eps=0.0)
BatchNorm.call_error("batch_norm_1d_input", 4, inputs=lambda s: (normal(s, 4),))
BatchNorm.call_error("batch_norm_5d_input", 4, inputs=blc(4, 2, 2, 2, 2))
BatchNorm.call_error("batch_norm_one_value_per_channel", 4, inputs=blc(4, 1))
BatchNorm.call_error("batch_norm_one_value_per_channel_3d", 4, inputs=blc(4, 1, 1))
# fmt: on
