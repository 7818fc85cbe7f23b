"""``python -m funcnn.blas``: the startup hook that gives MLX OpenBLAS in either import order.

Everything runs in a throwaway virtual environment (``python -m venv
--without-pip``, offline, ~0.1 s) whose ``_base.pth`` puts this venv's
site-packages (mlx) and the checkout (funcnn) on its path; the hook is
installed into *its* site-packages by its own interpreter, as a user would.
Each check is a fresh interpreter of that environment with a private
``XDG_CONFIG_HOME`` (the decline marker) and none of the BLAS variables.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from funcnn import _blas, blas

ROOT = Path(__file__).resolve().parents[1]
FOUND = [p for p in _blas.candidates() if os.path.exists(p)] if sys.platform.startswith("linux") else []
pytestmark = pytest.mark.skipif(
    not FOUND,
    reason="no OpenBLAS library on this machine, or not Linux (Debian/Ubuntu: apt-get install "
    "libopenblas0-pthread): the hook has nothing to load",
)
_CLEARED = ("FUNCNN_NO_OPENBLAS", "FUNCNN_OPENBLAS", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS",
            "OMP_NUM_THREADS", "OPENBLAS_CORETYPE", "PYTHONPATH", "PYTHONNOUSERSITE")

# Both import orders, or none; what a user would see: the BLAS, the warnings, and whether the
# OpenBLAS library is mapped into the process at all.
PROBE = """
import json, sys, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    if ORDER == "mlx":
        import mlx.core
    if ORDER != "none":
        import funcnn
        if ORDER == "funcnn":
            import mlx.core
        info = funcnn.blas_info()
    else:
        info = {}
maps = open("/proc/self/maps").read()
print(json.dumps({"blas": info.get("blas"), "reason": info.get("reason"), "path": info.get("path"),
                  "warnings": [str(w.message) for w in caught], "openblas_mapped": "libopenblas" in maps,
                  "funcnn": "funcnn" in sys.modules, "mlx": "mlx" in sys.modules}))
"""


class Env:
    def __init__(self, tmp: Path):
        self.dir = tmp
        self.config = tmp / "config"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], check=True, timeout=60)
        self.python = str(tmp / "venv" / "bin" / "python")
        self.site = Path(self.run_code("import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip())
        (self.site / "_base.pth").write_text(f"{sysconfig.get_path('purelib')}\n{ROOT}\n")

    def env(self, **extra: str) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
        env.update(XDG_CONFIG_HOME=str(self.config), **extra)
        return env

    def run_code(self, code: str, *args: str, **extra: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.python, *args, "-c", code] if code else [self.python, *args], check=False,
                              capture_output=True, text=True, timeout=120, env=self.env(**extra), cwd=self.dir)
        assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def cli(self, *argv: str, **extra: str) -> str:
        proc = subprocess.run([self.python, "-m", "funcnn.blas", *argv], check=False, capture_output=True, text=True,
                              timeout=120, env=self.env(**extra), cwd=self.dir)
        assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def probe(self, order: str, **extra: str) -> dict:
        proc = self.run_code(f"ORDER = {order!r}\n" + textwrap.dedent(PROBE), **extra)
        assert proc.stderr == "", proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    return Env(tmp_path_factory.mktemp("blas_hook"))


@pytest.fixture
def clean(venv):
    """Every test starts with no hook and no decline marker, and leaves none."""
    venv.cli("uninstall")
    venv.cli("decline", "--undo")
    yield venv
    venv.cli("uninstall")
    venv.cli("decline", "--undo")


def _assert_openblas(out: dict) -> None:
    assert out["blas"] == "openblas" and out["reason"] is None and out["path"] in FOUND, out
    assert out["warnings"] == [] and out["openblas_mapped"], out


def _assert_reference(out: dict, reason: str, warned: bool) -> None:
    assert out["blas"] == "reference" and out["reason"] == reason and not out["openblas_mapped"], out
    assert len(out["warnings"]) == int(warned), out["warnings"]


def test_without_the_hook_mlx_first_warns_and_names_the_commands(clean):
    out = clean.probe("mlx")
    _assert_reference(out, "mlx.core imported first", warned=True)
    message = out["warnings"][0]
    for command in ("python -m funcnn.blas install", "python -m funcnn.blas decline", "FUNCNN_NO_OPENBLAS=1"):
        assert command in message, message


def test_installed_hook_gives_openblas_in_both_orders_and_stays_lazy(clean):
    out = clean.cli("install")
    assert (clean.site / "funcnn-openblas.pth").exists() and "installed" in out
    _assert_openblas(clean.probe("mlx"))
    _assert_openblas(clean.probe("funcnn"))
    # A process that never imports mlx neither imports funcnn nor loads OpenBLAS.
    idle = clean.probe("none")
    assert not (idle["funcnn"] or idle["mlx"] or idle["openblas_mapped"]), idle
    status = json.loads(clean.cli("status", "--json"))
    assert status["hook"]["installed"] and not status["hook"]["stale"]
    assert status["hook"]["blas_file"] == str(ROOT / "funcnn" / "_blas.py")
    assert status["mlx_first"]["blas"] == status["funcnn_first"]["blas"] == "openblas", status

    # uninstall: the old behaviour (warning in the mlx-first order), no files left.
    assert "removed" in clean.cli("uninstall")
    assert sorted(p.name for p in clean.site.iterdir() if "funcnn" in p.name.lower()) == []
    _assert_reference(clean.probe("mlx"), "mlx.core imported first", warned=True)
    _assert_openblas(clean.probe("funcnn"))


def test_opt_out_variable_wins_over_the_hook(clean):
    clean.cli("install")
    for order in ("mlx", "funcnn"):
        _assert_reference(clean.probe(order, FUNCNN_NO_OPENBLAS="1"), "disabled by FUNCNN_NO_OPENBLAS", False)


def test_decline_keeps_the_reference_blas_silently(clean):
    assert "wrote" in clean.cli("decline")
    assert clean.cli("decline").startswith("already declined")
    declined = "declined (python -m funcnn.blas decline)"
    _assert_reference(clean.probe("mlx"), declined, warned=False)
    _assert_reference(clean.probe("funcnn"), declined, warned=False)
    # The variable, set to a false value, is a per-process "yes" that overrides the marker.
    _assert_openblas(clean.probe("funcnn", FUNCNN_NO_OPENBLAS="0"))
    assert "declined: yes" in clean.cli("status", "--no-probe")
    # install is the consent: it removes the marker.
    assert "removed the decline marker" in clean.cli("install")
    _assert_openblas(clean.probe("mlx"))


def test_a_stale_or_broken_hook_never_disturbs_the_interpreter(clean):
    clean.cli("install")
    hook = clean.site / "_funcnn_openblas_hook.py"
    blas_file = str(ROOT / "funcnn" / "_blas.py")
    hook.write_text(hook.read_text().replace(repr(blas_file), repr("/nonexistent/funcnn/_blas.py")))
    _assert_reference(clean.probe("mlx"), "mlx.core imported first", warned=True)
    assert "STALE" in clean.cli("status", "--no-probe")
    hook.unlink()  # the .pth left behind alone: its import line is guarded
    assert clean.run_code("print('ok')").stdout == "ok\n"
    assert clean.run_code("print('ok')").stderr == ""


def test_cli_usage_and_unwritable_site(tmp_path):
    assert blas.main(["install", "--site-dir", "/proc/funcnn-cannot-write-here"]) == 1
    with pytest.raises(SystemExit) as exc:
        blas.main(["frobnicate"])
    assert exc.value.code == 2
