"""Registry entries of MLX's ``layers/quantized.py`` family: QuantizedLinear, QuantizedEmbedding.

QQLinear is not in the matrix: mlx 0.32.4's CPU backend has no ``mx.qqmm``
("[QQMatmul] NYI for the general case"), so every call check would fail in
mlx.nn itself; ``tests/test_quantized.py`` checks its init, attributes,
layouts and that error.  Its constructor errors are registered here.

``group_size``, ``bits`` and ``mode`` are read at every call, but changing
``group_size`` or ``bits`` alone makes the packed arrays inconsistent (an
MLX error in both libraries, compared in ``test_quantized.py``); the fp
modes share a packing, so ``mode`` is the one mutation that still runs.
"""

import mlx.core as mx

from ._types import ids, kind, normal

NO_VMAP = "mlx 0.32.4: mx.quantized_matmul has no vmap rule ([QuantizedMatmul::vmap] NYI)"
QMM = {"vmap_inputs": NO_VMAP, "vmap_params": NO_VMAP}
NO_FP8_VMAP = (
    "mlx 0.32.4: mx.dequantize of nvfp4/mxfp8 decodes fp8 with FromFP8, which has no vmap rule"
)
FP8 = {"vmap_inputs": NO_FP8_VMAP, "vmap_params": NO_FP8_VMAP}

QuantizedLinear = kind("QuantizedLinear", "quantized_linear")
QuantizedEmbedding = kind("QuantizedEmbedding", "quantized_embedding")
QQLinear = kind("QQLinear", "qq_linear")


def feats(n):
    return lambda s: (normal(s, 2, 3, n),)


def tokens(vocab):
    return lambda s: (ids(s, vocab, 2, 3),)


# fmt: off
# QuantizedLinear: affine at every bit width and group size, bias or not, and the fp modes
# (7 outputs: with fewer, seeds 0 and 1 can draw the same fp8 scale exponents, which the
# explicit-key check reads as "not random").
QuantizedLinear("qlinear", 64, 8, inputs=feats(64), known_failures=QMM)
QuantizedLinear("qlinear_no_bias", 64, 8, bias=False, inputs=feats(64), known_failures=QMM)
for _bits, _gs in [(1, 32), (2, 32), (3, 128), (5, 64), (6, 32), (8, 128)]:
    QuantizedLinear(
        f"qlinear_{_bits}bit_gs{_gs}", 128, 5, group_size=_gs, bits=_bits, inputs=feats(128),
        known_failures=QMM,
    )
QuantizedLinear("qlinear_4bit_gs32_no_bias", 96, 4, False, 32, 4, inputs=feats(96), known_failures=QMM)
for _mode, _other in [("mxfp4", "nvfp4"), ("nvfp4", "mxfp8"), ("mxfp8", "mxfp4")]:
    QuantizedLinear(
        f"qlinear_{_mode}", 64, 7, mode=_mode, inputs=feats(64), known_failures=QMM,
        _mutations={"mode": _other},
    )
    QuantizedLinear(
        f"qlinear_{_mode}_no_bias_explicit", 64, 7, bias=False, mode=_mode,
        group_size=16 if _mode == "nvfp4" else 32, bits=8 if _mode == "mxfp8" else 4,
        inputs=feats(64), known_failures=QMM,
    )
QuantizedLinear.error("qlinear_bad_mode", 64, 8, mode="int4")
QuantizedLinear.error("qlinear_bad_group_size", 64, 8, group_size=16)
QuantizedLinear.error("qlinear_bad_bits", 64, 8, bits=7)
QuantizedLinear.error("qlinear_indivisible_input", 100, 8)
QuantizedLinear.error("qlinear_mxfp4_bits", 64, 8, bits=8, mode="mxfp4")
QuantizedLinear.error("qlinear_nvfp4_group_size", 64, 8, group_size=32, mode="nvfp4")
QuantizedLinear.error("qlinear_negative_output", 64, -1)
QuantizedLinear.error("qlinear_zero_input", 0, 8, _raises=ZeroDivisionError)
QuantizedLinear.call_error("qlinear_wrong_features", 64, 8, inputs=feats(32))

# QuantizedEmbedding: the fp modes dequantize to bfloat16 whatever the scales.
QuantizedEmbedding("qembedding", 10, 64, inputs=tokens(10))
for _bits, _gs in [(1, 64), (2, 32), (3, 128), (5, 32), (6, 64), (8, 128)]:
    QuantizedEmbedding(
        f"qembedding_{_bits}bit_gs{_gs}", 7, 128, group_size=_gs, bits=_bits, inputs=tokens(7)
    )
for _mode in ("mxfp4", "nvfp4", "mxfp8"):
    QuantizedEmbedding(
        f"qembedding_{_mode}", 9, 64, mode=_mode, inputs=tokens(9), _output_dtype=mx.bfloat16,
        known_failures=FP8 if _mode != "mxfp4" else None,
    )
QuantizedEmbedding.error("qembedding_bad_mode", 10, 64, mode="fp8")
QuantizedEmbedding.error("qembedding_indivisible_dims", 10, 48)
QuantizedEmbedding.error("qembedding_mxfp8_bits", 10, 64, bits=4, mode="mxfp8")
QuantizedEmbedding.error("qembedding_zero_dims", 10, 0, _raises=ZeroDivisionError)

# QQLinear's constructor quantizes nothing: only the mode and input_dims are checked.
QQLinear.error("qqlinear_bad_mode", 64, 8, mode="int8")
QQLinear.error("qqlinear_zero_input", 0, 8, _raises=ZeroDivisionError)
