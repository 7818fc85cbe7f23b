"""Registry entries of MLX's ``layers/upsample.py`` family: Upsample.

Every mode, ``align_corners`` and ``antialias``, int/float/tuple scale factors
(up and down), 1 to 3 spatial axes.  The four settings mlx.nn reads at call
time are mutated (per variant where the default mutation is an error there).
The array functions are tested in ``tests/test_upsample_functions.py``.
"""

import mlx.core as mx

from ._types import ids, kind, normal

Upsample = kind(
    "Upsample",
    "upsample",
    mutations={"scale_factor": 1.5, "mode": "cubic", "align_corners": True, "antialias": True},
)
# With antialias on, align_corners=True is an error (and the reverse): mutate the others.
NO_CORNERS = {"scale_factor": (0.5, 2.0), "mode": "linear", "antialias": False}
NO_ANTIALIAS = {"scale_factor": 2.0, "mode": "nearest", "align_corners": False}


def data(*shape):
    return lambda s: (normal(s, *shape),)


# fmt: off
# nearest: integer scales broadcast, others gather; any number of spatial axes.
Upsample("upsample", 2, inputs=data(2, 3, 4, 2))
Upsample("upsample_nearest_1d", 3, inputs=data(2, 4, 3))
Upsample("upsample_nearest_3d", 2, inputs=data(1, 2, 3, 2, 2))
Upsample("upsample_nearest_float", 1.5, inputs=data(2, 4, 3, 2))
Upsample("upsample_nearest_down", 0.5, mode="nearest", inputs=data(2, 6, 5, 2))
Upsample("upsample_nearest_tuple", (2, 3), inputs=data(1, 3, 2, 2))
Upsample("upsample_nearest_mixed_tuple", (1.5, 2), inputs=data(1, 4, 3, 2))
Upsample("upsample_nearest_list", [1.0, 2.5], inputs=data(1, 2, 2, 2))
Upsample("upsample_nearest_int_input", 2, inputs=lambda s: (ids(s, 9, 2, 3, 2),))
Upsample("upsample_nearest_align_corners", 2.5, "nearest", True, inputs=data(2, 3, 2))

# linear and cubic: mlx.nn multiplies by float32 weights, so a float16 or bfloat16 input
# gives a float32 output (declared as the output dtype; funcnn keeps mlx.nn's ops).
for _dims, _shape in ((1, (2, 5, 3)), (2, (2, 4, 3, 2)), (3, (1, 3, 2, 3, 2))):
    Upsample(f"upsample_linear_{_dims}d", 2, "linear", inputs=data(*_shape),
             _output_dtype=mx.float32)
    Upsample(f"upsample_linear_{_dims}d_align_corners", 1.5, "linear", True,
             inputs=data(*_shape), _output_dtype=mx.float32, _mutations=NO_ANTIALIAS)
    Upsample(f"upsample_cubic_{_dims}d", 2, "cubic", inputs=data(*_shape),
             _output_dtype=mx.float32)
    Upsample(f"upsample_cubic_{_dims}d_align_corners", 2.5, mode="cubic", align_corners=True,
             inputs=data(*_shape), _output_dtype=mx.float32, _mutations=NO_ANTIALIAS)
Upsample("upsample_linear_down", 0.5, "linear", inputs=data(2, 6, 5, 2),
         _output_dtype=mx.float32)
Upsample("upsample_linear_tuple", (2, 0.75), "linear", inputs=data(2, 4, 4, 2),
         _output_dtype=mx.float32)
Upsample("upsample_linear_antialias", 0.5, "linear", antialias=True, inputs=data(2, 6, 6, 2),
         _output_dtype=mx.float32, _mutations=NO_CORNERS)
Upsample("upsample_linear_antialias_up", (1.5, 0.4), "linear", False, True,
         inputs=data(1, 4, 5, 2), _output_dtype=mx.float32, _mutations=NO_CORNERS)
Upsample("upsample_linear_antialias_1d", 0.75, "linear", antialias=True, inputs=data(2, 8, 2),
         _output_dtype=mx.float32, _mutations={**NO_CORNERS, "scale_factor": (0.5,)})

# cubic
Upsample("upsample_cubic_down", 0.6, "cubic", inputs=data(2, 5, 5, 2),
         _output_dtype=mx.float32)
Upsample("upsample_cubic_tuple_align_corners", (3, 1.25), "cubic", True,
         inputs=data(1, 3, 4, 2), _output_dtype=mx.float32, _mutations=NO_ANTIALIAS)
Upsample("upsample_cubic_antialias", 0.5, "cubic", antialias=True, inputs=data(2, 6, 4, 2),
         _output_dtype=mx.float32, _mutations=NO_CORNERS)
Upsample("upsample_cubic_antialias_3d", (0.5, 2, 1), "cubic", antialias=True,
         inputs=data(1, 4, 2, 3, 2), _output_dtype=mx.float32,
         _mutations={**NO_CORNERS, "scale_factor": 0.75})

Upsample.error("upsample_unknown_mode", 2, "bilinear")
Upsample.error("upsample_antialias_nearest", 2, antialias=True)
Upsample.error("upsample_antialias_align_corners", 2, "linear", True, True)
Upsample.error("upsample_antialias_align_corners_cubic", 0.5, mode="cubic", align_corners=True,
               antialias=True)
Upsample.error("upsample_str_scale", "two")
Upsample.error("upsample_str_in_tuple", (2, "x"), mode="linear")
Upsample.error("upsample_none_scale", None, _raises=TypeError)
Upsample.call_error("upsample_2d_input", 2, inputs=data(4, 3))
Upsample.call_error("upsample_1d_input", 2, "linear", inputs=data(4))
Upsample.call_error("upsample_tuple_length", (2, 2), inputs=data(2, 4, 3))
Upsample.call_error("upsample_tuple_length_3d", (2, 2), "cubic", inputs=data(1, 2, 2, 2, 3))
# fmt: on
