"""Loss functions, as ``mlx.nn.losses``; the math lives in :mod:`funcnn.functional.losses`."""

from .functional.losses import *  # noqa: F403
from .functional.losses import __all__  # noqa: F401
