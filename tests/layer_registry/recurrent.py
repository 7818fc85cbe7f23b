"""Registry entries of MLX's ``layers/recurrent.py`` family: RNN, GRU, LSTM."""

import mlx.core as mx

from ._types import kind, normal

RNN = kind("RNN", "rnn", mutations={"nonlinearity": mx.sigmoid})
GRU = kind("GRU", "gru")
LSTM = kind("LSTM", "lstm")


def seq(d, *lead):
    """A sequence ``(*lead, L, d)``: batched ``(2, 5, d)`` by default."""
    return lambda s: (normal(s, *(lead or (2, 5)), d),)


def seq_and_states(d, h, lead=(2,), length=5, states=1):
    """A sequence and ``states`` initial states ``(*lead, h)`` (data: they carry the batch axis)."""
    return lambda s: (
        normal(s, *lead, length, d), *(normal(s + 100 * (i + 1), *lead, h) for i in range(states))
    )


# fmt: off
# RNN: bias, a custom non-linearity, unbatched input, an initial hidden state.
RNN("rnn", 4, 6, inputs=seq(4))
RNN("rnn_no_bias", 4, 6, bias=False, inputs=seq(4))
RNN("rnn_nonlinearity", 3, 5, nonlinearity=mx.sigmoid, inputs=seq(3))
RNN("rnn_unbatched", 4, 6, inputs=seq(4, 7))
RNN("rnn_hidden", 4, 6, inputs=seq_and_states(4, 6), data_args=2)
RNN("rnn_unbatched_hidden", 4, 6, inputs=seq_and_states(4, 6, lead=()), data_args=2)
RNN(
    "rnn_all_options", 3, 4, bias=False, nonlinearity=mx.sin,
    inputs=seq_and_states(3, 4, length=6), data_args=2,
)
RNN.error("rnn_nonlinearity_not_callable", 4, 6, nonlinearity=3)
RNN.error("rnn_nonlinearity_string", 4, 6, nonlinearity="relu")
RNN.error("rnn_zero_hidden_size", 4, 0, _raises=ZeroDivisionError)

# GRU: bias, unbatched input, an initial hidden state.  ``hidden_size`` is read at every
# call; another value runs only where the shapes still broadcast: one step, no bias and
# no initial state (3 * 4 - 2 columns: one reset/update gate pair, 10 candidate columns).
GRU("gru", 4, 6, inputs=seq(4))
GRU("gru_no_bias", 4, 6, bias=False, inputs=seq(4))
GRU("gru_unbatched", 3, 5, inputs=seq(3, 6))
GRU("gru_hidden", 4, 6, inputs=seq_and_states(4, 6), data_args=2)
GRU("gru_no_bias_hidden", 4, 6, bias=False, inputs=seq_and_states(4, 6), data_args=2)
GRU("gru_unbatched_hidden", 3, 5, inputs=seq_and_states(3, 5, lead=()), data_args=2)
GRU(
    "gru_single_step_no_bias", 3, 4, bias=False, inputs=seq(3, 2, 1),
    _mutations={"hidden_size": 10},
)
GRU.error("gru_zero_hidden_size", 4, 0, _raises=ZeroDivisionError)

# LSTM: bias, unbatched input, initial hidden and/or cell states.
LSTM("lstm", 4, 6, inputs=seq(4))
LSTM("lstm_no_bias", 4, 6, bias=False, inputs=seq(4))
LSTM("lstm_unbatched", 3, 5, inputs=seq(3, 6))
LSTM("lstm_hidden", 4, 6, inputs=seq_and_states(4, 6), data_args=2)
LSTM("lstm_hidden_cell", 4, 6, inputs=seq_and_states(4, 6, states=2), data_args=3)
LSTM(
    "lstm_cell_only", 4, 6,
    inputs=lambda s: (normal(s, 2, 5, 4), None, normal(s + 100, 2, 6)),
)
LSTM(
    "lstm_unbatched_hidden_cell", 3, 5, bias=False,
    inputs=seq_and_states(3, 5, lead=(), states=2), data_args=3,
)
LSTM.error("lstm_negative_hidden_size", 4, -1)   # math.sqrt: "math domain error"
# fmt: on
