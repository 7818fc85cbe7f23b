"""Registry entries of MLX's ``layers/transformer.py`` family.

MultiHeadAttention, and the transformer blocks and stacks: TransformerEncoderLayer,
TransformerEncoder, TransformerDecoderLayer, TransformerDecoder, Transformer.
Every block holds dropouts, so their pairs take a key and the training mode
(a stack without layers holds none); masks are additive, boolean, ``"causal"``
or None.
"""

import mlx.core as mx
import mlx.nn

from ._types import Sub, kind, normal

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


# --- transformer blocks and stacks --------------------------------------------------------

_DROPS = dict(stochastic=True, mode_dependent=True)
# mlx.nn reads these at every call (the stacks pass ``checkpoint`` on to nothing else).
_BLOCK = {"norm_first": False, "activation": mx.sigmoid}
_POST_NORM = {"norm_first": True, "activation": mx.sigmoid}
EncoderLayer = kind(
    "TransformerEncoderLayer", "transformer_encoder_layer", **_DROPS, mutations=_BLOCK
)
DecoderLayer = kind(
    "TransformerDecoderLayer", "transformer_decoder_layer", **_DROPS, mutations=_BLOCK
)
Encoder = kind("TransformerEncoder", "transformer_encoder", **_DROPS,
               mutations={"checkpoint": True})
Decoder = kind("TransformerDecoder", "transformer_decoder", **_DROPS,
               mutations={"checkpoint": True})
EmptyEncoder = kind("TransformerEncoder", "transformer_encoder", mutations={"checkpoint": True})
Transformer = kind("Transformer", "transformer", **_DROPS)


def encoder_inputs(length, mask=None):
    return lambda s: (normal(s, 2, length, 8), mask)


def decoder_inputs(length, memory_length, x_mask=None, memory_mask=None):
    return lambda s: (
        normal(s, 2, length, 8), normal(s + 100, 2, memory_length, 8), x_mask, memory_mask
    )


def transformer_inputs(src_length, tgt_length, src_mask=None, tgt_mask=None, memory_mask=None):
    return lambda s: (
        normal(s, 2, src_length, 8), normal(s + 100, 2, tgt_length, 8),
        src_mask, tgt_mask, memory_mask,
    )


def gelu_tanh():
    return Sub("GELU", "gelu", "tanh")


# fmt: off
EncoderLayer("encoder_layer", 8, 2, inputs=encoder_inputs(5))
EncoderLayer(
    "encoder_layer_mlp_dims_dropout", 8, 2, mlp_dims=12, dropout=0.3,
    inputs=encoder_inputs(5, causal_additive(5)),
)
EncoderLayer(
    "encoder_layer_post_norm", 8, 2, 16, 0.2, norm_first=False,
    inputs=encoder_inputs(4, causal_bool(4, 4)), _mutations=_POST_NORM,
)
EncoderLayer(  # a plain function, passed through to every library
    "encoder_layer_tanh", 8, 2, mlp_dims=16, activation=mx.tanh,
    inputs=encoder_inputs(3, "causal"),
)
EncoderLayer(  # a module (mlx.nn, funcnn) or a pair (functional) as the activation
    "encoder_layer_gelu_module", 8, 2, 16, 0.1, gelu_tanh(), False,
    inputs=encoder_inputs(4), _mutations=_POST_NORM,
)
EncoderLayer(  # an activation with a parameter of its own
    "encoder_layer_prelu", 8, 4, 16, activation=Sub("PReLU", "prelu"), inputs=encoder_inputs(3),
)
EncoderLayer.error("encoder_layer_heads", 8, 3)
EncoderLayer.error("encoder_layer_zero_heads", 8, 0, _raises=ZeroDivisionError)
EncoderLayer.error("encoder_layer_zero_dims", 0, 2, _raises=ZeroDivisionError)
EncoderLayer.error("encoder_layer_dropout", 8, 2, dropout=1.0)

DecoderLayer("decoder_layer", 8, 2, inputs=decoder_inputs(3, 4))
DecoderLayer(
    "decoder_layer_masks", 8, 2, mlp_dims=12, dropout=0.25,
    inputs=decoder_inputs(4, 5, causal_additive(4), causal_bool(4, 5)),
)
DecoderLayer(
    "decoder_layer_post_norm", 8, 2, 16, 0.3, gelu_tanh(), norm_first=False,
    inputs=decoder_inputs(3, 4, "causal"), _mutations=_POST_NORM,
)
DecoderLayer(
    "decoder_layer_tanh", 8, 4, 16, activation=mx.tanh, inputs=decoder_inputs(3, 3, None, None),
)
DecoderLayer.error("decoder_layer_heads", 8, 5)
DecoderLayer.error("decoder_layer_dropout", 8, 2, 16, -0.5)

Encoder("encoder", 2, 8, 2, mlp_dims=16, inputs=encoder_inputs(4))
Encoder(
    "encoder_post_norm_dropout", 1, 8, 2, 12, 0.25, mx.tanh, False,
    inputs=encoder_inputs(5, causal_additive(5)),
)
Encoder(  # the same masks as mlx.nn, also where its backward pass draws new ones
    "encoder_checkpoint", 2, 8, 2, 16, dropout=0.2, checkpoint=True,
    inputs=encoder_inputs(3, "causal"), _mutations={"checkpoint": False},
)
# No layers: mlx.nn builds (and checks) none, and there is no dropout to take a key.
EmptyEncoder("encoder_no_layers", 0, 8, 3, inputs=encoder_inputs(3))
Encoder.error("encoder_heads", 1, 8, 3)
Encoder.error("encoder_dropout", 2, 8, 2, dropout=1.5)

Decoder("decoder", 2, 8, 2, mlp_dims=16, inputs=decoder_inputs(3, 5, "causal", None))
Decoder(
    "decoder_checkpoint_post_norm", 2, 8, 2, 12, 0.3, gelu_tanh(), False, True,
    inputs=decoder_inputs(4, 3, causal_bool(4, 4), None), _mutations={"checkpoint": False},
)
Decoder.error("decoder_heads", 1, 6, 4)

Transformer(
    "transformer", 8, 2, 1, 1, 16, inputs=transformer_inputs(5, 3, None, causal_additive(3)),
    data_args=2,
)
Transformer(
    "transformer_options", 8, 2, 2, 1, mlp_dims=12, dropout=0.2, activation=mx.tanh,
    norm_first=False, checkpoint=True,
    inputs=transformer_inputs(4, 3, causal_bool(4, 4), "causal", causal_bool(3, 4)),
    data_args=2,
)
Transformer(
    "transformer_custom", 8, 2,
    custom_encoder=Sub("TransformerEncoder", "transformer_encoder", 2, 8, 4, 12, 0.1),
    custom_decoder=Sub("TransformerDecoder", "transformer_decoder", 1, 8, 2, 16,
                       activation=gelu_tanh()),
    inputs=transformer_inputs(3, 4, None, "causal", None), data_args=2,
)
Transformer(  # the default stacks are not built, so 3 heads for 8 dims goes unchecked
    "transformer_custom_unchecked", 8, 3,
    custom_encoder=Sub("TransformerEncoder", "transformer_encoder", 1, 8, 2, 16),
    custom_decoder=Sub("TransformerDecoder", "transformer_decoder", 1, 8, 2, 16),
    inputs=transformer_inputs(3, 3), data_args=2,
)
Transformer.error("transformer_heads", 8, 3, 1, 1)
Transformer.error("transformer_dropout", 8, 2, 1, 1, dropout=1.0)
Transformer.error(  # the decoder is still built and checked
    "transformer_custom_encoder_only", 8, 3, 1, 1,
    custom_encoder=Sub("TransformerEncoder", "transformer_encoder", 1, 8, 2, 16),
)
# fmt: on
