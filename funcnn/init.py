"""Weight initializers, as ``mlx.nn.init``; the math lives in :mod:`funcnn.functional.init`.

Each initializer also takes an explicit ``key=`` (global random state left
alone) and a shape in place of an array.

Example:
    >>> import mlx.core as mx
    >>> from funcnn import init
    >>> init.he_uniform()((8, 4), key=mx.random.key(0)).shape
    (8, 4)
"""

from .functional.init import *  # noqa: F403
from .functional.init import __all__  # noqa: F401
