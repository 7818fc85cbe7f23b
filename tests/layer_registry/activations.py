"""Registry entries of MLX's ``layers/activations.py`` family: ReLU, SiLU, GELU."""

import mlx.core as mx

from ._types import kind, normal

ReLU = kind("ReLU", "relu")
SiLU = kind("SiLU", "silu")
GELU = kind("GELU", "gelu", mutations={"_approx": "fast"})


def act_inputs(s):
    # 0 and both tails included.
    return (mx.concatenate([mx.array([-6.0, -1.0, 0.0, 1.0, 6.0]), 3 * normal(s, 11)]),)


# fmt: off
ReLU("relu", inputs=act_inputs)
SiLU("silu", inputs=act_inputs)
GELU("gelu", inputs=act_inputs)
for _approx in ("none", "precise", "tanh", "fast"):
    GELU(f"gelu_{_approx}", approx=_approx, inputs=act_inputs)
GELU("gelu_positional_approx", "fast", inputs=act_inputs)
GELU.error("gelu_approx", "bogus")
GELU.error("gelu_approx_case", approx="Tanh")
GELU.error("gelu_approx_none", None)
# fmt: on
