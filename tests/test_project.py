"""Project-level checks: README commands and tour, the guides' snippets, no mlx.nn in the library."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
GUIDES = ROOT / "docs" / "guides"


def guide_snippet(guide: str, *markers: str) -> str:
    """The one Python code block of ``docs/guides/<guide>.rst`` that contains every marker."""
    text = (GUIDES / f"{guide}.rst").read_text()
    blocks = re.findall(r"\.\. code(?:-block)?:: python\n\n((?:(?:[ ]{3,}.*)?\n)+)", text)
    found = [b for b in blocks if all(m in b for m in markers)]
    assert len(found) == 1, f"{guide}: {len(found)} Python blocks contain {markers}"
    lines = found[0].rstrip().split("\n")
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[indent:] for line in lines) + "\n"


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    assert len(commands) == 2, "README shows exactly two commands (example, tests)"
    example, tests = commands
    assert "examples/fashion_mnist.py" in example
    assert "pytest" in tests
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci_lines, ".ci/run must run README's test command verbatim"


def test_readme_tour_runs():
    tour = re.findall(r"```python\n(.*?)```", README, re.S)[0]
    namespace: dict = {}
    exec(compile(tour, "README tour", "exec"), namespace)
    assert namespace["per_model"].shape == (3, 8, 2)
    assert list(namespace["model"].trainable_parameters()["layers"][0]) == ["weight"]


def test_guide_training_snippet_runs_and_learns():
    import mlx.core as mx

    import funcnn as nn
    import funcnn.functional as F

    snippet = guide_snippet("pure_core", "@T.compile", "optim.cosine_decay")
    mlp = F.sequential(F.linear(4, 8), F.relu(), F.linear(8, 2))
    namespace = {
        "params": mlp.init(mx.random.key(0)),
        "loss_fn": lambda p, x, y: nn.losses.cross_entropy(mlp.apply(p, x), y, reduction="mean"),
    }
    exec(compile(snippet, "pure core guide: training", "exec"), namespace)
    params, state = namespace["params"], namespace["state"]
    x, y = mx.ones((8, 4)), mx.zeros(8, mx.int32)
    losses = []
    for _ in range(3):
        loss, params, state = namespace["step"](params, state, x, y)
        losses.append(loss.item())
    assert losses[2] < losses[1] < losses[0]


def test_guide_saving_snippet_runs(tmp_path, monkeypatch):
    import mlx.core as mx

    import funcnn as nn
    import funcnn.functional as F
    import funcnn.optimizers as optim

    snippet = guide_snippet("saving_loading", "nn.save(")
    assert "nn.save(" in snippet and "nn.summary(" in snippet
    mlp = F.sequential(F.linear(4, 8), F.relu(), F.linear(8, 2))
    params = mlp.init(mx.random.key(0))
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    namespace = {"params": params, "state": optim.adam(1e-3).init(params), "model": model,
                 "x": mx.ones((3, 4)), "print": lambda *a: None}
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "saving guide", "exec"), namespace)
    loaded = namespace["tree"]
    assert mx.array_equal(loaded["params"]["layers"][2]["weight"], params["layers"][2]["weight"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.safetensors", "model.npz"]


def test_guide_pure_protocol_example_learns_and_moves_the_statistics():
    import mlx.core as mx

    snippet = guide_snippet("pure_core", "F.batch_norm", "F.merge_updates")
    assert "F.batch_norm" in snippet and "F.merge_updates" in snippet
    namespace: dict = {}
    exec(compile(snippet, "pure core guide: protocol example", "exec"), namespace)
    assert namespace["accuracy"] > 0.9  # the guide states 92.6%
    stats = namespace["params"]["layers"][1]
    assert not mx.array_equal(stats["running_mean"], mx.zeros(16)).item()
    assert "running_mean" not in namespace["opt_state"]["per_param"]["layers"][1]


def test_import_stays_light():
    # numpy is only needed to read .npz headers (funcnn.checkpoint imports it then):
    # at import it would cost more than the rest of funcnn together.
    code = "import sys, funcnn; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_library_never_imports_mlx_nn():
    code = "import sys, funcnn, funcnn.functional; print('mlx.nn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    pattern = re.compile(r"^\s*(import mlx\.nn|from mlx\.nn|from mlx import nn)", re.M)
    offenders = [p for p in (ROOT / "funcnn").rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_quickstart_reaches_95_percent_both_ways():
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    accuracies = [float(a) for a in re.findall(r"test accuracy (\d\.\d+)", out)]
    assert len(accuracies) == 2, out
    assert min(accuracies) >= 0.95, out


def _library_modules() -> list[str]:
    names = []
    for path in sorted((ROOT / "funcnn").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_public_docstring_example_runs():
    import doctest
    import importlib

    failures = {}
    for name in _library_modules():
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
        if result.failed:
            failures[name] = result.failed
    assert failures == {}


# The public modules whose every callable name must show a runnable example (the API reference
# is generated from these docstrings; test_every_public_docstring_example_runs runs them).
DOCUMENTED_MODULES = (
    "funcnn.layers", "funcnn.functional", "funcnn.transforms", "funcnn.optimizers", "funcnn.tree",
    "funcnn.init", "funcnn.losses", "funcnn.utils", "funcnn.parallel", "funcnn.lora",
)  # fmt: skip


def test_every_public_callable_has_an_example():
    import importlib
    import inspect

    import funcnn.layers

    modules = [importlib.import_module(m) for m in DOCUMENTED_MODULES] + list(funcnn.layers.FAMILIES)
    missing = []
    for module in modules:
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.ismodule(value) or not callable(value):
                continue  # submodules and constants (tree.NAMESPACE)
            if ">>>" not in (inspect.getdoc(value) or ""):
                missing.append(f"{module.__name__}.{name}")
    assert missing == [], "public names without a runnable example: " + ", ".join(sorted(set(missing)))
