"""Layer checks beyond the registry matrix: hypothesis over random shapes and options, and helpers.

For Linear, Conv1d/2d, the norms, RoPE and MHA, random shapes and
constructor options give bit-identical outputs to mlx.nn; the causal-mask
helper, mask kinds and ``Embedding.as_linear`` match mlx.nn's.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn
import numpy as np
import pytest
from _layer_helpers import bits
from hypothesis import given, settings
from hypothesis import strategies as st
from layer_registry import FUNCTIONAL, MLX, build, normal
from mlx.utils import tree_map

import funcnn
import funcnn.functional as F


# --- helpers shared with mlx.nn ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16])
@pytest.mark.parametrize("n", [1, 4, 7])
def test_create_additive_causal_mask(n, dtype):
    want = mlx.nn.MultiHeadAttention.create_additive_causal_mask(n, dtype)
    for got in (
        F.create_additive_causal_mask(n, dtype),
        funcnn.MultiHeadAttention.create_additive_causal_mask(n, dtype),
    ):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(bits(got), bits(want))
    assert F.create_additive_causal_mask(3).dtype == mx.float32


def test_mha_mask_keyword_and_kinds_agree():
    mha = F.multi_head_attention(8, 2)
    params = mha.init(mx.random.key(0))
    x = normal(0, 2, 5, 8)
    additive = mha.apply(params, x, x, x, mask=F.create_additive_causal_mask(5))
    boolean = mha.apply(params, x, x, x, mask=mx.tril(mx.ones((5, 5), dtype=mx.bool_)))
    causal = mha.apply(params, x, x, x, mask="causal")
    # As in mlx.nn (measured): the three kinds of causal mask give identical outputs.
    assert mx.array_equal(additive, causal).item()
    assert mx.array_equal(boolean, causal).item()
    module = funcnn.MultiHeadAttention(8, 2)
    module.update(params)
    assert mx.array_equal(module(x, x, x, mask="causal"), causal).item()


def test_embedding_as_linear_matches_mlx():
    mx.random.seed(3)
    want_module = mlx.nn.Embedding(10, 4)
    mx.random.seed(3)
    got_module = funcnn.Embedding(10, 4)
    x = normal(0, 2, 3, 4)
    want = want_module.as_linear(x)
    assert mx.array_equal(got_module.as_linear(x), want).item()
    assert mx.array_equal(F.embedding_as_linear(got_module.parameters(), x), want).item()


def test_pair_unpacks_and_sequential_rejects_non_callables():
    init, apply = F.linear(3, 2)
    params = init(mx.random.key(0))
    assert apply(params, mx.ones((3,))).shape == (2,)
    with pytest.raises(TypeError):
        F.sequential(F.linear(3, 2), 5)


# --- hypothesis: random shapes and options vs mlx.nn ------------------------------------------

HYP = settings(max_examples=12, deadline=None, derandomize=True, database=None)


def _check_against_mlx(cls, factory, args, kwargs, x):
    pair = build(cls, factory, args, kwargs, FUNCTIONAL)
    params = pair.init(mx.random.key(0))
    params = tree_map(lambda a: a + 0.3 * normal(1, *a.shape), params)
    module = build(cls, factory, args, kwargs, MLX)
    module.update(params)
    got, want = pair.apply(params, x), module(x)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(np.array(got), np.array(want))


@HYP
@given(
    batch=st.lists(st.integers(1, 4), min_size=0, max_size=3),
    din=st.integers(1, 9),
    dout=st.integers(1, 9),
    bias=st.booleans(),
)
def test_hypothesis_linear(batch, din, dout, bias):
    _check_against_mlx("Linear", "linear", (din, dout), {"bias": bias}, normal(2, *batch, din))


@st.composite
def _conv_config(draw, spatial: int):
    groups = draw(st.integers(1, 3))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(spatial))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(spatial))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(spatial))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(spatial))
    sizes = tuple(
        draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), 9))
        for k, p, d in zip(kernel, padding, dilation)
    )
    batch = draw(st.integers(1, 3))
    bias = draw(st.booleans())
    return groups, cin, cout, kernel, stride, padding, dilation, sizes, batch, bias


@HYP
@given(cfg=_conv_config(1))
def test_hypothesis_conv1d(cfg):
    groups, cin, cout, (k,), (s,), (p,), (d,), (length,), n, bias = cfg
    kwargs = dict(stride=s, padding=p, dilation=d, groups=groups, bias=bias)
    _check_against_mlx("Conv1d", "conv1d", (cin, cout, k), kwargs, normal(3, n, length, cin))


@HYP
@given(cfg=_conv_config(2), as_ints=st.booleans())
def test_hypothesis_conv2d(cfg, as_ints):
    groups, cin, cout, kernel, stride, padding, dilation, (h, w), n, bias = cfg
    if as_ints:
        kernel, stride, padding, dilation = (t[0] for t in (kernel, stride, padding, dilation))
        w = max(w, h)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias)
    _check_against_mlx("Conv2d", "conv2d", (cin, cout, kernel), kwargs, normal(4, n, h, w, cin))


@HYP
@given(
    shape=st.lists(st.integers(1, 5), min_size=0, max_size=3),
    dims=st.integers(1, 12),
    affine=st.booleans(),
    bias=st.booleans(),
    eps=st.sampled_from([1e-5, 1e-3, 0.5]),
)
def test_hypothesis_layer_norm(shape, dims, affine, bias, eps):
    x = 3 * normal(5, *shape, dims) + 1
    _check_against_mlx(
        "LayerNorm", "layer_norm", (dims,), dict(eps=eps, affine=affine, bias=bias), x
    )
    _check_against_mlx("RMSNorm", "rms_norm", (dims,), dict(eps=eps), x)


@HYP
@given(
    batch=st.integers(1, 3),
    spatial=st.lists(st.integers(1, 4), min_size=0, max_size=2),
    groups=st.integers(1, 4),
    per_group=st.integers(1, 3),
    affine=st.booleans(),
    pytorch_compatible=st.booleans(),
)
def test_hypothesis_group_norm(batch, spatial, groups, per_group, affine, pytorch_compatible):
    dims = groups * per_group
    x = 3 * normal(6, batch, *spatial, dims) + 1
    kwargs = dict(affine=affine, pytorch_compatible=pytorch_compatible)
    _check_against_mlx("GroupNorm", "group_norm", (groups, dims), kwargs, x)


@HYP
@given(
    batch=st.integers(1, 2),
    lq=st.integers(1, 5),
    lk=st.integers(1, 5),
    heads=st.integers(1, 3),
    head_dim=st.integers(1, 3),
    in_dims=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
    value_dims=st.sampled_from([None, 6]),
    value_output_dims=st.sampled_from([None, 5]),
    bias=st.booleans(),
    mask=st.sampled_from([None, "bool", "additive"]),
)
def test_hypothesis_multi_head_attention(
    batch, lq, lk, heads, head_dim, in_dims, value_dims, value_output_dims, bias, mask
):
    dims = heads * head_dim
    if value_dims is not None:
        value_dims = heads * value_dims
    args = (dims, heads, *in_dims, value_dims, value_output_dims, bias)
    pair = F.multi_head_attention(*args)
    params = tree_map(lambda a: a + 0.3 * normal(1, *a.shape), pair.init(mx.random.key(0)))
    module = mlx.nn.MultiHeadAttention(*args)
    module.update(params)
    q, k, v = (
        normal(2, batch, lq, in_dims[0]),
        normal(3, batch, lk, in_dims[1]),
        normal(4, batch, lk, in_dims[2]),
    )
    m = None
    if mask == "bool":
        m = normal(5, lq, lk) > -0.5
        m[:, 0] = True  # no fully masked row
    elif mask == "additive":
        m = 2 * normal(5, lq, lk)
    got, want = pair.apply(params, q, k, v, m), module(q, k, v, mask=m)
    assert got.shape == want.shape == (batch, lq, value_output_dims or dims)
    np.testing.assert_array_equal(np.array(got), np.array(want))


@HYP
@given(
    shape=st.lists(st.integers(1, 4), min_size=2, max_size=3),  # rope needs ndim >= 2
    half_dims=st.integers(1, 4),
    extra=st.integers(0, 4),
    traditional=st.booleans(),
    base=st.sampled_from([10000, 500.0, 10]),
    scale=st.sampled_from([1.0, 0.5, 2.0]),
    offset=st.one_of(st.integers(0, 20), st.integers(0, 20).map(mx.array)),
)
def test_hypothesis_rope(shape, half_dims, extra, traditional, base, scale, offset):
    dims = 2 * half_dims
    x = normal(6, *shape, dims + extra)
    kwargs = dict(traditional=traditional, base=base, scale=scale)
    got = F.rope(dims, **kwargs).apply({}, x, offset)
    want = mlx.nn.RoPE(dims, **kwargs)(x, offset)
    np.testing.assert_array_equal(np.array(got), np.array(want))
    assert mx.array_equal(funcnn.RoPE(dims, **kwargs)(x, offset), want).item()
