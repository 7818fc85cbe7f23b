"""The twin of ``mlx.nn.layers.convolution_transpose`` (not written yet: ConvTranspose1d/2d/3d).

It exists so that the layout is whole and imports of the family resolve to
funcnn; its names arrive with the catalogue issues.
"""

__all__: list[str] = []
