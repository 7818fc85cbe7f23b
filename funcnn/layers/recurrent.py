"""Recurrent layers, as ``mlx.nn.layers.recurrent``: :class:`RNN`, :class:`GRU`, :class:`LSTM`.

The math is :mod:`funcnn.functional.recurrent`.  Without bias, the bias
attributes are ``None`` (plain attributes, not items), as in :mod:`mlx.nn`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import mlx.core as mx

from ..functional.recurrent import (
    gru,
    gru_apply,
    lstm,
    lstm_apply,
    rnn,
    rnn_apply,
    rnn_nonlinearity,
)
from ._template import adopt
from .base import Module

__all__ = ["RNN", "GRU", "LSTM"]


class RNN(Module):
    """An Elman recurrent layer over ``(N, L, D)`` or ``(L, D)``; see :func:`funcnn.functional.rnn`.

    ``nonlinearity`` is read at every call.  Unlike :mod:`mlx.nn`, an empty
    Module given as ``nonlinearity`` (``ReLU()``, a falsy dict) is used rather
    than replaced by tanh (see :func:`funcnn.functional.rnn_nonlinearity`).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> layer = nn.RNN(4, 8, bias=False)
        >>> layer(mx.ones((2, 5, 4)), mx.zeros((2, 8))).shape
        (2, 5, 8)
        >>> list(layer.keys()), layer.bias
        (['Wxh', 'Whh'], None)
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: Optional[Callable] = None,
    ) -> None:
        super().__init__()
        # The class holds the non-linearity itself (a Module one is a child, as in mlx.nn); the
        # pair, built only for its checks and init, never sees it.
        self.nonlinearity = rnn_nonlinearity(nonlinearity)
        pair = rnn(input_size, hidden_size, bias)
        self.hidden_size = hidden_size
        adopt(self, pair.init())
        if not bias:
            self.bias = None

    def _extra_repr(self) -> str:
        return (
            f"input_dims={self.Wxh.shape[1]}, "
            f"hidden_size={self.hidden_size}, "
            f"nonlinearity={self.nonlinearity}, bias={self.bias is not None}"
        )

    def __call__(self, x: mx.array, hidden: Optional[mx.array] = None) -> mx.array:
        return rnn_apply(self, x, hidden, nonlinearity=self.nonlinearity)


class GRU(Module):
    """A gated recurrent unit layer; see :func:`funcnn.functional.gru`.

    ``hidden_size`` is read at every call (it splits the gates).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> layer = nn.GRU(4, 8)
        >>> layer
        GRU(input_dims=4, hidden_size=8, bias=True)
        >>> layer(mx.ones((5, 4))).shape
        (5, 8)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        adopt(self, gru(input_size, hidden_size, bias).init())
        if not bias:
            self.b = None
            self.bhn = None

    def _extra_repr(self) -> str:
        return (
            f"input_dims={self.Wx.shape[1]}, "
            f"hidden_size={self.hidden_size}, bias={self.b is not None}"
        )

    def __call__(self, x: mx.array, hidden: Optional[mx.array] = None) -> mx.array:
        return gru_apply(self, x, hidden, hidden_size=self.hidden_size)


class LSTM(Module):
    """A long short-term memory layer; see :func:`funcnn.functional.lstm`.

    Returns ``(hidden states, cell states)`` of every step.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> layer = nn.LSTM(4, 8)
        >>> h, c = layer(mx.ones((2, 5, 4)), mx.zeros((2, 8)), mx.zeros((2, 8)))
        >>> h.shape, c.shape
        ((2, 5, 8), (2, 5, 8))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        adopt(self, lstm(input_size, hidden_size, bias).init())
        if not bias:
            self.bias = None

    def _extra_repr(self) -> str:
        return (
            f"input_dims={self.Wx.shape[1]}, "
            f"hidden_size={self.hidden_size}, bias={self.bias is not None}"
        )

    def __call__(
        self, x: mx.array, hidden: Optional[mx.array] = None, cell: Optional[mx.array] = None
    ) -> tuple[mx.array, mx.array]:
        return lstm_apply(self, x, hidden, cell)
