"""Registry entries of MLX's ``layers/linear.py`` family: Linear."""

from ._types import kind, normal

Linear = kind("Linear", "linear")

# fmt: off
# N-D, 1-D, 2-D and 4-D inputs; with and without bias.
Linear("linear", 4, 3, inputs=lambda s: (normal(s, 2, 5, 4),))
Linear("linear_1d_input", 4, 3, inputs=lambda s: (normal(s, 4),))
Linear("linear_no_bias", 4, 3, bias=False, inputs=lambda s: (normal(s, 6, 4),))
Linear("linear_4d_input", 5, 2, inputs=lambda s: (normal(s, 2, 3, 2, 5),))
# fmt: on
