"""Weight initializers (re-exported as ``funcnn.init``, as ``mlx.nn.init``).

Each public function is a *factory*: it fixes a distribution (its ``dtype``,
``mean``, ``gain``, ...) and returns an *initializer*, a function that takes an
array and returns a new array of that array's shape, whose values come from
the distribution.  Only the input's shape is read, never its values or dtype.

An initializer can be called three ways:

* ``init(a)``: draws from MLX's global random state, exactly as the
  ``mlx.nn.init`` initializer of the same name (same values bit for bit, same
  dtype, and the global state advanced by the same number of draws), so code
  seeded with ``mx.random.seed`` gets the same weights with either library.
* ``init(a, key=k)``: draws from the explicit key ``k``; deterministic, and the
  global random state is left alone.  Where an initializer draws twice
  (``sparse``: once for which entries to zero, once for the values), ``k`` is
  split into two independent subkeys.  Initializers without randomness
  (``constant``, ``identity``) accept and ignore ``key`` so that every
  initializer can be called the same way.
* ``init(shape)``: a tuple (or list) of ints instead of an array, for pure code
  that has no array yet; the result equals ``init(mx.zeros(shape))``.

With a key and a shape, an initializer is a pure function of its arguments,
so it can be vmapped over keys (every initializer but ``orthogonal``, whose
QR decomposition MLX cannot vmap)::

    >>> import mlx.core as mx
    >>> keys = mx.random.split(mx.random.key(0), 3)
    >>> mx.vmap(lambda k: glorot_uniform()((4, 2), key=k))(keys).shape
    (3, 4, 2)

Where ``mlx.nn.init`` (MLX 0.32) crashes or contradicts its own contract,
these initializers keep the contract instead (each initializer's docstring
says where):

* ``constant``: the result always has the requested ``dtype`` (``mx.full``
  keeps a float value's ``float32`` when asked for an integer, bool or complex
  dtype).
* Glorot and He initializers return an empty array for an empty input whose
  fan is zero (``mlx.nn`` divides by the zero fan: ``ZeroDivisionError``).
* ``sparse`` returns an empty array for an input with no rows or no columns
  (``mlx.nn`` fails in a scatter) and rejects a negative or NaN ``sparsity``
  with a clear ``ValueError`` (``mlx.nn`` slices its column order with the
  negative count, which zeroes the complement of what was asked, or fails
  converting NaN to an integer).
* Anything that is neither an array nor a shape raises ``TypeError``
  (``mlx.nn``: ``AttributeError`` for the missing ``.shape``).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Literal, Optional, Union

import mlx.core as mx

__all__ = [
    "constant",
    "normal",
    "uniform",
    "identity",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "sparse",
    "orthogonal",
]

Key = Optional[mx.array]
ArrayOrShape = Union[mx.array, Sequence[int]]
Initializer = Callable[..., mx.array]
FanMode = Literal["fan_in", "fan_out"]


def _shape(a: ArrayOrShape) -> tuple[int, ...]:
    """The shape to fill: ``a``'s own (any object with ``.shape``), or ``a`` as a shape."""
    if isinstance(a, (tuple, list)):
        try:
            dims = tuple(operator.index(d) for d in a if not isinstance(d, bool))
        except TypeError:
            dims = ()
        if len(dims) != len(a) or any(d < 0 for d in dims):
            raise ValueError(f"A shape must be a tuple of non-negative ints, got {a!r}.")
        return dims
    shape = getattr(a, "shape", None)
    if shape is None:
        raise TypeError(
            "An initializer takes an array or a shape (a tuple of ints), "
            f"got {type(a).__name__}."
        )
    return tuple(shape)


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight in MLX's layouts.

    ``Linear`` stores ``(out, in)`` and convolutions ``(out, *kernel, in)``, so
    the first axis is the outputs, the last the inputs, and every kernel
    position multiplies both.
    """
    if len(shape) < 2:
        raise ValueError(
            "Glorot / He initialization requires at least 2 dimensional input"
            f" but input with {len(shape)} dimensions."
        )
    receptive_field = math.prod(shape[1:-1])
    return shape[-1] * receptive_field, shape[0] * receptive_field


def _fan(shape: tuple[int, ...], mode: str) -> int:
    # The shape is checked before the mode, so a 1-D input with a bad mode
    # reports the shape, as mlx.nn does.
    fan_in, fan_out = _fans(shape)
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    raise ValueError(f"Invalid mode: {mode}. Valid modes are: fan_in, fan_out")


def constant(value: float, dtype: mx.Dtype = mx.float32) -> Initializer:
    """Fill with ``value``.

    The result has ``dtype`` even where ``mlx.nn.init.constant`` returns
    ``float32`` instead (a float ``value`` with an integer, bool or complex
    ``dtype``, an int ``value`` with ``bool``): ``value`` is then converted as
    ``mx.array(value).astype(dtype)`` would, so ``2.7`` becomes ``2`` in
    ``int32``.  ``key`` is accepted and ignored.

    Example:
        >>> import mlx.core as mx
        >>> constant(0.5)((2, 3))
        array([[0.5, 0.5, 0.5],
               [0.5, 0.5, 0.5]], dtype=float32)
        >>> constant(2.7, dtype=mx.int32)(mx.zeros((2,)))
        array([2, 2], dtype=int32)
    """

    def initializer(a: ArrayOrShape, *, key: Key = None) -> mx.array:
        filled = mx.full(_shape(a), value, dtype=dtype)
        return filled if filled.dtype == dtype else filled.astype(dtype)

    return initializer


def normal(mean: float = 0.0, std: float = 1.0, dtype: mx.Dtype = mx.float32) -> Initializer:
    """Independent draws from the normal distribution ``N(mean, std**2)``.

    Example:
        >>> import mlx.core as mx
        >>> w = normal(mean=1.0, std=0.1)((1000,), key=mx.random.key(0))
        >>> round(w.mean().item(), 1), round(w.std().item(), 1)
        (1.0, 0.1)
    """

    def initializer(a: ArrayOrShape, *, key: Key = None) -> mx.array:
        return mx.random.normal(shape=_shape(a), scale=std, loc=mean, dtype=dtype, key=key)

    return initializer


def uniform(low: float = 0.0, high: float = 1.0, dtype: mx.Dtype = mx.float32) -> Initializer:
    """Independent draws from the uniform distribution on ``[low, high)``.

    Example:
        >>> import mlx.core as mx
        >>> w = uniform(-2.0, -1.0)((3, 4), key=mx.random.key(0))
        >>> bool(((w >= -2.0) & (w < -1.0)).all())
        True
    """

    def initializer(a: ArrayOrShape, *, key: Key = None) -> mx.array:
        return mx.random.uniform(low, high, _shape(a), dtype=dtype, key=key)

    return initializer


def identity(dtype: mx.Dtype = mx.float32) -> Initializer:
    """The identity matrix; the input must be square (``ValueError`` otherwise).

    ``key`` is accepted and ignored.

    Example:
        >>> identity()((2, 2))
        array([[1, 0],
               [0, 1]], dtype=float32)
    """

    def initializer(arr: ArrayOrShape, *, key: Key = None) -> mx.array:
        shape = _shape(arr)
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(f"The input array must be a square matrix but got shape {shape}.")
        return mx.eye(n=shape[0], dtype=dtype)

    return initializer


def glorot_normal(dtype: mx.Dtype = mx.float32) -> Initializer:
    """Glorot (Xavier) normal: ``N(0, std**2)`` with ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    Keeping the variance of activations and of gradients about equal across
    a layer (Glorot and Bengio, 2010).  The input needs at least two axes; its
    first axis counts the outputs, its last the inputs, and the axes between
    (a convolution's kernel) multiply both.  An empty input whose fans are zero
    gives an empty array (``mlx.nn`` raises ``ZeroDivisionError``).

    Example:
        >>> import mlx.core as mx
        >>> init = glorot_normal()
        >>> w = init((8, 3, 3, 4), key=mx.random.key(0))   # a Conv2d weight
        >>> w.shape
        (8, 3, 3, 4)
        >>> mx.array_equal(init((8, 3, 3, 4), key=mx.random.key(0)), w).item()
        True
    """

    def initializer(a: ArrayOrShape, gain: float = 1.0, *, key: Key = None) -> mx.array:
        shape = _shape(a)
        fan_in, fan_out = _fans(shape)
        std = gain * math.sqrt(2.0 / (fan_in + fan_out)) if fan_in + fan_out else 0.0
        return mx.random.normal(shape=shape, scale=std, dtype=dtype, key=key)

    return initializer


def glorot_uniform(dtype: mx.Dtype = mx.float32) -> Initializer:
    """Glorot (Xavier) uniform: uniform on ``[-limit, limit)``.

    ``limit = gain * sqrt(6 / (fan_in + fan_out))``: the uniform twin of
    :func:`glorot_normal` (same variance, same fans, same handling of empty
    inputs).

    Example:
        >>> import mlx.core as mx
        >>> w = glorot_uniform()((4, 2), gain=2.0, key=mx.random.key(0))
        >>> bool((w.abs() <= 2.0).all())   # limit = 2 * sqrt(6 / 6)
        True
    """

    def initializer(a: ArrayOrShape, gain: float = 1.0, *, key: Key = None) -> mx.array:
        shape = _shape(a)
        fan_in, fan_out = _fans(shape)
        limit = gain * math.sqrt(6.0 / (fan_in + fan_out)) if fan_in + fan_out else 0.0
        return mx.random.uniform(-limit, limit, shape, dtype=dtype, key=key)

    return initializer


def he_normal(dtype: mx.Dtype = mx.float32) -> Initializer:
    """He (Kaiming) normal: ``N(0, std**2)`` with ``std = gain / sqrt(fan)``.

    ``fan`` is ``fan_in`` or ``fan_out`` by ``mode``, counted as in
    :func:`glorot_normal`; with ``gain = sqrt(2)`` it keeps the variance of
    ReLU activations (He et al., 2015).  A ``mode`` other than ``"fan_in"`` or
    ``"fan_out"`` raises ``ValueError``.  An empty input whose chosen fan is
    zero gives an empty array (``mlx.nn`` raises ``ZeroDivisionError``).

    Example:
        >>> import mlx.core as mx
        >>> w = he_normal()((100, 1000), mode="fan_out", gain=2.0, key=mx.random.key(0))
        >>> round(w.std().item(), 2)   # 2 / sqrt(100)
        0.2
    """

    def initializer(
        a: ArrayOrShape, mode: FanMode = "fan_in", gain: float = 1.0, *, key: Key = None
    ) -> mx.array:
        shape = _shape(a)
        fan = _fan(shape, mode)
        std = gain / math.sqrt(fan) if fan else 0.0
        return mx.random.normal(shape=shape, scale=std, dtype=dtype, key=key)

    return initializer


def he_uniform(dtype: mx.Dtype = mx.float32) -> Initializer:
    """He (Kaiming) uniform: uniform on ``[-limit, limit)``, ``limit = gain * sqrt(3 / fan)``.

    The uniform twin of :func:`he_normal` (same variance, same ``mode``, same
    handling of empty inputs).

    Example:
        >>> import mlx.core as mx
        >>> w = he_uniform()((16, 3), key=mx.random.key(0))
        >>> bool((w.abs() <= 1.0).all())   # limit = sqrt(3 / 3)
        True
    """

    def initializer(
        a: ArrayOrShape, mode: FanMode = "fan_in", gain: float = 1.0, *, key: Key = None
    ) -> mx.array:
        shape = _shape(a)
        fan = _fan(shape, mode)
        limit = gain * math.sqrt(3.0 / fan) if fan else 0.0
        return mx.random.uniform(-limit, limit, shape, dtype=dtype, key=key)

    return initializer


def sparse(
    sparsity: float, mean: float = 0.0, std: float = 1.0, dtype: mx.Dtype = mx.float32
) -> Initializer:
    """Normal draws ``N(mean, std**2)`` with ``ceil(sparsity * columns)`` zeros in every row.

    For a 2-D weight ``(out, in)``, every output then reads from at most a
    ``1 - sparsity`` fraction of the inputs, chosen independently per row
    (Martens, 2010).  Which entries are zeroed and the values are two draws: a
    ``key`` is split into two independent subkeys for them.

    A ``sparsity`` of 1 or more zeroes everything, as in ``mlx.nn``.  Where
    ``mlx.nn`` misbehaves this raises or returns what the contract says: a
    negative or NaN ``sparsity`` raises ``ValueError`` (``mlx.nn`` keeps only
    ``floor(-sparsity * columns)`` entries of each row, all when that is 0, or
    fails converting NaN to an int), and an input with no rows or no columns gives an empty
    array (``mlx.nn`` fails in a scatter).

    Example:
        >>> import mlx.core as mx
        >>> w = sparse(0.5)((3, 4), key=mx.random.key(0))
        >>> (w == 0).sum(axis=1).tolist()
        [2, 2, 2]
    """

    def initializer(a: ArrayOrShape, *, key: Key = None) -> mx.array:
        shape = _shape(a)
        if len(shape) != 2:
            raise ValueError("Only tensors with 2 dimensions are supported")
        if not sparsity >= 0:
            raise ValueError(
                "sparsity is the fraction of each row to set to zero and must be"
                f" non-negative, got {sparsity}."
            )
        rows, cols = shape
        num_zeros = int(math.ceil(sparsity * cols))
        key_order, key_values = (None, None) if key is None else mx.random.split(key)
        # Sorting uniform noise along each row gives every row its own random
        # permutation; its first num_zeros columns are the ones zeroed.
        order = mx.argsort(mx.random.uniform(shape=shape, key=key_order), axis=1)
        w = mx.random.normal(shape=shape, scale=std, loc=mean, dtype=dtype, key=key_values)
        if num_zeros and rows:  # MLX's scatter fails on an empty array
            w[mx.arange(rows).reshape(rows, 1), order[:, :num_zeros]] = 0
        return w

    return initializer


def orthogonal(gain: float = 1.0, dtype: mx.Dtype = mx.float32) -> Initializer:
    """A ``gain``-scaled matrix with orthonormal rows or columns (Saxe et al., 2014).

    A 2-D input ``(rows, cols)`` gets the top-left block of a random
    ``n x n`` orthogonal matrix, ``n = max(rows, cols)``: orthonormal columns
    when ``rows >= cols``, orthonormal rows otherwise.  The draw is ``float32``
    whatever ``dtype`` (cast at the end), as in ``mlx.nn``.  Cannot be vmapped:
    MLX's QR decomposition has no vmap rule.

    Example:
        >>> import mlx.core as mx
        >>> q = orthogonal()((4, 3), key=mx.random.key(0))
        >>> mx.allclose(q.T @ q, mx.eye(3), atol=1e-5).item()
        True
    """

    def initializer(a: ArrayOrShape, *, key: Key = None) -> mx.array:
        shape = _shape(a)
        if len(shape) != 2:
            raise ValueError(
                f"Orthogonal initialization requires a 2D array but got a {len(shape)}D array."
            )
        rows, cols = shape
        n = max(rows, cols)
        # MLX implements QR on the CPU only.
        q, r = mx.linalg.qr(mx.random.normal(shape=(n, n), key=key), stream=mx.cpu)
        # QR's Q alone is not uniformly distributed over orthogonal matrices;
        # fixing the signs of R's diagonal makes it so (Haar measure).
        q = q * mx.sign(mx.diag(r))
        return (q[:rows, :cols] * gain).astype(dtype)

    return initializer
