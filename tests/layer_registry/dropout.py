"""Registry entries of MLX's ``layers/dropout.py`` family: Dropout, Dropout2d, Dropout3d."""

from ._types import kind, normal

_DROPOUT = dict(stochastic=True, mode_dependent=True, mutations={"_p_1": 0.25})
Dropout = kind("Dropout", "dropout", **_DROPOUT)
Dropout2d = kind("Dropout2d", "dropout2d", **_DROPOUT)
Dropout3d = kind("Dropout3d", "dropout3d", **_DROPOUT)


def data(*shape):
    return lambda s: (normal(s, *shape),)


# fmt: off
Dropout("dropout", inputs=data(4, 16))
Dropout("dropout_small_p", 0.1, inputs=data(2, 3, 8))
Dropout("dropout_p0", 0.0, inputs=data(4, 8))
Dropout("dropout_1d_input", p=0.7, inputs=data(32))
for _p in (1.0, 1.5, -0.1):
    Dropout.error(f"dropout_p_{_p}", _p)

Dropout2d("dropout2d", inputs=data(2, 4, 4, 8))
Dropout2d("dropout2d_hwc", 0.3, inputs=data(4, 4, 8))
Dropout2d("dropout2d_p0", 0.0, inputs=data(2, 3, 3, 4))
Dropout2d.error("dropout2d_p1", 1.0)
Dropout2d.call_error("dropout2d_2d_input", inputs=data(4, 8))
Dropout2d.call_error("dropout2d_5d_input", inputs=data(2, 2, 2, 2, 4))
Dropout2d.call_error("dropout2d_2d_input_eval", inputs=data(4, 8), _training=False)

Dropout3d("dropout3d", inputs=data(2, 3, 4, 4, 8))
Dropout3d("dropout3d_dhwc", 0.3, inputs=data(3, 4, 4, 8))
Dropout3d.error("dropout3d_negative", -0.5)
Dropout3d.call_error("dropout3d_3d_input", inputs=data(4, 4, 8))
# fmt: on
