"""Registry entries of MLX's ``layers/positional_encoding.py`` family.

RoPE, SinusoidalPositionalEncoding and ALiBi.
"""

import mlx.core as mx

from ._types import ids, kind, normal
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

# SinusoidalPositionalEncoding: every option; float and integer positions of any shape.
# Any length of ``_sigmas`` broadcasts, so one replacement fits every variant.
SPE = kind(
    "SinusoidalPositionalEncoding", "sinusoidal_positional_encoding",
    mutations={"scale": 1, "cos_first": True, "_sigmas": mx.array([0.5, 2.0, 3.0])},
    # The float32 ``_sigmas`` (a private item, never cast with the parameters) promote
    # half-precision inputs, in mlx.nn as here.
    output_dtype=mx.float32,
)
SPE("sinusoidal", 8, inputs=lambda s: (normal(s, 2, 5),))
SPE("sinusoidal_int_positions", 6, inputs=lambda s: (ids(s, 100, 2, 7),))
SPE("sinusoidal_1d_positions", 4, inputs=lambda s: (normal(s, 9),))
SPE("sinusoidal_dims_2", 2, inputs=lambda s: (normal(s, 3, 4),))
SPE("sinusoidal_cos_first_full_turns", 8, cos_first=True, full_turns=True,
    inputs=lambda s: (normal(s, 2, 5),))
SPE("sinusoidal_freqs", 6, min_freq=0.01, max_freq=2.0, inputs=lambda s: (normal(s, 2, 3),))
SPE(
    "sinusoidal_scale_one", 6, scale=1.0, inputs=lambda s: (normal(s, 2, 3),),  # no multiply
    _mutations={"scale": 2.0},
)
SPE("sinusoidal_scale", 10, scale=3.0, inputs=lambda s: (normal(s, 2, 2, 3),))
SPE.error("sinusoidal_odd_dims", 7)
SPE.error("sinusoidal_zero_dims", 0)
SPE.error("sinusoidal_negative_dims", -4)
SPE.error("sinusoidal_zero_min_freq", 8, min_freq=0.0)   # math.log: "math domain error"
SPE.error("sinusoidal_negative_max_freq", 8, max_freq=-1.0)

# ALiBi: power-of-two and other head counts, offsets, additive masks.
ALiBi = kind("ALiBi", "alibi")


def upper_mask(lq: int, lk: int) -> mx.array:
    return mx.triu(mx.full((lq, lk), -1e9), k=lk - lq + 1)


ALiBi("alibi", inputs=lambda s: (normal(s, 2, 4, 5, 5),))
ALiBi("alibi_one_head", inputs=lambda s: (normal(s, 3, 1, 4, 4),))
ALiBi("alibi_heads_not_power_of_two", inputs=lambda s: (normal(s, 1, 6, 3, 4),))
ALiBi("alibi_offset", inputs=lambda s: (normal(s, 2, 4, 3, 6), 3))
ALiBi("alibi_mask", inputs=lambda s: (normal(s, 2, 2, 4, 4), 0, upper_mask(4, 4)))
ALiBi("alibi_offset_mask", inputs=lambda s: (normal(s, 2, 3, 2, 5), 3, upper_mask(2, 5)))
# fmt: on
