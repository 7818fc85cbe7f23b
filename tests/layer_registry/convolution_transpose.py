"""Registry entries of MLX's ``layers/convolution_transpose.py`` family: ConvTranspose1d/2d/3d."""

from ._types import kind, normal

# Every setting mlx.nn reads at call time.  An int on the 2-D/3-D layers replaces the tuple
# item by a plain attribute (both libraries).
ConvTranspose1d = kind(
    "ConvTranspose1d", "conv_transpose1d",
    mutations={"padding": 1, "stride": 2, "dilation": 2, "output_padding": 1},
)
ConvTranspose2d = kind(
    "ConvTranspose2d", "conv_transpose2d",
    mutations={"padding": (1, 0), "stride": 2, "dilation": (2, 1), "output_padding": (0, 1)},
)
ConvTranspose3d = kind(
    "ConvTranspose3d", "conv_transpose3d",
    mutations={"padding": 1, "stride": (1, 2, 1), "dilation": 2, "output_padding": (0, 0, 1)},
)


def nlc(c, length=7):
    return lambda s: (normal(s, 2, length, c),)


def nhwc(c, h=5, w=4):
    return lambda s: (normal(s, 2, h, w, c),)


def ndhwc(c, d=3, h=4, w=3):
    return lambda s: (normal(s, 2, d, h, w, c),)


# fmt: off
# ConvTranspose1d (NLC): every constructor option.
ConvTranspose1d("conv_transpose1d", 4, 3, 3, inputs=nlc(4))
ConvTranspose1d("conv_transpose1d_stride_padding", 4, 3, 3, stride=2, padding=1, inputs=nlc(4))
ConvTranspose1d(
    "conv_transpose1d_output_padding", 4, 3, 3, stride=2, padding=1, output_padding=1,
    inputs=nlc(4),
)
ConvTranspose1d("conv_transpose1d_dilation", 4, 3, 3, dilation=2, inputs=nlc(4))
ConvTranspose1d("conv_transpose1d_no_bias", 4, 3, 2, bias=False, inputs=nlc(4))
ConvTranspose1d(
    "conv_transpose1d_all_options", 3, 5, 4, stride=3, padding=2, dilation=2, output_padding=2,
    bias=False, inputs=nlc(3),
)
ConvTranspose1d.error("conv_transpose1d_zero_in_channels", 0, 3, 3, _raises=ZeroDivisionError)
ConvTranspose1d.error("conv_transpose1d_zero_kernel", 4, 3, 0, _raises=ZeroDivisionError)
ConvTranspose1d.error("conv_transpose1d_negative_kernel", 4, 3, -2)  # "math domain error"
ConvTranspose1d.call_error("conv_transpose1d_unbatched_input", 4, 3, 3,
                           inputs=lambda s: (normal(s, 7, 4),))
ConvTranspose1d.call_error("conv_transpose1d_channel_mismatch", 4, 3, 3, inputs=nlc(3))
ConvTranspose1d.call_error("conv_transpose1d_zero_stride", 4, 3, 3, stride=0, inputs=nlc(4))

# ConvTranspose2d (NHWC): int and tuple kernel/stride/padding/dilation/output_padding, bias.
ConvTranspose2d("conv_transpose2d", 3, 2, 3, inputs=nhwc(3))
ConvTranspose2d("conv_transpose2d_tuple_kernel", 3, 2, (3, 2), inputs=nhwc(3))
ConvTranspose2d("conv_transpose2d_stride_padding", 3, 2, 3, stride=2, padding=1, inputs=nhwc(3))
ConvTranspose2d(
    "conv_transpose2d_output_padding", 3, 2, 3, stride=2, padding=1, output_padding=1,
    inputs=nhwc(3),
)
ConvTranspose2d(
    "conv_transpose2d_tuple_stride_padding_output_padding", 3, 2, (2, 3), stride=(2, 3),
    padding=(0, 1), output_padding=(1, 2), inputs=nhwc(3),
)
ConvTranspose2d("conv_transpose2d_dilation", 3, 2, 2, dilation=2, inputs=nhwc(3))
ConvTranspose2d("conv_transpose2d_tuple_dilation", 3, 2, 2, dilation=(1, 3), inputs=nhwc(3))
ConvTranspose2d("conv_transpose2d_no_bias", 3, 2, 3, bias=False, inputs=nhwc(3))
ConvTranspose2d(
    "conv_transpose2d_all_options", 2, 4, (3, 2), stride=(2, 1), padding=(1, 1),
    dilation=(1, 2), output_padding=(1, 0), bias=False, inputs=nhwc(2),
)
ConvTranspose2d.error("conv_transpose2d_zero_in_channels", 0, 2, 3, _raises=ZeroDivisionError)
ConvTranspose2d.call_error("conv_transpose2d_nlc_input", 3, 2, 3, inputs=nlc(3))
ConvTranspose2d.call_error("conv_transpose2d_channel_mismatch", 3, 2, 3, inputs=nhwc(2))
# A 3-tuple stride reaches mx.conv_transpose2d, whose binding rejects it.
ConvTranspose2d.call_error(
    "conv_transpose2d_stride_3_tuple", 3, 2, 3, stride=(1, 2, 1), inputs=nhwc(3),
    _raises=TypeError,
)

# ConvTranspose3d (NDHWC): int and tuple kernel/stride/padding/dilation/output_padding, bias.
ConvTranspose3d("conv_transpose3d", 3, 2, 2, inputs=ndhwc(3))
ConvTranspose3d("conv_transpose3d_tuple_kernel", 2, 3, (1, 2, 3), inputs=ndhwc(2))
ConvTranspose3d("conv_transpose3d_stride_padding", 2, 3, 3, stride=2, padding=1, inputs=ndhwc(2))
ConvTranspose3d(
    "conv_transpose3d_output_padding", 2, 3, 3, stride=2, padding=1, output_padding=1,
    inputs=ndhwc(2),
)
ConvTranspose3d(
    "conv_transpose3d_tuple_stride_padding_output_padding", 2, 3, (2, 1, 3), stride=(2, 1, 3),
    padding=(1, 0, 1), output_padding=(1, 0, 2), inputs=ndhwc(2),
)
ConvTranspose3d("conv_transpose3d_dilation", 2, 3, 2, dilation=2, inputs=ndhwc(2))
ConvTranspose3d("conv_transpose3d_tuple_dilation", 2, 3, 2, dilation=(2, 1, 1), inputs=ndhwc(2))
ConvTranspose3d("conv_transpose3d_no_bias", 2, 3, 2, bias=False, inputs=ndhwc(2))
ConvTranspose3d(
    "conv_transpose3d_all_options", 3, 2, (2, 2, 1), stride=(2, 1, 2), padding=(1, 0, 0),
    dilation=(1, 2, 1), output_padding=(1, 0, 1), bias=False, inputs=ndhwc(3),
)
ConvTranspose3d.error("conv_transpose3d_zero_in_channels", 0, 2, 2, _raises=ZeroDivisionError)
ConvTranspose3d.error("conv_transpose3d_negative_in_channels", -3, 2, 2)  # "math domain error"
ConvTranspose3d.call_error("conv_transpose3d_nhwc_input", 3, 2, 2, inputs=nhwc(3))
ConvTranspose3d.call_error("conv_transpose3d_channel_mismatch", 3, 2, 2, inputs=ndhwc(2))
# fmt: on
