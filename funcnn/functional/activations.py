"""Activation functions on arrays (MLX's ``layers/activations.py``).

They are re-exported where :mod:`mlx.nn` has them (``funcnn.relu``,
``funcnn.layers.activations.relu``); the pair factories of the activation
layers (``F.relu()``, ``F.leaky_relu(0.2)``, ...) are in
:mod:`funcnn.functional.activation_layers`, because a pair factory and an
array function cannot share a name in one module.  The ``*_apply`` functions
at the end are the layers' math with their settings as keyword arguments
(``leaky_relu_apply(params, x, negative_slope=0.2)``).

The functions :mod:`mlx.nn` compiles with ``shapeless=True`` are compiled the
same way, and every function is written with MLX's operations in MLX's order,
so results agree with :mod:`mlx.nn` bit for bit.  Compilation has visible
consequences, which are kept too: a compiled function takes Python scalars
(``relu(3.0)``, a constant of the trace) but rejects NumPy arrays with
:func:`mlx.core.compile`'s ``ValueError``, and fuses its element-wise chain
into one kernel.  :func:`glu` and :func:`tanh` are plain functions, as in MLX.

Three defects of shapeless compilation in mlx 0.32.4 are avoided (MLX's
results are kept everywhere else):

* ``mlx.nn.log_softmax`` crashes the interpreter when it reduces only axes
  of size 1 (an ``(N, 1)`` input); :func:`log_softmax` compiles that case for
  its shape instead;
* once traced, ``mlx.nn.softmax``/``softmin`` crash and ``log_softmax``
  returns a wrongly shaped array on an empty input (``(N, 0)``); here an
  empty input is computed uncompiled, as MLX's first call does (an empty
  result, or MLX's ``ValueError`` for ``log_softmax``);
* once traced, ``mlx.nn.prelu`` (and any function given array settings, such
  as ``leaky_relu(x, slopes)``) computes arrays whose shapes do not broadcast
  out of bounds, silently; here they raise MLX's broadcasting ``ValueError``,
  as on a first call.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable
from functools import partial
from typing import Any, Union

import mlx.core as mx

# The array functions of mlx.nn's activations family, in its order (``funcnn.layers.activations``
# re-exports exactly these beside the classes).
FUNCTIONS = [
    "sigmoid",
    "relu",
    "relu2",
    "relu6",
    "leaky_relu",
    "log_softmax",
    "elu",
    "softmax",
    "softplus",
    "softsign",
    "softshrink",
    "celu",
    "silu",
    "log_sigmoid",
    "gelu",
    "gelu_approx",
    "gelu_fast_approx",
    "glu",
    "step",
    "selu",
    "prelu",
    "mish",
    "hardswish",
    "hard_tanh",
    "hard_shrink",
    "softmin",
    "tanh",
]

__all__ = [
    *FUNCTIONS,
    "glu_apply",
    "leaky_relu_apply",
    "elu_apply",
    "softshrink_apply",
    "celu_apply",
    "prelu_apply",
    "gelu_apply",
    "step_apply",
    "hard_shrink_apply",
]

# An array, or a Python scalar (a constant of the compiled trace).
ArrayLike = Union[mx.array, float, int, bool]
Axis = Union[int, tuple, list, None]

_compiled = partial(mx.compile, shapeless=True)


def _compiled_broadcasting(fn: Callable[..., mx.array]) -> Callable[..., mx.array]:
    """``fn`` compiled as :func:`_compiled`, for a function of several arrays that broadcast.

    A shapeless compiled function checks that its arrays broadcast only when
    it traces: afterwards, arrays of the traced ranks whose shapes do not
    broadcast (``prelu(x, alpha)`` with ``x.shape == (2, 4)`` and
    ``alpha.shape == (3,)``) are computed out of bounds, silently giving
    garbage in mlx 0.32.4 (as :mod:`mlx.nn`'s functions do).  Such arguments
    run ``fn`` uncompiled instead, which raises MLX's own error for them.
    """
    compiled = _compiled(fn)

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> mx.array:
        shapes = [a.shape for a in (*args, *kwargs.values()) if isinstance(a, mx.array)]
        if len(shapes) > 1:
            try:
                mx.broadcast_shapes(*shapes)
            except ValueError:
                return fn(*args, **kwargs)
        return compiled(*args, **kwargs)

    return checked


@_compiled
def sigmoid(x: ArrayLike) -> mx.array:
    """The logistic function ``1 / (1 + exp(-x))``.

    Example:
        >>> import mlx.core as mx
        >>> sigmoid(mx.array([0.0, mx.inf])).tolist()
        [0.5, 1.0]
    """
    return mx.sigmoid(x)


@_compiled
def relu(x: ArrayLike) -> mx.array:
    """``max(x, 0)``; integer inputs stay integer.

    Example:
        >>> import mlx.core as mx
        >>> relu(mx.array([-1.0, 2.0])).tolist()
        [0.0, 2.0]
    """
    return mx.maximum(x, 0)


@_compiled
def relu2(x: ArrayLike) -> mx.array:
    """``max(x, 0) ** 2`` (squared ReLU).

    Example:
        >>> import mlx.core as mx
        >>> relu2(mx.array([-1.0, 3.0])).tolist()
        [0.0, 9.0]
    """
    return mx.square(mx.maximum(x, 0))


@_compiled
def relu6(x: ArrayLike) -> mx.array:
    """``min(max(x, 0), 6)``; the float bound makes integer inputs float32, as in MLX.

    Example:
        >>> import mlx.core as mx
        >>> relu6(mx.array([-1, 3, 8]))
        array([0, 3, 6], dtype=float32)
    """
    return mx.minimum(mx.maximum(x, 0), 6.0)


@_compiled_broadcasting
def leaky_relu(x: ArrayLike, negative_slope: Any = 0.01) -> mx.array:
    """``max(negative_slope * x, x)``.

    That is ``x`` above zero and ``negative_slope * x`` below it only for a
    slope of at most 1; this is MLX's formula, kept for any slope.

    Example:
        >>> import mlx.core as mx
        >>> leaky_relu(mx.array([-2.0, 3.0]), 0.5).tolist()
        [-1.0, 3.0]
    """
    return mx.maximum(negative_slope * x, x)


def _reduces_only_unit_axes(x: mx.array, axis: Axis) -> bool:
    """Whether ``axis`` is a valid partial reduction of ``x`` over axes of size 1 only.

    Anything invalid answers ``False``, so that MLX raises its own error for it.
    """
    if axis is None:
        return False
    items = axis if isinstance(axis, (tuple, list)) else [axis]
    try:
        axes = [operator.index(a) for a in items]
    except TypeError:
        return False
    if not axes or any(not -x.ndim <= a < x.ndim for a in axes):
        return False
    unique = {a % x.ndim for a in axes}
    return len(unique) == len(axes) < x.ndim and all(x.shape[a] == 1 for a in unique)


def _guarded_reduction(
    math_fn: Callable[[ArrayLike, Axis], mx.array], *, unit_axes_crash: bool = False
) -> Callable[[ArrayLike, Axis], mx.array]:
    """``math_fn(x, axis)`` compiled as :func:`_compiled`, around what crashes it.

    Once a shapeless compiled reduction is traced, an empty input (in mlx
    0.32.4) crashes ``mx.softmax`` and gives ``log_softmax`` a wrong shape:
    it runs uncompiled, as a first call would.  With ``unit_axes_crash``, a
    reduction over axes of size 1 only, which corrupts memory in the
    shapeless kernels of ``log_softmax``, is compiled for its shape.
    """
    shapeless, by_shape = _compiled(math_fn), mx.compile(math_fn)

    def run(x: ArrayLike, axis: Axis) -> mx.array:
        if isinstance(x, mx.array):
            if x.size == 0:
                return math_fn(x, axis)
            if unit_axes_crash and _reduces_only_unit_axes(x, axis):
                return by_shape(x, axis)
        return shapeless(x, axis)

    return run


def _log_softmax_math(x: ArrayLike, axis: Axis) -> mx.array:
    # Shift by the maximum first (outside the gradient): adding a large maximum
    # back inside logsumexp would round the normaliser away.
    x = x - mx.stop_gradient(mx.max(x, axis=axis, keepdims=True))
    return x - mx.logsumexp(x, axis=axis, keepdims=True)


_log_softmax = _guarded_reduction(_log_softmax_math, unit_axes_crash=True)


def log_softmax(x: ArrayLike, axis: Axis = -1) -> mx.array:
    """``x - logsumexp(x)`` along ``axis``, stable for large inputs.

    Compiled with ``shapeless=True`` and bit-identical to MLX's, except where
    MLX's crashes the interpreter (see the module's docstring): over axes of
    size 1 only (an ``(N, 1)`` input) the result is the formula's, 0 for
    finite inputs.

    Example:
        >>> import mlx.core as mx
        >>> [round(v, 6) for v in log_softmax(mx.array([1e4, 1e4])).tolist()]
        [-0.693147, -0.693147]
        >>> log_softmax(mx.array([[3.0], [-2.0]])).tolist()       # mlx.nn: segfault
        [[0.0], [0.0]]
    """
    return _log_softmax(x, axis)


@_compiled_broadcasting
def elu(x: ArrayLike, alpha: Any = 1.0) -> mx.array:
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``.

    Example:
        >>> import mlx.core as mx
        >>> elu(mx.array([2.0, 0.0, -mx.inf]), alpha=0.5).tolist()
        [2.0, 0.0, -0.5]
    """
    return mx.where(x > 0, x, alpha * (mx.exp(x) - 1))


def _softmax_math(x: ArrayLike, axis: Axis) -> mx.array:
    return mx.softmax(x, axis=axis)


_softmax = _guarded_reduction(_softmax_math)


def softmax(x: ArrayLike, axis: Axis = -1) -> mx.array:
    """``exp(x) / sum(exp(x))`` along ``axis`` (:func:`mlx.core.softmax`).

    Example:
        >>> import mlx.core as mx
        >>> softmax(mx.array([[0.0, 5.0], [0.0, 5.0]]), axis=0).tolist()
        [[0.5, 0.5], [0.5, 0.5]]
    """
    return _softmax(x, axis)


@_compiled
def softplus(x: ArrayLike) -> mx.array:
    """``log(1 + exp(x))``, as ``logaddexp(x, 0)`` (no overflow for large ``x``).

    Example:
        >>> import mlx.core as mx
        >>> softplus(mx.array([1000.0, -mx.inf])).tolist()
        [1000.0, 0.0]
    """
    return mx.logaddexp(x, 0)


@_compiled
def softsign(x: ArrayLike) -> mx.array:
    """``x / (1 + |x|)``.

    Example:
        >>> import mlx.core as mx
        >>> softsign(mx.array([-1.0, 3.0])).tolist()
        [-0.5, 0.75]
    """
    return mx.divide(x, 1 + mx.abs(x))


@_compiled_broadcasting
def softshrink(x: ArrayLike, lambd: Any = 0.5) -> mx.array:
    """Shrink toward zero by ``lambd``: ``x - sign(x) * lambd`` where ``|x| > lambd``, else 0.

    Example:
        >>> import mlx.core as mx
        >>> softshrink(mx.array([-2.0, 0.25, 1.5])).tolist()
        [-1.5, 0.0, 1.0]
    """
    return mx.where(mx.abs(x) > lambd, x - mx.sign(x) * lambd, 0)


@_compiled_broadcasting
def celu(x: ArrayLike, alpha: Any = 1.0) -> mx.array:
    """``max(x, 0) + alpha * (exp(min(x, 0) / alpha) - 1)``.

    Example:
        >>> import mlx.core as mx
        >>> celu(mx.array([2.0, -mx.inf]), alpha=2.0).tolist()
        [2.0, -2.0]
    """
    return mx.maximum(x, 0.0) + alpha * (mx.exp(mx.minimum(x, 0.0) / alpha) - 1)


@_compiled
def silu(x: ArrayLike) -> mx.array:
    """``x * sigmoid(x)`` (the swish function).

    Example:
        >>> import mlx.core as mx
        >>> silu(mx.array([0.0, 100.0])).tolist()
        [0.0, 100.0]
    """
    return x * mx.sigmoid(x)


@_compiled
def log_sigmoid(x: ArrayLike) -> mx.array:
    """``log(sigmoid(x))``, as ``-softplus(-x)``.

    Example:
        >>> import mlx.core as mx
        >>> log_sigmoid(mx.array([mx.inf, -1000.0])).tolist()
        [-0.0, -1000.0]
    """
    return -softplus(-x)


@_compiled
def gelu(x: ArrayLike) -> mx.array:
    """The exact Gaussian error linear unit ``x * (1 + erf(x / sqrt(2))) / 2``.

    Example:
        >>> import mlx.core as mx
        >>> gelu(mx.array([0.0, 10.0])).tolist()
        [0.0, 10.0]
    """
    return x * (1 + mx.erf(x / math.sqrt(2))) / 2


@_compiled
def gelu_approx(x: ArrayLike) -> mx.array:
    """The tanh approximation of :func:`gelu` (max abs error about 5e-4).

    Example:
        >>> import mlx.core as mx
        >>> gelu_approx(mx.array([0.0, 10.0])).tolist()
        [0.0, 10.0]
    """
    return 0.5 * x * (1 + mx.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


@_compiled
def gelu_fast_approx(x: ArrayLike) -> mx.array:
    """``x * sigmoid(1.702 x)``.

    MLX documents an error below 0.015 against :func:`gelu`; measured on
    ``[-6, 6]`` it is about 0.020 (this function matches MLX's exactly).

    Example:
        >>> import mlx.core as mx
        >>> gelu_fast_approx(mx.array([0.0, 100.0])).tolist()
        [0.0, 100.0]
    """
    return x * mx.sigmoid(1.702 * x)


def glu(x: mx.array, axis: int = -1) -> mx.array:
    """Gated linear unit: halve ``x`` along ``axis`` into ``a, b`` and return ``a * sigmoid(b)``.

    Not compiled (as in MLX): NumPy arrays are accepted; an odd-sized axis
    is :func:`mlx.core.split`'s ``ValueError``.

    Example:
        >>> import mlx.core as mx
        >>> glu(mx.array([[3.0, 0.0], [5.0, mx.inf]]), axis=1).tolist()
        [[1.5], [5.0]]
    """
    a, b = mx.split(x, indices_or_sections=2, axis=axis)
    return a * mx.sigmoid(b)


@_compiled_broadcasting
def step(x: ArrayLike, threshold: Any = 0.0) -> mx.array:
    """Binary step: 1 where ``x >= threshold``, else 0, as ``int32`` whatever the input type.

    Example:
        >>> import mlx.core as mx
        >>> step(mx.array([-1.0, 0.0, 2.0]), threshold=0.5)
        array([0, 0, 1], dtype=int32)
    """
    return mx.where(x >= threshold, 1, 0)


@_compiled
def selu(x: ArrayLike) -> mx.array:
    """Scaled ELU: ``1.0507 * elu(x, 1.67326)``, with MLX's rounded constants.

    Example:
        >>> import mlx.core as mx
        >>> [round(v, 5) for v in selu(mx.array([1.0, -mx.inf])).tolist()]
        [1.0507, -1.75809]
    """
    return elu(x, 1.67326) * 1.0507


@_compiled_broadcasting
def prelu(x: ArrayLike, alpha: ArrayLike) -> mx.array:
    """Parametric ReLU: ``max(0, x) + alpha * min(0, x)``; ``alpha`` broadcasts against ``x``.

    Example:
        >>> import mlx.core as mx
        >>> prelu(mx.array([[-2.0, -2.0], [3.0, 3.0]]), mx.array([0.5, 0.25])).tolist()
        [[-1.0, -0.5], [3.0, 3.0]]
    """
    return mx.maximum(0, x) + alpha * mx.minimum(0, x)


@_compiled
def mish(x: ArrayLike) -> mx.array:
    """``x * tanh(softplus(x))`` (Misra, 2019).

    Example:
        >>> import mlx.core as mx
        >>> mish(mx.array([0.0, 100.0])).tolist()
        [0.0, 100.0]
    """
    return x * mx.tanh(softplus(x))


@_compiled
def hardswish(x: ArrayLike) -> mx.array:
    """``x * min(max(x + 3, 0), 6) / 6``.

    Example:
        >>> import mlx.core as mx
        >>> hardswish(mx.array([-4.0, 3.0, 5.0])).tolist()
        [-0.0, 3.0, 5.0]
    """
    max_x_3 = mx.maximum(x + 3, 0)
    return x * mx.minimum(max_x_3, 6) / 6


@_compiled_broadcasting
def hard_tanh(x: ArrayLike, min_val: Any = -1.0, max_val: Any = 1.0) -> mx.array:
    """Clip to ``[min_val, max_val]``: ``min(max(x, min_val), max_val)``.

    Example:
        >>> import mlx.core as mx
        >>> hard_tanh(mx.array([-3.0, 0.5, 3.0]), max_val=2.0).tolist()
        [-1.0, 0.5, 2.0]
    """
    return mx.minimum(mx.maximum(x, min_val), max_val)


@_compiled_broadcasting
def hard_shrink(x: ArrayLike, lambd: Any = 0.5) -> mx.array:
    """``x`` where ``|x| > lambd``, else 0.

    Example:
        >>> import mlx.core as mx
        >>> hard_shrink(mx.array([-2.0, 0.25, 1.5]), lambd=1.0).tolist()
        [-2.0, 0.0, 1.5]
    """
    return mx.where(mx.abs(x) > lambd, x, 0)


def _softmin_math(x: ArrayLike, axis: Axis) -> mx.array:
    return mx.softmax(-x, axis=axis)


_softmin = _guarded_reduction(_softmin_math)


def softmin(x: ArrayLike, axis: Axis = -1) -> mx.array:
    """``softmax(-x)`` along ``axis``.

    Example:
        >>> import mlx.core as mx
        >>> softmin(mx.array([0.0, 0.0])).tolist()
        [0.5, 0.5]
    """
    return _softmin(x, axis)


def tanh(x: ArrayLike) -> mx.array:
    """The hyperbolic tangent, :func:`mlx.core.tanh` (not compiled, as in MLX).

    Example:
        >>> import mlx.core as mx
        >>> tanh(mx.array([0.0, mx.inf])).tolist()
        [0.0, 1.0]
    """
    return mx.tanh(x)


# --- the layers' math: settings as keyword arguments ------------------------------------


def glu_apply(params: dict, x: mx.array, *, axis: int = -1) -> mx.array:
    """The math of :class:`funcnn.GLU`: :func:`glu` along ``axis``.

    Example:
        >>> import mlx.core as mx
        >>> glu_apply({}, mx.ones((2, 4, 6)), axis=1).shape
        (2, 2, 6)
    """
    return glu(x=x, axis=axis)


def leaky_relu_apply(params: dict, x: mx.array, *, negative_slope: Any = 0.01) -> mx.array:
    """The math of :class:`funcnn.LeakyReLU`: :func:`leaky_relu`.

    Example:
        >>> import mlx.core as mx
        >>> leaky_relu_apply({}, mx.array([-4.0]), negative_slope=0.25).tolist()
        [-1.0]
    """
    return leaky_relu(x, negative_slope)


def elu_apply(params: dict, x: mx.array, *, alpha: Any = 1.0) -> mx.array:
    """The math of :class:`funcnn.ELU`: :func:`elu`.

    Example:
        >>> import mlx.core as mx
        >>> elu_apply({}, mx.array([-mx.inf]), alpha=2.0).tolist()
        [-2.0]
    """
    return elu(x, alpha)


def softshrink_apply(params: dict, x: mx.array, *, lambd: Any = 0.5) -> mx.array:
    """The math of :class:`funcnn.Softshrink`: :func:`softshrink`.

    Example:
        >>> import mlx.core as mx
        >>> softshrink_apply({}, mx.array([3.0]), lambd=1.0).tolist()
        [2.0]
    """
    return softshrink(x, lambd)


def celu_apply(params: dict, x: mx.array, *, alpha: Any = 1.0) -> mx.array:
    """The math of :class:`funcnn.CELU`: :func:`celu`.

    Example:
        >>> import mlx.core as mx
        >>> celu_apply({}, mx.array([-mx.inf]), alpha=3.0).tolist()
        [-3.0]
    """
    return celu(x, alpha)


def prelu_apply(params: dict, x: mx.array) -> mx.array:
    """The math of :class:`funcnn.PReLU`: :func:`prelu` with ``params["weight"]`` as ``alpha``.

    The weight broadcasts against the last axis of ``x``.

    Example:
        >>> import mlx.core as mx
        >>> prelu_apply({"weight": mx.array([0.25])}, mx.array([-4.0, 4.0])).tolist()
        [-1.0, 4.0]
    """
    return prelu(x, params["weight"])


GELU_APPROXIMATIONS = ["none", "precise", "tanh", "fast"]


def check_gelu_approx(approx: str) -> None:
    """mlx.nn's check of ``GELU(approx)``, shared by the pair factory and the class."""
    if approx not in GELU_APPROXIMATIONS:
        raise ValueError(
            f"The approximation should be in {GELU_APPROXIMATIONS} but '{approx}' was given"
        )


def gelu_apply(params: dict, x: mx.array, *, approx: str = "none") -> mx.array:
    """The GELU variant :class:`mlx.nn.GELU` picks for ``approx`` (read at every call).

    ``"none"``: :func:`gelu`; ``"precise"`` or ``"tanh"``: :func:`gelu_approx`;
    anything else: :func:`gelu_fast_approx`, as in MLX (the layer's
    constructor is where ``approx`` is checked).

    Example:
        >>> import mlx.core as mx
        >>> gelu_apply({}, mx.array([0.0, 1.0]), approx="tanh").tolist()
        [0.0, 0.8411920070648193]
    """
    if approx == "none":
        return gelu(x)
    if approx in ("precise", "tanh"):
        return gelu_approx(x)
    return gelu_fast_approx(x)


def step_apply(params: dict, x: mx.array, *, threshold: Any = 0.0) -> mx.array:
    """The math of :class:`funcnn.Step`: :func:`step`.

    Example:
        >>> import mlx.core as mx
        >>> step_apply({}, mx.array([1.0, 2.0]), threshold=1.5).tolist()
        [0, 1]
    """
    return step(x, threshold)


def hard_shrink_apply(params: dict, x: mx.array, *, lambd: Any = 0.5) -> mx.array:
    """The math of :class:`funcnn.HardShrink`: :func:`hard_shrink`.

    Example:
        >>> import mlx.core as mx
        >>> hard_shrink_apply({}, mx.array([0.75, 1.5]), lambd=1.0).tolist()
        [0.0, 1.5]
    """
    return hard_shrink(x, lambd)
