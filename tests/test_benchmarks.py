"""The benchmark driver's smoke test: ``python benchmarks/run.py --quick`` (no time is asserted).

``--quick`` itself asserts what matters here and exits non-zero otherwise:
every (workload, variant) ran, compiled steps traced once, and all variants
agree with ``mlx.nn`` eager (numbers within a relative 1e-4 after three steps,
W5's tree operations bit for bit).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = (
    "W1", "W2", "W3", "W4.forward", "W4.vag", "W4.step",
    "W5.parameters", "W5.trainable_parameters", "W5.update", "W5.freeze", "W5.unfreeze",
    "W5.load_weights", "W6", "W7", "W8", "W9",
    "W10.q4.decode", "W10.q4.prefill", "W10.q8.decode", "W10.q8.prefill",
)  # fmt: skip


def test_quick_benchmark_runs_and_variants_agree(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick",
         "--out", str(tmp_path / "RESULTS.md")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    for name in WORKLOADS:
        assert f"### {name}:" in out.stdout, f"{name} missing from the report"
    assert "OK:" in out.stdout
    report = (tmp_path / "RESULTS.md").read_text()
    assert "### Targets" in report and "mlxnn_compiled" in report
