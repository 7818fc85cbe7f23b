"""Benchmark driver: mlx.nn against funcnn (facade and pure) and hand-written mlx.core.

    python benchmarks/run.py                      # all workloads, 5 rounds -> RESULTS.md, results.png
    python benchmarks/run.py --quick              # CI smoke test: agreement and traces, no timing
    python benchmarks/run.py --rounds 3 --workloads W1,W4 --blas both

Every (workload, variant) runs in a fresh process (``_worker.py``).  A round
runs each workload's variants once, in an order rotated from round to round
(and from workload to workload), so slow drift of the machine hits all
variants alike.  Per (workload, variant) the report gives the median over
rounds of the per-process median step time, the spread (min-max of those
medians over rounds; with one round, the interquartile range of the steps),
the speed relative to ``mlx.nn`` compiled and eager computed within each round
and then the median over rounds (``2.00x`` = twice as fast), the time to the
first step (building the model and optimizer, the first step, compilation
included), the peak RSS, and the trace count of compiled variants (how often
the Python body of the step ran; 1 = never recompiled).  A "Targets" section
evaluates the goals of the benchmark issue from the same numbers.

``--blas reference`` runs the workers with ``FUNCNN_NO_OPENBLAS=1`` (funcnn's
opt-out of its OpenBLAS preload), ``default`` without it, ``both`` each round
under both, interleaved.  Every worker imports funcnn first, mlx.nn variants
too, so both libraries always run on the same BLAS.

Compiled variants need MLX's CPU kernels, which MLX builds with the C++
compiler once and keeps in ``$TMPDIR/mlx/<version>/cpu``: by default the cache
is shared, so only the first process that needs a kernel pays for it (the
median over rounds shows the warm time to first step); ``--cold-cache`` gives
every worker an empty one (the time a user sees on a fresh machine).

``--quick`` (CI) runs one round with 2 timed steps, smaller transformers for
W2/W3 (see ``workloads.py``) and 2 workers at a time; it asserts, never a time:
no worker failed, compiled variants traced once, and every variant agrees with
``mlxnn_eager`` (see ``report.agree``).  It writes files only when ``--out`` or
``--chart`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import funcnn  # noqa: F401  (before mlx.core, as everywhere: it sets up MLX's BLAS)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import report  # noqa: E402
from workloads import WORKLOADS, select  # noqa: E402

BLAS_SETTINGS = {"default": {}, "reference": {"FUNCNN_NO_OPENBLAS": "1"}}
WORKER_TIMEOUT_S = 1800


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="CI smoke test (asserts results)")
    parser.add_argument("--rounds", type=int, help="rounds (default 5; --quick 1)")
    parser.add_argument(
        "--workloads", default=",".join(sorted({w.split(".")[0] for w in WORKLOADS})),
        help="comma-separated: W1,W2,W3,W4,W5 or single rows such as W4.step (default all)",
    )  # fmt: skip
    parser.add_argument("--variants", help="only these variants (comma-separated)")
    parser.add_argument("--blas", choices=("default", "reference", "both"), default="default")
    parser.add_argument("--steps", type=int, help="timed steps per process (default per workload)")
    parser.add_argument("--warmup", type=int, help="untimed steps after the first (default per workload)")
    parser.add_argument("--jobs", type=int, help="workers at once (default 1; --quick 2)")
    parser.add_argument("--out", type=Path, help="Markdown report (default benchmarks/RESULTS.md; --quick none)")
    parser.add_argument("--chart", type=Path, help="bar chart PNG (default benchmarks/results.png; --quick none)")
    parser.add_argument("--raw", type=Path, help="also write every worker's JSON record here")
    parser.add_argument(
        "--cold-cache", action="store_true",
        help="give every worker an empty MLX kernel cache (TMPDIR), so that the time to first "
        "step includes compiling every fused kernel with the C++ compiler",
    )  # fmt: skip
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.jobs = args.jobs or (2 if args.quick else 1)
    if not args.quick:
        args.out = args.out or HERE / "RESULTS.md"
        args.chart = args.chart or HERE / "results.png"
    if args.jobs > 1 and not args.quick:
        print("note: --jobs > 1 runs workers side by side; their timings disturb each other")
    return args


def schedule(args: argparse.Namespace) -> list[list[tuple]]:
    """One list of ``(blas, workload, variant)`` per round, in the order they run."""
    names = select(args.workloads)
    only = set(args.variants.split(",")) if args.variants else None
    blas = ["default", "reference"] if args.blas == "both" else [args.blas]
    rounds = []
    for r in range(args.rounds):
        jobs = []
        for i, name in enumerate(names):
            variants = [v for v in WORKLOADS[name].variants if only is None or v in only]
            if not variants:
                continue
            k = (r + i) % len(variants)
            order = variants[k:] + variants[:k]
            settings = blas[r % len(blas):] + blas[: r % len(blas)]
            for b in settings:
                jobs += [(b, name, v) for v in order]
        rounds.append(jobs)
    return rounds


def run_worker(job: tuple, args: argparse.Namespace, round_no: int) -> dict:
    blas, workload, variant = job
    cmd = [sys.executable, str(HERE / "_worker.py"), "--workload", workload, "--variant", variant]
    if args.quick:
        cmd.append("--quick")
    if args.steps is not None:
        cmd += ["--steps", str(args.steps)]
    if args.warmup is not None:
        cmd += ["--warmup", str(args.warmup)]
    env = dict(os.environ)
    env.pop("FUNCNN_NO_OPENBLAS", None)
    env.update(BLAS_SETTINGS[blas])
    base = {"blas": blas, "workload": workload, "variant": variant, "round": round_no}
    cache = tempfile.mkdtemp(prefix="funcnn-bench-") if args.cold_cache else None
    if cache:
        env["TMPDIR"] = cache  # MLX keeps its compiled CPU kernels in $TMPDIR/mlx
    tic = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {**base, "error": f"timed out after {WORKER_TIMEOUT_S} s"}
    finally:
        if cache:
            shutil.rmtree(cache, ignore_errors=True)
    wall = time.perf_counter() - tic
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout)[-3000:]
        return {**base, "error": f"worker exited {proc.returncode}:\n{tail}", "wall_s": wall}
    record = json.loads(lines[-1])
    record.update(base, wall_s=wall)
    return record


def main(argv=None) -> int:
    args = parse_args(argv)
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    rounds = schedule(args)
    total = sum(len(r) for r in rounds)
    print(f"{total} worker runs in {args.rounds} round(s), {args.jobs} at a time", flush=True)
    started = time.time()
    load_before = report.load_average()
    records, done = [], 0
    for r, jobs in enumerate(rounds, start=1):
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for record in pool.map(lambda job, r=r: run_worker(job, args, r), jobs):
                done += 1
                records.append(record)
                print(report.progress_line(done, total, record), flush=True)
    elapsed = time.time() - started
    meta = report.machine_facts(records, command, started, elapsed, load_before, args)
    results = report.summarize(records)
    text = report.markdown(results, meta)
    print()
    print(text)
    problems = report.problems(results)
    if args.raw:
        args.raw.parent.mkdir(parents=True, exist_ok=True)
        args.raw.write_text(json.dumps({"meta": meta, "records": records}, indent=1))
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}")
    if args.chart:
        try:
            report.chart(results, args.chart, meta)
            print(f"wrote {args.chart}")
        except ImportError as err:  # matplotlib is optional (pip install matplotlib)
            print(f"no chart: {err}; pip install matplotlib")
    if problems:
        print(f"\nFAILED: {len(problems)} problem(s):")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(f"\nOK: {total} runs, all variants agree, compiled variants traced once ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
