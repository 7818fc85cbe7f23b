"""What the layer matrix cannot reach in the ``linear`` and ``embedding`` families.

* ``Embedding.as_linear`` (a method) and its pure twin
  :func:`funcnn.functional.embedding_as_linear` against ``mlx.nn``, bit for
  bit, values and gradients;
* the classes define every method ``mlx.nn``'s define (quantization, a later
  issue, aside);
* ``Identity`` returns the very object it is given;
* ``Bilinear`` names a wrong feature size (``mlx.nn`` fails in a reshape
  that names neither), and otherwise does what ``mlx.nn`` does, including
  broadcasting a single ``x2`` vector.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn
import numpy as np
import pytest
from _bits import assert_identical, normal

import funcnn
import funcnn.functional as F


def twins(cls: str, *args, seed: int = 0):
    """The funcnn and the mlx.nn layer, built after the same seed (so with equal weights)."""
    mx.random.seed(seed)
    ours = getattr(funcnn, cls)(*args)
    mx.random.seed(seed)
    theirs = getattr(mlx.nn, cls)(*args)
    return ours, theirs


# --- Embedding.as_linear ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16], ids=str)
@pytest.mark.parametrize("shape", [(6,), (3, 6), (2, 4, 6)], ids=str)
def test_as_linear_matches_mlx(shape, dtype):
    ours, theirs = twins("Embedding", 11, 6, seed=3)
    ours.set_dtype(dtype)
    theirs.set_dtype(dtype)
    x = normal(1, *shape).astype(dtype)
    out = ours.as_linear(x)
    assert out.shape == shape[:-1] + (11,)
    assert_identical(out, theirs.as_linear(x))
    # The pure function on the plain parameter tree: the same bits.
    assert_identical(F.embedding_as_linear(ours.parameters(), x), out)

    cotangent = normal(2, *out.shape).astype(dtype)

    def grads(fn, params):
        return mx.grad(lambda p, v: (fn(p, v) * cotangent).sum(), argnums=(0, 1))(params, x)

    got_p, got_x = grads(F.embedding_as_linear, ours.parameters())
    want_p, want_x = grads(lambda p, v: theirs.update(p).as_linear(v), theirs.parameters())
    assert_identical(got_p["weight"], want_p["weight"])
    assert_identical(got_x, want_x)


def test_as_linear_ties_input_and_output_embeddings():
    emb = funcnn.Embedding(5, 3)
    ids = mx.array([[0, 4, 2]])
    logits = emb.as_linear(emb(ids))
    # Each embedding's own row scores its squared norm.
    expected = mx.sum(emb.weight[ids] ** 2, axis=-1)
    assert mx.allclose(mx.take_along_axis(logits, ids[..., None], -1)[..., 0], expected).item()
    # Reads the weight at call time, as mlx.nn does.
    emb.weight = mx.zeros((5, 3))
    assert not mx.any(emb.as_linear(mx.ones((1, 3)))).item()


def test_as_linear_under_transforms():
    ours = funcnn.Embedding(7, 4)
    xs = normal(3, 5, 2, 4)
    params = ours.parameters()
    vmapped = mx.vmap(lambda v: F.embedding_as_linear(params, v))(xs)
    assert_identical(mx.compile(F.embedding_as_linear)(params, xs), ours.as_linear(xs))
    np.testing.assert_allclose(np.array(vmapped), np.array(ours.as_linear(xs)), rtol=1e-6)


# --- nothing of mlx.nn's classes is missing ---------------------------------------------

LATER = {"to_quantized"}  # quantization: a later issue


@pytest.mark.parametrize("cls", ["Identity", "Linear", "Bilinear", "Embedding"])
def test_classes_define_what_mlx_defines(cls):
    theirs = {n for n in vars(getattr(mlx.nn, cls)) if not n.startswith("__")} - LATER
    ours = {n for n in vars(getattr(funcnn, cls)) if not n.startswith("__")}
    assert theirs <= ours, theirs - ours
    assert issubclass(getattr(funcnn, cls), funcnn.Module)


# --- Identity ---------------------------------------------------------------------------


def test_identity_returns_the_same_object_and_ignores_arguments():
    x = mx.ones((2, 3))
    for layer in (funcnn.Identity(), funcnn.Identity(3, 4, bias=False), mlx.nn.Identity(1, a=2)):
        assert layer(x) is x
        assert layer.parameters() == {}
    pair = F.identity(3, key="ignored")
    assert pair.init() == {} and pair.init(mx.random.key(0)) == {}
    assert pair.apply({}, x) is x
    # Not only arrays: whatever it is given comes back.
    marker = object()
    assert funcnn.Identity()(marker) is marker


# --- Bilinear -----------------------------------------------------------------------------

WRONG_FEATURES = [
    ("x1", (2, 5), (2, 4), "input1_dims=3", "(2, 5)"),
    ("x2", (2, 3), (2, 5), "input2_dims=4", "(2, 5)"),
    ("x1", (4,), (4,), "input1_dims=3", "(4,)"),
    ("x1", (), (4,), "input1_dims=3", "()"),
]


@pytest.mark.parametrize("which,shape1,shape2,setting,received", WRONG_FEATURES)
def test_bilinear_names_a_wrong_feature_size(which, shape1, shape2, setting, received):
    ours, theirs = twins("Bilinear", 3, 4, 5)
    x1, x2 = mx.ones(shape1), mx.ones(shape2)
    with pytest.raises(ValueError) as want:
        theirs(x1, x2)
    assert str(want.value).startswith("[reshape]"), "mlx.nn changed: compare messages instead"
    expected = (
        f"Bilinear: {which} must have {setting} features on its last axis, "
        f"received an array of shape {received}."
    )
    for run in (lambda: ours(x1, x2), lambda: F.bilinear_apply(ours.parameters(), x1, x2)):
        with pytest.raises(ValueError) as got:
            run()
        assert str(got.value) == expected


def test_bilinear_accepts_what_mlx_accepts():
    ours, theirs = twins("Bilinear", 1, 4, 2, seed=5)
    cases = [
        (normal(0, 6, 1), normal(1, 4)),  # one x2 vector for every row of x1
        (normal(0, 6, 1), normal(1, 1, 4)),
        (mx.array(0.5), normal(1, 4)),  # a scalar is one feature
        (normal(0, 2, 3, 1), normal(1, 6, 4)),  # the same rows, grouped differently
    ]
    for x1, x2 in cases:
        assert_identical(ours(x1, x2), theirs(x1, x2))


def test_bilinear_is_the_bilinear_form():
    layer = funcnn.Bilinear(3, 2, 4)
    x1, x2 = normal(7, 5, 3), normal(8, 5, 2)
    want = mx.einsum("nj,oji,ni->no", x2, layer.weight, x1) + layer.bias
    np.testing.assert_allclose(np.array(layer(x1, x2)), np.array(want), rtol=1e-5, atol=1e-5)
