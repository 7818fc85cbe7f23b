"""Quantized layers (MLX's ``layers/quantized.py``) and the pure twin of ``nn.quantize``.

* ``quantized_linear`` (:class:`mlx.nn.QuantizedLinear`) and
  ``quantized_embedding`` (:class:`mlx.nn.QuantizedEmbedding`) hold an
  ``mx.quantize``-d table: ``weight`` (``uint32``, ``32 // bits`` values per
  element), ``scales`` and, in the ``"affine"`` mode only, ``biases``; the
  linear one adds an optional float ``bias``.  Every parameter is frozen, as
  mlx.nn's constructors freeze them: ``pair.trainable`` is ``False``
  everywhere.
* ``qq_linear`` (:class:`mlx.nn.QQLinear`) quantizes its input too
  (``mx.qqmm``); its ``weight`` is a float matrix (training layout) or a
  packed one with ``scales`` (evaluation layout, see
  :func:`qq_linear_quantize`).  mlx 0.32.4's CPU backend has no ``qqmm``:
  there it raises ``[QQMatmul] NYI for the general case``.
* :func:`quantize_params` converts the linear-like subtrees of a parameter
  tree, as :func:`mlx.nn.quantize` converts a model's layers.

The settings ``group_size``, ``bits`` and ``mode`` are the mode's defaults
where ``None`` (``affine``: 64, 4; ``mxfp4``: 32, 4; ``nvfp4``: 16, 4;
``mxfp8``: 32, 8); the ``*_apply`` functions take them resolved.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection
from typing import Any, Callable, Optional, Union

import mlx.core as mx

from ..tree import tree_map
from ._pair import Key, Pair, pair_factory

__all__ = [
    "quantized_linear",
    "quantized_linear_apply",
    "quantized_embedding",
    "quantized_embedding_apply",
    "quantized_embedding_as_linear",
    "qq_linear",
    "qq_linear_apply",
    "qq_linear_quantize",
    "qq_linear_dequantize",
    "quantize_params",
]

_MODE_DEFAULTS = {"affine": (64, 4), "mxfp4": (32, 4), "nvfp4": (16, 4), "mxfp8": (32, 8)}
# Modes whose activations mx.qqmm can quantize (QQLinear, quantize_input=True).
_INPUT_MODES = ("nvfp4", "mxfp8")
_OPTIONS = ("group_size", "bits", "mode", "quantize_input")


def _defaults_for_mode(mode: str, group_size: Optional[int], bits: Optional[int]) -> tuple:
    """``(group_size, bits)`` with the mode's defaults for ``None`` (and, as in MLX, for 0)."""
    if mode not in _MODE_DEFAULTS:
        raise ValueError(
            f"Invalid quantization mode '{mode}'. "
            f"Valid modes are: {', '.join(_MODE_DEFAULTS)}."
        )
    default_group_size, default_bits = _MODE_DEFAULTS[mode]
    return group_size or default_group_size, bits or default_bits


def _check_group_size(group_size: Any) -> None:
    # mx.quantize / mx.quantized_matmul divide by a zero group size: the
    # process dies of SIGFPE (mlx 0.32.4), so refuse it before MLX sees it.
    if group_size is not None and not isinstance(group_size, float) and group_size == 0:
        raise ValueError(
            "Invalid quantization group_size 0: it must be positive (affine: 32, 64 or 128; "
            "mxfp4 and mxfp8: 32; nvfp4: 16), received 0."
        )


def packed_matmul(params: dict, x: mx.array, *, group_size: int, bits: int, mode: str) -> mx.array:
    """``x @ dequantize(params["weight"]).T`` with ``mx.quantized_matmul`` (no bias).

    The one product every quantized linear layer makes (the sharded ones
    included); a zero ``group_size`` is refused before MLX divides by it.
    """
    _check_group_size(group_size)
    return mx.quantized_matmul(
        x,
        params["weight"],
        scales=params["scales"],
        biases=params.get("biases"),
        transpose=True,
        group_size=group_size,
        bits=bits,
        mode=mode,
    )


def _pack(weight: mx.array, group_size: Optional[int], bits: Optional[int], mode: str) -> dict:
    """``mx.quantize(weight, ...)`` as ``{"weight", "scales"[, "biases"]}``, mlx.nn's items."""
    _check_group_size(group_size)
    packed, scales, *biases = mx.quantize(weight, group_size, bits, mode=mode)
    params = {"weight": packed, "scales": scales}
    if biases:
        params["biases"] = biases[0]
    return params


def _check_quantizable(shape: tuple, scale: float, group_size, bits, mode: str) -> None:
    """Raise, without drawing or computing anything, what mlx.nn's constructor raises.

    MLX validates when it builds the graph: a lazy draw with a private key and
    its lazy quantization, never evaluated, give mlx.nn's errors for free.
    """
    weight = mx.random.uniform(low=-scale, high=scale, shape=shape, key=mx.random.key(0))
    _pack(weight, group_size, bits, mode)


def _frozen(params: Any) -> Any:
    return tree_map(lambda _: False, params)


# --- QuantizedLinear ------------------------------------------------------------------


def quantized_linear_apply(
    params: dict, x: mx.array, *, group_size: int, bits: int, mode: str
) -> mx.array:
    """``x @ dequantize(weight).T + bias`` with ``mx.quantized_matmul``; ``bias`` if present.

    ``params`` holds the packed ``weight``, ``scales``, ``biases`` (affine
    mode) and optionally ``bias``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> w, scales, biases = mx.quantize(mx.ones((3, 64)))
        >>> params = {"weight": w, "scales": scales, "biases": biases}
        >>> F.quantized_linear_apply(
        ...     params, mx.ones((1, 64)), group_size=64, bits=4, mode="affine").tolist()
        [[64.0, 64.0, 64.0]]
    """
    x = packed_matmul(params, x, group_size=group_size, bits=bits, mode=mode)
    if "bias" in params:
        x = x + params["bias"]
    return x


@pair_factory
def quantized_linear(
    input_dims: int,
    output_dims: int,
    bias: bool = True,
    group_size: Optional[int] = None,
    bits: Optional[int] = None,
    mode: str = "affine",
) -> Pair:
    """An affine map with a quantized weight (as :class:`mlx.nn.QuantizedLinear`).

    ``init`` draws a ``(output_dims, input_dims)`` weight uniform on
    ``[-k, k]`` (``k = 1/sqrt(input_dims)``), packs it with ``mx.quantize``
    into ``weight``/``scales``/``biases`` (no ``biases`` in the fp modes) and
    adds a zero ``bias``.  All are frozen.  ``apply`` is
    :func:`quantized_linear_apply`.  ``input_dims`` must be a multiple of
    the group size (``mx.quantize``'s error otherwise).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> layer = F.quantized_linear(64, 3, bits=8)
        >>> p = layer.init(mx.random.key(0))
        >>> {k: (v.shape, v.dtype) for k, v in p.items()}["weight"]
        ((3, 16), mlx.core.uint32)
        >>> layer.apply(p, mx.ones((2, 64))).shape, layer.trainable(p)["scales"]
        ((2, 3), False)
    """
    resolved_group_size, resolved_bits = _defaults_for_mode(mode, group_size, bits)
    scale = math.sqrt(1 / input_dims)
    shape = (output_dims, input_dims)
    _check_quantizable(shape, scale, group_size, bits, mode)

    def init(key: Key = None) -> dict:
        weight = mx.random.uniform(low=-scale, high=scale, shape=shape, key=key)
        params = _pack(weight, group_size, bits, mode)
        if bias:
            params["bias"] = mx.zeros((output_dims,))
        return params

    apply = functools.partial(
        quantized_linear_apply, group_size=resolved_group_size, bits=resolved_bits, mode=mode
    )
    return Pair(init, apply, "quantized_linear", trainable=_frozen)


# --- QuantizedEmbedding ---------------------------------------------------------------


def quantized_embedding_apply(
    params: dict, x: mx.array, *, group_size: int, bits: int, mode: str
) -> mx.array:
    """The dequantized rows of the table at the integer ids ``x``: ``x.shape + (dims,)``.

    Only the selected rows of ``weight``/``scales``/``biases`` are dequantized.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> w, scales, biases = mx.quantize(mx.ones((5, 64)))
        >>> params = {"weight": w, "scales": scales, "biases": biases}
        >>> F.quantized_embedding_apply(
        ...     params, mx.array([[0, 4]]), group_size=64, bits=4, mode="affine").shape
        (1, 2, 64)
    """
    _check_group_size(group_size)
    biases = params.get("biases")
    return mx.dequantize(
        params["weight"][x],
        scales=params["scales"][x],
        biases=biases[x] if biases is not None else None,
        group_size=group_size,
        bits=bits,
        mode=mode,
    )


def quantized_embedding_as_linear(
    params: dict, x: mx.array, *, group_size: int, bits: int, mode: str
) -> mx.array:
    """The quantized table as an output projection, ``x @ dequantize(weight).T`` (tied weights).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> w, scales = mx.quantize(mx.ones((5, 32)), mode="mxfp4")
        >>> F.quantized_embedding_as_linear({"weight": w, "scales": scales}, mx.ones((1, 32)),
        ...     group_size=32, bits=4, mode="mxfp4").tolist()
        [[32.0, 32.0, 32.0, 32.0, 32.0]]
    """
    return packed_matmul(params, x, group_size=group_size, bits=bits, mode=mode)


@pair_factory
def quantized_embedding(
    num_embeddings: int,
    dims: int,
    group_size: Optional[int] = None,
    bits: Optional[int] = None,
    mode: str = "affine",
) -> Pair:
    """A lookup table stored quantized (as :class:`mlx.nn.QuantizedEmbedding`).

    ``init`` draws a ``(num_embeddings, dims)`` table, normal with standard
    deviation ``1/sqrt(dims)``, and packs it with ``mx.quantize`` (frozen
    ``weight``/``scales``/``biases``).  ``apply`` is
    :func:`quantized_embedding_apply`; :func:`quantized_embedding_as_linear`
    uses the table as an output projection.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> emb = F.quantized_embedding(10, 32, mode="mxfp4")
        >>> p = emb.init(mx.random.key(0))
        >>> list(p), emb.apply(p, mx.array([[1, 2]])).shape
        (['weight', 'scales'], (1, 2, 32))
    """
    resolved_group_size, resolved_bits = _defaults_for_mode(mode, group_size, bits)
    scale = math.sqrt(1 / dims)
    shape = (num_embeddings, dims)
    _check_quantizable(shape, scale, group_size, bits, mode)

    def init(key: Key = None) -> dict:
        weight = mx.random.normal(shape=shape, scale=scale, key=key)
        return _pack(weight, group_size, bits, mode)

    apply = functools.partial(
        quantized_embedding_apply, group_size=resolved_group_size, bits=resolved_bits, mode=mode
    )
    return Pair(init, apply, "quantized_embedding", trainable=_frozen)


# --- QQLinear -------------------------------------------------------------------------


def qq_linear_apply(params: dict, x: mx.array, *, group_size: int, bits: int, mode: str) -> mx.array:
    """``mx.qqmm(x, weight, scales)``: ``x`` is quantized on the fly, and a float ``weight`` too.

    ``params`` is ``{"weight": float}`` (training layout) or
    ``{"weight": packed, "scales": ...}`` (see :func:`qq_linear_quantize`).
    mlx 0.32.4's CPU backend raises ``[QQMatmul] NYI for the general case``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> try:
        ...     y = F.qq_linear_apply({"weight": mx.ones((2, 32))}, mx.ones((1, 32)),
        ...                           group_size=32, bits=8, mode="mxfp8")
        ... except RuntimeError as e:   # CPU
        ...     y = None
    """
    _check_group_size(group_size)
    return mx.qqmm(
        x,
        params["weight"],
        scales=params.get("scales"),
        group_size=group_size,
        bits=bits,
        mode=mode,
    )


def qq_linear_quantize(params: dict, *, group_size: int, bits: int, mode: str) -> dict:
    """The evaluation layout of a ``qq_linear``: ``weight`` packed, with its ``scales``.

    What :meth:`mlx.nn.QQLinear.quantize` (``eval()``) stores.  A packed
    ``params`` (one with ``scales``) is returned as it is.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> p = F.qq_linear_quantize({"weight": mx.ones((2, 32))}, group_size=32, bits=8,
        ...                          mode="mxfp8")
        >>> {k: v.dtype for k, v in p.items()}
        {'weight': mlx.core.uint32, 'scales': mlx.core.uint8}
    """
    if "scales" in params:
        return params
    if mode not in _INPUT_MODES:
        # mlx.nn unpacks affine's three arrays into two names: "too many values to unpack".
        raise ValueError(
            f"QQLinear quantizes with the {' or '.join(map(repr, _INPUT_MODES))} mode, "
            f"received mode={mode!r}."
        )
    packed = _pack(params["weight"], group_size, bits, mode)
    return {**params, "weight": packed["weight"], "scales": packed["scales"]}


def qq_linear_dequantize(params: dict, *, group_size: int, bits: int, mode: str) -> dict:
    """The training layout of a ``qq_linear``: ``weight`` dequantized, ``scales`` dropped.

    What :meth:`mlx.nn.QQLinear.dequantize` (``train()``) stores.  A float
    ``params`` (no ``scales``) is returned as it is.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> s = dict(group_size=32, bits=8, mode="mxfp8")
        >>> p = F.qq_linear_dequantize(F.qq_linear_quantize({"weight": mx.ones((2, 32))}, **s), **s)
        >>> list(p), p["weight"].dtype, p["weight"].tolist()[0][:2]
        (['weight'], mlx.core.bfloat16, [1.0, 1.0])
    """
    if "scales" not in params:
        return params
    _check_group_size(group_size)
    weight = mx.dequantize(
        params["weight"], scales=params["scales"], group_size=group_size, bits=bits, mode=mode
    )
    return {**{k: v for k, v in params.items() if k != "scales"}, "weight": weight}


@pair_factory
def qq_linear(
    input_dims: int,
    output_dims: int,
    group_size: Optional[int] = None,
    bits: Optional[int] = None,
    mode: str = "nvfp4",
) -> Pair:
    """A bias-free linear map quantizing its input and weight (as :class:`mlx.nn.QQLinear`).

    ``init`` draws a float ``weight`` ``(output_dims, input_dims)`` uniform on
    ``[-k, k]`` (``k = 1/sqrt(input_dims)``), trainable: the training layout.
    :func:`qq_linear_quantize` / :func:`qq_linear_dequantize` switch layouts
    (what ``eval()``/``train()`` do to the class).  ``apply`` is
    :func:`qq_linear_apply` (not available on MLX's CPU backend).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> layer = F.qq_linear(32, 4)
        >>> p = layer.init(mx.random.key(0))
        >>> p["weight"].shape, layer.trainable(p)
        ((4, 32), {'weight': True})
    """
    resolved_group_size, resolved_bits = _defaults_for_mode(mode, group_size, bits)
    scale = math.sqrt(1 / input_dims)

    def init(key: Key = None) -> dict:
        shape = (output_dims, input_dims)
        return {"weight": mx.random.uniform(low=-scale, high=scale, shape=shape, key=key)}

    apply = functools.partial(
        qq_linear_apply, group_size=resolved_group_size, bits=resolved_bits, mode=mode
    )
    return Pair(init, apply, "qq_linear")


# --- quantize ---------------------------------------------------------------------------


def _options_of(
    bool_or_params: Union[bool, dict],
    group_size: Optional[int],
    bits: Optional[int],
    mode: str,
    quantize_input: bool,
) -> dict:
    """The ``to_quantized`` options ``nn.quantize`` uses for a predicate's truthy answer.

    ``True``: the call's own options; a dict: those options alone (the
    method's defaults fill the rest), a false ``quantize_input`` dropped.
    """
    if isinstance(bool_or_params, bool):
        options = {"group_size": group_size, "bits": bits, "mode": mode}
        if quantize_input:
            options["quantize_input"] = quantize_input
        return options
    if isinstance(bool_or_params, dict):
        # A copy: mlx.nn pops "quantize_input" out of the predicate's own dict.
        options = dict(bool_or_params)
        if "quantize_input" in options and not options["quantize_input"]:
            options.pop("quantize_input")
        return options
    raise ValueError(
        "``class_predicate`` must return a bool or a dict of parameters to pass to ``to_quantized``"
    )


def _check_quantize_input(mode: str) -> None:
    if mode not in _INPUT_MODES:
        raise ValueError(
            f"Quantized activations are only supported for 'nvfp4' and 'mxfp8' "
            f"modes, got {mode}."
        )


def _is_linear_like(tree: Any) -> bool:
    if not isinstance(tree, dict) or "weight" not in tree or not set(tree) <= {"weight", "bias"}:
        return False
    weight, bias = tree["weight"], tree.get("bias")
    return (
        isinstance(weight, mx.array)
        and weight.ndim == 2
        and mx.issubdtype(weight.dtype, mx.floating)
        and (bias is None or (isinstance(bias, mx.array) and bias.ndim == 1))
    )


def _quantize_one(
    path: str,
    params: dict,
    is_embedding: bool,
    group_size: Optional[int] = None,
    bits: Optional[int] = None,
    mode: str = "affine",
    quantize_input: bool = False,
) -> dict:
    """One linear-like dict as ``Linear.to_quantized`` / ``Embedding.to_quantized`` store it."""
    if quantize_input:
        if is_embedding:
            raise ValueError("Quantized input is not supported.")
        _check_quantize_input(mode)
        _defaults_for_mode(mode, group_size, bits)
        if params.get("bias") is not None:
            raise NotImplementedError("QQLinear does not support bias yet.")
        return params  # QQLinear trains on its float weight (qq_linear_quantize packs it)
    _defaults_for_mode(mode, group_size, bits)
    try:
        packed = _pack(params["weight"], group_size, bits, mode)
    except ValueError as e:
        raise ValueError(f"quantize_params: cannot quantize {path or '<root>'!r}: {e}") from None
    if "bias" in params:
        packed["bias"] = params["bias"]
    return packed


def quantize_params(
    params: Any,
    group_size: Optional[int] = None,
    bits: Optional[int] = None,
    *,
    mode: str = "affine",
    quantize_input: bool = False,
    predicate: Optional[Callable[[str, dict], Union[bool, dict]]] = None,
    embeddings: Collection[str] = (),
) -> Any:
    """A parameter tree with its linear-like subtrees quantized, as :func:`mlx.nn.quantize` does.

    A subtree is *linear-like* when it is a dict holding a 2-D floating
    ``weight`` and, optionally, a 1-D ``bias``, and nothing else: the
    parameters of ``linear`` and ``embedding`` (also inside composites:
    attention projections, sequential members).  Normalization (1-D weight),
    convolution (3-D and more) and already quantized subtrees (``scales``) are
    never touched.  Each linear-like subtree at dotted path ``path`` (as
    :func:`funcnn.tree_flatten` names it, ``""`` for the root) is offered to
    ``predicate(path, subtree)`` (default: every one), which answers as
    ``class_predicate`` does: ``False`` keeps it, ``True`` quantizes it with
    this call's options, a dict quantizes it with the options it names
    (``group_size``, ``bits``, ``mode``, ``quantize_input``; the others are
    the defaults ``None``, ``None``, ``"affine"``, ``False``, not this call's).

    A quantized subtree is ``{"weight", "scales"[, "biases"][, "bias"]}``
    exactly as ``QuantizedLinear.from_linear`` and
    ``QuantizedEmbedding.from_embedding`` store it (they pack a table the
    same way), for :func:`quantized_linear_apply` or
    :func:`quantized_embedding_apply`.  A linear and an embedding table look
    alike; name the embedding tables' paths in ``embeddings`` so that
    ``quantize_input`` is refused for them as ``Embedding.to_quantized``
    refuses it.  With ``quantize_input`` (``"nvfp4"``/``"mxfp8"``, no
    ``bias``) a subtree is kept as it is: the training layout of
    :func:`qq_linear` (pack it with :func:`qq_linear_quantize`).

    Nothing is modified; untouched subtrees are shared with ``params``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> net = F.sequential(F.linear(64, 64), F.layer_norm(64), F.linear(64, 2))
        >>> p = net.init(mx.random.key(0))
        >>> q = F.quantize_params(p, 64, 8, predicate=lambda path, _: path != "layers.2")
        >>> [sorted(layer) for layer in q["layers"]]
        [['bias', 'biases', 'scales', 'weight'], ['bias', 'weight'], ['bias', 'weight']]
    """
    predicate = predicate or (lambda path, subtree: True)
    embeddings = set(embeddings)

    def convert(path: str, tree: Any) -> Any:
        if _is_linear_like(tree):
            answer = predicate(path, tree)
            if not answer:
                return tree
            options = _options_of(answer, group_size, bits, mode, quantize_input)
            unknown = sorted(set(options) - set(_OPTIONS))
            if unknown:
                raise TypeError(
                    f"quantize_params: the predicate's options for {path or '<root>'!r} "
                    f"include {unknown}; the options are {list(_OPTIONS)}."
                )
            return _quantize_one(path, tree, path in embeddings, **options)
        prefix = f"{path}." if path else ""
        if isinstance(tree, dict):
            new = {k: convert(f"{prefix}{k}", v) for k, v in tree.items()}
            return tree if all(new[k] is v for k, v in tree.items()) else new
        if isinstance(tree, (list, tuple)):
            items = [convert(f"{prefix}{i}", v) for i, v in enumerate(tree)]
            return tree if all(a is b for a, b in zip(items, tree)) else type(tree)(items)
        return tree

    return convert("", params)
