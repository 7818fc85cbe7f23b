"""Quantized layers, as ``mlx.nn.layers.quantized``: :class:`QuantizedLinear`,
:class:`QuantizedEmbedding`, :class:`QQLinear` and :func:`quantize`.

The math is :mod:`funcnn.functional.quantized`; each call passes the
attributes ``group_size``, ``bits`` and ``mode`` as they are then.  The
constructors freeze :class:`QuantizedLinear`'s and :class:`QuantizedEmbedding`'s
parameters, as mlx.nn's do.
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import mlx.core as mx

from ..functional.quantized import (
    _defaults_for_mode,
    _options_of,
    _pack,
    qq_linear,
    qq_linear_apply,
    qq_linear_dequantize,
    qq_linear_quantize,
    quantized_embedding,
    quantized_embedding_apply,
    quantized_embedding_as_linear,
    quantized_linear,
    quantized_linear_apply,
)
from ..tree import tree_map_with_path
from ._template import adopt
from .base import Module

__all__ = ["quantize", "QuantizedEmbedding", "QuantizedLinear", "QQLinear"]


def quantize(
    model: Module,
    group_size: Optional[int] = None,
    bits: Optional[int] = None,
    *,
    mode: str = "affine",
    quantize_input: bool = False,
    class_predicate: Optional[Callable[[str, Module], Union[bool, dict]]] = None,
):
    """Replace, in place, the leaf modules of ``model`` by their ``to_quantized()``.

    ``class_predicate(path, module)`` (default: the leaf has a
    ``to_quantized`` method) is asked about every leaf module: ``False``
    keeps it, ``True`` converts it with this call's ``group_size``, ``bits``,
    ``mode`` and ``quantize_input``, a dict converts it with those options
    only.  A selected leaf without ``to_quantized`` is a ``ValueError``.
    Already quantized layers have no ``to_quantized`` and are left alone by
    the default predicate.  The pure twin is
    :func:`funcnn.functional.quantize_params`.

    Example:
        >>> import funcnn as nn
        >>> model = nn.Sequential(nn.Embedding(10, 64), nn.Linear(64, 64), nn.ReLU())
        >>> nn.quantize(model, bits=8, class_predicate=lambda p, m: isinstance(m, nn.Linear))
        >>> [type(m).__name__ for m in model.layers]
        ['Embedding', 'QuantizedLinear', 'ReLU']
    """
    class_predicate = class_predicate or (lambda _, m: hasattr(m, "to_quantized"))

    def _maybe_quantize(path: str, m: Module) -> Module:
        bool_or_params = class_predicate(path, m)
        if not bool_or_params:
            return m
        if not hasattr(m, "to_quantized"):
            raise ValueError(f"Unable to quantize model of type {type(m)}")
        return m.to_quantized(
            **_options_of(bool_or_params, group_size, bits, mode, quantize_input)
        )

    leaves = model.leaf_modules()
    leaves = tree_map_with_path(_maybe_quantize, leaves, is_leaf=Module.is_module)
    model.update_modules(leaves)


def _store_packed(layer: Module, packed: dict) -> None:
    """Store ``weight``/``scales``/``biases`` as mlx.nn does: ``biases = None`` in the fp modes."""
    layer.weight = packed["weight"]
    layer.scales = packed["scales"]
    layer.biases = packed.get("biases")


class QuantizedEmbedding(Module):
    """An :class:`Embedding` whose table is stored quantized; see
    :func:`funcnn.functional.quantized_embedding`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> emb = nn.QuantizedEmbedding(10, 64)
        >>> emb
        QuantizedEmbedding(10, 64, group_size=64, bits=4, mode=affine)
        >>> emb(mx.array([[1, 2]])).shape, emb.as_linear(mx.ones((1, 64))).shape
        ((1, 2, 64), (1, 10))
    """

    def __init__(
        self,
        num_embeddings: int,
        dims: int,
        group_size: Optional[int] = None,
        bits: Optional[int] = None,
        mode: str = "affine",
    ) -> None:
        super().__init__()
        pair = quantized_embedding(num_embeddings, dims, group_size, bits, mode)
        self.group_size, self.bits = _defaults_for_mode(mode, group_size, bits)
        self.mode = mode
        _store_packed(self, pair.init())
        self.num_embeddings = num_embeddings
        self.dims = dims
        self.freeze()

    def __call__(self, x: mx.array) -> mx.array:
        return quantized_embedding_apply(
            self, x, group_size=self.group_size, bits=self.bits, mode=self.mode
        )

    def as_linear(self, x: mx.array) -> mx.array:
        """The quantized table as an output projection (tied input and output embeddings).

        See :func:`funcnn.functional.quantized_embedding_as_linear`.

        Example:
            >>> import mlx.core as mx
            >>> import funcnn as nn
            >>> nn.QuantizedEmbedding(5, 32, mode="mxfp8").as_linear(mx.ones((2, 32))).shape
            (2, 5)
        """
        return quantized_embedding_as_linear(
            self, x, group_size=self.group_size, bits=self.bits, mode=self.mode
        )

    def _extra_repr(self) -> str:
        return (
            f"{self.num_embeddings}, {self.dims}, "
            f"group_size={self.group_size}, bits={self.bits}, mode={self.mode}"
        )

    @classmethod
    def from_embedding(
        cls,
        embedding_layer: Module,
        group_size: Optional[int] = None,
        bits: Optional[int] = None,
        mode: str = "affine",
    ) -> QuantizedEmbedding:
        """A :class:`QuantizedEmbedding` holding ``embedding_layer``'s table, quantized.

        As in mlx.nn, the new layer's constructor draws (and discards) a
        random table first.

        Example:
            >>> import funcnn as nn
            >>> q = nn.QuantizedEmbedding.from_embedding(nn.Embedding(10, 64), bits=8)
            >>> q.weight.shape, q.scales.shape
            ((10, 16), (10, 1))
        """
        embedding_dims, dims = embedding_layer.weight.shape
        ql = cls(embedding_dims, dims, group_size, bits, mode=mode)
        _store_packed(ql, _pack(embedding_layer.weight, group_size, bits, mode))
        return ql


class QuantizedLinear(Module):
    """A :class:`Linear` with a quantized weight; see :func:`funcnn.functional.quantized_linear`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> layer = nn.QuantizedLinear(64, 3, bits=8)
        >>> layer
        QuantizedLinear(input_dims=64, output_dims=3, bias=True, group_size=64, bits=8, mode=affine)
        >>> layer(mx.ones((2, 64))).shape, layer.trainable_parameters()
        ((2, 3), {})
    """

    def __init__(
        self,
        input_dims: int,
        output_dims: int,
        bias: bool = True,
        group_size: Optional[int] = None,
        bits: Optional[int] = None,
        mode: str = "affine",
    ) -> None:
        super().__init__()
        pair = quantized_linear(input_dims, output_dims, bias, group_size, bits, mode)
        self.group_size, self.bits = _defaults_for_mode(mode, group_size, bits)
        self.mode = mode
        params = pair.init()
        _store_packed(self, params)
        if bias:
            self.bias = params["bias"]
        self.freeze()

    def _extra_repr(self) -> str:
        out_dims, in_dims = self.weight.shape
        in_dims = (in_dims * 32) // self.bits
        return (
            f"input_dims={in_dims}, output_dims={out_dims}, bias={'bias' in self}, "
            f"group_size={self.group_size}, bits={self.bits}, mode={self.mode}"
        )

    def __call__(self, x: mx.array) -> mx.array:
        return quantized_linear_apply(
            self, x, group_size=self.group_size, bits=self.bits, mode=self.mode
        )

    @classmethod
    def from_linear(
        cls,
        linear_layer: Module,
        group_size: Optional[int] = None,
        bits: Optional[int] = None,
        mode: str = "affine",
    ) -> QuantizedLinear:
        """A :class:`QuantizedLinear` holding ``linear_layer``'s weight, quantized, and its bias.

        As in mlx.nn, the constructor draws (and discards) a random weight
        first, and the copied ``bias`` is not frozen (the constructor froze
        the layer before it had one).

        Example:
            >>> import funcnn as nn
            >>> q = nn.QuantizedLinear.from_linear(nn.Linear(64, 2))
            >>> list(q.keys()), list(q.trainable_parameters())
            (['weight', 'scales', 'biases', 'bias'], ['bias'])
        """
        output_dims, input_dims = linear_layer.weight.shape
        ql = cls(input_dims, output_dims, False, group_size, bits, mode=mode)
        _store_packed(ql, _pack(linear_layer.weight, group_size, bits, mode))
        if "bias" in linear_layer:
            ql.bias = linear_layer.bias
        return ql


class QQLinear(Module):
    """A bias-free linear layer quantizing its input and weight; see
    :func:`funcnn.functional.qq_linear`.

    In training mode the weight is a float matrix (and trainable); ``eval()``
    packs it (:meth:`quantize`), ``train()`` unpacks it (:meth:`dequantize`).
    mlx 0.32.4's CPU backend cannot call it (``mx.qqmm``).

    Example:
        >>> import funcnn as nn
        >>> layer = nn.QQLinear(64, 8)
        >>> layer
        QQLinear(input_dims=64, output_dims=8, group_size=16, bits=4, mode=nvfp4)
        >>> sorted(layer.eval().keys()), layer.weight.dtype
        (['scales', 'weight'], mlx.core.uint32)
    """

    def __init__(
        self,
        input_dims: int,
        output_dims: int,
        group_size: Optional[int] = None,
        bits: Optional[int] = None,
        mode: str = "nvfp4",
    ) -> None:
        super().__init__()
        pair = qq_linear(input_dims, output_dims, group_size, bits, mode)
        self.group_size, self.bits = _defaults_for_mode(mode, group_size, bits)
        self.mode = mode
        adopt(self, pair.init())
        self._quantized = False

    def _extra_repr(self) -> str:
        out_dims, in_dims = self.weight.shape
        if self.weight.dtype == mx.uint32:
            in_dims = (in_dims * 32) // self.bits
        return (
            f"input_dims={in_dims}, output_dims={out_dims}, "
            f"group_size={self.group_size}, bits={self.bits}, mode={self.mode}"
        )

    def _settings(self) -> dict:
        return {"group_size": self.group_size, "bits": self.bits, "mode": self.mode}

    def quantize(self) -> None:
        """Pack the float weight (with its ``scales``); see :func:`funcnn.functional.qq_linear_quantize`.

        Example:
            >>> import funcnn as nn
            >>> layer = nn.QQLinear(32, 2, mode="mxfp8")
            >>> layer.quantize()
            >>> layer.weight.shape, layer.scales.shape
            ((2, 8), (2, 1))
        """
        if not self._quantized:
            packed = qq_linear_quantize(self, **self._settings())
            self.weight = packed["weight"]
            self.scales = packed["scales"]
            self._quantized = True

    def dequantize(self) -> None:
        """Unpack the weight and drop ``scales``; see :func:`funcnn.functional.qq_linear_dequantize`.

        Example:
            >>> import funcnn as nn
            >>> layer = nn.QQLinear(32, 2, mode="mxfp8")
            >>> layer.quantize(); layer.dequantize()
            >>> list(layer.keys()), layer.weight.shape
            (['weight'], (2, 32))
        """
        if self._quantized:
            self.weight = qq_linear_dequantize(self, **self._settings())["weight"]
            self.__delattr__("scales")
            self._quantized = False

    def _set_training_mode(self, mode: bool) -> None:
        super()._set_training_mode(mode)
        if self._training:
            self.dequantize()
        else:
            self.quantize()

    def __call__(self, x: mx.array) -> mx.array:
        return qq_linear_apply(self, x, group_size=self.group_size, bits=self.bits, mode=self.mode)

    @classmethod
    def from_linear(
        cls,
        linear_layer: Module,
        group_size: Optional[int] = None,
        bits: Optional[int] = None,
        mode: str = "nvfp4",
    ) -> QQLinear:
        """A :class:`QQLinear` holding ``linear_layer``'s weight, in ``linear_layer``'s mode.

        A linear layer with a bias is refused (``NotImplementedError``), as in mlx.nn.

        Example:
            >>> import funcnn as nn
            >>> nn.QQLinear.from_linear(nn.Linear(32, 2, bias=False), mode="mxfp8")
            QQLinear(input_dims=32, output_dims=2, group_size=32, bits=8, mode=mxfp8)
        """
        output_dims, input_dims = linear_layer.weight.shape
        if linear_layer.get("bias") is not None:
            raise NotImplementedError("QQLinear does not support bias yet.")
        ql = cls(input_dims, output_dims, group_size, bits, mode=mode)
        ql.weight = linear_layer.weight
        ql.train(linear_layer.training)
        return ql
