"""The twin of ``mlx.nn.layers.pooling`` (not written yet: MaxPool1d/2d/3d and AvgPool1d/2d/3d).

It exists so that the layout is whole and imports of the family resolve to
funcnn; its names arrive with the catalogue issues.
"""

__all__: list[str] = []
