"""Registry types and example-data helpers, shared by the family files of the registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import mlx.core as mx
import mlx.nn

import funcnn
import funcnn.functional as F

# The three ways to build a layer.
MLX, FACADE, FUNCTIONAL = "mlx.nn", "funcnn", "functional"
LIBRARIES = (MLX, FACADE, FUNCTIONAL)


# ----------------------------------------------------------------------------
# Deterministic example data (explicit keys: never touches the global RNG).
# ----------------------------------------------------------------------------


def normal(seed: int, *shape: int) -> mx.array:
    return mx.random.normal(shape, key=mx.random.key(seed))


def ids(seed: int, high: int, *shape: int) -> mx.array:
    return mx.random.randint(0, high, shape, key=mx.random.key(seed))


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
    fixed configuration.

    The channels of the pure pair, declared here and checked against the
    pair's flags: ``stochastic`` (``apply`` takes ``key``), ``mode_dependent``
    (takes ``training``), ``stateful`` (returns ``(output, updates)``).
    ``mutations`` maps a setting attribute (as :mod:`mlx.nn` stores it) to a
    new value that a check assigns after construction, on the funcnn and the
    mlx.nn module alike.  ``known_failures`` maps a check name of
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
    stochastic: bool = False
    mode_dependent: bool = False
    stateful: bool = False
    mutations: dict = field(default_factory=dict)
    output_dtype: Any = None

    def __repr__(self) -> str:
        return f"LayerCase({self.id})"


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


@dataclass
class CallErrorCase:
    """A call that mlx.nn rejects with ``error`` (in training mode unless ``training`` is False)."""

    id: str
    cls: str
    factory: str
    args: tuple
    kwargs: dict
    inputs: Callable[[int], tuple]
    training: bool = True
    error: type = ValueError

    def __repr__(self) -> str:
        return f"CallErrorCase({self.id})"


LAYERS: list[LayerCase] = []
ERROR_CASES: list[ErrorCase] = []
CALL_ERROR_CASES: list[CallErrorCase] = []


def kind(
    cls: str,
    factory: str,
    *,
    stochastic: bool = False,
    mode_dependent: bool = False,
    stateful: bool = False,
    mutations: dict | None = None,
    output_dtype: Any = None,
) -> Callable[..., None]:
    """Register variants of one layer: ``add(id, *args, inputs=..., **kwargs)``, ``add.error``.

    The keyword arguments of ``kind`` are the defaults of every variant;
    ``add`` may override ``stateful``, ``mutations`` and ``output_dtype`` (e.g.
    a BatchNorm without running statistics is not stateful).  ``output_dtype``
    is the dtype mlx.nn's output has whatever the input's (a float32 constant
    that promotes half-precision inputs); ``None``: the input's.
    """

    def add(id, *args, inputs, data_args=1, known_failures=None, **kwargs):
        case = LayerCase(
            id, cls, factory, args, {}, inputs, data_args, known_failures or {},
            stochastic, mode_dependent, kwargs.pop("_stateful", stateful),
            kwargs.pop("_mutations", dict(mutations or {})),
            kwargs.pop("_output_dtype", output_dtype),
        )
        case.kwargs = kwargs
        LAYERS.append(case)

    def error(id, *args, _raises=ValueError, **kwargs):
        ERROR_CASES.append(ErrorCase(id, cls, factory, args, kwargs, _raises))

    def call_error(id, *args, inputs, _raises=ValueError, _training=True, **kwargs):
        CALL_ERROR_CASES.append(
            CallErrorCase(id, cls, factory, args, kwargs, inputs, _training, _raises)
        )

    add.error = error
    add.call_error = call_error
    return add
