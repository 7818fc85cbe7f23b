"""Pooling where mlx.nn fails badly, and funcnn raises a clear ``ValueError`` instead.

Each test shows mlx.nn 0.32.4's behaviour beside funcnn's (the class and the
pair): a window larger than the padded input (mlx.nn: an empty array, or
``[as_strided] Negative dimensions``), a kernel size or stride set to zero or
less after construction (a ``ZeroDivisionError``, an ``as_strided`` or reduce
error, NaNs -- and, for an average over empty windows, at times a hang, so that
case runs in a subprocess with a timeout), tuple entries that are not ints
(accepted, then a crash at the first call), and an input of the wrong rank to a
padding layer (``mx.pad``'s message instead of the sliding-window one).

The matrix of ordinary cases, mlx.nn's own errors included, is in
``layer_registry/pooling.py``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import mlx.core as mx
import mlx.nn
import pytest
from layer_registry import normal

import funcnn
import funcnn.functional as F


def funcnn_raises(cls: str, factory: str, args: tuple, x: mx.array, match: str) -> None:
    """The funcnn class and pair both raise a ``ValueError`` matching ``match``."""
    with pytest.raises(ValueError, match=match):
        getattr(funcnn, cls)(*args)(x)
    with pytest.raises(ValueError, match=match):
        getattr(F, factory)(*args).apply({}, x)


# --- a window larger than the padded input ----------------------------------------------------

TOO_LARGE = [
    # cls, factory, args, input shape, mlx.nn's output shape (None: it raises)
    ("MaxPool1d", "max_pool1d", (3,), (1, 2, 2), (1, 0, 2)),
    ("MaxPool1d", "max_pool1d", (5, 2, 1), (1, 2, 2), (1, 0, 2)),
    ("AvgPool1d", "avg_pool1d", (5, 1), (1, 2, 2), None),
    ("AvgPool1d", "avg_pool1d", (2,), (1, 0, 2), (1, 0, 2)),
    ("MaxPool2d", "max_pool2d", ((5, 1), 1), (1, 2, 2, 2), None),
    ("AvgPool2d", "avg_pool2d", (3,), (1, 4, 2, 1), (1, 1, 0, 1)),
    ("MaxPool3d", "max_pool3d", (2, 1, 0), (1, 1, 3, 3, 1), (1, 0, 2, 2, 1)),
]


@pytest.mark.parametrize("cls,factory,args,shape,mlx_shape", TOO_LARGE)
def test_a_window_larger_than_the_padded_input_is_a_value_error(
    cls, factory, args, shape, mlx_shape
):
    x = normal(0, *shape)
    oracle = getattr(mlx.nn, cls)(*args)
    if mlx_shape is None:
        with pytest.raises(ValueError, match=r"\[as_strided\] Negative dimensions"):
            mx.eval(oracle(x))
    else:
        assert oracle(x).shape == mlx_shape  # silently empty
    funcnn_raises(cls, factory, args, x, r"the window \(.*\) is larger than the padded input")


def test_the_message_names_the_window_and_the_padded_size():
    with pytest.raises(ValueError) as info:
        funcnn.MaxPool2d((5, 2), padding=1)(mx.ones((1, 2, 6, 1)))
    assert str(info.value) == (
        "Pooling: the window (5, 2) is larger than the padded input, whose spatial shape is (4, 8)."
    )


# --- settings set to nonsense after construction ----------------------------------------------

MUTATED = [
    # attribute, value, cls, mlx.nn's exception type and message fragment
    ("_stride", [0], "MaxPool1d", ZeroDivisionError, "division or modulo by zero"),
    ("_stride", [-1], "AvgPool1d", ValueError, "[as_strided] Negative dimensions"),
    ("_kernel_size", [0], "MaxPool1d", ValueError, "[max] Cannot max reduce"),
    ("_kernel_size", [-1], "MaxPool1d", ValueError, "[as_strided] Negative dimensions"),
]


@pytest.mark.parametrize("name,value,cls,error,fragment", MUTATED)
def test_non_positive_settings_set_after_construction_are_a_value_error(
    name, value, cls, error, fragment
):
    x = normal(1, 1, 6, 2)
    oracle, layer = getattr(mlx.nn, cls)(2), getattr(funcnn, cls)(2)
    setattr(oracle, name, value)
    setattr(layer, name, value)
    with pytest.raises(error) as want:
        mx.eval(oracle(x))
    assert fragment in str(want.value)
    setting = name.lstrip("_")
    with pytest.raises(ValueError, match=rf"'{setting}' must be positive but got \({value[0]},\)"):
        layer(x)
    apply = F.max_pool1d_apply if cls == "MaxPool1d" else F.avg_pool1d_apply
    with pytest.raises(ValueError, match="must be positive"):
        apply({}, x, kernel_size=layer._kernel_size, stride=layer._stride)


_AVERAGE_OVER_EMPTY_WINDOWS = """
import json
import mlx.core as mx
import mlx.nn
layer = mlx.nn.AvgPool1d(2)
layer._kernel_size = [0]
y = layer(mx.ones((1, 6, 2)))
mx.eval(y)
print(json.dumps({"shape": list(y.shape), "all_nan": bool(mx.isnan(y).all().item())}))
"""


def test_an_average_over_empty_windows_is_a_value_error_not_nans_or_a_hang():
    # mlx.nn returns NaNs, or (measured: about half the runs on this machine) does not
    # return at all: a subprocess with a timeout.
    try:
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(_AVERAGE_OVER_EMPTY_WINDOWS)],
            capture_output=True, text=True, timeout=5,
        )
        assert proc.stdout.strip().endswith('"all_nan": true}'), proc.stdout + proc.stderr
    except subprocess.TimeoutExpired:
        pass
    layer = funcnn.AvgPool1d(2)
    layer._kernel_size = [0]
    with pytest.raises(ValueError, match=r"'kernel_size' must be positive but got \(0,\)"):
        layer(mx.ones((1, 6, 2)))


# --- constructor arguments that mlx.nn accepts and cannot use ---------------------------------

ENTRIES = [
    ("MaxPool2d", ((2, 2.0),), "kernel_size", RuntimeError),  # std::bad_cast at the call
    ("AvgPool2d", (2, (1, 1.0)), "stride", TypeError),        # as_strided() at the call
    ("MaxPool2d", (2, None, (1, 0.5)), "padding", TypeError),  # mx.pad() at the call
    ("AvgPool3d", ((2, 2, "2"),), "kernel_size", TypeError),   # '<=' at construction
    ("MaxPool1d", ((None,),), "kernel_size", TypeError),
]


@pytest.mark.parametrize("cls,args,name,mlx_error", ENTRIES)
def test_tuple_entries_that_are_not_ints_are_a_value_error_at_construction(
    cls, args, name, mlx_error
):
    dims = int(cls[-2])
    x = normal(2, 1, *([4] * dims), 2)
    with pytest.raises(mlx_error):
        mx.eval(getattr(mlx.nn, cls)(*args)(x))
    factory = {"M": "max", "A": "avg"}[cls[0]] + f"_pool{dims}d"
    for build in (getattr(funcnn, cls), getattr(F, factory)):
        with pytest.raises(ValueError) as info:
            build(*args)
        given = args[("kernel_size", "stride", "padding").index(name)]
        message = str(info.value)
        assert message.startswith(f"[{cls}] '{name}' must be an integer or a tuple containing")
        assert message.endswith(f"but got {tuple(given)!r}")


# --- the rank check comes before the padding --------------------------------------------------


@pytest.mark.parametrize(
    "cls,args,shape,expected",
    [
        ("MaxPool1d", (2, 1, 1), (6, 2), "at least 1 spatial dimension (3 total)"),
        ("AvgPool2d", (2, 1, 1), (1, 6, 2), "the signal has 1 dims and the window shape has 2"),
        ("MaxPool1d", (2, 2, 1), (1, 4, 4, 2), "the signal has 2 dims and the window shape has 1"),
    ],
)
def test_a_padding_layer_gets_the_rank_message_for_an_input_of_the_wrong_rank(
    cls, args, shape, expected
):
    x = normal(3, *shape)
    with pytest.raises(ValueError, match="Invalid number of padding sizes passed to pad"):
        getattr(mlx.nn, cls)(*args)(x)
    with pytest.raises(ValueError) as info:
        getattr(funcnn, cls)(*args)(x)
    assert expected in str(info.value)
    # The same message mlx.nn gives the same layer without padding.
    with pytest.raises(ValueError) as want:
        getattr(mlx.nn, cls)(*args[:2])(x)
    assert str(info.value) == str(want.value)


def test_a_padding_set_as_a_tuple_after_construction_works():
    # mlx.nn: ``[(0, 0)] + self._padding`` fails for a tuple ("can only concatenate list").
    x = normal(4, 1, 6, 2)
    oracle, layer = mlx.nn.MaxPool1d(2), funcnn.MaxPool1d(2)
    oracle._padding = layer._padding = ((1, 1),)
    with pytest.raises(TypeError, match="can only concatenate list"):
        oracle(x)
    want = mlx.nn.MaxPool1d(2, padding=1)(x)
    assert mx.array_equal(layer(x), want).item()
