"""Registry entries of MLX's ``layers/activations.py`` family: every activation layer class.

Element-wise layers get a 1-D input reaching 0, both tails and the kinks of
the piecewise functions (±1, ±6); the layers that work along an axis (GLU,
Softmax, LogSoftmax, Softmin) and PReLU (a weight per last-axis entry) get
batched inputs.
"""

import mlx.core as mx

from ._types import kind, normal

ReLU = kind("ReLU", "relu")
SiLU = kind("SiLU", "silu")
GELU = kind("GELU", "gelu", mutations={"_approx": "fast"})
GLU = kind("GLU", "glu", mutations={"axis": 1})
Sigmoid = kind("Sigmoid", "sigmoid")
Mish = kind("Mish", "mish")
ReLU2 = kind("ReLU2", "relu2")
ReLU6 = kind("ReLU6", "relu6")
LeakyReLU = kind("LeakyReLU", "leaky_relu", mutations={"_negative_slope": 0.3})
ELU = kind("ELU", "elu", mutations={"_alpha": 0.5})
Softmax = kind("Softmax", "softmax")
Softplus = kind("Softplus", "softplus")
Softsign = kind("Softsign", "softsign")
Softshrink = kind("Softshrink", "softshrink", mutations={"lambd": 1.5})
CELU = kind("CELU", "celu", mutations={"_alpha": 2.0})
LogSoftmax = kind("LogSoftmax", "log_softmax")
LogSigmoid = kind("LogSigmoid", "log_sigmoid")
PReLU = kind("PReLU", "prelu")
Tanh = kind("Tanh", "tanh")
Hardswish = kind("Hardswish", "hardswish")
Step = kind("Step", "step", mutations={"threshold": 0.5})
SELU = kind("SELU", "selu")
HardTanh = kind("HardTanh", "hard_tanh")
HardShrink = kind("HardShrink", "hard_shrink", mutations={"lambd": 1.5})
Softmin = kind("Softmin", "softmin")


def act_inputs(s):
    # 0, the kinks (±0.5, ±1, ±3, ±6) and both tails included.
    fixed = mx.array([-30.0, -6.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 6.0, 30.0])
    return (mx.concatenate([fixed, 3 * normal(s, 11)]),)


def batched(*shape, scale=3.0):
    return lambda s: (scale * normal(s, *shape),)


ELEMENTWISE = [
    (Sigmoid, "sigmoid"), (Mish, "mish"), (ReLU2, "relu2"), (ReLU6, "relu6"),
    (Softplus, "softplus"), (Softsign, "softsign"), (LogSigmoid, "log_sigmoid"), (Tanh, "tanh"),
    (Hardswish, "hardswish"), (SELU, "selu"), (HardTanh, "hard_tanh"),
]

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

for _add, _id in ELEMENTWISE:
    _add(_id, inputs=act_inputs)
    _add(f"{_id}_batched", inputs=batched(2, 3, 4))

# GLU: every axis of an all-even input (so that the mutated axis splits too).
GLU("glu", inputs=batched(2, 4, 6))
for _axis in (0, 1, -2, -3):
    GLU(f"glu_axis{_axis}", axis=_axis, inputs=batched(2, 4, 6))
GLU("glu_positional_axis", 2, inputs=batched(2, 4, 6))
GLU.call_error("glu_odd_axis", inputs=batched(2, 4, 5))
GLU.call_error("glu_odd_axis_0", axis=0, inputs=batched(3, 4))

LeakyReLU("leaky_relu", inputs=act_inputs)
LeakyReLU("leaky_relu_slope", negative_slope=0.2, inputs=act_inputs)
LeakyReLU("leaky_relu_positional_slope", 0.5, inputs=act_inputs)
LeakyReLU("leaky_relu_zero_slope", 0.0, inputs=act_inputs)
LeakyReLU("leaky_relu_negative_slope", -0.1, inputs=act_inputs)
# MLX's formula max(slope * x, x) for a slope above 1 (not PyTorch's): kept.
LeakyReLU("leaky_relu_steep_slope", 2.0, inputs=act_inputs)
LeakyReLU("leaky_relu_int_slope", 0, inputs=act_inputs)

ELU("elu", inputs=act_inputs)
ELU("elu_alpha", alpha=0.5, inputs=act_inputs)
ELU("elu_positional_alpha", 2.0, inputs=act_inputs)
ELU("elu_int_alpha", 3, inputs=act_inputs)

CELU("celu", inputs=act_inputs)
CELU("celu_alpha", alpha=0.5, inputs=act_inputs)
CELU("celu_positional_alpha", 2.0, inputs=act_inputs)

Softshrink("softshrink", inputs=act_inputs)
Softshrink("softshrink_lambd", lambd=1.0, inputs=act_inputs)
Softshrink("softshrink_positional_lambd", 0.1, inputs=act_inputs)
Softshrink("softshrink_zero_lambd", 0.0, inputs=act_inputs)

HardShrink("hard_shrink", inputs=act_inputs)
HardShrink("hard_shrink_lambd", lambd=1.0, inputs=act_inputs)
HardShrink("hard_shrink_positional_lambd", 3.0, inputs=act_inputs)
HardShrink("hard_shrink_zero_lambd", 0.0, inputs=act_inputs)

# Step's output is int32 whatever the input (as in MLX); thresholds on input values.
Step("step", inputs=act_inputs)
Step("step_threshold", threshold=0.5, inputs=act_inputs)
Step("step_positional_threshold", -1.0, inputs=act_inputs)
Step("step_int_threshold", 3, inputs=act_inputs)

# Along the last axis: large magnitudes (scale 30) exercise the max shift.
for _add, _id in ((Softmax, "softmax"), (LogSoftmax, "log_softmax"), (Softmin, "softmin")):
    _add(_id, inputs=batched(2, 3, 5))
    _add(f"{_id}_large", inputs=batched(4, 7, scale=30.0))
    _add(f"{_id}_vector", inputs=batched(6))

# PReLU: one slope, or one per entry of the last axis; float, int and array inits.
PReLU("prelu", inputs=act_inputs)
PReLU("prelu_batched", inputs=batched(2, 3, 4))
PReLU("prelu_channels", 3, inputs=batched(2, 5, 3))
PReLU("prelu_channels_init", num_parameters=4, init=0.1, inputs=batched(2, 4))
PReLU("prelu_negative_init", 2, -0.5, inputs=batched(3, 2))
# (An int init makes an int32 weight, as in MLX: tests/test_activations.py, since the
# generic checks perturb float parameters only.)
PReLU("prelu_array_init", 3, mx.array([0.1, 0.2, 0.3]), inputs=batched(2, 3))
PReLU.error("prelu_negative_count", -1)
PReLU.error("prelu_str_init", 2, "a")
PReLU.error("prelu_list_init", 2, [0.1, 0.2])
PReLU.error("prelu_none_init", 2, None, _raises=TypeError)
PReLU.error("prelu_count_over_int32", 2**31, _raises=OverflowError)
# (A weight that does not broadcast against the input: mlx.nn raises only on its first
# call of that rank; see tests/test_activations.py.)
# fmt: on
