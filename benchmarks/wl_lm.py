"""W2/W3: a pre-norm transformer language model, three ways with one set of parameter names.

``embed`` (token embedding), ``pos`` (learned positions), ``layers``: blocks of
``x + attn(ln1(x))`` (causal multi-head attention, no biases, as
``MultiHeadAttention``'s default) then ``x + fc2(gelu(fc1(ln2(x))))`` (MLP 4x
wide), a final ``norm`` and a linear ``head``.  Causal masking is
``mask="causal"`` (``mx.fast.scaled_dot_product_attention``) in every variant.
"""

from __future__ import annotations

import math

import mlx.core as mx

from wl_common import ModelSpec, rng

FULL = dict(vocab=256, dims=256, layers=4, heads=4, seq=128)
# --quick: the same architecture, smaller, so the smoke test stays short on 2 cores.
QUICK = dict(vocab=64, dims=64, layers=2, heads=4, seq=32)
TRAIN_BATCH, QUICK_TRAIN_BATCH = 16, 4
INFER_BATCH = 1
EPS = 1e-5


def make_module(nn, vocab: int, dims: int, layers: int, heads: int, seq: int):
    """The model as a Module; ``nn`` is ``mlx.nn`` or ``funcnn`` (the same source for both)."""

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln1 = nn.LayerNorm(dims)
            self.attn = nn.MultiHeadAttention(dims, heads)
            self.ln2 = nn.LayerNorm(dims)
            self.fc1 = nn.Linear(dims, 4 * dims)
            self.fc2 = nn.Linear(4 * dims, dims)

        def __call__(self, x):
            h = self.ln1(x)
            x = x + self.attn(h, h, h, mask="causal")
            return x + self.fc2(nn.gelu(self.fc1(self.ln2(x))))

    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, dims)
            self.pos = nn.Embedding(seq, dims)
            self.layers = [Block() for _ in range(layers)]
            self.norm = nn.LayerNorm(dims)
            self.head = nn.Linear(dims, vocab)

        def __call__(self, ids):
            x = self.embed(ids) + self.pos.weight[: ids.shape[1]]
            for block in self.layers:
                x = block(x)
            return self.head(self.norm(x))

    return LM()


def make_pair(vocab: int, dims: int, layers: int, heads: int, seq: int, quantized=None):
    """The model as a :mod:`funcnn.functional` pair (as ``examples/char_lm.py`` builds its own).

    ``quantized`` (``{"group_size": .., "bits": ..}``): the same model with quantized
    linears and token table, for parameters from ``F.quantize_params`` (W10; ``pos``
    stays float: it is sliced, not looked up).
    """
    import funcnn
    import funcnn.functional as F

    embed, pos = F.embedding(vocab, dims), F.embedding(seq, dims)
    ln, attn = F.layer_norm(dims), F.multi_head_attention(dims, heads)
    fc1, fc2 = F.linear(dims, 4 * dims), F.linear(4 * dims, dims)
    head = F.linear(dims, vocab)
    if quantized:
        q = dict(quantized, mode="affine")
        embed = F.quantized_embedding(vocab, dims, **q)
        fc1, fc2 = F.quantized_linear(dims, 4 * dims, **q), F.quantized_linear(4 * dims, dims, **q)
        head = F.quantized_linear(dims, vocab, **q)
        attn = _attention(heads, [F.quantized_linear(dims, dims, False, **q) for _ in range(4)])

    def init_block(key):
        k_attn, k1, k2 = F.split_key(key, 3)
        return {
            "ln1": ln.init(),
            "attn": attn.init(k_attn),
            "ln2": ln.init(),
            "fc1": fc1.init(k1),
            "fc2": fc2.init(k2),
        }

    def init(key=None):
        k_embed, k_pos, k_head, *k_blocks = F.split_key(key, layers + 3)
        return {
            "embed": embed.init(k_embed),
            "pos": pos.init(k_pos),
            "layers": [init_block(k) for k in k_blocks],
            "norm": ln.init(),
            "head": head.init(k_head),
        }

    def apply_block(p, x):
        h = ln.apply(p["ln1"], x)
        x = x + attn.apply(p["attn"], h, h, h, mask="causal")
        return x + fc2.apply(p["fc2"], funcnn.gelu(fc1.apply(p["fc1"], ln.apply(p["ln2"], x))))

    def apply(params, ids):
        x = embed.apply(params["embed"], ids) + params["pos"]["weight"][: ids.shape[1]]
        for p in params["layers"]:
            x = apply_block(p, x)
        return head.apply(params["head"], ln.apply(params["norm"], x))

    return F.Pair(init, apply, "lm")


def _attention(heads: int, projections: list):
    """``multi_head_attention``'s math (``F.attend``) over the given projection pairs."""
    import funcnn.functional as F

    names = ("query_proj", "key_proj", "value_proj", "out_proj")

    def init(key=None):
        return {n: p.init(k) for n, p, k in zip(names, projections, F.split_key(key, 4))}

    def apply(params, queries, keys, values, mask=None):
        inputs = (queries, keys, values)
        q, k, v = (p.apply(params[n], t) for n, p, t in zip(names, projections, inputs))
        return projections[3].apply(params["out_proj"], F.attend(q, k, v, heads, mask))

    return F.Pair(init, apply, "attention")


_BLOCK = (
    "ln1.weight", "ln1.bias",
    "attn.query_proj.weight", "attn.key_proj.weight", "attn.value_proj.weight",
    "attn.out_proj.weight",
    "ln2.weight", "ln2.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
)  # fmt: skip


def hand_order(layers: int) -> list:
    names = ["embed.weight", "pos.weight"]
    for i in range(layers):
        names += [f"layers.{i}.{k}" for k in _BLOCK]
    return names + ["norm.weight", "norm.bias", "head.weight", "head.bias"]


def _gelu(x):
    return x * (1 + mx.erf(x / math.sqrt(2))) / 2


def make_hand_forward(layers: int, heads: int, gelu=_gelu):
    """``forward(flat, ids)`` on the list ordered as :func:`hand_order` (``gelu``: see breakdown.py)."""

    def split_heads(t, b, n):
        return t.reshape(b, n, heads, -1).transpose(0, 2, 1, 3)

    def forward(flat, ids):
        b, n = ids.shape
        x = flat[0][ids] + flat[1][:n]
        for i in range(layers):
            ln1w, ln1b, wq, wk, wv, wo, ln2w, ln2b, w1, b1, w2, b2 = flat[2 + 12 * i : 14 + 12 * i]
            h = mx.fast.layer_norm(x, ln1w, ln1b, EPS)
            q, k, v = (split_heads(h @ w.T, b, n) for w in (wq, wk, wv))
            scale = 1 / math.sqrt(q.shape[-1])
            a = mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask="causal")
            x = x + a.transpose(0, 2, 1, 3).reshape(b, n, -1) @ wo.T
            h = gelu(mx.addmm(b1, mx.fast.layer_norm(x, ln2w, ln2b, EPS), w1.T))
            x = x + mx.addmm(b2, h, w2.T)
        normw, normb, headw, headb = flat[-4:]
        return mx.addmm(headb, mx.fast.layer_norm(x, normw, normb, EPS), headw.T)

    return forward


def spec(quick: bool, train: bool) -> ModelSpec:
    cfg = QUICK if quick else FULL
    batch = (QUICK_TRAIN_BATCH if quick else TRAIN_BATCH) if train else INFER_BATCH

    def data():
        ids = rng(1).integers(0, cfg["vocab"], size=(batch, cfg["seq"] + 1))
        return mx.array(ids[:, :-1], mx.int32), mx.array(ids[:, 1:], mx.int32)

    return ModelSpec(
        make_module=lambda nn: make_module(nn, **cfg),
        pair=lambda: make_pair(**cfg),
        hand_order=hand_order(cfg["layers"]),
        hand_forward=make_hand_forward(cfg["layers"], cfg["heads"]),
        data=data,
        loss="xent",
        optimizer="adamw",
        extra={"config": dict(cfg, batch=batch)},
    )
