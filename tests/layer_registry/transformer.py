"""Registry entries of MLX's ``layers/transformer.py`` family: MultiHeadAttention."""

import mlx.core as mx
import mlx.nn

from ._types import kind, normal

MHA = kind("MultiHeadAttention", "multi_head_attention", mutations={"num_heads": 4})


def causal_additive(n: int) -> mx.array:
    # The oracle's helper, so the inputs are the same for every library.
    return mlx.nn.MultiHeadAttention.create_additive_causal_mask(n)


def causal_bool(lq: int, lk: int) -> mx.array:
    return mx.tril(mx.ones((lq, lk), dtype=mx.bool_), k=lk - lq)


def qkv(lq, lk, dq, dk, dv, *extra):
    return lambda s: (
        normal(s, 2, lq, dq), normal(s + 100, 2, lk, dk), normal(s + 200, 2, lk, dv), *extra
    )


def self_attn(length, d, *extra):
    return qkv(length, length, d, d, d, *extra)


# fmt: off
# Projection input/output dims, bias and every kind of mask.
MHA("mha", 8, 2, inputs=self_attn(5, 8), data_args=3)
MHA("mha_bias", 8, 4, bias=True, inputs=self_attn(5, 8), data_args=3)
MHA(
    "mha_input_dims", 8, 2, query_input_dims=6, key_input_dims=5, value_input_dims=7,
    inputs=qkv(4, 6, 6, 5, 7), data_args=3,
)
MHA("mha_key_input_dims_only", 8, 2, key_input_dims=5, inputs=qkv(4, 6, 8, 5, 5), data_args=3)
MHA(
    "mha_value_dims", 8, 2, value_dims=12, value_output_dims=10, bias=True,
    inputs=self_attn(5, 8), data_args=3,
)
MHA("mha_additive_mask", 8, 2, inputs=self_attn(5, 8, causal_additive(5)), data_args=3)
MHA("mha_bool_mask", 8, 2, inputs=qkv(4, 6, 8, 8, 8, causal_bool(4, 6)), data_args=3)
MHA("mha_causal_string", 8, 2, inputs=self_attn(5, 8, "causal"), data_args=3)
MHA("mha_none_mask", 8, 2, bias=True, inputs=self_attn(3, 8, None), data_args=3)
MHA.error("mha_heads", 8, 3)
MHA.error("mha_heads_kw", 10, num_heads=4, bias=True)
MHA.error("mha_zero_heads", 8, 0, _raises=ZeroDivisionError)
# fmt: on
