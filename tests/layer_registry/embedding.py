"""Registry entries of MLX's ``layers/embedding.py`` family: Embedding."""

from ._types import ids, kind

Embedding = kind("Embedding", "embedding")

# fmt: off
# Integer ids of any shape.
Embedding("embedding", 10, 4, inputs=lambda s: (ids(s, 10, 2, 5),))
Embedding("embedding_1d_ids", 7, 6, inputs=lambda s: (ids(s, 7, 9),))
# fmt: on
