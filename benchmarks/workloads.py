"""The benchmark workloads and their variants (float32, fixed seeds, synthetic data).

=============  ==========================================================================
W1             MLP training step: 784-512-512-10, ReLU, cross entropy, Adam, batch 256
W2             transformer LM training step: vocab 256, d_model 256, 4 layers, 4 heads,
               seq 128, batch 16, causal attention, AdamW (``wl_lm.py``)
W3             the same transformer, inference forward, batch 1, seq 128
W4.forward     overhead: 200 x Linear(16, 16), batch 1, MSE loss: forward
W4.vag         ... value_and_grad
W4.step        ... full training step (Adam)
W5.<op>        tree operations on a 48-layer model, one row per operation (``wl_trees.py``)
W6 ... W9      one representative of each new layer family (``wl_catalogue.py``):
               ConvTranspose2d, pooling CNN, LSTM, Transformer encoder-decoder
W10.q<B>.<m>   W3's transformer quantized (affine, group 64, B = 4 or 8 bits), batch 1:
               ``decode`` (one-token forward, no KV cache) and ``prefill`` (seq 128)
               (``wl_quantized.py``)
=============  ==========================================================================

Variants (``wl_common.py``): ``mlxnn_eager``, ``mlxnn_compiled`` (``mx.compile(step,
inputs=state, outputs=state)`` with ``state = [model.state, optimizer.state]``, MLX's
documented pattern), ``facade_eager``/``facade_compiled`` (the same code on funcnn
Modules with ``funcnn.value_and_grad`` and ``mlx.optimizers``), ``pure_eager``/
``pure_compiled`` (``funcnn.functional`` + ``funcnn.transforms`` + ``funcnn.optimizers``,
compiled with ``funcnn.transforms.compile``), ``handwritten_compiled`` (plain
``mlx.core`` on a flat list of arrays, ``mx.compile``d: the engine's own limit).
W3 runs every family eager and compiled; W5 compares ``mlxnn_eager`` with
``facade_eager``.  Adam/AdamW: ``mlx.optimizers``' defaults, lr 1e-3, weight decay 0.01.

``--quick`` uses smaller transformers for W2, W3, W10 (``wl_lm.QUICK``: d_model 64, 2
layers, seq 32, training batch 4) so that the smoke test finishes in CI; every other
workload keeps its size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mlx.core as mx

import wl_catalogue
import wl_common as C
import wl_lm
import wl_quantized
import wl_trees


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    variants: tuple
    build: Callable  # (variant, quick) -> Bench
    warmup: int  # untimed steps after the first one (>= CHECK_STEPS - 1)
    steps: int  # timed steps per process
    quick_steps: int = 2
    baseline: str = "mlxnn_compiled"


# --------------------------------------------------------------------------
# W1: the MLP
# --------------------------------------------------------------------------

MLP_SIZES = (784, 512, 512, 10)
MLP_BATCH = 256


def _mlp_module(nn):
    d0, d1, d2, d3 = MLP_SIZES
    return nn.Sequential(nn.Linear(d0, d1), nn.ReLU(), nn.Linear(d1, d2), nn.ReLU(), nn.Linear(d2, d3))


def _mlp_pair():
    import funcnn.functional as F

    d0, d1, d2, d3 = MLP_SIZES
    return F.sequential(F.linear(d0, d1), F.relu(), F.linear(d1, d2), F.relu(), F.linear(d2, d3))


def _mlp_forward(flat, x):
    w0, b0, w1, b1, w2, b2 = flat
    x = mx.maximum(mx.addmm(b0, x, w0.T), 0)
    x = mx.maximum(mx.addmm(b1, x, w1.T), 0)
    return mx.addmm(b2, x, w2.T)


def _mlp_data():
    r = C.rng(1)
    x = r.standard_normal((MLP_BATCH, MLP_SIZES[0]), dtype="float32")
    y = r.integers(0, MLP_SIZES[-1], size=(MLP_BATCH,))
    return mx.array(x), mx.array(y, mx.int32)


MLP = C.ModelSpec(
    make_module=_mlp_module,
    pair=_mlp_pair,
    hand_order=[f"layers.{i}.{k}" for i in (0, 2, 4) for k in ("weight", "bias")],
    hand_forward=_mlp_forward,
    data=_mlp_data,
    loss="xent",
    optimizer="adam",
)

# --------------------------------------------------------------------------
# W4: 200 x Linear(16, 16), batch 1
# --------------------------------------------------------------------------

CHAIN_DEPTH, CHAIN_WIDTH = 200, 16


def _chain_module(nn):
    return nn.Sequential(*[nn.Linear(CHAIN_WIDTH, CHAIN_WIDTH) for _ in range(CHAIN_DEPTH)])


def _chain_pair():
    import funcnn.functional as F

    return F.sequential(*[F.linear(CHAIN_WIDTH, CHAIN_WIDTH) for _ in range(CHAIN_DEPTH)])


def _chain_forward(flat, x):
    for i in range(0, len(flat), 2):
        x = mx.addmm(flat[i + 1], x, flat[i].T)
    return x


def _chain_data():
    r = C.rng(2)
    x, y = (r.standard_normal((1, CHAIN_WIDTH), dtype="float32") for _ in range(2))
    return mx.array(x), mx.array(y)


CHAIN = C.ModelSpec(
    make_module=_chain_module,
    pair=_chain_pair,
    hand_order=[f"layers.{i}.{k}" for i in range(CHAIN_DEPTH) for k in ("weight", "bias")],
    hand_forward=_chain_forward,
    data=_chain_data,
    loss="mse",
    optimizer="adam",
)


# --------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------


def _model_builder(spec_of: Callable, mode: str) -> Callable:
    def build(variant: str, quick: bool = False) -> C.Bench:
        spec = spec_of(quick)
        ref, data = C.reference(spec), spec.data()
        mx.eval(data)
        return _Prepared(spec, mode, variant, ref, data)

    return build


class _Prepared:
    """Set-up done (reference parameters, data); ``bench()`` builds the variant (timed)."""

    def __init__(self, spec, mode, variant, ref, data) -> None:
        self.spec, self.mode, self.variant, self.ref, self.data = spec, mode, variant, ref, data

    def bench(self) -> C.Bench:
        return C.build(self.spec, self.mode, self.variant, self.ref, self.data)


class _TreePrepared:
    def __init__(self, op: str, variant: str) -> None:
        self.op, self.variant = op, variant

    def bench(self) -> C.Bench:
        return wl_trees.build(self.op, self.variant)


def _tree_builder(op: str) -> Callable:
    return lambda variant, quick=False: _TreePrepared(op, variant)


_TREE_VARIANTS = ("mlxnn_eager", "facade_eager")

WORKLOADS: dict = {
    w.name: w
    for w in [
        Workload("W1", "MLP 784-512-512-10 training step, batch 256, Adam", C.TRAIN_VARIANTS,
                 _model_builder(lambda q: MLP, "train"), warmup=3, steps=20),
        Workload("W2", "transformer LM training step (d 256, 4 layers, seq 128, batch 16), AdamW",
                 C.TRAIN_VARIANTS, _model_builder(lambda q: wl_lm.spec(q, True), "train"),
                 warmup=2, steps=5),
        Workload("W3", "transformer LM inference forward, batch 1, seq 128", C.ALL_VARIANTS,
                 _model_builder(lambda q: wl_lm.spec(q, False), "forward"), warmup=3, steps=20),
        Workload("W4.forward", "200 x Linear(16,16), batch 1: forward", C.ALL_VARIANTS,
                 _model_builder(lambda q: CHAIN, "forward"), warmup=20, steps=300),
        Workload("W4.vag", "200 x Linear(16,16), batch 1: value_and_grad", C.ALL_VARIANTS,
                 _model_builder(lambda q: CHAIN, "vag"), warmup=20, steps=200),
        Workload("W4.step", "200 x Linear(16,16), batch 1: training step (Adam)",
                 C.TRAIN_VARIANTS, _model_builder(lambda q: CHAIN, "train"), warmup=20, steps=200),
        Workload("W6", "ConvTranspose2d decoder training step, batch 32, Adam",
                 wl_catalogue.VARIANTS, _model_builder(lambda q: wl_catalogue.DECONV, "train"),
                 warmup=3, steps=20),
        Workload("W7", "pooling CNN (MaxPool2d, AvgPool2d) training step, batch 64, Adam",
                 wl_catalogue.VARIANTS, _model_builder(lambda q: wl_catalogue.POOL_CNN, "train"),
                 warmup=3, steps=20),
        Workload("W8", "LSTM(32->128), 32 steps, batch 16, training step, Adam",
                 wl_catalogue.VARIANTS, _model_builder(lambda q: wl_catalogue.LSTM, "train"),
                 warmup=3, steps=20),
        Workload("W9", "Transformer encoder-decoder (d 64, 2+2 layers) training step, AdamW",
                 wl_catalogue.VARIANTS, _model_builder(lambda q: wl_catalogue.TRANSFORMER, "train"),
                 warmup=3, steps=20),
    ]
    + wl_quantized.workloads(Workload)
    + [
        Workload(f"W5.{op}", f"48-layer model: {op}", _TREE_VARIANTS, _tree_builder(op),
                 warmup=5, steps=100, quick_steps=3, baseline="mlxnn_eager")
        for op in wl_trees.OPS
    ]
}  # fmt: skip


def select(names: str) -> list:
    """Workloads named by a comma-separated list; ``W4`` means all of ``W4.*``."""
    out = []
    for name in [n.strip() for n in names.split(",") if n.strip()]:
        found = [w for w in WORKLOADS if w == name or w.startswith(name + ".")]
        if not found:
            raise ValueError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
        out += [w for w in found if w not in out]
    return out
