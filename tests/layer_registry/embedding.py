"""Registry entries of MLX's ``layers/embedding.py`` family: Embedding."""

from ._types import ids, kind

Embedding = kind("Embedding", "embedding")

# fmt: off
# Integer ids of any shape (``as_linear`` is a method: ``tests/test_linear_extras.py``).
Embedding("embedding", 10, 4, inputs=lambda s: (ids(s, 10, 2, 5),))
Embedding("embedding_1d_ids", 7, 6, inputs=lambda s: (ids(s, 7, 9),))
Embedding("embedding_3d_ids", 5, 3, inputs=lambda s: (ids(s, 5, 2, 3, 4),))
Embedding("embedding_scalar_id", 6, 2, inputs=lambda s: (ids(s, 6),))
# fmt: on
