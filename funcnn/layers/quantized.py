"""The twin of ``mlx.nn.layers.quantized`` (not written yet: QuantizedLinear, QuantizedEmbedding, QQLinear and quantize).

It exists so that the layout is whole and imports of the family resolve to
funcnn; its names arrive with the catalogue issues.
"""

__all__: list[str] = []
