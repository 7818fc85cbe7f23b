"""No example retraces a compiled function after its first step.

``mx.compile`` runs a function's Python body only while it traces, so a
counter wrapped around the body counts traces.  Each example runs (briefly)
with ``mx.compile`` replaced by a counting version; every compiled function
must have been traced exactly once.  ``examples/fashion_mnist.py`` and
``examples/char_lm.py`` count their own traces (tests/test_fashion_mnist.py,
tests/test_char_lm.py); the benchmarks check theirs in ``--quick``
(tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import mlx.core as mx
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

import quickstart  # noqa: E402
import research  # noqa: E402


@pytest.fixture
def traces(monkeypatch):
    """``mx.compile`` that counts, per compiled function, how often its body is traced."""
    counts: Counter = Counter()
    real = mx.compile

    def counting_compile(fn, *args, **kwargs):
        name = f"{getattr(fn, '__qualname__', repr(fn))}#{len(counts)}"
        counts[name] = 0

        def body(*a, **k):
            counts[name] += 1
            return fn(*a, **k)

        return real(body, *args, **kwargs)

    monkeypatch.setattr(mx, "compile", counting_compile)
    return counts


def test_quickstart_pure_step_is_traced_once(traces):
    data = quickstart.load_digits(0)
    args = argparse.Namespace(epochs=3, batch_size=32, num_layers=2, hidden_dim=64,
                              learning_rate=0.1, seed=0)
    assert data[0][0].shape[0] % args.batch_size != 0  # a last, smaller batch exists
    assert quickstart.train_pure(data, args) > 0.5  # it learned (chance: 0.1)
    assert len(traces) == 1 and set(traces.values()) == {1}, traces


def test_research_compiled_steps_are_traced_once(traces, capsys):
    research.main(["--quick"])
    assert "FAIL" not in capsys.readouterr().out
    assert traces and set(traces.values()) == {1}, traces


def test_the_counter_sees_a_retrace(traces):
    step = mx.compile(lambda x: x + 1)
    step(mx.ones(2))
    step(mx.ones(3))  # a new shape: traced again
    assert list(traces.values()) == [2]
