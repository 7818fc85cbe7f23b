"""The twin of ``mlx.nn.layers.distributed`` (not written yet: AllToShardedLinear, ShardedToAllLinear, their quantized twins, FullyShardedModule and fully_shard).

It exists so that the layout is whole and imports of the family resolve to
funcnn; its names arrive with the catalogue issues.
"""

__all__: list[str] = []
