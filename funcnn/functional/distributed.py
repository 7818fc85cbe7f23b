"""MLX's ``layers/distributed.py`` family in the pure core (filled by the quantization issue)."""

from __future__ import annotations

__all__: list[str] = []
