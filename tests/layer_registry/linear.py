"""Registry entries of MLX's ``layers/linear.py`` family: Identity, Linear, Bilinear."""

from ._types import kind, normal

Identity = kind("Identity", "identity")
Linear = kind("Linear", "linear")
Bilinear = kind("Bilinear", "bilinear")


def pair_of(in1, in2, *lead):
    """Two inputs with the same leading axes: ``(*lead, in1)`` and ``(*lead, in2)``."""
    return lambda s: (normal(s, *lead, in1), normal(s + 500, *lead, in2))


# fmt: off
# Identity: no arguments, positional and keyword arguments (all ignored).
Identity("identity", inputs=lambda s: (normal(s, 2, 3),))
Identity(
    "identity_with_args", 8, 16, bias=False, dropout=0.5, inputs=lambda s: (normal(s, 4, 2, 3),)
)

# N-D, 1-D, 2-D and 4-D inputs; with and without bias.
Linear("linear", 4, 3, inputs=lambda s: (normal(s, 2, 5, 4),))
Linear("linear_1d_input", 4, 3, inputs=lambda s: (normal(s, 4),))
Linear("linear_no_bias", 4, 3, bias=False, inputs=lambda s: (normal(s, 6, 4),))
Linear("linear_4d_input", 5, 2, inputs=lambda s: (normal(s, 2, 3, 2, 5),))

# Bilinear: with and without bias; 1-D, 2-D and several leading axes.
Bilinear("bilinear", 3, 4, 5, inputs=pair_of(3, 4, 2, 5), data_args=2)
Bilinear("bilinear_no_bias", 3, 4, 5, bias=False, inputs=pair_of(3, 4, 6), data_args=2)
Bilinear("bilinear_1d_inputs", 4, 2, 3, inputs=pair_of(4, 2), data_args=2)
Bilinear("bilinear_3_leading_axes", 2, 3, 1, inputs=pair_of(2, 3, 2, 3, 2), data_args=2)
Bilinear(
    "bilinear_no_bias_leading_axes", 5, 1, 4, bias=False, inputs=pair_of(5, 1, 3, 2),
    data_args=2,
)
# fmt: on
