"""Dropout layers, as ``mlx.nn.layers.dropout``; math in :mod:`funcnn.functional.dropout`.

:class:`Dropout`, :class:`Dropout2d` and :class:`Dropout3d` store the keep
probability ``_p_1 = 1 - p`` (MLX's attribute, read at every call) and draw
their masks from MLX's global random state, as :mod:`mlx.nn` does: the same
``mx.random.seed`` gives the same masks.  Under :func:`funcnn.transforms.compile`
the global random state is carried through the compiled function, so every
call draws a new mask as an eager call would.
"""

from __future__ import annotations

import mlx.core as mx

from ..functional.dropout import (
    dropout2d_apply,
    dropout3d_apply,
    dropout_apply,
    keep_probability,
)
from .base import Module

__all__ = ["Dropout", "Dropout2d", "Dropout3d"]


class Dropout(Module):
    """Zero elements with probability ``p`` in training mode; see :func:`funcnn.functional.dropout`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> drop = nn.Dropout(0.25)
        >>> drop
        Dropout(p=0.25)
        >>> x = mx.ones((4, 4))
        >>> drop.eval()(x) is x
        True
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self._p_1 = keep_probability(p)

    def _extra_repr(self) -> str:
        return f"p={1 - self._p_1}"

    def __call__(self, x: mx.array) -> mx.array:
        return dropout_apply(self, x, keep=self._p_1, training=self.training)


class Dropout2d(Module):
    """Zero whole channels of 2-D feature maps; see :func:`funcnn.functional.dropout2d`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.Dropout2d(0.5)(mx.ones((2, 4, 4, 3))).shape
        (2, 4, 4, 3)
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self._p_1 = keep_probability(p)

    def _extra_repr(self) -> str:
        return f"p={1 - self._p_1}"

    def __call__(self, x: mx.array) -> mx.array:
        return dropout2d_apply(self, x, keep=self._p_1, training=self.training)


class Dropout3d(Module):
    """Zero whole channels of 3-D feature maps; see :func:`funcnn.functional.dropout3d`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.Dropout3d(0.5)(mx.ones((2, 2, 4, 4, 3))).shape
        (2, 2, 4, 4, 3)
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self._p_1 = keep_probability(p)

    def _extra_repr(self) -> str:
        return f"p={1 - self._p_1}"

    def __call__(self, x: mx.array) -> mx.array:
        return dropout3d_apply(self, x, keep=self._p_1, training=self.training)
