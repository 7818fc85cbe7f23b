"""W10: the W3 transformer quantized (affine, group size 64, 4 and 8 bits), batch 1 inference.

==============  ============================================================================
W10.q4.decode   4-bit, one token: forward of a ``(1, 1)`` batch (see "Decode" below)
W10.q4.prefill  4-bit, forward of a ``(1, 128)`` batch (``--quick``: ``(1, 32)``)
W10.q8.decode   the same, 8-bit
W10.q8.prefill  the same, 8-bit
==============  ============================================================================

Every variant starts from the float parameters of the ``mlx.nn`` model of W3 built
with ``mx.random.seed(0)`` (``wl_common.reference``) and quantizes them itself, as
part of ``bench()`` (so the time to first step includes the quantization):

* ``mlxnn_*`` / ``facade_*``: W3's module (``wl_lm.make_module``, one source for
  ``mlx.nn`` and funcnn), ``load_weights``, then ``nn.quantize(model, group_size=64,
  bits=B, class_predicate=...)``: every ``Linear`` (attention projections, MLP, head)
  and the token ``Embedding`` become ``QuantizedLinear``/``QuantizedEmbedding``.
  The learned positions ``pos`` stay float: W3 slices ``pos.weight`` directly, and
  a quantized table there is a packed ``uint32`` matrix (plain ``nn.quantize``
  makes W3's forward fail with a broadcast error, in mlx.nn as in funcnn).
* ``pure_*``: W3's pair with its float parameters, ``F.quantize_params`` with the
  same options and predicate, and the quantized twin of the pair
  (``wl_lm.make_pair(..., quantized=...)``: ``quantized_linear``/``quantized_embedding``
  members, the same ``attend``).
* ``*_compiled``: ``mx.compile(forward, inputs=model.state)`` for modules (as W3),
  ``funcnn.transforms.compile`` for the pair; traced once.

Decode.  W3's model has no KV cache (its attention is ``MultiHeadAttention``, which
takes none), so a decode step here is the forward of one new token on its own: every
linear is then a matrix-vector product through the quantized kernels, which is what
a cached decode step spends its time on, and every quantized weight is read once.
What it leaves out is the attention of that token over cached keys and values and
the cache update: at d_model 256 with 128 cached positions that attention is about 8%
of a block's multiply-adds (float, not quantized).  It is the weight-bound part of
decoding, not a full generation step.
"""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx

import wl_common as C
import wl_lm

GROUP_SIZE = 64
BITS = (4, 8)
MODES = ("decode", "prefill")
VARIANTS = C.TRAIN_VARIANTS[:-1]  # no hand-written variant


def module_predicate(path: str, module) -> bool:
    """``nn.quantize``'s default (has ``to_quantized``) except for the sliced ``pos`` table."""
    return path != "pos" and hasattr(module, "to_quantized")


def params_predicate(path: str, _params: dict) -> bool:
    """The same choice for ``F.quantize_params`` (which offers only linear-like subtrees)."""
    return path != "pos"


def _ids(cfg: dict, mode: str) -> mx.array:
    length = 1 if mode == "decode" else cfg["seq"]
    ids = C.rng(101).integers(0, cfg["vocab"], size=(wl_lm.INFER_BATCH, length))
    return mx.array(ids, mx.int32)


class _Prepared:
    """Set-up (not timed): the reference float parameters and the token ids."""

    def __init__(self, bits: int, mode: str, variant: str, quick: bool) -> None:
        self.cfg = wl_lm.QUICK if quick else wl_lm.FULL
        self.spec = wl_lm.spec(quick, False)
        self.ref = C.reference(self.spec)
        self.ids = _ids(self.cfg, mode)
        mx.eval(self.ids)
        self.bits, self.variant = bits, variant
        self.float_params = self._float_params() if variant.startswith("pure_") else None

    def _float_params(self):
        """W3's pair parameters, taken by name from the reference (as ``wl_common`` does)."""
        from funcnn.tree import tree_flatten, tree_map_with_path

        given = dict(self.ref)
        params = self.spec.pair().init(mx.random.key(C.SEED))
        if sorted(k for k, _ in tree_flatten(params)) != sorted(given):
            raise AssertionError("pure parameter names differ from mlx.nn's")
        return tree_map_with_path(lambda k, _: given[k], params)

    def bench(self) -> C.Bench:
        family, _, how = self.variant.rpartition("_")
        if family in ("mlxnn", "facade"):
            fn, counter = self._module(family, how == "compiled")
        elif family == "pure":
            fn, counter = self._pure(how == "compiled")
        else:
            raise ValueError(f"unknown variant {self.variant!r}")
        last: dict = {}

        def step():
            last["out"] = out = fn(self.ids)
            mx.eval(out)

        traces = counter if how == "compiled" else None
        return C.Bench(step, lambda: C.array_summary(last["out"]), traces)

    def _module(self, family: str, compiled: bool):
        if family == "mlxnn":
            import mlx.nn as nn
        else:
            import funcnn as nn
        model = self.spec.make_module(nn)
        model.load_weights(list(self.ref))
        nn.quantize(model, group_size=GROUP_SIZE, bits=self.bits, class_predicate=module_predicate)
        mx.eval(model.parameters())
        counter = C.Counter()

        def forward(ids):
            counter.tick()
            return model(ids)

        return (mx.compile(forward, inputs=model.state) if compiled else forward), counter

    def _pure(self, compiled: bool):
        import funcnn.functional as F
        import funcnn.transforms as T

        params = F.quantize_params(
            self.float_params, GROUP_SIZE, self.bits,
            predicate=params_predicate, embeddings=("embed",),
        )
        mx.eval(params)
        pair = wl_lm.make_pair(**self.cfg, quantized={"group_size": GROUP_SIZE, "bits": self.bits})
        counter = C.Counter()

        def forward(p, ids):
            counter.tick()
            return pair.apply(p, ids)

        run = T.compile(forward) if compiled else forward
        return (lambda ids: run(params, ids)), counter


def builder(bits: int, mode: str) -> Callable:
    """``build(variant, quick)`` for ``workloads.Workload``."""
    return lambda variant, quick=False: _Prepared(bits, mode, variant, quick)


def workloads(make: Callable) -> list:
    """One ``make(name, title, variants, build, warmup=, steps=)`` (a ``Workload``) per case."""
    out = []
    for bits in BITS:
        for mode in MODES:
            what = "seq 128 forward"
            if mode == "decode":
                what = "one-token forward (decode, no KV cache)"
            out.append(make(
                f"W10.q{bits}.{mode}",
                f"W3 transformer, {bits}-bit affine (group 64), batch 1: {what}",
                VARIANTS, builder(bits, mode), warmup=5, steps=200 if mode == "decode" else 30,
            ))  # fmt: skip
    return out
