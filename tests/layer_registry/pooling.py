"""Registry entries of MLX's ``layers/pooling.py`` family: MaxPool1d/2d/3d, AvgPool1d/2d/3d.

Every setting mlx.nn reads at call time is mutated: ``_kernel_size``,
``_stride``, ``_padding``, ``_padding_value``, ``_pooling_function`` and
``_axes``.
"""

import mlx.core as mx
import numpy as np

from ._types import kind, normal

# Overlapping or partial windows go through mx.as_strided, which mx.vmap cannot map.
STRIDED = {
    "vmap_inputs": "mlx 0.32.4: mx.as_strided has no vmap rule ('[Primitive::vmap] Not "
    "implemented for AsStrided'), so mlx.nn's pooling of overlapping or partial windows "
    "cannot be vmapped; funcnn builds the same view to stay bit-identical"
}


def _kinds(n, axes):
    common = {"_stride": [1] * n, "_padding": [(1, 1)] * n, "_kernel_size": [3] * n}
    if axes:
        common["_axes"] = axes
    max_kind = kind(
        f"MaxPool{n}d", f"max_pool{n}d",
        mutations={**common, "_padding_value": 0.0, "_pooling_function": mx.min},
    )
    avg_kind = kind(
        f"AvgPool{n}d", f"avg_pool{n}d",
        mutations={**common, "_padding_value": 1.0, "_pooling_function": mx.sum},
    )
    return max_kind, avg_kind


MaxPool1d, AvgPool1d = _kinds(1, None)
MaxPool2d, AvgPool2d = _kinds(2, (-2,))
MaxPool3d, AvgPool3d = _kinds(3, (-4, -2))


def data(*shape):
    return lambda s: (normal(s, *shape),)


# fmt: off
for Pool, p in ((MaxPool1d, "max_pool1d"), (AvgPool1d, "avg_pool1d")):
    Pool(p, 2, inputs=data(2, 8, 3))                                    # tiles: a reshape
    Pool(f"{p}_partial", 2, inputs=data(2, 9, 3), known_failures=STRIDED)
    Pool(f"{p}_stride", 3, stride=2, inputs=data(2, 9, 3), known_failures=STRIDED)
    Pool(f"{p}_padding", 3, 1, 1, inputs=data(2, 7, 3), known_failures=STRIDED)
    Pool(f"{p}_tuples", (3,), stride=(2,), padding=(1,), inputs=data(2, 8, 2),
         known_failures=STRIDED)
    Pool(f"{p}_list_kernel", [2], padding=[1], inputs=data(2, 6, 2))    # padded to tiles
    Pool(f"{p}_window_is_input", 5, inputs=data(3, 5, 2))
    Pool(f"{p}_large_padding", 2, 1, 2, inputs=data(2, 3, 2), known_failures=STRIDED)
    Pool.error(f"{p}_zero_kernel", 0)
    Pool.error(f"{p}_zero_stride", 2, 0)
    Pool.error(f"{p}_negative_padding", 2, padding=-1)
    Pool.error(f"{p}_float_kernel", 2.0)
    Pool.error(f"{p}_numpy_kernel", np.int64(2))
    Pool.error(f"{p}_str_kernel", "2")
    Pool.error(f"{p}_kernel_length", (2, 2))
    Pool.error(f"{p}_stride_length", 2, stride=(1, 1))
    Pool.error(f"{p}_padding_length", 2, padding=())
    Pool.error(f"{p}_padding_none", 2, padding=None)
    Pool.error(f"{p}_zero_in_tuple", (0,))
    Pool.call_error(f"{p}_2d_input", 2, inputs=data(8, 3))
    Pool.call_error(f"{p}_4d_input", 2, inputs=data(2, 4, 4, 3))

for Pool, p in ((MaxPool2d, "max_pool2d"), (AvgPool2d, "avg_pool2d")):
    Pool(p, 2, inputs=data(2, 6, 4, 3))
    Pool(f"{p}_stride", 3, 2, inputs=data(2, 7, 6, 2), known_failures=STRIDED)
    Pool(f"{p}_padding", 3, 1, 1, inputs=data(2, 5, 5, 2), known_failures=STRIDED)
    Pool(f"{p}_tuples", (3, 2), stride=(1, 2), padding=(1, 0), inputs=data(2, 6, 5, 2),
         known_failures=STRIDED)
    Pool(f"{p}_stride_only", 2, stride=(2, 1), inputs=data(2, 4, 5, 2), known_failures=STRIDED)
    Pool(f"{p}_tiles_rectangular", (2, 3), inputs=data(2, 4, 6, 3))
    Pool(f"{p}_one_axis_partial", 2, inputs=data(2, 4, 5, 2), known_failures=STRIDED)
    Pool.error(f"{p}_zero_kernel", (2, 0))
    Pool.error(f"{p}_zero_stride", 2, (0, 1))
    Pool.error(f"{p}_negative_padding", 2, padding=(0, -1))
    Pool.error(f"{p}_kernel_length", (2,))
    Pool.error(f"{p}_stride_length", 2, stride=(1, 1, 1))
    Pool.error(f"{p}_padding_length", 2, padding=(1,))
    Pool.error(f"{p}_float_padding", 2, padding=1.0)
    Pool.call_error(f"{p}_3d_input", 2, inputs=data(2, 4, 3))
    Pool.call_error(f"{p}_5d_input", 2, inputs=data(1, 2, 4, 4, 3))

for Pool, p in ((MaxPool3d, "max_pool3d"), (AvgPool3d, "avg_pool3d")):
    Pool(p, 2, inputs=data(2, 4, 4, 4, 2))
    Pool(f"{p}_stride_padding", 3, 2, 1, inputs=data(1, 4, 5, 3, 2), known_failures=STRIDED)
    Pool(f"{p}_tuples", (1, 2, 3), stride=(1, 1, 2), padding=(0, 1, 1),
         inputs=data(2, 3, 4, 5, 2), known_failures=STRIDED)
    Pool(f"{p}_kernel_one", 1, inputs=data(1, 3, 3, 3, 2))
    Pool.error(f"{p}_zero_kernel", (2, 2, 0))
    Pool.error(f"{p}_zero_stride", 2, 0)
    Pool.error(f"{p}_negative_padding", 2, padding=(-1, 0, 0))
    Pool.error(f"{p}_kernel_length", (2, 2))
    Pool.error(f"{p}_stride_length", 2, stride=(1, 1))
    Pool.error(f"{p}_padding_length", 2, padding=(1, 1))
    Pool.call_error(f"{p}_4d_input", 2, inputs=data(2, 4, 4, 3))
# fmt: on
