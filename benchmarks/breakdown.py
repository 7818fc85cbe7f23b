"""Where the time of W3 and W4.step goes (in one process, variants interleaved).

    python benchmarks/breakdown.py w3      # the transformer forward: kernels, eager vs compiled
    python benchmarks/breakdown.py w4      # the 200-layer training step: wrapper vs graph vs eval
    python benchmarks/breakdown.py all [--repeats N]

``w3`` times the forward of ``workloads.py``'s W3 model (mlx.nn eager and
compiled, hand-written eager and compiled, and the hand-written forward with
GELU removed or with GELU's ``erf`` replaced by a rational approximation), then
its pieces at their real shapes: one GELU, one causal attention, one MLP matmul.

``w4`` splits one compiled training step of W4 into building the lazy outputs
(the compiled call, "call") and evaluating them ("eval"), for
``funcnn.transforms.compile``, ``mx.compile`` of the very same pure function,
and the hand-written step; it also times ``Structure.match`` (funcnn's per-call
argument matching) alone, and the eager graph building of one optimizer update
(``funcnn.optimizers`` vs ``mlx.optimizers`` vs by hand).

Numbers are medians of ``--repeats`` interleaved calls (ms).  Run on a quiet
machine; it imports funcnn first (its BLAS set-up), like the workers.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import funcnn  # noqa: F401  (first: BLAS set-up)
import mlx.core as mx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wl_common as C  # noqa: E402
import wl_lm  # noqa: E402
import workloads as W  # noqa: E402

# Eigen's rational approximation of erf on [-4, 4] (float32, |error| < 5e-7 against mx.erf).
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
          -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
          -1.60960333262415e-02)  # fmt: skip
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
          -7.37332916720468e-03, -1.42647390514189e-02)  # fmt: skip


def erf_rational(x: mx.array) -> mx.array:
    """erf from multiplications, additions and one division: fuses into one compiled loop."""
    x = mx.clip(x, -4.0, 4.0)
    x2 = x * x
    p, q = _ERF_P[0], _ERF_Q[0]
    for a in _ERF_P[1:]:
        p = p * x2 + a
    for b in _ERF_Q[1:]:
        q = q * x2 + b
    return x * p / q


def gelu_rational(x: mx.array) -> mx.array:
    return x * (1 + erf_rational(x * (1 / math.sqrt(2)))) * 0.5


def interleaved(fns: dict, repeats: int) -> dict:
    for f in fns.values():  # warm up (and compile)
        for _ in range(2):
            f()
    times = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        for k in names[r % len(names):] + names[: r % len(names)]:
            tic = time.perf_counter()
            fns[k]()
            times[k].append((time.perf_counter() - tic) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def show(title: str, medians: dict, base: str | None = None) -> None:
    print(f"\n{title}")
    for k, v in medians.items():
        rel = f"  ({medians[base] / v:.2f}x {base})" if base and k != base else ""
        print(f"  {k:<46} {v:9.3f} ms{rel}")


def w3(repeats: int) -> None:
    import mlx.nn as nn

    spec = wl_lm.spec(quick=False, train=False)
    cfg = spec.extra["config"]
    ref = C.reference(spec)
    ids, _ = spec.data()
    model = spec.make_module(nn)
    model.load_weights(ref)
    flat = [dict(ref)[k] for k in spec.hand_order]
    hand = spec.hand_forward
    compiled_model = mx.compile(lambda x: model(x), inputs=model.state)
    compiled_hand = mx.compile(hand)

    def with_gelu(gelu):
        return wl_lm.make_hand_forward(cfg["layers"], cfg["heads"], gelu)

    no_gelu = with_gelu(lambda t: t)
    rational = mx.compile(with_gelu(gelu_rational))
    out_ref = model(ids)
    diff = mx.abs(rational(flat, ids) - out_ref).max().item()
    show(f"W3 forward, batch 1, seq {cfg['seq']} ({cfg['layers']} layers, d {cfg['dims']})", interleaved({
        "mlx.nn eager": lambda: mx.eval(model(ids)),
        "mlx.nn compiled (inputs=model.state)": lambda: mx.eval(compiled_model(ids)),
        "hand-written eager": lambda: mx.eval(hand(flat, ids)),
        "hand-written compiled": lambda: mx.eval(compiled_hand(flat, ids)),
        "hand-written eager, GELU removed": lambda: mx.eval(no_gelu(flat, ids)),
        f"hand-written compiled, rational erf (|diff| {diff:.1e})": lambda: mx.eval(rational(flat, ids)),
    }, repeats), base="mlx.nn eager")  # fmt: skip

    hidden = mx.random.normal((1, cfg["seq"], 4 * cfg["dims"]), key=mx.random.key(1))
    q = mx.random.normal((1, cfg["heads"], cfg["seq"], cfg["dims"] // cfg["heads"]), key=mx.random.key(2))
    h = mx.random.normal((1, cfg["seq"], cfg["dims"]), key=mx.random.key(3))
    w1 = model.layers[0].fc1.weight
    gelu_c = mx.compile(gelu_rational, shapeless=True)
    mx.eval(hidden, q, h)
    scale = 1 / math.sqrt(q.shape[-1])
    show(f"W3 pieces (x{cfg['layers']} layers each)", interleaved({
        f"GELU on {tuple(hidden.shape)}: funcnn.gelu (= nn.gelu)": lambda: mx.eval(funcnn.gelu(hidden)),
        "GELU: rational erf, compiled": lambda: mx.eval(gelu_c(hidden)),
        "mx.erf alone": lambda: mx.eval(mx.erf(hidden)),
        "mx.exp alone": lambda: mx.eval(mx.exp(hidden)),
        f"causal attention {tuple(q.shape)}": lambda: mx.eval(
            mx.fast.scaled_dot_product_attention(q, q, q, scale=scale, mask="causal")),
        f"MLP matmul {tuple(h.shape)} @ {tuple(w1.T.shape)}": lambda: mx.eval(h @ w1.T),
    }, repeats))  # fmt: skip


def w4(repeats: int) -> None:
    import mlx.optimizers as optim

    import funcnn.optimizers as fopt
    import funcnn.transforms as T
    from funcnn import losses
    from funcnn.transforms._structure import Structure
    from funcnn.tree import tree_map_with_path

    spec = W.CHAIN
    ref = C.reference(spec)
    x, y = spec.data()
    given = dict(ref)
    pair = spec.pair()
    params = tree_map_with_path(lambda k, _: given[k], pair.init(mx.random.key(0)))
    opt = fopt.adam(C.LEARNING_RATE)
    grad_fn = T.value_and_grad(lambda p, x, y: losses.mse_loss(pair.apply(p, x), y))

    def body(p, s, x, y):
        value, g = grad_fn(p, x, y)
        p, s = opt.update(g, s, p)
        return value, p, s

    flat = [given[k] for k in spec.hand_order]
    hand_loss = C.hand_loss("mse")
    hand_grad = mx.value_and_grad(lambda f, x, y: hand_loss(spec.hand_forward(f, x), y))

    def hand_body(p, m, v, x, y):
        value, g = hand_grad(p, x, y)
        return (value, *C.hand_adam(p, g, m, v))

    state = {
        "T.compile(step)": [T.compile(body), params, opt.init(params)],
        "mx.compile(same step)": [mx.compile(body), params, opt.init(params)],
        "hand-written, mx.compile": [mx.compile(hand_body), flat,
                                     [mx.zeros_like(a) for a in flat], [mx.zeros_like(a) for a in flat]],
    }  # fmt: skip
    split = {k: {"call": [], "eval": []} for k in state}

    def stepper(k):
        def run():
            fn, *args = state[k]
            tic = time.perf_counter()
            out = fn(*args, x, y)
            mid = time.perf_counter()
            mx.eval(out)
            split[k]["call"].append((mid - tic) * 1e3)
            split[k]["eval"].append((time.perf_counter() - mid) * 1e3)
            state[k][1:] = list(out[1:])

        return run

    totals = interleaved({k: stepper(k) for k in state}, repeats)
    print("\nW4.step compiled: call (builds the lazy outputs) + eval")
    for k, total in totals.items():
        call, ev = (statistics.median(split[k][p]) for p in ("call", "eval"))
        print(f"  {k:<32} total {total:7.3f}  call {call:6.3f}  eval {ev:7.3f} ms")
    tree = ((state["T.compile(step)"][1], state["T.compile(step)"][2], x, y), {})
    structure, arrays = Structure.build(tree)
    tic = time.perf_counter()
    for _ in range(100):
        structure.match(tree, check=False)
    print(f"  funcnn Structure.match alone: {(time.perf_counter() - tic) * 10:.3f} ms "
          f"for {len(arrays)} array leaves")  # fmt: skip

    grads = tree_map_with_path(lambda k, a: a * 0.01, params)
    st = opt.init(params)
    mlx_opt = optim.Adam(learning_rate=C.LEARNING_RATE)
    mlx_opt.init(params)
    flat_g = [a * 0.01 for a in flat]
    zeros = [mx.zeros_like(a) for a in flat]
    mx.eval(grads, st, mlx_opt.state, flat_g, zeros)
    show("W4 eager: building one Adam update's graph (no evaluation)", interleaved({
        "funcnn.optimizers.adam().update": lambda: opt.update(grads, st, params),
        "mlx.optimizers.Adam.apply_gradients": lambda: mlx_opt.apply_gradients(grads, params),
        "hand-written (wl_common.hand_adam)": lambda: C.hand_adam(flat, flat_g, zeros, zeros),
    }, repeats), base="mlx.optimizers.Adam.apply_gradients")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("w3", "w4", "all"))
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    print(f"mlx {mx.__version__}; BLAS: {getattr(funcnn, 'blas_info', lambda: 'n/a')()}")
    if args.what in ("w3", "all"):
        w3(args.repeats)
    if args.what in ("w4", "all"):
        w4(args.repeats)


if __name__ == "__main__":
    main()
