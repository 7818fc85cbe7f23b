"""One registry of every funcnn layer, in the style of Haiku's integration tests.

Each :class:`LayerCase` names a layer three ways -- the :mod:`mlx.nn` class
(the oracle), the funcnn facade class of the same name and the
:mod:`funcnn.functional` factory -- with constructor arguments shared by all
three, a builder of example inputs, the channels its pure pair uses (key,
training mode, state) and the settings a test may change after construction.
``tests/test_layers.py`` runs every check over every entry, so a new layer (or
a new constructor option) is one entry away from full coverage.

The entries live in one file per family of MLX's ``python/mlx/nn/layers/``
(``layer_registry/linear.py`` for ``layers/linear.py``, ...); this package
assembles them.  Sub-layers (for ``Sequential``) are written as :class:`Sub`
and resolved per library: ``Sub("Linear", "linear", 4, 8)`` becomes
``mlx.nn.Linear(4, 8)``, ``funcnn.Linear(4, 8)`` or
``funcnn.functional.linear(4, 8)``.  Anything else (``mx.tanh``) is passed
through unchanged.

Adding a layer ``Foo`` (factory ``foo``) in its family file::

    Foo = kind("Foo", "foo", mutations={"eps": 0.5})
    Foo("foo_default", 4, 8, inputs=lambda seed: (normal(seed, 2, 4),))
    Foo("foo_no_bias", 4, 8, bias=False, inputs=...)
    Foo.error("foo_bad_dims", 0, 8)                  # a constructor ValueError of mlx.nn
    Foo.call_error("foo_1d", 4, 8, inputs=...)       # a call ValueError of mlx.nn
"""

from . import (  # noqa: F401 - registers the entries, in MLX's family order
    activations,
    containers,
    convolution,
    convolution_transpose,
    distributed,
    dropout,
    embedding,
    linear,
    normalization,
    pooling,
    positional_encoding,
    quantized,
    recurrent,
    transformer,
    upsample,
)
from ._types import (
    CALL_ERROR_CASES,
    ERROR_CASES,
    FACADE,
    FUNCTIONAL,
    LAYERS,
    LIBRARIES,
    MLX,
    CallErrorCase,
    ErrorCase,
    LayerCase,
    Sub,
    build,
    ids,
    kind,
    make,
    normal,
)

__all__ = [
    "Sub",
    "LayerCase",
    "ErrorCase",
    "CallErrorCase",
    "LAYERS",
    "ERROR_CASES",
    "CALL_ERROR_CASES",
    "LIBRARIES",
    "MLX",
    "FACADE",
    "FUNCTIONAL",
    "build",
    "make",
    "kind",
    "normal",
    "ids",
]
