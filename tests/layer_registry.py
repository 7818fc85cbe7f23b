"""One registry of every funcnn layer, in the style of Haiku's integration tests.

Each :class:`LayerCase` names a layer three ways -- the :mod:`mlx.nn` class
(the oracle), the funcnn facade class of the same name and the
:mod:`funcnn.functional` factory -- with constructor arguments shared by all
three, and a builder of example inputs.  ``tests/test_layers.py`` runs every
check over every entry, so a new layer (or a new constructor option) is one
entry away from full coverage.

Sub-layers (for ``Sequential``) are written as :class:`Sub` and resolved per
library: ``Sub("Linear", "linear", 4, 8)`` becomes ``mlx.nn.Linear(4, 8)``,
``funcnn.Linear(4, 8)`` or ``funcnn.functional.linear(4, 8)``.  Anything else
(``mx.tanh``) is passed through unchanged.

Adding a layer ``Foo`` (factory ``foo``)::

    Foo = kind("Foo", "foo")
    Foo("foo_default", 4, 8, inputs=lambda seed: (normal(seed, 2, 4),))
    Foo("foo_no_bias", 4, 8, bias=False, inputs=...)
    Foo.error("foo_bad_dims", 0, 8)          # a constructor ValueError of mlx.nn
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import mlx.core as mx
import mlx.nn

import funcnn
import funcnn.functional as F

__all__ = [
    "Sub",
    "LayerCase",
    "ErrorCase",
    "LAYERS",
    "ERROR_CASES",
    "LIBRARIES",
    "MLX",
    "FACADE",
    "FUNCTIONAL",
    "build",
    "make",
    "normal",
    "ids",
]

# The three ways to build a layer.
MLX, FACADE, FUNCTIONAL = "mlx.nn", "funcnn", "functional"
LIBRARIES = (MLX, FACADE, FUNCTIONAL)

# Known failure in mlx itself (see /work/shared/reference/measured_facts.md).
GROUPED_CONV_VMAP = (
    "mlx 0.32.4 CPU: mx.vmap over stacked weights of a grouped convolution (groups > 1) "
    "gives wrong results (measured_facts.md)"
)


# ----------------------------------------------------------------------------
# Deterministic example data (explicit keys: never touches the global RNG).
# ----------------------------------------------------------------------------


def normal(seed: int, *shape: int) -> mx.array:
    return mx.random.normal(shape, key=mx.random.key(seed))


def ids(seed: int, high: int, *shape: int) -> mx.array:
    return mx.random.randint(0, high, shape, key=mx.random.key(seed))


def causal_additive(n: int) -> mx.array:
    # The oracle's helper, so the inputs are the same for every library.
    return mlx.nn.MultiHeadAttention.create_additive_causal_mask(n)


def causal_bool(lq: int, lk: int) -> mx.array:
    return mx.tril(mx.ones((lq, lk), dtype=mx.bool_), k=lk - lq)


# ----------------------------------------------------------------------------
# Registry types
# ----------------------------------------------------------------------------


class Sub:
    """A sub-layer argument, built by whichever library builds the outer layer."""

    def __init__(self, cls: str, factory: str, *args: Any, **kwargs: Any) -> None:
        self.cls, self.factory, self.args, self.kwargs = cls, factory, args, kwargs

    def __repr__(self) -> str:
        return f"Sub({self.cls}, {self.args}, {self.kwargs})"


@dataclass
class LayerCase:
    """One layer variant.

    ``inputs(seed)`` returns the positional call arguments; the first
    ``data_args`` of them are data (float activations or integer ids) that
    change with ``seed`` and carry a batch axis; the rest (masks, offsets) are
    fixed configuration.  ``known_failures`` maps a check name of
    ``test_layers.py`` to the reason it is expected to fail (strict xfail).
    """

    id: str
    cls: str
    factory: str
    args: tuple
    kwargs: dict
    inputs: Callable[[int], tuple]
    data_args: int = 1
    known_failures: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"LayerCase({self.id})"


def _resolve(arg: Any, library: str) -> Any:
    if isinstance(arg, Sub):
        return build(arg.cls, arg.factory, arg.args, arg.kwargs, library)
    return arg


def build(cls: str, factory: str, args: tuple, kwargs: dict, library: str) -> Any:
    """Construct ``cls``/``factory`` with ``args`` in ``library`` (one of :data:`LIBRARIES`)."""
    args = tuple(_resolve(a, library) for a in args)
    kwargs = {k: _resolve(v, library) for k, v in kwargs.items()}
    if library == MLX:
        return getattr(mlx.nn, cls)(*args, **kwargs)
    if library == FACADE:
        return getattr(funcnn, cls)(*args, **kwargs)
    if library == FUNCTIONAL:
        return getattr(F, factory)(*args, **kwargs)
    raise ValueError(library)


def make(case: LayerCase, library: str) -> Any:
    return build(case.cls, case.factory, case.args, case.kwargs, library)


LAYERS: list[LayerCase] = []
ERROR_CASES: list = []


def kind(cls: str, factory: str) -> Callable[..., None]:
    """Register variants of one layer: ``add(id, *args, inputs=..., **kwargs)``, ``add.error``."""

    def add(id, *args, inputs, data_args=1, known_failures=None, **kwargs):
        failures = known_failures or {}
        LAYERS.append(LayerCase(id, cls, factory, args, kwargs, inputs, data_args, failures))

    def error(id, *args, _raises=ValueError, **kwargs):
        ERROR_CASES.append(ErrorCase(id, cls, factory, args, kwargs, _raises))

    add.error = error
    return add


@dataclass
class ErrorCase:
    """Constructor arguments that mlx.nn rejects with ``error`` (funcnn must match it)."""

    id: str
    cls: str
    factory: str
    args: tuple
    kwargs: dict
    error: type = ValueError

    def __repr__(self) -> str:
        return f"ErrorCase({self.id})"


Linear = kind("Linear", "linear")
Embedding = kind("Embedding", "embedding")
Conv1d = kind("Conv1d", "conv1d")
Conv2d = kind("Conv2d", "conv2d")
LayerNorm = kind("LayerNorm", "layer_norm")
RMSNorm = kind("RMSNorm", "rms_norm")
GroupNorm = kind("GroupNorm", "group_norm")
RoPE = kind("RoPE", "rope")
MHA = kind("MultiHeadAttention", "multi_head_attention")
Sequential = kind("Sequential", "sequential")
ReLU = kind("ReLU", "relu")
SiLU = kind("SiLU", "silu")
GELU = kind("GELU", "gelu")

GROUPED = {"vmap_params": GROUPED_CONV_VMAP}


# ----------------------------------------------------------------------------
# Entries (one line per variant; keep black from exploding them)
# ----------------------------------------------------------------------------
# fmt: off

# Linear: N-D, 1-D, 2-D and 4-D inputs; with and without bias.
Linear("linear", 4, 3, inputs=lambda s: (normal(s, 2, 5, 4),))
Linear("linear_1d_input", 4, 3, inputs=lambda s: (normal(s, 4),))
Linear("linear_no_bias", 4, 3, bias=False, inputs=lambda s: (normal(s, 6, 4),))
Linear("linear_4d_input", 5, 2, inputs=lambda s: (normal(s, 2, 3, 2, 5),))

# Embedding: integer ids of any shape.
Embedding("embedding", 10, 4, inputs=lambda s: (ids(s, 10, 2, 5),))
Embedding("embedding_1d_ids", 7, 6, inputs=lambda s: (ids(s, 7, 9),))


# Conv1d (NLC): every constructor option.
def nlc(c, length=10):
    return lambda s: (normal(s, 2, length, c),)


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
def nhwc(c, h=8, w=7):
    return lambda s: (normal(s, 2, h, w, c),)


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


# Normalisation (inputs shifted and scaled so that normalising matters).
def blc(d, *lead):
    return lambda s: (3 * normal(s, *(lead or (2, 5)), d) + 1,)


LayerNorm("layer_norm", 8, inputs=blc(8))
LayerNorm("layer_norm_eps", 8, eps=1e-2, inputs=blc(8))
LayerNorm("layer_norm_no_affine", 8, affine=False, inputs=blc(8))
LayerNorm("layer_norm_no_bias", 8, bias=False, inputs=blc(8))
LayerNorm("layer_norm_no_affine_no_bias", 8, affine=False, bias=False, inputs=blc(8))
LayerNorm.error("layer_norm_eps_zero", 8, eps=0)
LayerNorm.error("layer_norm_eps_negative", 8, eps=-1e-5)
LayerNorm.error("layer_norm_eps_none", 8, eps=None, _raises=TypeError)

RMSNorm("rms_norm", 8, inputs=blc(8))
RMSNorm("rms_norm_eps", 6, eps=1e-1, inputs=blc(6))
RMSNorm.error("rms_norm_eps_zero", 8, eps=0.0)
RMSNorm.error("rms_norm_eps_negative", 8, -2.0)

GroupNorm("group_norm", 2, 8, inputs=blc(8, 2, 4, 3))
GroupNorm("group_norm_1d_spatial", 4, 8, inputs=blc(8))
GroupNorm("group_norm_eps", 2, 6, eps=1e-1, inputs=blc(6))
GroupNorm("group_norm_no_affine", 2, 8, affine=False, inputs=blc(8))
GroupNorm("group_norm_pytorch", 2, 8, pytorch_compatible=True, inputs=blc(8, 2, 4, 3))
GroupNorm(
    "group_norm_pytorch_no_affine", 4, 8, affine=False, pytorch_compatible=True, inputs=blc(8)
)
GroupNorm.error("group_norm_eps", 2, 8, eps=0.0)
GroupNorm.error("group_norm_zero_groups", 0, 8)
GroupNorm.error("group_norm_negative_groups", -2, 8)
GroupNorm.error("group_norm_zero_dims", 2, 0)
GroupNorm.error("group_norm_negative_dims", 2, -4)
GroupNorm.error("group_norm_indivisible", 3, 8)
GroupNorm.error("group_norm_eps_checked_first", 3, 8, eps=-1.0)

# RoPE: traditional/base/scale, partial rotation, int and array offsets, a heads axis.
RoPE("rope", 8, inputs=blc(8))
RoPE("rope_traditional", 8, traditional=True, inputs=blc(8))
RoPE("rope_partial_dims", 4, inputs=blc(8))
RoPE("rope_base_scale", 8, base=500.0, scale=0.25, inputs=blc(8))
RoPE("rope_heads_offset_int", 8, inputs=lambda s: (normal(s, 2, 3, 5, 8), 7))
RoPE(
    "rope_traditional_offset_int", 6, traditional=True, base=100,
    inputs=lambda s: (normal(s, 2, 5, 8), 3),
)
RoPE("rope_offset_array", 8, inputs=lambda s: (normal(s, 2, 5, 8), mx.array(4)))


# MultiHeadAttention: projection input/output dims, bias and every kind of mask.
def qkv(lq, lk, dq, dk, dv, *extra):
    return lambda s: (
        normal(s, 2, lq, dq), normal(s + 100, 2, lk, dk), normal(s + 200, 2, lk, dv), *extra
    )


def self_attn(length, d, *extra):
    return qkv(length, length, d, d, d, *extra)


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


# Sequential: sub-layers (pairs for the factory, modules for the classes),
# plain callables, nesting, equal-shaped sub-layers and the empty container.
def lin(i, o, **kw):
    return Sub("Linear", "linear", i, o, **kw)


def x34(s):
    return (normal(s, 3, 4),)


Sequential("sequential_mlp", lin(4, 8), Sub("ReLU", "relu"), lin(8, 2), inputs=x34)
Sequential(
    "sequential_callables", lin(4, 8), mx.tanh, Sub("GELU", "gelu", "tanh"),
    lin(8, 3, bias=False), Sub("SiLU", "silu"), mx.sigmoid, inputs=x34,
)
Sequential(
    "sequential_nested",
    Sub("Sequential", "sequential", lin(4, 8), Sub("LayerNorm", "layer_norm", 8)),
    Sub("RMSNorm", "rms_norm", 8),
    Sub("Conv1d", "conv1d", 8, 2, 3, padding=1),
    inputs=lambda s: (normal(s, 2, 6, 4),),
)
Sequential(  # explicit-key init must give each equal-shaped sub-layer its own key
    "sequential_same_shapes", lin(6, 6), Sub("ReLU", "relu"), lin(6, 6), lin(6, 6, bias=False),
    inputs=lambda s: (normal(s, 2, 3, 6),),
)
Sequential("sequential_empty", inputs=x34)


# Activation layers (inputs include 0 and both tails).
def act_inputs(s):
    return (mx.concatenate([mx.array([-6.0, -1.0, 0.0, 1.0, 6.0]), 3 * normal(s, 11)]),)


ReLU("relu", inputs=act_inputs)
SiLU("silu", inputs=act_inputs)
GELU("gelu", inputs=act_inputs)
for _approx in ("none", "precise", "tanh", "fast"):
    GELU(f"gelu_{_approx}", approx=_approx, inputs=act_inputs)
GELU("gelu_positional_approx", "fast", inputs=act_inputs)
GELU.error("gelu_approx", "bogus")
GELU.error("gelu_approx_case", approx="Tanh")
GELU.error("gelu_approx_none", None)
# fmt: on
