"""Run ONE (workload, variant) in this fresh process and print one JSON line.

    python benchmarks/_worker.py --workload W4.step --variant pure_compiled [--quick]
                                 [--warmup N] [--steps N]

Sequence: set-up (reference parameters and data; not timed) -> build the variant
and run its first step (``first_step_ms``: build + first step, compilation
included) -> more steps up to ``CHECK_STEPS`` -> ``check()`` -> the rest of the
warm-up -> ``--steps`` timed steps, each timed alone (``times_ms``).  Then the
trace count of a compiled variant and the peak RSS (``ru_maxrss``).

``funcnn`` is imported first in every variant, ``mlx.nn`` ones included, so that
whatever it sets up on import (the BLAS library; ``FUNCNN_NO_OPENBLAS=1`` opts
out) is the same for all of them.  ``run.py`` is the driver.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import sys
import time
import traceback

_T0 = time.perf_counter()
import funcnn  # noqa: E402  (first: see the docstring)
import mlx.core as mx  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wl_common import CHECK_STEPS  # noqa: E402
from workloads import WORKLOADS  # noqa: E402

_IMPORT_MS = (time.perf_counter() - _T0) * 1e3


def blas_info() -> object:
    info = getattr(funcnn, "blas_info", None)
    if info is None:
        return None
    try:
        value = info() if callable(info) else info
        json.dumps(value)
        return value
    except Exception as err:  # noqa: BLE001 - informational only
        return f"blas_info() failed: {err!r}"


def run(workload: str, variant: str, quick: bool, warmup: int, steps: int) -> dict:
    w = WORKLOADS[workload]
    if variant not in w.variants:
        raise ValueError(f"{workload} has no variant {variant!r}; it has {w.variants}")
    prepared = w.build(variant, quick)
    gc.collect()

    tic = time.perf_counter()
    bench = prepared.bench()
    built = time.perf_counter()
    bench.step()
    first = time.perf_counter()
    for _ in range(CHECK_STEPS - 1):
        bench.step()
    check = bench.check()
    for _ in range(max(0, warmup - (CHECK_STEPS - 1))):
        bench.step()
    gc.collect()

    times = []
    for _ in range(steps):
        t = time.perf_counter()
        bench.step()
        times.append((time.perf_counter() - t) * 1e3)
    return {
        "build_ms": (built - tic) * 1e3,
        "first_step_ms": (first - tic) * 1e3,
        "times_ms": times,
        "median_ms": statistics.median(times) if times else None,
        "check": check,
        "traces": bench.traces() if bench.traces is not None else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", required=True, choices=sorted(WORKLOADS))
    parser.add_argument("--variant", required=True)
    parser.add_argument("--quick", action="store_true", help="smaller transformers (see workloads.py)")
    parser.add_argument("--warmup", type=int, help="untimed steps after the first (default: per workload)")
    parser.add_argument("--steps", type=int, help="timed steps (default: per workload)")
    args = parser.parse_args()
    w = WORKLOADS[args.workload]
    warmup = max(CHECK_STEPS - 1, w.warmup if args.warmup is None else args.warmup)
    steps = (w.quick_steps if args.quick else w.steps) if args.steps is None else args.steps
    out = {
        "workload": args.workload,
        "variant": args.variant,
        "quick": args.quick,
        "warmup": warmup,
        "steps": steps,
        "no_openblas_env": os.environ.get("FUNCNN_NO_OPENBLAS"),
        "blas_info": blas_info(),
        "mlx_version": mx.__version__,
        "import_ms": _IMPORT_MS,
    }
    try:
        out.update(run(args.workload, args.variant, args.quick, warmup, steps))
        out["error"] = None
    except Exception:  # noqa: BLE001 - reported to the driver
        out["error"] = traceback.format_exc()
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


if __name__ == "__main__":
    main()
