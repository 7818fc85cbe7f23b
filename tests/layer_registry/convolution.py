"""Registry entries of MLX's ``layers/convolution.py`` family: Conv1d, Conv2d, Conv3d."""

from ._types import kind, normal

# Known failure in mlx itself (see /work/shared/reference/measured_facts.md).
GROUPED_CONV_VMAP = (
    "mlx 0.32.4 CPU: mx.vmap over stacked weights of a grouped convolution (groups > 1) "
    "gives wrong results (measured_facts.md)"
)
GROUPED = {"vmap_params": GROUPED_CONV_VMAP}

Conv1d = kind("Conv1d", "conv1d", mutations={"padding": 2, "stride": 2, "dilation": 2})
# An int padding on a Conv2d replaces the tuple item by a plain attribute (both libraries).
Conv2d = kind("Conv2d", "conv2d", mutations={"padding": 1, "stride": (2, 1), "dilation": 2})
Conv3d = kind(
    "Conv3d", "conv3d", mutations={"padding": (1, 0, 1), "stride": 2, "dilation": (1, 2, 1)}
)


def nlc(c, length=10):
    return lambda s: (normal(s, 2, length, c),)


def nhwc(c, h=8, w=7):
    return lambda s: (normal(s, 2, h, w, c),)


def ndhwc(c, d=5, h=6, w=4):
    return lambda s: (normal(s, 2, d, h, w, c),)


# fmt: off
# Conv1d (NLC): every constructor option.
Conv1d("conv1d", 4, 6, 3, inputs=nlc(4))
Conv1d("conv1d_stride_padding", 4, 6, 3, stride=2, padding=1, inputs=nlc(4))
Conv1d("conv1d_dilation", 4, 5, 3, dilation=2, inputs=nlc(4))
Conv1d("conv1d_no_bias", 4, 6, 2, bias=False, inputs=nlc(4))
Conv1d("conv1d_groups", 4, 6, 3, groups=2, inputs=nlc(4), known_failures=GROUPED)
Conv1d("conv1d_depthwise", 4, 4, 3, groups=4, padding=1, inputs=nlc(4), known_failures=GROUPED)
Conv1d(
    "conv1d_all_options", 6, 4, 3, stride=2, padding=2, dilation=2, groups=2, bias=False,
    inputs=nlc(6, 11), known_failures=GROUPED,
)
Conv1d.error("conv1d_groups_indivisible", 4, 6, 3, groups=3)
Conv1d.error("conv1d_zero_groups", 4, 6, 3, groups=0, _raises=ZeroDivisionError)

# Conv2d (NHWC): int and tuple kernel/stride/padding/dilation, groups, bias.
Conv2d("conv2d", 3, 5, 3, inputs=nhwc(3))
Conv2d("conv2d_tuple_kernel", 3, 5, (2, 3), inputs=nhwc(3))
Conv2d("conv2d_stride_padding", 3, 4, 3, stride=2, padding=1, inputs=nhwc(3))
Conv2d("conv2d_tuple_stride_padding", 3, 4, (3, 2), stride=(1, 2), padding=(2, 0), inputs=nhwc(3))
Conv2d("conv2d_dilation", 3, 4, 2, dilation=2, inputs=nhwc(3))
Conv2d("conv2d_tuple_dilation", 3, 4, 2, dilation=(1, 2), inputs=nhwc(3))
Conv2d("conv2d_no_bias", 3, 4, 3, bias=False, inputs=nhwc(3))
Conv2d("conv2d_groups", 4, 6, 3, groups=2, padding=1, inputs=nhwc(4), known_failures=GROUPED)
Conv2d(
    "conv2d_all_options", 6, 3, (2, 3), stride=(2, 1), padding=(1, 2), dilation=(2, 1),
    groups=3, bias=False, inputs=nhwc(6, 9, 8), known_failures=GROUPED,
)
Conv2d.error("conv2d_groups_indivisible", 5, 6, (2, 3), groups=2)
Conv2d.error("conv2d_zero_in_channels", 0, 6, 3, _raises=ZeroDivisionError)
Conv2d.call_error("conv2d_nlc_input", 3, 4, 3, inputs=nlc(3))
Conv2d.call_error("conv2d_channel_mismatch", 3, 4, 3, inputs=nhwc(2))

# Conv3d (NDHWC, no groups in mlx.nn): int and tuple kernel/stride/padding/dilation, bias.
Conv3d("conv3d", 3, 4, 2, inputs=ndhwc(3))
Conv3d("conv3d_tuple_kernel", 2, 3, (1, 2, 3), inputs=ndhwc(2))
Conv3d("conv3d_stride_padding", 2, 3, 3, stride=2, padding=1, inputs=ndhwc(2))
Conv3d(
    "conv3d_tuple_stride_padding", 2, 3, (2, 3, 1), stride=(1, 2, 2), padding=(0, 1, 2),
    inputs=ndhwc(2),
)
Conv3d("conv3d_dilation", 2, 3, 2, dilation=2, inputs=ndhwc(2))
Conv3d("conv3d_tuple_dilation", 2, 3, 2, dilation=(2, 1, 1), inputs=ndhwc(2))
Conv3d("conv3d_no_bias", 2, 3, 2, bias=False, inputs=ndhwc(2))
Conv3d(
    "conv3d_all_options", 3, 2, (2, 2, 1), stride=(2, 1, 2), padding=(1, 0, 1), dilation=(1, 2, 1),
    bias=False, inputs=ndhwc(3),
)
Conv3d.error("conv3d_zero_in_channels", 0, 4, 2, _raises=ZeroDivisionError)
Conv3d.error("conv3d_zero_kernel", 2, 4, (2, 0, 2), _raises=ZeroDivisionError)
Conv3d.error("conv3d_negative_in_channels", -2, 4, 2)  # math.sqrt: "math domain error"
Conv3d.call_error("conv3d_nhwc_input", 3, 4, 2, inputs=nhwc(3))
Conv3d.call_error("conv3d_channel_mismatch", 3, 4, 2, inputs=ndhwc(2))
Conv3d.call_error("conv3d_kernel_larger_than_input", 3, 4, (6, 1, 1), inputs=ndhwc(3))
# fmt: on
