"""Loss functions, as ``mlx.nn.losses``; the math lives in :mod:`funcnn.functional.losses`."""

from .functional.losses import (  # noqa: F401
    binary_cross_entropy,
    cross_entropy,
    l1_loss,
    mse_loss,
    nll_loss,
)

__all__ = ["cross_entropy", "binary_cross_entropy", "l1_loss", "mse_loss", "nll_loss"]
