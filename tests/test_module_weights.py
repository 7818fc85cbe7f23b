"""Differential tests of ``funcnn.Module`` against ``mlx.nn.Module``: weights and dtypes.

Sections 1.13 and 1.15 of ``/work/shared/reference/mlx_nn_semantics.md``:
``load_weights`` (lists, dicts, files; strict and lenient), ``save_weights``
and ``set_dtype``.

Every test builds the *same* structure with both namespaces (``funcnn`` and
``mlx.nn``, passed in as ``nn``), runs the identical code on both and compares
what comes out (see ``_compare.py``).

Where funcnn deliberately does better than mlx.nn (duplicate keys in
``load_weights``, ``pathlib.Path``, ``.npy`` files), the test asserts funcnn's
behaviour and, where it is cheap, that mlx.nn still has the bug.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as mnn  # the oracle; the library itself never imports it
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import funcnn as fnn
from _compare import A, assert_same_params, describe, outcome, same


# ----------------------------------------------------------------------
# 1.13 load_weights
# ----------------------------------------------------------------------


def two_linears(nn):
    return nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))


GOOD = [
    ("layers.0.weight", mx.zeros((3, 2))),
    ("layers.0.bias", mx.zeros((3,))),
    ("layers.1.weight", mx.zeros((1, 3))),
    ("layers.1.bias", mx.zeros((1,))),
]

LOAD_CASES = {
    "good": lambda: (GOOD, True),
    "good_dict": lambda: (dict(GOOD), True),
    "wrong_shape": lambda: (GOOD[:3] + [("layers.1.bias", mx.zeros((2,)))], True),
    "float16_accepted": lambda: (GOOD[:3] + [("layers.1.bias", mx.zeros((1,), mx.float16))], True),
    "extras": lambda: (GOOD + [("extra", A), ("layers.2.weight", A)], True),
    "missing": lambda: (GOOD[:2], True),
    "extras_and_missing": lambda: (GOOD[:2] + [("extra", A)], True),
    "not_an_array": lambda: (GOOD[:3] + [("layers.1.bias", [1.0])], True),
    "type_then_shape": lambda: (
        [("layers.0.weight", mx.zeros((5,))), ("layers.0.bias", 3)] + GOOD[2:],
        True,
    ),
    "empty_strict": lambda: ([], True),
    "empty_lenient": lambda: ([], False),
    "lenient_tolerates_everything": lambda: (
        [("layers.0.bias", mx.ones((5,))), ("nope.x", A), ("layers.7.weight", A)],
        False,
    ),
}


@pytest.mark.parametrize("case", list(LOAD_CASES))
def test_load_weights_cases(case):
    def run(nn):
        m = two_linears(nn)
        weights, strict = LOAD_CASES[case]()
        res = outcome(m.load_weights, weights, strict=strict)
        return [res if not isinstance(res, tuple) else res[1] is m, m]

    res = same(run, more_errors=True)
    expected = {
        "wrong_shape": "Expected shape (1,) but received shape (2,) for parameter layers.1.bias",
        "extras": "Received 2 parameters not in model: \nextra,\nlayers.2.weight.",
        "missing": "Missing 2 parameters: \nlayers.1.bias,\nlayers.1.weight.",
        "extras_and_missing": "Received 1 parameters not in model: \nextra.\n"
        "Missing 2 parameters: \nlayers.1.bias,\nlayers.1.weight.",
        "not_an_array": "Expected mx.array but received <class 'list'> for parameter layers.1.bias",
        "type_then_shape": "Expected shape (3, 2) but received shape (5,) for parameter layers.0.weight\n"
        "Expected mx.array but received <class 'int'> for parameter layers.0.bias",
        "empty_strict": "Missing 4 parameters: \nlayers.0.bias,\nlayers.0.weight,\nlayers.1.bias,\nlayers.1.weight.",
    }
    if case in expected:
        assert isinstance(res[0], ValueError) and str(res[0]) == expected[case]
    else:
        assert res[0] is True
    if case == "float16_accepted":
        assert res[1].layers[1].bias.dtype == mx.float16
    if case == "lenient_tolerates_everything":
        assert res[1].layers[0].bias.shape == (5,)


def test_load_weights_frozen_and_tied():
    def run(nn):
        m = two_linears(nn)
        m.freeze()

        class Tied(nn.Module):
            def __init__(self):
                super().__init__()
                lin = nn.Linear(1, 1)
                self.a = lin
                self.b = lin

        t = Tied()
        return [
            outcome(m.load_weights, GOOD[:2]),  # frozen parameters are still required
            outcome(t.load_weights, [("a.weight", mx.ones((1, 1))), ("a.bias", mx.ones((1,)))]),
            outcome(t.load_weights, [("a.weight", mx.ones((1, 1))), ("a.bias", mx.ones((1,))), ("b.weight", mx.zeros((1, 1))), ("b.bias", mx.zeros((1,)))]),
            t.a.weight.item(),
        ]

    res = same(run)
    assert str(res[0]).startswith("Missing 2 parameters")
    assert str(res[1]).startswith("Missing 2 parameters")
    assert res[3] == 0.0


@pytest.mark.parametrize("ext", ["npz", "safetensors"])
def test_save_and_load_roundtrip(tmp_path, ext):
    def run(nn):
        mx.random.seed(1)
        src = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), [nn.GroupNorm(1, 3), nn.ReLU()])
        src.freeze(keys="bias")
        src._private = mx.ones((1,))
        path = str(tmp_path / f"{nn.__name__}.{ext}")
        saved = src.save_weights(path)
        on_disk = mx.load(path)
        mx.random.seed(2)
        dst = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), [nn.GroupNorm(1, 3), nn.ReLU()])
        r = dst.load_weights(path)
        return [saved, sorted(on_disk), r is dst, dst.parameters(), src.parameters()]

    res = same(run)
    assert res[0] is None and res[2] is True
    assert res[1] == sorted(["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "layers.2.0.bias", "layers.2.0.weight"])
    assert describe(res[3]) == describe(res[4])


@pytest.mark.parametrize("name", ["w.npy", "w", "w.pt", "w.NPZ"])
def test_save_weights_bad_extension(tmp_path, name):
    def run(nn):
        return outcome(nn.Linear(1, 1).save_weights, str(tmp_path / name))

    res = same(run)
    assert isinstance(res, ValueError)
    assert str(res) == f"Unsupported file extension for {tmp_path / name}. Use '.npz' or '.safetensors'."


@pytest.mark.parametrize("ext", ["npz", "safetensors"])
def test_pathlib_path_is_accepted(tmp_path, ext):
    # Improvement over mlx.nn, which refuses pathlib.Path in both directions.
    mx.random.seed(0)
    src = two_linears(fnn)
    path = tmp_path / f"w.{ext}"
    assert src.save_weights(path) is None
    dst = two_linears(fnn)
    assert dst.load_weights(path) is dst
    assert_same_params(src, dst)
    # mlx.nn's bugs:
    with pytest.raises(AttributeError, match="endswith"):
        two_linears(mnn).save_weights(tmp_path / f"m.{ext}")
    with pytest.raises(TypeError):
        two_linears(mnn).load_weights(path)


def test_duplicate_key_is_a_value_error():
    # Improvement over mlx.nn: a key given twice raises ValueError naming it and
    # leaves the model unchanged (mlx.nn recurses until RecursionError).
    weights = GOOD + [("layers.1.bias", mx.full((1,), 9.0))]
    for strict in (True, False):
        m = two_linears(fnn)
        before = describe(m.parameters())
        with pytest.raises(ValueError, match="layers.1.bias"):
            m.load_weights(weights, strict=strict)
        assert describe(m.parameters()) == before
    m = two_linears(mnn)
    before = describe(m.parameters())
    with pytest.raises(RecursionError):  # mlx.nn's bug
        m.load_weights(weights)
    assert describe(m.parameters()) == before


@pytest.mark.parametrize(
    "extra, named",
    [
        ([("layers.01.bias", mx.zeros((1,)))], "'layers.1', 'layers.01'"),
        ([("layers", mx.zeros((1,)))], "'layers'"),
    ],
    ids=["same-index", "leaf-and-subtree"],
)
def test_ambiguous_names_are_a_value_error_even_when_not_strict(extra, named):
    # Improvement over mlx.nn: with strict=False, names that collide once
    # unflattened ("layers.1" and "layers.01", or "layers" beside "layers.0")
    # raise ValueError naming them; mlx.nn silently loads one of them or none.
    m = two_linears(fnn)
    before = describe(m.parameters())
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        m.load_weights(GOOD + extra, strict=False)
    assert describe(m.parameters()) == before
    two_linears(mnn).load_weights(GOOD + extra, strict=False)  # mlx.nn: no error


def test_npy_file_is_a_value_error(tmp_path):
    # Improvement over mlx.nn: a .npy file (one array) is a ValueError, not AttributeError.
    path = tmp_path / "one.npy"
    mx.save(str(path), mx.zeros((2,)))
    for strict in (True, False):
        with pytest.raises(ValueError, match="single array"):
            fnn.Linear(1, 2).load_weights(str(path), strict=strict)
    with pytest.raises(AttributeError, match="items"):  # mlx.nn's bug
        mnn.Linear(1, 2).load_weights(str(path))


LOAD_KEYS = [k for k, _ in GOOD]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(LOAD_KEYS + ["extra", "layers.5.weight", "layers.0.nope"]), unique=True),
    st.lists(st.sampled_from(range(3)), min_size=7, max_size=7),
    st.booleans(),
)
def test_random_load_weights(keys, variants, strict):
    def value(i, k):
        shape = dict((k2, v.shape) for k2, v in GOOD).get(k, (1,))
        return [mx.ones(shape), mx.ones((4,)), mx.ones(shape, mx.float16)][variants[i]]

    def run(nn):
        m = two_linears(nn)
        weights = [(k, value(i, k)) for i, k in enumerate(keys)]
        res = outcome(m.load_weights, weights, strict=strict)
        return [res if not isinstance(res, tuple) else "ok", m]

    same(run, more_errors=True)


# ----------------------------------------------------------------------
# 1.15 set_dtype
# ----------------------------------------------------------------------


def dtype_model(nn):
    class D(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = mx.ones((2,))
            self.i = mx.ones((2,), mx.int32)
            self.b = mx.ones((2,), mx.bfloat16)
            self.c = mx.ones((2,), mx.complex64)
            self._p = mx.ones((2,))
            self.sub = nn.Linear(1, 1)
            self.sub.freeze()

    return D()


def dtypes(m):
    return {k: str(v.dtype) for k, v in m.items() if isinstance(v, mx.array)} | {"sub.weight": str(m.sub.weight.dtype)}


def test_set_dtype():
    def run(nn):
        a, b, c = dtype_model(nn), dtype_model(nn), dtype_model(nn)
        seen = []
        results = [a.set_dtype(mx.float16), b.set_dtype(mx.float16, predicate=None)]
        c.set_dtype(mx.float16, predicate=lambda t: seen.append(t) or t == mx.int32)
        return [results, dtypes(a), dtypes(b), dtypes(c), [str(t) for t in seen]]

    res = same(run)
    assert res[0] == [None, None]
    assert res[1] == {
        "f": "mlx.core.float16",
        "i": "mlx.core.int32",
        "b": "mlx.core.float16",
        "c": "mlx.core.complex64",
        "_p": "mlx.core.float32",
        "sub.weight": "mlx.core.float16",
    }
    assert res[2]["c"] == "mlx.core.float16" and res[2]["_p"] == "mlx.core.float32"
    assert res[3]["i"] == "mlx.core.float16" and res[3]["f"] == "mlx.core.float32"
    assert len(res[4]) == 6
