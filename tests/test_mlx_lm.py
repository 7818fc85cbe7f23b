"""mlx-lm (a test-only dependency) running unchanged on funcnn (issue 11, part 3).

Each case of ``_mlx_lm_cases.py`` builds a tiny mlx-lm model from a config
dict and runs mlx-lm's own code on it: forward with and without its prompt
cache, ``generate_step``, LoRA/DoRA and its trainer, quantization, saving and
loading.  All cases run in two fresh interpreters, one with the real
``mlx.nn`` and one with funcnn installed under every ``mlx.nn`` module name
(``test_catalogue.alias_prelude``), both after ``import funcnn`` so that both
use the same BLAS.  Same seed, same config, same inputs: every reported array
must be bit-identical.

A case that needs a funcnn name that has not landed yet is skipped with that
name (checked at run time, so it runs by itself once the name lands).
"""

from __future__ import annotations

import concurrent.futures
import math
import tempfile

import pytest
from _mlx_lm_cases import CASES
from _subproc import HERE, run_script
from test_catalogue import alias_prelude

import funcnn

pytest.importorskip("mlx_lm")


def missing(needs: tuple[str, ...]) -> list[str]:
    """The dotted funcnn names of ``needs`` that funcnn lacks (``"Linear.to_quantized"``,
    ``"layers.distributed.shard_linear"``)."""
    out = []
    for dotted in needs:
        if any(dotted.startswith(m + ".") for m in out):
            continue  # its owner is already listed
        obj = funcnn
        for part in dotted.split("."):
            obj = getattr(obj, part, None)
        if obj is None:
            out.append(dotted)
    return out


# The reference runs every case, so that a case waiting for a funcnn name is checked already.
RUNNABLE = [name for name, (_, _, needs) in CASES.items() if not missing(needs)]

# mx.compile on CPU builds its kernels with g++ into $TMPDIR/mlx and reuses them; both sides
# compile the same graphs at about the same time, so each gets its own (lasting) cache rather
# than racing for the same files.
_RUN = f"""
import os, sys
os.environ["TMPDIR"] = os.path.join({tempfile.gettempdir()!r}, "funcnn-test-mlx-lm-{{side}}")
os.makedirs(os.environ["TMPDIR"], exist_ok=True)
sys.path.insert(0, {HERE!r})
import _mlx_lm_cases
_mlx_lm_cases.main({{names!r}})
"""
# The reference: the real mlx.nn, with funcnn imported first only for its BLAS choice.
_REFERENCE = "import funcnn\nimport mlx.nn\n"


@pytest.fixture(scope="module")
def reports() -> dict:
    """``{"mlx": report, "funcnn": report}`` of every runnable case, both run in parallel."""
    scripts = {
        "mlx": _REFERENCE + _RUN.format(side="mlx", names=list(CASES)),
        "funcnn": alias_prelude() + _RUN.format(side="funcnn", names=RUNNABLE),
    }
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {
            k: pool.submit(run_script, s, timeout=240) for k, s in scripts.items()
        }
        return {k: f.result() for k, f in futures.items()}


def test_each_side_ran_its_own_mlx_nn(reports):
    assert reports["mlx"]["nn"] == "mlx.nn"
    assert "mlx.nn.layers.linear" in reports["mlx"]["real_mlx_nn"]
    assert reports["funcnn"]["nn"] == "funcnn"
    assert (
        reports["funcnn"]["real_mlx_nn"] == []
    )  # not even mlx-lm pulled the real one in


def _diff(want, got, path="") -> list[str]:
    """Where two reports differ (an array: its largest absolute difference too)."""
    if isinstance(want, dict) and isinstance(got, dict):
        if "sha" in want and "sha" in got:
            if want == got:
                return []
            wv, gv = want.get("values"), got.get("values")
            if (
                want["shape"] != got["shape"]
                or want["dtype"] != got["dtype"]
                or wv is None
            ):
                return [
                    f"{path}: {want['dtype']}{want['shape']} vs {got['dtype']}{got['shape']}"
                ]
            flat = lambda v: (
                [y for x in v for y in flat(x)] if isinstance(v, list) else [v]
            )
            worst = max(
                (
                    abs(a - b)
                    for a, b in zip(flat(wv), flat(gv))
                    if not (math.isnan(a) and math.isnan(b))
                ),
                default=0.0,
            )
            return [f"{path}: bits differ, max |diff| {worst:.3g}"]
        keys = list(dict.fromkeys([*want, *got]))
        return [d for k in keys for d in _diff(want.get(k), got.get(k), f"{path}.{k}")]
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        return [
            d
            for i, (a, b) in enumerate(zip(want, got))
            for d in _diff(a, b, f"{path}[{i}]")
        ]
    return [] if want == got else [f"{path}: {want!r:.200} vs {got!r:.200}"]


def _class_roots(classes: list[str]) -> set[str]:
    return {c.split(".")[0] for c in classes}


@pytest.mark.parametrize("name", list(CASES))
def test_case_matches_mlx_nn(name, reports):
    want = dict(reports["mlx"]["cases"][name])
    assert "error" not in want, want["error"]  # the case itself is sound
    if lack := missing(CASES[name][2]):
        pytest.skip(f"waits for funcnn.{', funcnn.'.join(lack)}")
    got = dict(reports["funcnn"]["cases"][name])
    assert "error" not in got, got["error"]
    # A reloaded model holds the weights that were saved.
    assert got.get("same_as_saved", True) is True
    # The models were really built from each side's nn (mlx-lm's own classes aside).
    for key in ("classes", "fused_classes"):
        if key in want:
            assert _class_roots(want[key]) <= {"mlx", "mlx_lm"}
            assert _class_roots(got[key]) <= {"funcnn", "mlx_lm"}
            strip = lambda cs: sorted(c.rsplit(".", 1)[1] for c in cs)
            assert strip(got[key]) == strip(want[key])
            del want[key], got[key]
    assert _diff(want, got) == []


def test_diff_reports_a_one_bit_change():
    import mlx.core as mx
    from _mlx_lm_cases import enc

    x = mx.array([1.0, 2.0, 3.0])
    y = (x.view(mx.uint32) + mx.array([0, 0, 1], dtype=mx.uint32)).view(mx.float32)
    assert _diff({"a": enc(x)}, {"a": enc(x)}) == []
    assert _diff({"a": enc(x)}, {"a": enc(y)}) == [
        ".a: bits differ, max |diff| 2.38e-07"
    ]
    assert _diff({"a": [1, 2]}, {"a": [1, 3]}) == [".a[1]: 2 vs 3"]
