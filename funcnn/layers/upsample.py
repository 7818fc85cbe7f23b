"""The twin of ``mlx.nn.layers.upsample`` (not written yet: Upsample and the upsample_* functions).

It exists so that the layout is whole and imports of the family resolve to
funcnn; its names arrive with the catalogue issues.
"""

__all__: list[str] = []
