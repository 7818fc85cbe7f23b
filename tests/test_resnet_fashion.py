"""The second example, examples/resnet_fashion.py: an mlx.nn program run with ``import funcnn as nn``.

* the same source with ``import mlx.nn as nn`` trains bit for bit the same
  (parameters, BatchNorm running statistics, loss) from the same seed and batches;
* ``--quick`` learns (well above chance), traces its compiled step once, and
  saves weights that load into both libraries' ResNet.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "resnet_fashion.py"
sys.path.insert(0, str(EXAMPLE.parent))

from datasets import DataMissing  # noqa: E402

FUNCNN_IMPORT = "import funcnn as nn  #"


def load_example(library: str) -> types.ModuleType:
    """The example's module with ``nn`` bound to ``library`` ("funcnn" or "mlx.nn")."""
    source = EXAMPLE.read_text()
    assert source.count(FUNCNN_IMPORT) == 1  # the one line that differs from an mlx.nn program
    if library == "mlx.nn":
        source = source.replace(FUNCNN_IMPORT, "import mlx.nn as nn  #")
    module = types.ModuleType(f"resnet_fashion_{library.replace('.', '_')}")
    module.__file__ = str(EXAMPLE)
    exec(compile(source, str(EXAMPLE), "exec"), module.__dict__)
    assert module.nn.__name__ == library
    return module


def _train_a_few_steps(library: str, steps: int = 3):
    ex = load_example(library)
    mx.random.seed(0)
    model = ex.ResNet()
    optimizer = ex.optim.AdamW(learning_rate=1e-3)
    traces: list = []
    step, state = ex.make_step(model, optimizer, traces)
    rng = np.random.default_rng(0)
    x = mx.array(rng.random((16, 28, 28, 1), dtype=np.float32))
    y = mx.array(rng.integers(0, 10, 16), mx.int32)
    losses = []
    for _ in range(steps):
        loss = step(x, y)
        mx.eval(state, loss)
        losses.append(loss.item())
    model.eval()
    logits = model(x)
    return losses, dict(tree_flatten(model.parameters())), logits, len(traces)


def test_same_program_on_mlx_nn_trains_identically():
    got_losses, got_params, got_logits, got_traces = _train_a_few_steps("funcnn")
    want_losses, want_params, want_logits, want_traces = _train_a_few_steps("mlx.nn")
    assert got_losses == want_losses
    assert list(got_params) == list(want_params)
    assert any(k.endswith("running_var") for k in got_params)  # state is compared too
    for name, value in got_params.items():
        assert mx.array_equal(value, want_params[name]).item(), name
    assert mx.array_equal(got_logits, want_logits).item()
    assert got_traces == want_traces == 1


def test_quick_run_learns_and_saves_loadable_weights(tmp_path):
    ex = load_example("funcnn")
    args = ex.parse_args(["--quick", "--out", str(tmp_path / "resnet.safetensors")])
    lines: list[str] = []
    try:
        metrics = ex.train(args, log=lines.append)
    except DataMissing as err:
        pytest.skip(str(err))
    assert metrics["traces"] == 1
    assert len(metrics["test_accuracy"]) == args.epochs == 2
    assert metrics["test_accuracy"][-1] > 0.6, lines  # chance is 0.1
    assert any(line.startswith("Final: test accuracy") for line in lines)
    # The weights file loads (strictly) into the ResNet of either library.
    for library in ("funcnn", "mlx.nn"):
        fresh = load_example(library).ResNet()
        fresh.load_weights(str(args.out))
        fresh.eval()
        x = mx.ones((2, 28, 28, 1))
        trained = metrics["model"]
        trained.eval()
        assert mx.array_equal(fresh(x), trained(x)).item(), library
