"""The twin of ``mlx.nn.layers.recurrent`` (not written yet: RNN, GRU and LSTM).

It exists so that the layout is whole and imports of the family resolve to
funcnn; its names arrive with the catalogue issues.
"""

__all__: list[str] = []
