"""MLX's ``layers/pooling.py`` family in the pure core (filled by the catalogue issue)."""

from __future__ import annotations

__all__: list[str] = []
