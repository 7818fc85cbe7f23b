"""Layer classes of the facade: thin :class:`Module` wrappers over functional pairs.

Each class builds its parameters with its pair's ``init`` (drawing from MLX's
global random state exactly as the :mod:`mlx.nn` class does) and computes with
its pair's ``apply``, passing itself as the parameter dict.  Constructor
signatures, stored items and attributes, and ``repr`` match :mod:`mlx.nn`.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import mlx.core as mx

from . import functional as F
from .functional._pair import Pair
from .module import Module

__all__ = [
    "Linear",
    "Embedding",
    "Conv1d",
    "Conv2d",
    "LayerNorm",
    "RMSNorm",
    "GroupNorm",
    "RoPE",
    "MultiHeadAttention",
    "Sequential",
    "ReLU",
    "GELU",
    "SiLU",
]


def _adopt(module: Module, pair: Pair, params: Optional[dict] = None) -> None:
    """Give ``module`` its pair and the pair's parameters (fresh ones by default)."""
    object.__setattr__(module, "_pair", pair)
    for name, value in (pair.init() if params is None else params).items():
        setattr(module, name, value)


class Linear(Module):
    """``y = x W^T + b``; see :func:`funcnn.functional.linear`.

    Example:
        >>> import funcnn as nn
        >>> nn.Linear(4, 3)
        Linear(input_dims=4, output_dims=3, bias=True)
    """

    def __init__(self, input_dims: int, output_dims: int, bias: bool = True) -> None:
        super().__init__()
        _adopt(self, F.linear(input_dims, output_dims, bias))

    @classmethod
    def _from_params(cls, params: dict) -> Linear:
        out_dims, in_dims = params["weight"].shape
        layer = cls.__new__(cls)
        Module.__init__(layer)
        _adopt(layer, F.linear(in_dims, out_dims, "bias" in params), params)
        return layer

    def _extra_repr(self) -> str:
        return (
            f"input_dims={self.weight.shape[1]}, "
            f"output_dims={self.weight.shape[0]}, bias={'bias' in self}"
        )

    def __call__(self, x: mx.array) -> mx.array:
        return self._pair.apply(self, x)


class Embedding(Module):
    """A lookup table; see :func:`funcnn.functional.embedding`."""

    def __init__(self, num_embeddings: int, dims: int) -> None:
        super().__init__()
        _adopt(self, F.embedding(num_embeddings, dims))

    def _extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, {self.weight.shape[1]}"

    def __call__(self, x: mx.array) -> mx.array:
        return self._pair.apply(self, x)

    def as_linear(self, x: mx.array) -> mx.array:
        """Use the table as an output projection (tied input and output embeddings)."""
        return F.embedding_as_linear(self, x)


class Conv1d(Module):
    """1-D convolution over ``(N, L, C)`` inputs; see :func:`funcnn.functional.conv1d`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        _adopt(
            self,
            F.conv1d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias),
        )
        self.padding = padding
        self.dilation = dilation
        self.stride = stride
        self.groups = groups

    def _extra_repr(self) -> str:
        return (
            f"{self.weight.shape[-1] * self.groups}, {self.weight.shape[0]}, "
            f"kernel_size={self.weight.shape[1]}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, "
            f"groups={self.groups}, bias={'bias' in self}"
        )

    def __call__(self, x: mx.array) -> mx.array:
        return self._pair.apply(self, x)


def _pair_of(x: Union[int, tuple]) -> tuple:
    return (x, x) if isinstance(x, int) else x


class Conv2d(Module):
    """2-D convolution over ``(N, H, W, C)`` inputs; see :func:`funcnn.functional.conv2d`.

    As in MLX, ``padding`` and ``stride`` are stored as tuple items (part of
    :attr:`state`, not parameters).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Union[int, tuple],
        stride: Union[int, tuple] = 1,
        padding: Union[int, tuple] = 0,
        dilation: Union[int, tuple] = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        _adopt(
            self,
            F.conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias),
        )
        self.padding = _pair_of(padding)
        self.stride = _pair_of(stride)
        self.dilation = dilation
        self.groups = groups

    def _extra_repr(self) -> str:
        return (
            f"{self.weight.shape[-1] * self.groups}, {self.weight.shape[0]}, "
            f"kernel_size={self.weight.shape[1:3]}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, "
            f"groups={self.groups}, bias={'bias' in self}"
        )

    def __call__(self, x: mx.array) -> mx.array:
        return self._pair.apply(self, x)


class LayerNorm(Module):
    """Layer normalisation over the last axis; see :func:`funcnn.functional.layer_norm`."""

    def __init__(self, dims: int, eps: float = 1e-5, affine: bool = True, bias: bool = True) -> None:
        super().__init__()
        _adopt(self, F.layer_norm(dims, eps, affine, bias))
        self.eps = eps
        self.dims = dims

    def _extra_repr(self) -> str:
        return f"{self.dims}, eps={self.eps}, affine={'weight' in self}"

    def __call__(self, x: mx.array) -> mx.array:
        return self._pair.apply(self, x)


class RMSNorm(Module):
    """Root-mean-square normalisation; see :func:`funcnn.functional.rms_norm`."""

    def __init__(self, dims: int, eps: float = 1e-5) -> None:
        super().__init__()
        _adopt(self, F.rms_norm(dims, eps))
        self.eps = eps

    def _extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"

    def __call__(self, x: mx.array) -> mx.array:
        return self._pair.apply(self, x)


class GroupNorm(Module):
    """Group normalisation, channels last; see :func:`funcnn.functional.group_norm`."""

    def __init__(
        self,
        num_groups: int,
        dims: int,
        eps: float = 1e-5,
        affine: bool = True,
        pytorch_compatible: bool = False,
    ) -> None:
        super().__init__()
        _adopt(self, F.group_norm(num_groups, dims, eps, affine, pytorch_compatible))
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
        return self._pair.apply(self, x)


class RoPE(Module):
    """Rotary positional encoding; see :func:`funcnn.functional.rope`."""

    def __init__(
        self, dims: int, traditional: bool = False, base: float = 10000, scale: float = 1.0
    ) -> None:
        super().__init__()
        _adopt(self, F.rope(dims, traditional, base, scale))
        self.dims = dims
        self.traditional = traditional
        self.base = base
        self.scale = scale

    def _extra_repr(self) -> str:
        return f"{self.dims}, traditional={self.traditional}"

    def __call__(self, x: mx.array, offset: Union[int, mx.array] = 0) -> mx.array:
        return self._pair.apply(self, x, offset)


class MultiHeadAttention(Module):
    """Multi-head attention; see :func:`funcnn.functional.multi_head_attention`.

    The projections are :class:`Linear` sub-modules (``query_proj``,
    ``key_proj``, ``value_proj``, ``out_proj``); a projection replaced with
    :meth:`Module.update_modules` is the one that runs.
    """

    def __init__(
        self,
        dims: int,
        num_heads: int,
        query_input_dims: Optional[int] = None,
        key_input_dims: Optional[int] = None,
        value_input_dims: Optional[int] = None,
        value_dims: Optional[int] = None,
        value_output_dims: Optional[int] = None,
        bias: bool = False,
    ) -> None:
        super().__init__()
        pair = F.multi_head_attention(
            dims,
            num_heads,
            query_input_dims,
            key_input_dims,
            value_input_dims,
            value_dims,
            value_output_dims,
            bias,
        )
        self.num_heads = num_heads
        params = {name: Linear._from_params(p) for name, p in pair.init().items()}
        _adopt(self, pair, params)

    def __call__(
        self,
        queries: mx.array,
        keys: mx.array,
        values: mx.array,
        mask: Optional[Union[mx.array, str]] = None,
    ) -> mx.array:
        return self._pair.apply(self, queries, keys, values, mask)

    @staticmethod
    def create_additive_causal_mask(N: int, dtype: mx.Dtype = mx.float32) -> mx.array:
        return F.create_additive_causal_mask(N, dtype)


class Sequential(Module):
    """Calls its layers in order; plain callables are allowed (see :func:`funcnn.functional.sequential`).

    Example:
        >>> import funcnn as nn
        >>> nn.Sequential(nn.Linear(2, 3), nn.ReLU())
        Sequential(
          (layers.0): Linear(input_dims=2, output_dims=3, bias=True)
          (layers.1): ReLU()
        )
    """

    def __init__(self, *modules: Any) -> None:
        super().__init__()
        self.layers = list(modules)

    def __call__(self, x: mx.array) -> mx.array:
        for layer in self.layers:
            x = layer(x)
        return x


class ReLU(Module):
    """``max(x, 0)`` as a layer."""

    def __init__(self) -> None:
        super().__init__()
        _adopt(self, F.relu())

    def __call__(self, x: mx.array) -> mx.array:
        return self._pair.apply(self, x)


class SiLU(Module):
    """``x * sigmoid(x)`` as a layer."""

    def __init__(self) -> None:
        super().__init__()
        _adopt(self, F.silu())

    def __call__(self, x: mx.array) -> mx.array:
        return self._pair.apply(self, x)


class GELU(Module):
    """GELU as a layer; ``approx`` is ``"none"``, ``"precise"``/``"tanh"`` or ``"fast"``."""

    def __init__(self, approx: str = "none") -> None:
        super().__init__()
        self._approx = approx
        _adopt(self, F.gelu(approx))

    def __call__(self, x: mx.array) -> mx.array:
        return self._pair.apply(self, x)
