"""Recurrent layers (MLX's ``layers/recurrent.py``): ``rnn``, ``gru`` and ``lstm``.

Inputs are ``(N, L, D)`` or unbatched ``(L, D)``; every layer returns the
hidden state at each of the ``L`` steps (``lstm`` the cell states too).  The
apply functions unroll the sequence with a Python loop over its static
length: nothing is written anywhere, so they differentiate, vmap and compile
(one trace per sequence length).  The ops are :mod:`mlx.nn`'s, in its order,
so results agree bit for bit.

Parameters are uniform on ``[-1/sqrt(hidden_size), 1/sqrt(hidden_size)]``,
drawn in :mod:`mlx.nn`'s order; without bias the bias entries are absent
(``mlx.nn`` stores ``None`` attributes, which are not parameters).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Optional

import mlx.core as mx

from ._pair import Key, Pair, pair_factory, split_key
from .activations import tanh

__all__ = ["rnn", "gru", "lstm", "rnn_apply", "gru_apply", "lstm_apply", "rnn_nonlinearity"]


def _affine(params: dict, bias_name: str, weight_name: str, x: mx.array) -> mx.array:
    """``x @ W.T (+ b)``: the input projection of every step at once."""
    bias = params.get(bias_name)
    if bias is not None:
        return mx.addmm(bias, x, params[weight_name].T)
    return x @ params[weight_name].T


def _uniform_init(hidden_size: int, shapes: dict[str, tuple]) -> Callable[[Key], dict]:
    """``init`` drawing each of ``shapes`` (in order) uniform on ``±1/sqrt(hidden_size)``."""
    scale = 1.0 / math.sqrt(hidden_size)

    def init(key: Key = None) -> dict:
        keys = split_key(key, len(shapes))
        return {
            name: mx.random.uniform(low=-scale, high=scale, shape=shape, key=k)
            for (name, shape), k in zip(shapes.items(), keys)
        }

    return init


# --- Elman RNN ---------------------------------------------------------------------


def rnn_nonlinearity(nonlinearity: Optional[Callable] = None) -> Callable:
    """The non-linearity an RNN uses: ``nonlinearity``, or :func:`funcnn.tanh` for ``None``.

    Anything else that is not callable is a ``ValueError`` (mlx.nn's message).
    Unlike mlx.nn, which tests ``nonlinearity or tanh``, an empty Module such
    as ``ReLU()`` (a falsy dict) is kept rather than silently replaced by
    tanh, and a falsy non-callable (``0``) is rejected.

    Example:
        >>> import funcnn as nn
        >>> import funcnn.functional as F
        >>> F.rnn_nonlinearity() is nn.tanh, type(F.rnn_nonlinearity(nn.ReLU())).__name__
        (True, 'ReLU')
    """
    resolved = tanh if nonlinearity is None else nonlinearity
    if not callable(resolved):
        raise ValueError(f"Nonlinearity must be callable. Current value: {nonlinearity}.")
    return resolved


def rnn_apply(
    params: dict,
    x: mx.array,
    hidden: Optional[mx.array] = None,
    *,
    nonlinearity: Callable[[mx.array], mx.array] = tanh,
) -> mx.array:
    """``h_t = nonlinearity(x_t @ Wxh.T + bias + h_{t-1} @ Whh.T)`` for every step.

    ``hidden`` is the initial state, ``(N, H)`` or ``(H,)``; ``None`` starts
    from zero (the ``Whh`` term is skipped at the first step).  Returns
    ``(N, L, H)`` or ``(L, H)``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> params = {"Wxh": mx.ones((3, 2)), "Whh": mx.zeros((3, 3))}
        >>> F.rnn_apply(params, mx.zeros((4, 2)), mx.ones((3,))).shape
        (4, 3)
    """
    x = _affine(params, "bias", "Wxh", x)
    whh_t = params["Whh"].T
    all_hidden = []
    for idx in range(x.shape[-2]):
        if hidden is not None:
            hidden = mx.addmm(x[..., idx, :], hidden, whh_t)
        else:
            hidden = x[..., idx, :]
        hidden = nonlinearity(hidden)
        all_hidden.append(hidden)
    return mx.stack(all_hidden, axis=-2)


@pair_factory
def rnn(
    input_size: int,
    hidden_size: int,
    bias: bool = True,
    nonlinearity: Optional[Callable] = None,
) -> Pair:
    """An Elman recurrent layer (as :class:`mlx.nn.RNN`).

    Parameters ``Wxh`` ``(H, D)``, ``Whh`` ``(H, H)`` and ``bias`` ``(H,)``;
    ``nonlinearity`` defaults to :func:`funcnn.tanh` (see
    :func:`rnn_nonlinearity`).  ``apply(params, x, hidden=None)`` is
    :func:`rnn_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> layer = F.rnn(4, 8)
        >>> params = layer.init(mx.random.key(0))
        >>> list(params), layer.apply(params, mx.ones((2, 5, 4))).shape
        (['Wxh', 'Whh', 'bias'], (2, 5, 8))
    """
    nonlinearity = rnn_nonlinearity(nonlinearity)
    if isinstance(nonlinearity, dict) and len(nonlinearity) > 0:
        # A Module holding parameters (PReLU): the pure pair could not see or train them.
        raise TypeError(
            f"rnn: nonlinearity is a {type(nonlinearity).__name__} module with parameters, "
            "which a pure pair cannot see; pass a parameter-free function (nn.relu, mx.tanh) "
            "or use the nn.RNN class"
        )
    shapes = {"Wxh": (hidden_size, input_size), "Whh": (hidden_size, hidden_size)}
    if bias:
        shapes["bias"] = (hidden_size,)
    init = _uniform_init(hidden_size, shapes)
    return Pair(init, functools.partial(rnn_apply, nonlinearity=nonlinearity), "rnn")


# --- GRU ---------------------------------------------------------------------------


def gru_apply(
    params: dict, x: mx.array, hidden: Optional[mx.array] = None, *, hidden_size: int
) -> mx.array:
    """The GRU recurrence over every step; ``hidden`` the initial state or ``None`` (zero).

    With ``r, z = sigmoid(x_t W_rz + b_rz + h W_hrz)``,
    ``n = tanh(x_t W_n + b_n + r * (h W_hn + bhn))`` and
    ``h' = (1 - z) * n + z * h``.  ``hidden_size`` splits the gates (mlx.nn
    reads it at every call).  Returns ``(N, L, H)`` or ``(L, H)``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> params = {"Wx": mx.zeros((6, 3)), "Wh": mx.zeros((6, 2))}
        >>> F.gru_apply(params, mx.ones((4, 3)), hidden_size=2).shape
        (4, 2)
    """
    bhn = params.get("bhn")
    x = _affine(params, "b", "Wx", x)
    wh_t = params["Wh"].T
    x_rz = x[..., :-hidden_size]
    x_n = x[..., -hidden_size:]
    all_hidden = []
    for idx in range(x.shape[-2]):
        rz = x_rz[..., idx, :]
        if hidden is not None:
            h_proj = hidden @ wh_t
            h_proj_rz = h_proj[..., :-hidden_size]
            h_proj_n = h_proj[..., -hidden_size:]
            if bhn is not None:
                h_proj_n = h_proj_n + bhn
            rz = rz + h_proj_rz
        rz = mx.sigmoid(rz)
        r, z = mx.split(rz, 2, axis=-1)
        n = x_n[..., idx, :]
        if hidden is not None:
            n = n + r * h_proj_n
        elif bhn is not None:
            n = n + r * bhn
        n = mx.tanh(n)
        hidden = (1 - z) * n + z * hidden if hidden is not None else (1 - z) * n
        all_hidden.append(hidden)
    return mx.stack(all_hidden, axis=-2)


@pair_factory
def gru(input_size: int, hidden_size: int, bias: bool = True) -> Pair:
    """A gated recurrent unit layer (as :class:`mlx.nn.GRU`).

    Parameters ``Wx`` ``(3H, D)``, ``Wh`` ``(3H, H)``, ``b`` ``(3H,)`` and
    ``bhn`` ``(H,)`` (the last two only with ``bias``).
    ``apply(params, x, hidden=None)`` is :func:`gru_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> layer = F.gru(4, 8, bias=False)
        >>> params = layer.init(mx.random.key(0))
        >>> list(params), layer.apply(params, mx.ones((5, 4))).shape
        (['Wx', 'Wh'], (5, 8))
    """
    shapes = {"Wx": (3 * hidden_size, input_size), "Wh": (3 * hidden_size, hidden_size)}
    if bias:
        shapes.update(b=(3 * hidden_size,), bhn=(hidden_size,))
    init = _uniform_init(hidden_size, shapes)
    return Pair(init, functools.partial(gru_apply, hidden_size=hidden_size), "gru")


# --- LSTM --------------------------------------------------------------------------


def lstm_apply(
    params: dict,
    x: mx.array,
    hidden: Optional[mx.array] = None,
    cell: Optional[mx.array] = None,
) -> tuple[mx.array, mx.array]:
    """The LSTM recurrence: ``(hidden states, cell states)``, each ``(N, L, H)`` or ``(L, H)``.

    The gates ``i, f, g, o`` are the four quarters of
    ``x_t @ Wx.T + bias + h @ Wh.T``; ``c' = f * c + i * g`` and
    ``h' = o * tanh(c')``.  ``hidden`` and ``cell`` are the initial states;
    ``None`` starts from zero (the matching terms are skipped).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> params = {"Wx": mx.zeros((8, 3)), "Wh": mx.zeros((8, 2))}
        >>> h, c = F.lstm_apply(params, mx.ones((1, 4, 3)), cell=mx.ones((1, 2)))
        >>> h.shape, c[0, 0].tolist()
        ((1, 4, 2), [0.5, 0.5])
    """
    x = _affine(params, "bias", "Wx", x)
    wh_t = params["Wh"].T
    all_hidden = []
    all_cell = []
    for idx in range(x.shape[-2]):
        ifgo = x[..., idx, :]
        if hidden is not None:
            ifgo = mx.addmm(ifgo, hidden, wh_t)
        i, f, g, o = mx.split(ifgo, 4, axis=-1)
        i = mx.sigmoid(i)
        f = mx.sigmoid(f)
        g = mx.tanh(g)
        o = mx.sigmoid(o)
        cell = f * cell + i * g if cell is not None else i * g
        hidden = o * mx.tanh(cell)
        all_cell.append(cell)
        all_hidden.append(hidden)
    return mx.stack(all_hidden, axis=-2), mx.stack(all_cell, axis=-2)


@pair_factory
def lstm(input_size: int, hidden_size: int, bias: bool = True) -> Pair:
    """A long short-term memory layer (as :class:`mlx.nn.LSTM`).

    Parameters ``Wx`` ``(4H, D)``, ``Wh`` ``(4H, H)`` and ``bias`` ``(4H,)``.
    ``apply(params, x, hidden=None, cell=None)`` is :func:`lstm_apply` and
    returns ``(hidden states, cell states)``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> layer = F.lstm(4, 8)
        >>> h, c = layer.apply(layer.init(mx.random.key(0)), mx.ones((2, 5, 4)))
        >>> h.shape, c.shape
        ((2, 5, 8), (2, 5, 8))
    """
    shapes = {"Wx": (4 * hidden_size, input_size), "Wh": (4 * hidden_size, hidden_size)}
    if bias:
        shapes["bias"] = (4 * hidden_size,)
    return Pair(_uniform_init(hidden_size, shapes), lstm_apply, "lstm")
