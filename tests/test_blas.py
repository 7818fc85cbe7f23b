"""``funcnn._blas``: OpenBLAS preloaded for MLX on import, its opt-out, warning and report.

Every check runs in a fresh interpreter (``sys.executable``): the preload only
works before ``mlx.core`` is first imported, and this pytest process imported
it long ago.  The children get a clean environment (no ``FUNCNN_NO_OPENBLAS``,
no thread or core-type variables) plus what each test sets.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from funcnn import _blas

ROOT = Path(__file__).resolve().parents[1]
LINUX = sys.platform.startswith("linux")
FOUND = [p for p in _blas.candidates() if os.path.exists(p)] if LINUX else []
needs_linux = pytest.mark.skipif(not LINUX, reason="the OpenBLAS preload is Linux-only")
needs_openblas = pytest.mark.skipif(
    not FOUND,
    reason="no OpenBLAS library on this machine (Debian/Ubuntu: apt-get install libopenblas0-pthread; "
    "or set FUNCNN_OPENBLAS=/path/to/libopenblas.so.0)",
)
_CLEARED = ("FUNCNN_NO_OPENBLAS", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_CORETYPE")


# The user's own choice (``python -m funcnn.blas decline`` writes it under the config dir) must
# not leak into these children: they get an empty config dir unless a test passes one.
_EMPTY_CONFIG = tempfile.mkdtemp(prefix="funcnn-test-config-")


def run(code: str, timeout: float = 60, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter with ``env`` added; it prints one JSON line last."""
    child_env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    child_env["XDG_CONFIG_HOME"] = _EMPTY_CONFIG
    child_env.update(env)
    child_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), child_env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=timeout, env=child_env, cwd=ROOT,
    )
    assert proc.returncode == 0, f"child failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


INFO = """
import json, os, funcnn
info = funcnn.blas_info()
info["env_left"] = sorted(k for k in ("OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE") if k in os.environ)
print(json.dumps(info))
"""

# Products that go through sgemm in every layout MLX uses (plain, transposed, batched, vector
# shapes, addmm's beta path, a gradient), and two LAPACK calls (OpenBLAS exports LAPACK too, so
# MLX's linalg resolves to it as well). Inputs and results are saved for the parent to compare.
PRODUCTS = """
import json, numpy as np, funcnn, mlx.core as mx
rng = np.random.default_rng(0)
f32 = lambda *s: rng.standard_normal(s).astype(np.float32)
cases = {"mlp": (f32(256, 784), f32(784, 512)), "square": (f32(300, 300), f32(300, 300)),
         "vecmat": (f32(1, 513), f32(513, 7)), "matvec": (f32(67, 129), f32(129, 1)),
         "batched": (f32(3, 33, 65), f32(3, 65, 17))}
out = {}
for name, (a, b) in cases.items():
    out[name + "_a"], out[name + "_b"] = a, b
    out[name] = np.array(mx.array(a) @ mx.array(b))
at, b = f32(129, 67), f32(129, 45)
out["transposed_a"], out["transposed_b"] = at.T, b
out["transposed"] = np.array(mx.array(at).T @ mx.array(b))
c, a, b = f32(40, 30), f32(40, 50), f32(50, 30)
out["addmm_c"], out["addmm_a"], out["addmm_b"] = c, a, b
out["addmm"] = np.array(mx.addmm(mx.array(c), mx.array(a), mx.array(b), alpha=0.5, beta=2.0))
x, w = f32(64, 100), f32(100, 20)
out["grad_x"], out["grad_w"] = x, w
out["grad"] = np.array(mx.grad(lambda w: ((mx.array(x) @ w) ** 2).sum())(mx.array(w)))
r = f32(48, 48)
spd = (r @ r.T / 48 + np.eye(48, dtype=np.float32)).astype(np.float32)
out["spd"] = spd
out["inv"] = np.array(mx.linalg.inv(mx.array(spd), stream=mx.cpu))
out["eigvalsh"] = np.array(mx.linalg.eigvalsh(mx.array(spd), stream=mx.cpu))
np.savez(OUT, **out)
print(json.dumps(funcnn.blas_info()))
"""


def _products(tmp_path: Path, tag: str, **env: str) -> tuple[dict, dict]:
    path = tmp_path / f"{tag}.npz"
    info = run(f"OUT = {str(path)!r}\n" + PRODUCTS, **env)
    with np.load(path) as z:
        return info, dict(z)


def _scaled_errors(r: dict, other: dict | None = None) -> dict:
    """Max over elements of |C - C'| / (|A| @ |B|), per product: round-off in its natural scale.

    ``C'`` is ``other``'s result, or the exact (float64) product of the same inputs.
    """
    exact, scale = {}, {}
    for name in ("mlp", "square", "vecmat", "matvec", "batched", "transposed"):
        a, b = r[name + "_a"].astype(np.float64), r[name + "_b"].astype(np.float64)
        exact[name], scale[name] = a @ b, np.abs(a) @ np.abs(b)
    a, b, c = (r["addmm_" + k].astype(np.float64) for k in "abc")
    exact["addmm"], scale["addmm"] = 0.5 * a @ b + 2.0 * c, 0.5 * np.abs(a) @ np.abs(b) + 2.0 * np.abs(c)
    x, w = r["grad_x"].astype(np.float64), r["grad_w"].astype(np.float64)
    exact["grad"], scale["grad"] = 2 * x.T @ (x @ w), 2 * np.abs(x).T @ (np.abs(x) @ np.abs(w))
    against = exact if other is None else other
    return {k: float(np.max(np.abs(r[k] - against[k]) / scale[k])) for k in exact}


@needs_openblas
def test_matmul_results_agree_with_and_without_openblas(tmp_path):
    fast_info, fast = _products(tmp_path, "openblas")
    ref_info, ref = _products(tmp_path, "reference", FUNCNN_NO_OPENBLAS="1")
    assert fast_info["blas"] == "openblas" and fast_info["preloaded"], fast_info
    assert ref_info["blas"] != "openblas" and ref_info["reason"] == "disabled by FUNCNN_NO_OPENBLAS"
    # Tolerance, in units of |A| @ |B| (the natural scale of a dot product's round-off): float32's
    # worst-case bound is ~k*eps (6e-5 for k = 1024), observed here <= 3e-7 for either library;
    # 1e-5 leaves 30x of room for other kernels and CPUs, while a wrong kernel or layout errs by ~1.
    for results in (fast, ref):
        errors = _scaled_errors(results)
        assert max(errors.values()) < 1e-5, errors
    errors = _scaled_errors(fast, ref)  # with and without OpenBLAS: within both bounds
    assert max(errors.values()) < 2e-5, errors
    # Both runs computed something different in the last bits: OpenBLAS really was in use.
    assert not np.array_equal(fast["mlp"], ref["mlp"])
    # LAPACK through OpenBLAS: inverse and eigenvalues of a well-conditioned SPD matrix.
    spd = fast["spd"].astype(np.float64)
    for results in (fast, ref):
        np.testing.assert_allclose(results["inv"], np.linalg.inv(spd), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(results["eigvalsh"], np.linalg.eigvalsh(spd), rtol=1e-4, atol=1e-5)


@needs_openblas
def test_blas_info_reports_openblas_threads_and_leaves_environment_alone():
    info = run(INFO)
    expected = max(1, min(4, len(os.sched_getaffinity(0)) // 2))
    assert info["blas"] == "openblas" and info["preloaded"] and info["reason"] is None, info
    assert info["path"] in FOUND and info["version"].startswith("OpenBLAS"), info
    assert info["threads"] == expected and info["threads_from"].startswith("funcnn default"), info
    assert info["env_left"] == [], "the variables set for loading must be restored"


@needs_openblas
def test_user_thread_count_and_core_type_are_respected():
    n = _blas.default_threads() + 1  # differs from funcnn's own choice
    info = run(INFO, OPENBLAS_NUM_THREADS="1")
    assert (info["threads"], info["threads_from"]) == (1, "OPENBLAS_NUM_THREADS=1 (environment)")
    env = {"OMP_NUM_THREADS": str(n)}
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    if x86:
        env["OPENBLAS_CORETYPE"] = "Prescott"  # OpenBLAS's generic x86-64 kernels: safe everywhere
    info = run("import funcnn; funcnn._blas.set_num_threads(1)" + INFO, **env)
    assert info["threads_from"] == f"OMP_NUM_THREADS={n} (environment)", info
    assert info["threads"] == 1, "set_num_threads(1) changes the live count"
    assert run(INFO, **env)["threads"] == n
    if x86:
        assert info["core"] == "Prescott" and "environment" in info["core_from"], info
    assert info["env_left"] == (["OPENBLAS_CORETYPE"] if x86 else [])  # the user's own, kept


WARN = """
import importlib, json, warnings
import mlx.core as mx
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import funcnn
    importlib.reload(funcnn)
    import funcnn
    funcnn._blas.preload()
messages = [str(w.message) for w in caught if w.category.__name__ == "FuncnnBlasWarning"]
print(json.dumps({"messages": messages, "info": funcnn.blas_info()}))
"""


@needs_openblas
def test_mlx_imported_first_warns_exactly_once_and_says_why():
    out = run(WARN)
    assert len(out["messages"]) == 1, out["messages"]
    message = out["messages"][0]
    assert "import funcnn before mlx.core" in message and "FUNCNN_NO_OPENBLAS=1" in message
    info = out["info"]
    assert info["blas"] != "openblas" and not info["preloaded"]
    assert info["reason"] == "mlx.core imported first"


@needs_linux
def test_opt_out_reports_reference_and_never_warns():
    out = run(WARN, FUNCNN_NO_OPENBLAS="1")
    assert out["messages"] == []
    assert out["info"]["reason"] == "disabled by FUNCNN_NO_OPENBLAS" and not out["info"]["preloaded"]
    assert out["info"]["blas"] in ("reference", "unknown")
    assert run(INFO, FUNCNN_NO_OPENBLAS="0")["blas"] == ("openblas" if FOUND else "reference")


@needs_linux
def test_bogus_path_does_not_break_import_and_is_reported():
    code = """
    import json, warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import funcnn, mlx.core as mx
    y = (mx.ones((3, 4)) @ mx.ones((4, 2))).tolist()
    print(json.dumps({"info": funcnn.blas_info(), "y": y, "warnings": [str(w.message) for w in caught]}))
    """
    out = run(code, FUNCNN_OPENBLAS="/nonexistent/libopenblas.so.0")
    info = out["info"]
    assert out["y"] == [[4.0, 4.0]] * 3
    assert info["blas"] != "openblas" and not info["preloaded"]
    assert info["reason"].startswith("load failed: /nonexistent/libopenblas.so.0"), info
    assert len(out["warnings"]) == 1 and "FUNCNN_OPENBLAS" in out["warnings"][0]


@needs_linux
def test_no_nagging_where_no_openblas_exists_or_not_linux():
    # A fresh copy of the module (not funcnn's own, already preloaded) with nothing to find.
    code = f"""
    import importlib.util, json, sys, types, warnings
    import mlx.core as mx

    def fresh():
        spec = importlib.util.spec_from_file_location("blas_copy", {str(ROOT / "funcnn" / "_blas.py")!r})
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        m.candidates = lambda: ["/nonexistent/libopenblas.so.0"]
        return m

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        none_found = fresh().preload()
        other = fresh()
        other.sys = types.SimpleNamespace(platform="darwin", modules=sys.modules)
        not_linux = other.preload()
    print(json.dumps({{"none": none_found["reason"], "other": not_linux["reason"], "n": len(caught)}}))
    """
    assert run(code) == {"none": "no OpenBLAS found", "other": "not Linux", "n": 0}
