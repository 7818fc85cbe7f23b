"""Registry entries of MLX's ``layers/positional_encoding.py`` family: RoPE."""

import mlx.core as mx

from ._types import kind, normal
from .normalization import blc

RoPE = kind("RoPE", "rope", mutations={"dims": 4, "traditional": True, "base": 10.0, "scale": 0.5})

# fmt: off
# traditional/base/scale, partial rotation, int and array offsets, a heads axis.
RoPE("rope", 8, inputs=blc(8))
RoPE("rope_traditional", 8, traditional=True, inputs=blc(8))
RoPE("rope_partial_dims", 4, inputs=blc(8))
RoPE("rope_base_scale", 8, base=500.0, scale=0.25, inputs=blc(8))
RoPE("rope_heads_offset_int", 8, inputs=lambda s: (normal(s, 2, 3, 5, 8), 7))
RoPE(
    "rope_traditional_offset_int", 6, traditional=True, base=100,
    inputs=lambda s: (normal(s, 2, 5, 8), 3),
)
RoPE("rope_offset_array", 8, inputs=lambda s: (normal(s, 2, 5, 8), mx.array(4)))
# fmt: on
