"""Normalisation layers, as ``mlx.nn.layers.normalization``; math in :mod:`funcnn.functional.normalization`.

:class:`LayerNorm`, :class:`RMSNorm`, :class:`GroupNorm`, :class:`InstanceNorm`
and :class:`BatchNorm`.  BatchNorm keeps :mod:`mlx.nn`'s stateful behaviour:
in training mode a call stores new ``running_mean``/``running_var`` on the
layer (frozen parameters, saved with the weights), computed by the pure
:func:`~funcnn.functional.normalization.batch_norm_apply`.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx

from ..functional.normalization import (
    batch_norm,
    batch_norm_apply,
    group_norm,
    group_norm_apply,
    instance_norm,
    instance_norm_apply,
    layer_norm,
    layer_norm_apply,
    rms_norm,
    rms_norm_apply,
)
from ._template import adopt
from .base import Module

__all__ = ["LayerNorm", "RMSNorm", "GroupNorm", "InstanceNorm", "BatchNorm"]


class LayerNorm(Module):
    """Layer normalisation over the last axis; see :func:`funcnn.functional.layer_norm`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> ln = nn.LayerNorm(4)
        >>> ln
        LayerNorm(4, eps=1e-05, affine=True)
        >>> ln(mx.arange(8.0).reshape(2, 4)).shape
        (2, 4)
    """

    def __init__(self, dims: int, eps: float = 1e-5, affine: bool = True, bias: bool = True) -> None:
        super().__init__()
        adopt(self, layer_norm(dims, eps, affine, bias).init())
        self.eps = eps
        self.dims = dims

    def _extra_repr(self) -> str:
        return f"{self.dims}, eps={self.eps}, affine={'weight' in self}"

    def __call__(self, x: mx.array) -> mx.array:
        return layer_norm_apply(self, x, eps=self.eps)


class RMSNorm(Module):
    """Root-mean-square normalisation; see :func:`funcnn.functional.rms_norm`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.RMSNorm(4)(mx.full((2, 4), 3.0)).shape
        (2, 4)
    """

    def __init__(self, dims: int, eps: float = 1e-5) -> None:
        super().__init__()
        adopt(self, rms_norm(dims, eps).init())
        self.eps = eps

    def _extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"

    def __call__(self, x: mx.array) -> mx.array:
        return rms_norm_apply(self, x, eps=self.eps)


class GroupNorm(Module):
    """Group normalisation, channels last; see :func:`funcnn.functional.group_norm`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.GroupNorm(2, 8)(mx.ones((1, 3, 8))).shape
        (1, 3, 8)
    """

    def __init__(
        self,
        num_groups: int,
        dims: int,
        eps: float = 1e-5,
        affine: bool = True,
        pytorch_compatible: bool = False,
    ) -> None:
        super().__init__()
        adopt(self, group_norm(num_groups, dims, eps, affine, pytorch_compatible).init())
        self.num_groups = num_groups
        self.dims = dims
        self.eps = eps
        self.pytorch_compatible = pytorch_compatible

    def _extra_repr(self) -> str:
        return (
            f"{self.num_groups}, {self.dims}, eps={self.eps}, "
            f"affine={'weight' in self}, pytorch_compatible={self.pytorch_compatible}"
        )

    def __call__(self, x: mx.array) -> mx.array:
        return group_norm_apply(
            self, x, num_groups=self.num_groups, eps=self.eps,
            pytorch_compatible=self.pytorch_compatible,
        )


class InstanceNorm(Module):
    """Instance normalisation, channels last; see :func:`funcnn.functional.instance_norm`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> nn.InstanceNorm(3, affine=True)
        InstanceNorm(3, eps=1e-05, affine=True)
        >>> nn.InstanceNorm(3)(mx.ones((2, 4, 4, 3))).shape
        (2, 4, 4, 3)
    """

    def __init__(self, dims: int, eps: float = 1e-5, affine: bool = False) -> None:
        super().__init__()
        adopt(self, instance_norm(dims, eps, affine).init())
        self.dims = dims
        self.eps = eps

    def _extra_repr(self) -> str:
        return f"{self.dims}, eps={self.eps}, affine={'weight' in self}"

    def __call__(self, x: mx.array) -> mx.array:
        return instance_norm_apply(self, x, eps=self.eps)


class BatchNorm(Module):
    """Batch normalisation over every axis but the last; see :func:`funcnn.functional.batch_norm`.

    With ``track_running_stats`` the running statistics are parameters that
    stay frozen (``unfreeze`` leaves them frozen, as in MLX); a call in
    training mode replaces them, a call in evaluation mode normalises with
    them.  Inside :mod:`funcnn.transforms` the new statistics reach the model
    passed as an argument (see :func:`funcnn.transforms.compile`).

    Two differences from :mod:`mlx.nn`, both deliberate: ``unfreeze`` returns
    the module (MLX's override returns ``None``), and a call that fails
    stores nothing (MLX assigns the running statistics before the step that
    raises, leaving a half-updated layer).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> bn = nn.BatchNorm(2)
        >>> y = bn(mx.array([[1.0, 2.0], [3.0, 6.0]]))
        >>> bn.running_mean.tolist(), sorted(bn.trainable_parameters())
        ([0.20000000298023224, 0.4000000059604645], ['bias', 'weight'])
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        pair = batch_norm(num_features, eps, momentum, affine, track_running_stats)
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.track_running_stats = track_running_stats
        adopt(self, pair.init())
        if track_running_stats:
            self.freeze(keys=["running_mean", "running_var"], recurse=False)

    def unfreeze(self, *args: Any, **kwargs: Any) -> BatchNorm:
        """As :meth:`Module.unfreeze`, but the running statistics stay frozen."""
        super().unfreeze(*args, **kwargs)
        self.freeze(keys=["running_mean", "running_var"], recurse=False)
        return self

    def _extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, "
            f"momentum={self.momentum}, affine={'weight' in self}, "
            f"track_running_stats={self.track_running_stats}"
        )

    def __call__(self, x: mx.array) -> mx.array:
        y, updates = batch_norm_apply(
            self, x, eps=self.eps, momentum=self.momentum,
            track_running_stats=self.track_running_stats, training=self.training,
        )
        for name, value in updates.items():
            setattr(self, name, value)
        return y
