"""Transformer blocks and stacks (MLX's ``layers/transformer.py``), re-exported by
:mod:`funcnn.functional.transformer`.

Each block's math is one function, ``<factory>_apply(layers, *inputs, *, settings)``,
written against its children by name (``layers.attention``, ``layers.ln1``, ...),
so that both forms run the very same code: a facade class passes itself (its
child Modules, so a swapped child is the one that runs) and a pair passes its
child pairs bound to their parameters, keys and mode.  Without a key the
dropouts draw from MLX's global random state in :mod:`mlx.nn`'s order; with one,
the key is split among the children that take one.

With ``checkpoint`` a stack runs each layer through
:func:`funcnn.utils.checkpoint`, as :mod:`mlx.nn` does with its own
``checkpoint``.  The backward pass calls the layer again; a dropout there that
draws from the global random state draws a new mask (as in :mod:`mlx.nn`, whose
gradients are then not those of its forward pass), while a pair given a key
draws the forward's masks again, so its gradients are exact.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any, Optional, Union

import mlx.core as mx

from .. import utils
from ._pair import Key, Pair, apply_layer, pair_factory, split_key
from .activations import relu
from .dropout import dropout as dropout_pair
from .linear import linear
from .normalization import layer_norm
from .transformer import Mask, multi_head_attention

Child = Union[Pair, Callable[..., Any]]
Children = dict[str, Union[Child, list[Child]]]


def mlp_width(dims: int, mlp_dims: Optional[int]) -> int:
    """The hidden width of a block's MLP: ``mlp_dims``, or ``4 * dims`` when unset.

    Example:
        >>> from funcnn.functional._transformer_stack import mlp_width
        >>> mlp_width(8, None), mlp_width(8, 12)
        (32, 12)
    """
    return mlp_dims or dims * 4


# --------------------------------------------------------------------------
# The math, shared by the pairs and the facade classes
# --------------------------------------------------------------------------


def transformer_encoder_layer_apply(
    layers: Any,
    x: mx.array,
    mask: Mask,
    *,
    activation: Callable[[mx.array], mx.array] = relu,
    norm_first: bool = True,
) -> mx.array:
    """Self-attention then an MLP, each with dropout and a residual connection.

    ``layers`` holds the callable children ``attention``, ``ln1``, ``ln2``,
    ``linear1``, ``linear2``, ``dropout1`` and ``dropout2`` as attributes (a
    :class:`funcnn.TransformerEncoderLayer`, or a pair's bound children).
    ``norm_first`` normalises before each sub-block, otherwise after its
    residual sum.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> import funcnn.functional as F
        >>> block = nn.TransformerEncoderLayer(8, 2, mlp_dims=16)
        >>> F.transformer_encoder_layer_apply(block, mx.ones((1, 3, 8)), None).shape
        (1, 3, 8)
    """
    if norm_first:
        y = layers.ln1(x)
        y = layers.attention(y, y, y, mask)
        y = layers.dropout1(y)
        x = x + y

        y = layers.ln2(x)
        y = layers.linear1(y)
        y = activation(y)
        y = layers.dropout2(y)
        y = layers.linear2(y)
        return x + y

    y = layers.attention(x, x, x, mask)
    y = layers.dropout1(y)
    x = layers.ln1(x + y)

    y = layers.linear1(x)
    y = activation(y)
    y = layers.dropout2(y)
    y = layers.linear2(y)
    return layers.ln2(x + y)


def transformer_decoder_layer_apply(
    layers: Any,
    x: mx.array,
    memory: mx.array,
    x_mask: Mask,
    memory_mask: Mask,
    *,
    activation: Callable[[mx.array], mx.array] = relu,
    norm_first: bool = True,
) -> mx.array:
    """Self-attention, attention over ``memory``, then an MLP; each with dropout and a residual.

    ``layers`` holds ``self_attention``, ``cross_attention``, ``ln1`` to
    ``ln3``, ``linear1``, ``linear2`` and ``dropout1`` to ``dropout3``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> import funcnn.functional as F
        >>> block = nn.TransformerDecoderLayer(8, 2, mlp_dims=16, norm_first=False)
        >>> x, memory = mx.ones((1, 3, 8)), mx.ones((1, 5, 8))
        >>> F.transformer_decoder_layer_apply(block, x, memory, "causal", None).shape
        (1, 3, 8)
    """
    if norm_first:
        y = layers.ln1(x)
        y = layers.self_attention(y, y, y, x_mask)
        y = layers.dropout1(y)
        x = x + y

        y = layers.ln2(x)
        y = layers.cross_attention(y, memory, memory, memory_mask)
        y = layers.dropout2(y)
        x = x + y

        y = layers.ln3(x)
        y = layers.linear1(y)
        y = activation(y)
        y = layers.dropout3(y)
        y = layers.linear2(y)
        return x + y

    y = layers.self_attention(x, x, x, x_mask)
    y = layers.dropout1(y)
    x = layers.ln1(x + y)

    y = layers.cross_attention(x, memory, memory, memory_mask)
    y = layers.dropout2(y)
    x = layers.ln2(x + y)

    y = layers.linear1(x)
    y = activation(y)
    y = layers.dropout3(y)
    y = layers.linear2(y)
    return layers.ln3(x + y)


def transformer_encoder_apply(
    layers: Any, x: mx.array, mask: Mask, *, checkpoint: bool = False
) -> mx.array:
    """Each of ``layers.layers`` in turn on ``(x, mask)``, then the final norm ``layers.ln``.

    With ``checkpoint`` every layer is recomputed in the backward pass instead
    of keeping its intermediate values (same output and gradients).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> import funcnn.functional as F
        >>> encoder = nn.TransformerEncoder(2, 8, 2, mlp_dims=16)
        >>> F.transformer_encoder_apply(encoder, mx.ones((1, 3, 8)), None, checkpoint=True).shape
        (1, 3, 8)
    """
    for layer in layers.layers:
        layer = _checkpointed(layer) if checkpoint else layer
        x = layer(x, mask)
    return layers.ln(x)


def transformer_decoder_apply(
    layers: Any,
    x: mx.array,
    memory: mx.array,
    x_mask: Mask,
    memory_mask: Mask,
    *,
    checkpoint: bool = False,
) -> mx.array:
    """Each of ``layers.layers`` in turn on ``(x, memory, x_mask, memory_mask)``, then ``layers.ln``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> import funcnn.functional as F
        >>> decoder = nn.TransformerDecoder(1, 8, 2, mlp_dims=16)
        >>> x, memory = mx.ones((1, 3, 8)), mx.ones((1, 4, 8))
        >>> F.transformer_decoder_apply(decoder, x, memory, None, None).shape
        (1, 3, 8)
    """
    for layer in layers.layers:
        layer = _checkpointed(layer) if checkpoint else layer
        x = layer(x, memory, x_mask, memory_mask)
    return layers.ln(x)


def transformer_apply(
    layers: Any,
    src: mx.array,
    tgt: mx.array,
    src_mask: Mask,
    tgt_mask: Mask,
    memory_mask: Mask,
) -> mx.array:
    """Encode ``src`` with ``layers.encoder``, then decode ``tgt`` against it with ``layers.decoder``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> import funcnn.functional as F
        >>> model = nn.Transformer(8, 2, 1, 1, mlp_dims=16)
        >>> F.transformer_apply(model, mx.ones((1, 5, 8)), mx.ones((1, 3, 8)),
        ...                     None, "causal", None).shape
        (1, 3, 8)
    """
    memory = layers.encoder(src, src_mask)
    return layers.decoder(tgt, memory, tgt_mask, memory_mask)


def _checkpointed(layer: Any) -> Callable[..., Any]:
    # A pair's bound child has the two methods utils.checkpoint uses on a
    # Module, so both forms take this one path.
    return utils.checkpoint(layer)


# --------------------------------------------------------------------------
# Composite pairs: children bound to their parameters, keys and mode
# --------------------------------------------------------------------------


class _Bound:
    """A child pair (or plain callable) with its parameters, key and mode, called like a Module.

    It also has the two methods :func:`funcnn.utils.checkpoint` uses on a
    module, so a checkpointed stack takes the same path in both forms.
    """

    __slots__ = ("layer", "params", "key", "training", "updates")

    def __init__(self, layer: Child, params: Any, key: Key, training: bool) -> None:
        self.layer, self.params, self.key, self.training = layer, params, key, training
        self.updates: Any = {}

    def __call__(self, *inputs: Any) -> Any:
        out, self.updates = apply_layer(self.layer, self.params, inputs, self.key, self.training)
        return out

    def trainable_parameters(self) -> Any:
        return self.params

    def update(self, params: Any) -> _Bound:
        self.params = params
        return self


def _entries(children: Children) -> list[tuple[str, Optional[int], Child]]:
    out: list[tuple[str, Optional[int], Child]] = []
    for name, child in children.items():
        if isinstance(child, list):
            out += [(name, i, c) for i, c in enumerate(child)]
        else:
            out.append((name, None, child))
    return out


def _per_child(children: Children, fn: Callable[[str, Optional[int], Child], Any]) -> dict:
    return {
        name: [fn(name, i, c) for i, c in enumerate(child)]
        if isinstance(child, list)
        else fn(name, None, child)
        for name, child in children.items()
    }


def _composite(name: str, children: Children, run: Callable[..., Any]) -> Pair:
    """A pair whose ``apply`` calls ``run(bound_children, *inputs)``; flags from the children."""
    entries = _entries(children)
    pairs = [c for _, _, c in entries if isinstance(c, Pair)]
    keyed = [(n, i) for n, i, c in entries if isinstance(c, Pair) and c.takes_key]
    stateful = any(p.stateful for p in pairs)

    def init(key: Key = None) -> dict:
        keys = dict(zip([(n, i) for n, i, _ in entries], split_key(key, len(entries))))
        return _per_child(
            children, lambda n, i, c: c.init(keys[n, i]) if isinstance(c, Pair) else {}
        )

    def apply(params: dict, *inputs: Any, key: Key = None, training: bool = True) -> Any:
        keys = dict(zip(keyed, split_key(key, len(keyed))))

        def bind(n: str, i: Optional[int], c: Child) -> _Bound:
            p = params[n] if i is None else params[n][i]
            return _Bound(c, p, keys.get((n, i)), training)

        bound = _per_child(children, bind)
        out = run(types.SimpleNamespace(**bound), *inputs)
        if not stateful:
            return out
        updates = _per_child(
            children, lambda n, i, c: (bound[n] if i is None else bound[n][i]).updates
        )
        return out, updates

    def trainable(params: dict) -> dict:
        def mask(n: str, i: Optional[int], c: Child) -> Any:
            p = params[n] if i is None else params[n][i]
            return c.trainable(p) if isinstance(c, Pair) else {}

        return _per_child(children, mask)

    return Pair(
        init,
        apply,
        name,
        takes_key=bool(keyed),
        takes_training=any(p.takes_training for p in pairs),
        stateful=stateful,
        trainable=trainable,
    )


def _check_child(owner: str, arg: str, value: Any, instead: str) -> None:
    if isinstance(value, dict):
        # A Module is callable, but its parameters would be hidden from
        # init/apply (and from gradients): ask for its pair instead.
        raise TypeError(
            f"{owner}: {arg} is a {type(value).__name__} module, whose parameters a pure "
            f"pair cannot see; pass {instead}."
        )
    if not isinstance(value, Pair) and not callable(value):
        raise TypeError(
            f"{owner}: {arg} must be a pair or a callable, got {type(value).__name__}"
        )


def _with_activation(
    owner: str, children: Children, activation: Any, math: Callable[..., Any]
) -> Callable[..., Any]:
    """``run`` for a block: a plain function is a setting, a pair a child named ``activation``."""
    if isinstance(activation, Pair):
        if activation.stateful:
            raise TypeError(
                f"{owner}: activation must be a stateless pair or a function, got the "
                f"stateful pair {activation.name!r}"
            )
        children["activation"] = activation  # mlx.nn stores a Module activation as a child
        return lambda layers, *inputs: math(layers, *inputs, activation=layers.activation)
    _check_child(
        owner, "activation", activation,
        "a function (funcnn.gelu) or its pair (F.gelu()), or use the class",
    )
    return functools.partial(math, activation=activation)


# --------------------------------------------------------------------------
# Pair factories
# --------------------------------------------------------------------------


@pair_factory
def transformer_encoder_layer(
    dims: int,
    num_heads: int,
    mlp_dims: Optional[int] = None,
    dropout: float = 0.0,
    activation: Callable[[Any], Any] = relu,
    norm_first: bool = True,
) -> Pair:
    """A transformer encoder block (as :class:`mlx.nn.TransformerEncoderLayer`).

    Parameters: ``attention`` (:func:`multi_head_attention` without bias),
    ``ln1``, ``ln2`` (:func:`layer_norm`), ``linear1`` ``dims -> mlp_dims``
    (default ``4 * dims``), ``linear2`` back, ``dropout1``/``dropout2`` (``{}``)
    and, when ``activation`` is a pair, ``activation``.  ``activation`` is a
    function on arrays (``funcnn.relu``, ``mx.tanh``) or a pair (``F.gelu()``).

    ``apply(params, x, mask, key=None, training=True)``; the math is
    :func:`transformer_encoder_layer_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> block = F.transformer_encoder_layer(8, 2, mlp_dims=16, dropout=0.1)
        >>> params = block.init(mx.random.key(0))
        >>> list(params)
        ['attention', 'ln1', 'ln2', 'linear1', 'linear2', 'dropout1', 'dropout2']
        >>> block.apply(params, mx.ones((2, 3, 8)), None, key=mx.random.key(1)).shape
        (2, 3, 8)
    """
    hidden = mlp_width(dims, mlp_dims)
    children: Children = {
        "attention": multi_head_attention(dims, num_heads),
        "ln1": layer_norm(dims),
        "ln2": layer_norm(dims),
        "linear1": linear(dims, hidden),
        "linear2": linear(hidden, dims),
        "dropout1": dropout_pair(dropout),
        "dropout2": dropout_pair(dropout),
    }
    math = functools.partial(transformer_encoder_layer_apply, norm_first=norm_first)
    run = _with_activation("transformer_encoder_layer", children, activation, math)
    return _composite("transformer_encoder_layer", children, run)


@pair_factory
def transformer_decoder_layer(
    dims: int,
    num_heads: int,
    mlp_dims: Optional[int] = None,
    dropout: float = 0.0,
    activation: Callable[[Any], Any] = relu,
    norm_first: bool = True,
) -> Pair:
    """A transformer decoder block (as :class:`mlx.nn.TransformerDecoderLayer`).

    Parameters: ``self_attention``, ``cross_attention``, ``ln1`` to ``ln3``,
    ``linear1``, ``linear2``, ``dropout1`` to ``dropout3`` (and ``activation``
    when it is a pair).  ``apply(params, x, memory, x_mask, memory_mask,
    key=None, training=True)``; the math is :func:`transformer_decoder_layer_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> block = F.transformer_decoder_layer(8, 2, mlp_dims=16)
        >>> params = block.init(mx.random.key(0))
        >>> block.apply(params, mx.ones((1, 3, 8)), mx.ones((1, 4, 8)), "causal", None).shape
        (1, 3, 8)
    """
    hidden = mlp_width(dims, mlp_dims)
    children: Children = {
        "self_attention": multi_head_attention(dims, num_heads),
        "cross_attention": multi_head_attention(dims, num_heads),
        "ln1": layer_norm(dims),
        "ln2": layer_norm(dims),
        "ln3": layer_norm(dims),
        "linear1": linear(dims, hidden),
        "linear2": linear(hidden, dims),
        "dropout1": dropout_pair(dropout),
        "dropout2": dropout_pair(dropout),
        "dropout3": dropout_pair(dropout),
    }
    math = functools.partial(transformer_decoder_layer_apply, norm_first=norm_first)
    run = _with_activation("transformer_decoder_layer", children, activation, math)
    return _composite("transformer_decoder_layer", children, run)


@pair_factory
def transformer_encoder(
    num_layers: int,
    dims: int,
    num_heads: int,
    mlp_dims: Optional[int] = None,
    dropout: float = 0.0,
    activation: Callable[[Any], Any] = relu,
    norm_first: bool = True,
    checkpoint: bool = False,
) -> Pair:
    """``num_layers`` encoder blocks and a final layer norm (as :class:`mlx.nn.TransformerEncoder`).

    Parameters: ``{"layers": [block, ...], "ln": ...}``, each block as
    :func:`transformer_encoder_layer`.  ``apply(params, x, mask, key=None,
    training=True)``; the key is split among the blocks.  ``checkpoint``
    recomputes each block in the backward pass (same output and gradients,
    less memory).  The math is :func:`transformer_encoder_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> encoder = F.transformer_encoder(2, 8, 2, mlp_dims=16, checkpoint=True)
        >>> params = encoder.init(mx.random.key(0))
        >>> len(params["layers"]), encoder.apply(params, mx.ones((1, 3, 8)), None).shape
        (2, (1, 3, 8))
    """
    children: Children = {
        "layers": [
            transformer_encoder_layer(dims, num_heads, mlp_dims, dropout, activation, norm_first)
            for _ in range(num_layers)
        ],
        "ln": layer_norm(dims),
    }
    run = functools.partial(transformer_encoder_apply, checkpoint=checkpoint)
    return _composite("transformer_encoder", children, run)


@pair_factory
def transformer_decoder(
    num_layers: int,
    dims: int,
    num_heads: int,
    mlp_dims: Optional[int] = None,
    dropout: float = 0.0,
    activation: Callable[[Any], Any] = relu,
    norm_first: bool = True,
    checkpoint: bool = False,
) -> Pair:
    """``num_layers`` decoder blocks and a final layer norm (as :class:`mlx.nn.TransformerDecoder`).

    ``apply(params, x, memory, x_mask, memory_mask, key=None, training=True)``;
    the math is :func:`transformer_decoder_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> decoder = F.transformer_decoder(1, 8, 2, mlp_dims=16, dropout=0.1)
        >>> params = decoder.init(mx.random.key(0))
        >>> x, memory = mx.ones((1, 3, 8)), mx.ones((1, 4, 8))
        >>> decoder.apply(params, x, memory, None, None, training=False).shape
        (1, 3, 8)
    """
    children: Children = {
        "layers": [
            transformer_decoder_layer(dims, num_heads, mlp_dims, dropout, activation, norm_first)
            for _ in range(num_layers)
        ],
        "ln": layer_norm(dims),
    }
    run = functools.partial(transformer_decoder_apply, checkpoint=checkpoint)
    return _composite("transformer_decoder", children, run)


@pair_factory
def transformer(
    dims: int = 512,
    num_heads: int = 8,
    num_encoder_layers: int = 6,
    num_decoder_layers: int = 6,
    mlp_dims: Optional[int] = None,
    dropout: float = 0.0,
    activation: Callable[[Any], Any] = relu,
    custom_encoder: Optional[Any] = None,
    custom_decoder: Optional[Any] = None,
    norm_first: bool = True,
    checkpoint: bool = False,
) -> Pair:
    """An encoder-decoder transformer (as :class:`mlx.nn.Transformer`).

    Parameters: ``{"encoder": ..., "decoder": ...}``.  ``custom_encoder`` and
    ``custom_decoder``, when not ``None``, replace the default
    :func:`transformer_encoder` / :func:`transformer_decoder`: a pair (or a
    plain callable, without parameters) called as ``encoder(src, src_mask)``
    and ``decoder(tgt, memory, tgt_mask, memory_mask)``.
    ``apply(params, src, tgt, src_mask, tgt_mask, memory_mask, key=None,
    training=True)``; the math is :func:`transformer_apply`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.functional as F
        >>> model = F.transformer(8, 2, 1, 1, mlp_dims=16,
        ...                       custom_encoder=F.transformer_encoder(2, 8, 2, 16))
        >>> params = model.init(mx.random.key(0))
        >>> len(params["encoder"]["layers"]), len(params["decoder"]["layers"])
        (2, 1)
        >>> model.apply(params, mx.ones((1, 5, 8)), mx.ones((1, 3, 8)), None, "causal", None).shape
        (1, 3, 8)
    """
    if custom_encoder is not None:
        _check_child("transformer", "custom_encoder", custom_encoder,
                     "its pair (e.g. F.transformer_encoder(...)) or use nn.Transformer")
        encoder = custom_encoder
    else:
        encoder = transformer_encoder(
            num_encoder_layers, dims, num_heads, mlp_dims, dropout, activation, norm_first,
            checkpoint,
        )
    if custom_decoder is not None:
        _check_child("transformer", "custom_decoder", custom_decoder,
                     "its pair (e.g. F.transformer_decoder(...)) or use nn.Transformer")
        decoder = custom_decoder
    else:
        decoder = transformer_decoder(
            num_decoder_layers, dims, num_heads, mlp_dims, dropout, activation, norm_first,
            checkpoint,
        )
    return _composite("transformer", {"encoder": encoder, "decoder": decoder}, transformer_apply)
