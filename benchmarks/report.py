"""Statistics, agreement checks, the Markdown report and the chart of ``run.py``."""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import statistics
import subprocess
from collections import defaultdict
from pathlib import Path

from workloads import WORKLOADS

REFERENCE_VARIANT = "mlxnn_eager"  # what every variant's check() is compared with
# Agreement of the check() summaries, taken after CHECK_STEPS (3) steps.  float32
# round-off is ~1e-7 per operation; compiled graphs fuse and reorder element-wise
# work and funcnn's cross entropy subtracts the row maximum first, so bitwise
# equality between variants is not guaranteed (though often seen).  After three
# steps such differences stay below ~1e-6 relative; 1e-4 leaves a wide margin yet
# flags a real difference: a wrong learning rate or beta, a skipped step, a frozen
# or missing parameter, another initialisation or other data all move the loss or
# the parameter sums by 1e-3 or more.  Strings (W5's digests) must match exactly.
RTOL = 1e-4
# What section 2 of the benchmark issue calls funcnn's recommended inference path
# for W3: eager.  On MLX's CPU build compiling this forward gains nothing at steady
# state (its time is in erf/exp kernels, scalar loops either way) and costs the
# C++ compilation of its kernels on first use; see benchmarks/README.md.
W3_RECOMMENDED = "pure_eager"
RSS_SLACK = 1.02  # peak RSS "no higher than mlx.nn": within 2% (allocator noise)

# --------------------------------------------------------------------------
# Machine facts and progress
# --------------------------------------------------------------------------


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "n/a"


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)  # fmt: skip
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_facts(records, command, started, elapsed, load_before, args) -> dict:
    import funcnn
    import mlx.core as mx

    blas = {}
    for r in records:
        if r.get("error") is None and r["blas"] not in blas:
            env = "FUNCNN_NO_OPENBLAS=1" if r.get("no_openblas_env") else "FUNCNN_NO_OPENBLAS unset"
            info = r.get("blas_info")
            blas[r["blas"]] = f"{env}; funcnn.blas_info(): {info!r}" if info is not None else (
                f"{env}; funcnn.blas_info() not available")
    try:
        cores = f"{os.cpu_count()} (usable: {len(os.sched_getaffinity(0))})"
    except AttributeError:
        cores = str(os.cpu_count())
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = " (uncommitted changes)" if _git("status", "--porcelain", "--untracked-files=no") else ""
    return {
        "cpu": _cpu_model(),
        "cores": cores,
        "memory": _memory_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "mlx": mx.__version__,
        "funcnn": funcnn.__version__,
        "commit": (commit + dirty) if commit else "n/a",
        "blas": blas,
        "date": _dt.datetime.fromtimestamp(started, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_s": elapsed,
        "command": command,
        "rounds": args.rounds,
        "quick": args.quick,
        "load": f"{load_before} before, {load_average()} after (1/5/15 min)",
        "kernel_cache": "cold (an empty MLX kernel cache per worker)" if args.cold_cache else
        "shared (MLX's compiled CPU kernels in $TMPDIR/mlx are reused across workers)",
    }


def progress_line(done: int, total: int, r: dict) -> str:
    head = f"[{done}/{total}] round {r['round']} {r['blas']:<9} {r['workload']:<24} {r['variant']:<21}"
    if r.get("error"):
        return f"{head} ERROR: {r['error'].strip().splitlines()[-1]}"
    return (f"{head} {r['median_ms']:9.3f} ms/step  first {r['first_step_ms']:8.0f} ms  "
            f"traces {r['traces']}  rss {r['peak_rss_mb']:.0f} MB")  # fmt: skip


# --------------------------------------------------------------------------
# Agreement
# --------------------------------------------------------------------------


def agree(ref, got, rtol: float = RTOL) -> tuple[bool, float]:
    """``(same, worst relative difference)`` of two check() summaries."""
    if isinstance(ref, dict):
        if not isinstance(got, dict) or set(ref) != set(got):
            return False, math.inf
        results = [agree(ref[k], got[k], rtol) for k in ref]
        return all(ok for ok, _ in results), max((d for _, d in results), default=0.0)
    if isinstance(ref, list):
        if not isinstance(got, list) or len(ref) != len(got):
            return False, math.inf
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in ref + got):
            results = [agree(a, b, rtol) for a, b in zip(ref, got)]
            return all(ok for ok, _ in results), max((d for _, d in results), default=0.0)
        scale = max((abs(x) for x in ref), default=0.0) or 1.0
        worst = max((abs(a - b) / scale for a, b in zip(ref, got)), default=0.0)
        return worst <= rtol, worst
    if isinstance(ref, bool) or isinstance(ref, str) or isinstance(ref, int):
        return ref == got, 0.0 if ref == got else math.inf
    if isinstance(ref, float):
        if not isinstance(got, (int, float)):
            return False, math.inf
        denom = max(abs(ref), abs(got))
        diff = abs(ref - got) / denom if denom else 0.0
        return diff <= rtol, diff
    return ref == got, 0.0 if ref == got else math.inf


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------


def _quantile(xs: list, q: float) -> float:
    xs = sorted(xs)
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(records: list) -> dict:
    """``{(blas, workload): {"variants": {variant: stats}, "baseline": name}}`` in run order."""
    by = defaultdict(lambda: defaultdict(list))
    for r in records:
        by[(r["blas"], r["workload"])][r["variant"]].append(r)
    out = {}
    for (blas, workload), variants in by.items():
        w = WORKLOADS[workload]
        per_round = {v: {r["round"]: r for r in rs} for v, rs in variants.items()}
        reference = REFERENCE_VARIANT if REFERENCE_VARIANT in per_round else next(
            v for v in w.variants if v in per_round)
        ref_rounds = per_round[reference]
        stats = {}
        for v in w.variants:
            if v not in per_round:
                continue
            rounds = per_round[v]
            ok = {k: r for k, r in rounds.items() if r.get("error") is None}
            s = {"runs": len(rounds), "errors": [r["error"] for r in rounds.values() if r.get("error")]}
            if ok:
                meds = [r["median_ms"] for r in ok.values()]
                s["median_ms"] = statistics.median(meds)
                if len(meds) > 1:
                    s["spread"] = (min(meds), max(meds), "min-max of rounds")
                else:
                    steps = next(iter(ok.values()))["times_ms"]
                    s["spread"] = (_quantile(steps, 0.25), _quantile(steps, 0.75), "IQR of steps")
                s["first_step_ms"] = statistics.median(r["first_step_ms"] for r in ok.values())
                s["peak_rss_mb"] = statistics.median(r["peak_rss_mb"] for r in ok.values())
                s["traces"] = sorted({r["traces"] for r in ok.values()}, key=str)
                for base in ("mlxnn_compiled", "mlxnn_eager"):
                    s[f"vs_{base}"] = speedup(per_round, base, v)
                worst, same = 0.0, True
                for k, r in ok.items():
                    ref = ref_rounds.get(k)
                    if ref is None or ref.get("error") is not None:
                        continue
                    a, d = agree(ref["check"], r["check"])
                    same, worst = same and a, max(worst, d)
                s["agree"], s["max_rel_diff"] = same, worst
            stats[v] = s
        out[(blas, workload)] = {"variants": stats, "baseline": w.baseline, "rounds": per_round,
                                 "reference": reference}
    return out


def speedup(per_round: dict, base: str, variant: str):
    """Median over rounds of ``time(base) / time(variant)`` (per round); ``None`` if absent."""
    if base not in per_round or variant not in per_round:
        return None
    ratios = []
    for k, r in per_round[variant].items():
        b = per_round[base].get(k)
        if b and b.get("error") is None and r.get("error") is None and r["median_ms"] > 0:
            ratios.append(b["median_ms"] / r["median_ms"])
    return statistics.median(ratios) if ratios else None


def problems(results: dict) -> list:
    """Failures: worker errors, recompiles, disagreement with the reference variant."""
    out = []
    for (blas, workload), group in results.items():
        for v, s in group["variants"].items():
            where = f"{workload} {v} (blas {blas})"
            for e in s["errors"]:
                out.append(f"{where}: worker failed: {e.strip().splitlines()[-1]}")
            if "traces" in s and v.endswith("_compiled") and s["traces"] != [1]:
                out.append(f"{where}: traced {s['traces']} times, expected once")
            if "agree" in s and not s["agree"]:
                out.append(f"{where}: disagrees with {group['reference']} "
                           f"(max rel diff {s['max_rel_diff']:.3g} > {RTOL})")  # fmt: skip
    return out


# --------------------------------------------------------------------------
# Targets (section 2 of the benchmark issue), computed, never asserted
# --------------------------------------------------------------------------


def _target_rows(results: dict, blas: str) -> list:
    rows = []

    def group(w):
        return results.get((blas, w))

    def ratio(w, a, b):
        g = group(w)
        return speedup(g["rounds"], b, a) if g else None

    def add(what, value, goal, fmt="{:.3f}x"):
        if value is None:
            rows.append((what, "not run", goal, "-"))
        else:
            rows.append((what, fmt.format(value), goal, "yes" if value >= float(goal.split()[1].rstrip("x")) else "NO"))

    add("W4.step pure_compiled vs mlxnn_compiled", ratio("W4.step", "pure_compiled", "mlxnn_compiled"), ">= 1.35x")
    add("W4.step pure_compiled vs handwritten_compiled", ratio("W4.step", "pure_compiled", "handwritten_compiled"), ">= 0.97x")
    add("W4.step facade_eager vs mlxnn_eager", ratio("W4.step", "facade_eager", "mlxnn_eager"), ">= 1.00x")
    for w in ("W1", "W2"):
        add(f"{w} pure_compiled vs mlxnn_compiled", ratio(w, "pure_compiled", "mlxnn_compiled"), ">= 1.00x")
        add(f"{w} pure_compiled vs handwritten_compiled", ratio(w, "pure_compiled", "handwritten_compiled"), ">= 0.97x")
    g = group("W3")
    if g:
        best = min(("mlxnn_eager", "mlxnn_compiled"), key=lambda v: g["variants"].get(v, {}).get("median_ms", math.inf))
        add(f"W3 {W3_RECOMMENDED} vs the faster mlx.nn ({best})", ratio("W3", W3_RECOMMENDED, best), ">= 1.20x")
        ours = [v for v in g["variants"] if v.split("_")[0] in ("facade", "pure") and "median_ms" in g["variants"][v]]
        if ours:
            fastest = min(ours, key=lambda v: g["variants"][v]["median_ms"])
            add(f"W3 fastest funcnn variant ({fastest}) vs {best}", ratio("W3", fastest, best), ">= 1.20x")
    # The catalogue's families (W6-W9): funcnn at least as fast as mlx.nn, compiled and eager;
    # pure_compiled vs mlxnn_eager is what compiling the whole pure step buys a plain mlx.nn user.
    for w in ("W6", "W7", "W8", "W9"):
        for how in ("compiled", "eager"):
            add(f"{w} facade_{how} vs mlxnn_{how}", ratio(w, f"facade_{how}", f"mlxnn_{how}"), ">= 1.00x")
            add(f"{w} pure_{how} vs mlxnn_{how}", ratio(w, f"pure_{how}", f"mlxnn_{how}"), ">= 1.00x")
        add(f"{w} pure_compiled vs mlxnn_eager (information)", ratio(w, "pure_compiled", "mlxnn_eager"), ">= 0.00x")
    # The quantized W3 (W10.*): funcnn at least as fast as mlx.nn in the same mode.
    for w in [k for k in WORKLOADS if k.startswith("W10.") and (blas, k) in results]:
        for how in ("compiled", "eager"):
            add(f"{w} facade_{how} vs mlxnn_{how}", ratio(w, f"facade_{how}", f"mlxnn_{how}"), ">= 1.00x")
            add(f"{w} pure_{how} vs mlxnn_{how}", ratio(w, f"pure_{how}", f"mlxnn_{how}"), ">= 1.00x")
    for w in sorted(k for (b, k) in results if b == blas and k.startswith("W5.")):
        add(f"{w} facade vs mlx.nn", ratio(w, "facade_eager", "mlxnn_eager"), ">= 3.00x")
    traced = [(w, v, s["traces"]) for (b, w), g in results.items() if b == blas
              for v, s in g["variants"].items() if v.endswith("_compiled") and "traces" in s]  # fmt: skip
    bad = [f"{w} {v}: {t}" for w, v, t in traced if t != [1]]
    rows.append(("compiled variants traced once", f"{len(traced) - len(bad)}/{len(traced)}",
                 "all", "yes" if not bad else "NO: " + ", ".join(bad)))  # fmt: skip
    worse = []
    for (b, w), g in results.items():
        if b != blas:
            continue
        vs = g["variants"]
        for v, s in vs.items():
            family, _, how = v.rpartition("_")
            base = vs.get(f"mlxnn_{how}")
            if family in ("facade", "pure") and base and "peak_rss_mb" in s and "peak_rss_mb" in base:
                if s["peak_rss_mb"] > base["peak_rss_mb"] * RSS_SLACK:
                    worse.append(f"{w} {v} {s['peak_rss_mb']:.0f} > {base['peak_rss_mb']:.0f} MB")
    rows.append((f"peak RSS of funcnn variants <= mlx.nn's (x{RSS_SLACK})", f"{len(worse)} above",
                 "none above", "yes" if not worse else "NO: " + "; ".join(worse)))  # fmt: skip
    return rows


# --------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------


def _x(v) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _ms(v: float) -> str:
    return f"{v:.3f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def markdown(results: dict, meta: dict) -> str:
    lines = ["# funcnn benchmarks", ""]
    if meta["quick"]:
        lines += ["**--quick smoke run: 2 timed steps, smaller W2/W3 models; the times mean nothing.**", ""]
    lines += [
        f"- command: `{meta['command']}` ({meta['rounds']} round(s), {meta['elapsed_s']:.0f} s)",
        f"- date: {meta['date']}; commit {meta['commit']}",
        f"- CPU: {meta['cpu']}; cores: {meta['cores']}; memory: {meta['memory']}",
        f"- load average: {meta['load']}",
        f"- MLX kernel cache: {meta['kernel_cache']}",
        f"- mlx {meta['mlx']}, funcnn {meta['funcnn']}, Python {meta['python']}, {meta['platform']}",
    ]
    for b, text in meta["blas"].items():
        lines.append(f"- BLAS `{b}`: {text}")
    lines += [
        "",
        "Per variant: median over rounds of the per-process median ms/step; spread; speed relative "
        "to `mlx.nn` compiled and eager (their time / this time, per round, median over rounds: "
        "`2.00x` = twice as fast); time to first step (build + first step, compilation included); "
        "peak RSS; traces of a compiled step (1 = no recompilation); agreement of the results with "
        f"`{REFERENCE_VARIANT}` after 3 steps (largest relative difference; tolerance {RTOL:g}).",
    ]
    for blas in dict.fromkeys(b for b, _ in results):
        lines += ["", f"## BLAS: {blas}"]
        for (b, workload), group in results.items():
            if b != blas:
                continue
            w = WORKLOADS[workload]
            lines += ["", f"### {workload}: {w.title}", ""]
            if group["reference"] != REFERENCE_VARIANT:
                lines += [f"(agreement checked against {group['reference']})", ""]
            lines.append("| variant | ms/step | spread | vs mlx.nn compiled | vs mlx.nn eager "
                         "| first step ms | peak RSS MB | traces | agrees (max rel diff) |")  # fmt: skip
            lines.append("|---|---:|---|---:|---:|---:|---:|---:|---|")
            for v, s in group["variants"].items():
                if "median_ms" not in s:
                    lines.append(f"| {v} | failed | | | | | | | {s['errors'][0].strip().splitlines()[-1]} |")
                    continue
                lo, hi, kind = s["spread"]
                traces = "-" if s["traces"] == [None] else ",".join(map(str, s["traces"]))
                agree_text = ("yes" if s["agree"] else "**NO**") + f" ({s['max_rel_diff']:.1g})"
                lines.append(
                    f"| {v} | {_ms(s['median_ms'])} | {_ms(lo)}-{_ms(hi)} ({kind}) "
                    f"| {_x(s['vs_mlxnn_compiled'])} | {_x(s['vs_mlxnn_eager'])} "
                    f"| {s['first_step_ms']:.0f} | {s['peak_rss_mb']:.0f} | {traces} | {agree_text} |"
                )
        rows = _target_rows(results, blas)
        note = " -- --quick: NOT meaningful" if meta["quick"] else ""
        lines += ["", f"### Targets (BLAS {blas}){note}", "",
                  "| target | measured | goal | met |", "|---|---:|---|---|"]  # fmt: skip
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Chart
# --------------------------------------------------------------------------


def chart(results: dict, path: Path, meta: dict) -> None:
    """Speed of every variant relative to its workload's mlx.nn baseline, one panel per workload."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(w for _, w in results))
    blas_list = list(dict.fromkeys(b for b, _ in results))
    cols = 3
    rows = math.ceil(len(workloads) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.1 * rows), squeeze=False)
    colors = {"default": "#3b75af", "reference": "#ef8636"}
    for ax, workload in zip(axes.flat, workloads):
        base = WORKLOADS[workload].baseline
        variants = [v for v in WORKLOADS[workload].variants
                    if any(v in results.get((b, workload), {}).get("variants", {}) for b in blas_list)]  # fmt: skip
        height = 0.8 / len(blas_list)
        for j, blas in enumerate(blas_list):
            group = results.get((blas, workload))
            if not group:
                continue
            for i, v in enumerate(variants):
                s = group["variants"].get(v, {})
                value = s.get(f"vs_{base}")
                if value is None:
                    continue
                y = i + (j - (len(blas_list) - 1) / 2) * height
                ax.barh(y, value, height=height, color=colors.get(blas, "gray"),
                        label=f"BLAS {blas}" if i == 0 else None)  # fmt: skip
                ax.text(value, y, f" {value:.2f}x  {_ms(s['median_ms'])} ms", va="center",
                        fontsize=7 if len(blas_list) == 1 else 5.5)  # fmt: skip
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_yticks(range(len(variants)))
        ax.set_yticklabels(variants, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{workload} (speed vs {base})", fontsize=9)
        ax.set_xlim(0, ax.get_xlim()[1] * 1.45)
        ax.tick_params(axis="x", labelsize=7)
    for ax in list(axes.flat)[len(workloads):]:
        ax.axis("off")
    if len(blas_list) > 1:
        axes.flat[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"funcnn vs mlx.nn: speed relative to mlx.nn (higher is faster); {meta['cpu']}, "
                 f"mlx {meta['mlx']}, {meta['date']}", fontsize=10)  # fmt: skip
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
