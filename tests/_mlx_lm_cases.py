"""The cases of ``test_mlx_lm.py``: mlx-lm code run unchanged, reported as JSON.

:func:`main` runs in a fresh interpreter whose ``mlx.nn`` is either the real
one or funcnn installed under every ``mlx.nn`` module name (see
``test_catalogue.alias_prelude``); ``test_mlx_lm.py`` runs it once each way and
compares the reports.  Every case seeds MLX's global RNG, builds a tiny model
from a config dict written here (``mlx_lm.models.<arch>.ModelArgs`` +
``.Model``: no network, no tokenizer) and reports arrays bit for bit
(:func:`enc`).

Importing this module imports nothing of MLX: the parent pytest process reads
:data:`CASES` (each case's function and the funcnn names it needs) before it
decides what to run, and the child installs the alias before anything imports
``mlx.nn``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import traceback

# --- tiny configs ---------------------------------------------------------------------------
# Dimensions are multiples of 64 so that nn.quantize (group size 32/64) takes every layer.
_COMMON = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-5,
    "vocab_size": 128,
}

ARCHS: dict[str, dict] = {
    "llama": dict(_COMMON, model_type="llama", tie_word_embeddings=False),
    # mlx-lm maps "mistral" to its llama module; sliding-window layers get a RotatingKVCache.
    "mistral": dict(
        _COMMON,
        model_type="mistral",
        layer_types=["sliding_attention", "full_attention"],
        sliding_window=4,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
    ),
    "qwen2": dict(_COMMON, model_type="qwen2"),
    "qwen3": dict(
        _COMMON,
        model_type="qwen3",
        head_dim=16,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        rope_theta=10000.0,
    ),
    "qwen3_moe": dict(
        _COMMON,
        model_type="qwen3_moe",
        head_dim=16,
        num_experts=4,
        num_experts_per_tok=2,
        decoder_sparse_step=1,
        mlp_only_layers=[],
        moe_intermediate_size=64,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        max_position_embeddings=256,
        norm_topk_prob=True,
    ),
    "gemma": dict(_COMMON, model_type="gemma", head_dim=16),
    "gemma2": dict(
        _COMMON, model_type="gemma2", head_dim=16, query_pre_attn_scalar=16.0
    ),
    "phi3": dict(_COMMON, model_type="phi3"),
    "mixtral": dict(
        _COMMON, model_type="mixtral", num_local_experts=4, num_experts_per_tok=2
    ),
    "mamba": {
        "model_type": "mamba",
        "vocab_size": 128,
        "hidden_size": 64,
        "intermediate_size": 128,
        "state_size": 8,
        "num_hidden_layers": 2,
        "conv_kernel": 4,
        "use_bias": False,
        "use_conv_bias": True,
        "time_step_rank": 8,
    },
    "recurrent_gemma": {
        "model_type": "recurrent_gemma",
        "attention_bias": False,
        "conv1d_width": 4,
        "hidden_size": 64,
        "intermediate_size": 128,
        "logits_soft_cap": 30.0,
        "num_attention_heads": 4,
        "num_hidden_layers": 3,
        "num_key_value_heads": 1,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "attention_window_size": 16,
        "vocab_size": 128,
        "block_types": ["recurrent", "recurrent", "attention"],
    },
}

# funcnn names an architecture's module imports from mlx.nn at import time (mlx.nn has these
# in its family module only, so they are looked up there).
_SHARD = "layers.distributed.shard_linear"
_MOE_SHARD = (
    "layers.distributed.shard_inplace",
    _SHARD,
    "layers.distributed.sum_gradients",
)
ARCH_NEEDS = {
    "llama": (_SHARD,),
    "mistral": (_SHARD,),
    "qwen2": (_SHARD,),
    "qwen3": (_SHARD,),
    "qwen3_moe": _MOE_SHARD,
}
QUANT_NEEDS = (
    "quantize",
    "QuantizedLinear",
    "QuantizedEmbedding",
    "Linear.to_quantized",
    "Embedding.to_quantized",
)
# mlx-lm's LoRA code names nn.QuantizedLinear/QuantizedEmbedding in isinstance checks even
# on a model that was never quantized.
LORA_NEEDS = ("QuantizedLinear", "QuantizedEmbedding")

LORA_CONFIG = {"rank": 4, "scale": 10.0, "dropout": 0.1}


# --- helpers (run in the child) -------------------------------------------------------------


def enc(a) -> dict:
    """An array as ``{dtype, shape, sha}`` (raw bits) plus its values when small."""
    import mlx.core as mx
    import numpy as np

    a = mx.array(a)
    raw = (
        a.astype(mx.uint8)
        if a.dtype == mx.bool_
        else a.view(getattr(mx, f"uint{8 * a.dtype.size}"))
    )
    out = {
        "dtype": str(a.dtype),
        "shape": list(a.shape),
        "sha": hashlib.sha256(np.array(raw).tobytes()).hexdigest(),
    }
    if a.size <= 8192:
        out["values"] = (
            a.astype(mx.float32).tolist() if a.dtype != mx.bool_ else a.tolist()
        )
    return out


def enc_tree(tree) -> dict:
    """``{dotted name: enc(leaf)}`` of a parameter tree (a Module: its parameters)."""
    from mlx.utils import tree_flatten

    if callable(getattr(tree, "parameters", None)):
        tree = tree.parameters()
    return {k: enc(v) for k, v in tree_flatten(tree)}


def classes(model) -> list[str]:
    """The ``module.Class`` of every submodule: shows which nn built the model."""
    return sorted({f"{type(m).__module__}.{type(m).__name__}" for m in model.modules()})


def build(arch: str, seed: int = 0, **overrides):
    """``(model, config)`` of :data:`ARCHS` (with ``overrides``), built after seeding the global RNG."""
    import mlx.core as mx
    from mlx_lm.utils import _get_classes

    config = dict(ARCHS[arch], **overrides)
    model_class, args_class = _get_classes(config)
    mx.random.seed(seed)
    model = model_class(args_class.from_dict(config))
    mx.eval(model.parameters())
    return model, config


def tokens(shape, seed: int = 1):
    import mlx.core as mx

    return mx.random.randint(0, 128, shape, key=mx.random.key(seed))


def forward_report(model) -> dict:
    """Logits without a cache, then prompt + one token at a time with mlx-lm's prompt cache."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    x = tokens((2, 9))
    out = {"logits": enc(model(x))}
    cache = make_prompt_cache(model)
    steps = [model(x[:, :5], cache=cache)]
    for i in range(5, 9):
        steps.append(model(x[:, i : i + 1], cache=cache))
    mx.eval(steps)
    out["cached"] = [enc(s) for s in steps]
    out["cache_types"] = [type(c).__name__ for c in cache]
    return out


def generate_report(model, **kwargs) -> dict:
    """A few tokens of ``generate_step`` from token ids: the tokens and their logprobs."""
    import mlx.core as mx
    from mlx_lm.generate import generate_step

    prompt = tokens((7,), seed=2)
    mx.random.seed(5)  # for samplers that draw
    toks, logprobs = [], []
    for tok, lp in generate_step(prompt, model, max_tokens=5, **kwargs):
        toks.append(int(tok))
        logprobs.append(enc(lp))
    return {"tokens": toks, "logprobs": logprobs}


def train_report(model, steps: int = 3) -> dict:
    """A few Adam steps of mlx-lm's ``default_loss`` on the trainable parameters."""
    import mlx.core as mx
    import mlx.optimizers as optim
    from mlx import nn
    from mlx_lm.tuner.trainer import default_loss

    batch = tokens((2, 10), seed=3)
    lengths = mx.array([[0, 9], [1, 7]])
    mx.random.seed(7)  # LoRA dropout draws
    model.train()
    optimizer = optim.Adam(learning_rate=1e-2)
    step = nn.value_and_grad(model, default_loss)
    losses = []
    for _ in range(steps):
        (loss, ntoks), grads = step(model, batch, lengths)
        optimizer.update(model, grads)
        mx.eval(model.parameters(), optimizer.state)
        losses.append(enc(loss))
    model.eval()
    return {
        "losses": losses,
        "ntoks": int(ntoks),
        "trainable": enc_tree(model.trainable_parameters()),
    }


# --- cases ----------------------------------------------------------------------------------


def case_forward(arch: str) -> dict:
    model, _ = build(arch)
    model.eval()
    return {
        "classes": classes(model),
        "params": enc_tree(model),
        **forward_report(model),
    }


def case_generate(arch: str) -> dict:
    model, _ = build(arch)
    model.eval()
    return generate_report(model)


def case_generate_sampled() -> dict:
    from mlx_lm.sample_utils import make_logits_processors, make_sampler

    model, _ = build("gemma")
    model.eval()
    return generate_report(
        model,
        sampler=make_sampler(temp=0.8, top_p=0.95, min_p=0.02),
        logits_processors=make_logits_processors(repetition_penalty=1.2),
        max_kv_size=6,  # a RotatingKVCache that wraps during the few steps
        prefill_step_size=3,
    )


def case_generate_kv_quantized() -> dict:
    model, _ = build("gemma", head_dim=32)  # mx.quantize groups of >= 32 along head_dim
    model.eval()
    return generate_report(model, kv_bits=4, kv_group_size=32, quantized_kv_start=0)


def case_full_finetune() -> dict:
    model, _ = build("phi3")
    return train_report(model, steps=2)


def case_lora(arch: str, dora: bool = False) -> dict:
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, _ = build(arch)
    model.freeze()
    linear_to_lora_layers(model, 2, dict(LORA_CONFIG), use_dora=dora)
    return {"classes": classes(model), **train_report(model), **forward_report(model)}


def case_lora_fuse() -> dict:
    """LoRA training, then mlx-lm's fuse (``m.fuse()`` on every adapter, as ``mlx_lm.fuse``)."""
    from mlx.utils import tree_unflatten
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, _ = build("gemma")
    model.freeze()
    linear_to_lora_layers(model, 2, dict(LORA_CONFIG))
    trained = train_report(model)
    fused = [(n, m.fuse()) for n, m in model.named_modules() if hasattr(m, "fuse")]
    model.update_modules(tree_unflatten(fused))
    return {
        "losses": trained["losses"],
        "classes": classes(model),
        "params": enc_tree(model),
        **forward_report(model),
    }


def case_trainer_loop() -> dict:
    """``mlx_lm.tuner.trainer.train`` itself: compiled LoRA step, evaluation, adapter file.

    Cold, mx.compile's g++ builds of its kernels take 20-30 s on this CPU (cached on disk
    afterwards), so it is the only compiled case; ``full-finetune`` trains uncompiled.
    """
    import mlx.core as mx
    import mlx.optimizers as optim
    import numpy as np
    from mlx_lm.tuner.callbacks import TrainingCallback
    from mlx_lm.tuner.trainer import TrainingArgs, evaluate, train
    from mlx_lm.tuner.utils import linear_to_lora_layers

    class Record(TrainingCallback):
        def __init__(self):
            self.seen = []

        def on_train_loss_report(self, info):
            self.seen.append(["train", info["iteration"], info["train_loss"]])

        def on_val_loss_report(self, info):
            self.seen.append(["val", info["iteration"], info["val_loss"]])

    model, _ = build("gemma", num_hidden_layers=1)
    model.freeze()
    linear_to_lora_layers(model, 1, dict(LORA_CONFIG))
    data = tokens((6, 12), seed=4).tolist()
    dataset = [(row[: 6 + i], 0) for i, row in enumerate(data)]
    record = Record()
    with tempfile.TemporaryDirectory() as d:
        args = TrainingArgs(
            batch_size=2,
            iters=3,
            val_batches=1,
            steps_per_report=1,
            steps_per_eval=2,
            adapter_file=f"{d}/adapters.safetensors",
        )
        mx.random.seed(7)
        np.random.seed(0)  # iterate_batches shuffles with NumPy's global RNG
        train(
            model,
            optim.Adam(learning_rate=1e-2),
            dataset,
            dataset[:2],
            args=args,
            training_callback=record,
        )
        adapters = {k: enc(v) for k, v in sorted(mx.load(args.adapter_file).items())}
    np.random.seed(1)
    val = evaluate(model, dataset, batch_size=2, num_batches=2)
    return {"seen": record.seen, "adapters": adapters, "val": val}


def case_quantize(arch: str) -> dict:
    from mlx import nn

    model, _ = build(arch)
    nn.quantize(model, group_size=32, bits=4)
    model.eval()
    return {
        "classes": classes(model),
        "params": enc_tree(model),
        **forward_report(model),
    }


def case_quantize_model(mode: str) -> dict:
    """mlx-lm's ``quantize_model`` (with a per-layer predicate) and a forward."""
    from mlx_lm.utils import quantize_model

    model, config = build("gemma")

    def predicate(path, module):
        return (
            {"group_size": 64, "bits": 8, "mode": "affine"}
            if path.endswith("down_proj")
            else True
        )

    model, qconfig = quantize_model(
        model, config, None, None, mode=mode, quant_predicate=predicate
    )
    model.eval()
    return {
        "config": qconfig,
        "classes": classes(model),
        "params": enc_tree(model),
        **forward_report(model),
    }


def _save_load(model, config, report=forward_report) -> dict:
    # mlx_lm.utils.save without its tokenizer step: save_model + save_config, then load_model.
    from pathlib import Path

    from mlx_lm.utils import load_model, save_config, save_model

    with tempfile.TemporaryDirectory() as d:
        save_model(d, model, donate_model=False)
        save_config(dict(config), config_path=Path(d) / "config.json")
        files = sorted(p.name for p in Path(d).iterdir())
        loaded, loaded_config = load_model(Path(d))
    return {
        "files": files,
        "config": loaded_config,
        "classes": classes(loaded),
        "params": enc_tree(loaded),
        "same_as_saved": enc_tree(loaded) == enc_tree(model),
        "report": report(loaded),
    }


def case_save_load() -> dict:
    model, config = build("phi3")
    model.eval()
    return _save_load(model, config)


def case_save_load_quantized() -> dict:
    from mlx_lm.utils import quantize_model

    model, config = build("gemma")
    model, qconfig = quantize_model(model, config, 32, 4)
    model.eval()
    return _save_load(model, qconfig)


def case_save_load_qq() -> dict:
    """An mxfp8 model reloaded with ``quantize_activations``: mlx-lm swaps in ``nn.QQLinear``."""
    from mlx_lm.utils import quantize_model

    model, config = build("gemma")
    model, qconfig = quantize_model(model, config, None, None, mode="mxfp8")
    model.eval()
    # MLX's CPU qqmm takes one row at a time ("[QQMatmul] NYI for the general case"
    # otherwise): decode token by token.
    return _save_load(
        model,
        dict(qconfig, quantize_activations=True),
        report=lambda m: generate_report(m, prefill_step_size=1),
    )


def case_dequantize() -> dict:
    from mlx_lm.utils import dequantize_model, quantize_model

    model, config = build("mixtral")
    model, _ = quantize_model(model, config, 32, 4)
    model = dequantize_model(model)
    model.eval()
    return {
        "classes": classes(model),
        "params": enc_tree(model),
        **forward_report(model),
    }


def case_qlora(dora: bool = False) -> dict:
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import quantize_model

    model, config = build("gemma")
    model, _ = quantize_model(model, config, 32, 4)
    model.freeze()
    linear_to_lora_layers(model, 2, dict(LORA_CONFIG), use_dora=dora)
    out = {"classes": classes(model), **train_report(model)}
    fused = [(n, m.fuse()) for n, m in model.named_modules() if hasattr(m, "fuse")]
    from mlx.utils import tree_unflatten

    model.update_modules(tree_unflatten(fused))
    out["fused_classes"] = classes(model)
    out["fused"] = forward_report(model)
    return out


def case_shard(arch: str) -> dict:
    """The model's own ``shard()`` on the one-process group (size 1): forward, training."""
    import mlx.core as mx

    model, _ = build(arch)
    model.shard(mx.distributed.init())
    model.eval()
    out = {
        "classes": classes(model),
        "params": enc_tree(model),
        **forward_report(model),
    }
    return {**out, "trained": train_report(model, steps=1)}


# name -> (function, args, funcnn names needed)
CASES: dict[str, tuple] = {}
for _arch in ARCHS:
    _needs = ARCH_NEEDS.get(_arch, ())
    CASES[f"forward-{_arch}"] = (case_forward, (_arch,), _needs)
    CASES[f"generate-{_arch}"] = (case_generate, (_arch,), _needs)
CASES.update(
    {
        "generate-sampled-rotating": (case_generate_sampled, (), ()),
        "generate-kv-quantized": (case_generate_kv_quantized, (), ()),
        "full-finetune": (case_full_finetune, (), ()),
        "save-load": (case_save_load, (), ()),
        "lora-gemma": (case_lora, ("gemma",), LORA_NEEDS),
        "lora-mixtral-switch": (case_lora, ("mixtral",), LORA_NEEDS),
        "dora-phi3": (case_lora, ("phi3", True), LORA_NEEDS),
        "lora-fuse": (
            case_lora_fuse,
            (),
            LORA_NEEDS + ("QuantizedLinear.from_linear",),
        ),
        "trainer-loop-lora": (case_trainer_loop, (), LORA_NEEDS),
        "quantize-gemma": (case_quantize, ("gemma",), QUANT_NEEDS),
        "quantize-mixtral": (case_quantize, ("mixtral",), QUANT_NEEDS),
        "quantize-llama": (
            case_quantize,
            ("llama",),
            QUANT_NEEDS + ARCH_NEEDS["llama"],
        ),
        "quantize-model-affine": (case_quantize_model, ("affine",), QUANT_NEEDS),
        "quantize-model-mxfp4": (case_quantize_model, ("mxfp4",), QUANT_NEEDS),
        "save-load-quantized": (case_save_load_quantized, (), QUANT_NEEDS),
        "save-load-qq": (case_save_load_qq, (), QUANT_NEEDS + ("QQLinear",)),
        "dequantize-model": (case_dequantize, (), QUANT_NEEDS),
        "qlora": (case_qlora, (), QUANT_NEEDS + ("QuantizedLinear.from_linear",)),
        "qdora": (case_qlora, (True,), QUANT_NEEDS + ("QuantizedLinear.from_linear",)),
        "shard-llama": (case_shard, ("llama",), ARCH_NEEDS["llama"]),
        "shard-qwen3": (case_shard, ("qwen3",), ARCH_NEEDS["qwen3"]),
        "shard-qwen3_moe": (case_shard, ("qwen3_moe",), ARCH_NEEDS["qwen3_moe"]),
    }
)


def run_case(name: str) -> dict:
    """``CASES[name]``'s report, or ``{"error": traceback}`` if it raised."""
    fn, args, _ = CASES[name]
    try:
        return json.loads(json.dumps(fn(*args)))  # JSON-able now, not at the end
    except Exception:  # noqa: BLE001 - reported to the parent, which fails that test
        return {"error": traceback.format_exc()}


def main(names: list[str]) -> None:
    """Run ``names`` and print ``{"nn": ..., "cases": {name: report}}`` as the last line."""
    out = {name: run_case(name) for name in names}
    nn = sys.modules["mlx.nn"]
    loaded = sorted(
        n
        for n, m in sys.modules.items()
        if n.startswith("mlx.nn") and getattr(m, "__name__", "").startswith("mlx.nn")
    )
    print(json.dumps({"nn": nn.__name__, "real_mlx_nn": loaded, "cases": out}))
