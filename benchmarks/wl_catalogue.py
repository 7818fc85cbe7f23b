"""Workloads for the layer families of the catalogue issue, one representative each.

=====  ==================================================================================
W6     ConvTranspose2d decoder: (32, 7, 7, 32) -> 14x14x16 -> 28x28x1, ReLU, MSE, Adam
W7     pooling CNN: conv-relu-MaxPool2d, conv-relu-AvgPool2d, linear; 28x28x1, batch 64
W8     LSTM(32 -> 128) over 32 steps, batch 16, linear head on the last step, xent, Adam
W9     Transformer encoder-decoder (d 64, 4 heads, 2 + 2 layers, mlp 128), src/tgt 32
       steps, batch 8, causal target mask, MSE against a fixed target, AdamW
=====  ==================================================================================

Each network is written once against ``nn`` (so one source builds it on
:mod:`mlx.nn` and on the funcnn facade) and once as a :mod:`funcnn.functional`
pair with the same parameter names.  No hand-written variant: the comparison
here is funcnn against mlx.nn on the same BLAS.  The pure pairs compile the
whole step, the recurrence included, into one function (``pure_compiled``).
"""

from __future__ import annotations

import mlx.core as mx

import wl_common as C

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _named(members: dict, forward):
    """A pair of named member pairs ``{name: pair}`` run by ``forward(run, x)``.

    ``run(name, *inputs)`` applies the member ``name`` with its parameters.
    """
    import funcnn.functional as F

    def init(key=None):
        keys = F.split_key(key, len(members))
        return {name: pair.init(k) for (name, pair), k in zip(members.items(), keys)}

    def apply(params, x):
        return forward(lambda name, *a: members[name].apply(params[name], *a), x)

    return F.Pair(init, apply, "benchmark_model")


def _spec(make_module, pair, data, loss, optimizer="adam") -> C.ModelSpec:
    return C.ModelSpec(make_module, pair, [], None, data, loss, optimizer)


def _normal(offset: int, *shape: int) -> mx.array:
    return mx.array(C.rng(offset).standard_normal(shape, dtype="float32"))


def _labels(offset: int, high: int, *shape: int) -> mx.array:
    return mx.array(C.rng(offset).integers(0, high, size=shape), mx.int32)


# --------------------------------------------------------------------------
# W6: transposed convolutions
# --------------------------------------------------------------------------


def _deconv_module(nn):
    return nn.Sequential(
        nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1),
    )


def _deconv_pair():
    import funcnn.functional as F

    return F.sequential(
        F.conv_transpose2d(32, 16, 3, stride=2, padding=1, output_padding=1),
        F.relu(),
        F.conv_transpose2d(16, 1, 3, stride=2, padding=1, output_padding=1),
    )


DECONV = _spec(
    _deconv_module, _deconv_pair, lambda: (_normal(61, 32, 7, 7, 32), _normal(62, 32, 28, 28, 1)),
    "mse",
)

# --------------------------------------------------------------------------
# W7: a CNN with max and average pooling
# --------------------------------------------------------------------------


def _flatten(x: mx.array) -> mx.array:
    return x.reshape(x.shape[0], -1)


def _pool_cnn_module(nn):
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        _flatten, nn.Linear(32 * 7 * 7, 10),
    )  # fmt: skip


def _pool_cnn_pair():
    import funcnn.functional as F

    return F.sequential(
        F.conv2d(1, 16, 3, padding=1), F.relu(), F.max_pool2d(2),
        F.conv2d(16, 32, 3, padding=1), F.relu(), F.avg_pool2d(2),
        _flatten, F.linear(32 * 7 * 7, 10),
    )  # fmt: skip


POOL_CNN = _spec(
    _pool_cnn_module, _pool_cnn_pair, lambda: (_normal(71, 64, 28, 28, 1), _labels(72, 10, 64)),
    "xent",
)

# --------------------------------------------------------------------------
# W8: an LSTM classifier
# --------------------------------------------------------------------------

LSTM_IN, LSTM_HIDDEN, LSTM_STEPS, LSTM_BATCH = 32, 128, 32, 16


def _lstm_module(nn):
    class LSTMClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(LSTM_IN, LSTM_HIDDEN)
            self.head = nn.Linear(LSTM_HIDDEN, 10)

        def __call__(self, x):
            hidden, _ = self.lstm(x)
            return self.head(hidden[:, -1])

    return LSTMClassifier()


def _lstm_pair():
    import funcnn.functional as F

    def forward(run, x):
        hidden, _ = run("lstm", x)
        return run("head", hidden[:, -1])

    return _named({"lstm": F.lstm(LSTM_IN, LSTM_HIDDEN), "head": F.linear(LSTM_HIDDEN, 10)}, forward)


LSTM = _spec(
    _lstm_module,
    _lstm_pair,
    lambda: (_normal(81, LSTM_BATCH, LSTM_STEPS, LSTM_IN), _labels(82, 10, LSTM_BATCH)),
    "xent",
)

# --------------------------------------------------------------------------
# W9: a Transformer encoder-decoder
# --------------------------------------------------------------------------

TF = dict(dims=64, num_heads=4, num_encoder_layers=2, num_decoder_layers=2, mlp_dims=128)
TF_STEPS, TF_BATCH = 32, 8


def _causal(n: int) -> mx.array:
    return mx.triu(mx.full((n, n), -1e9, mx.float32), k=1)  # the same mask for every library


def _split(x: mx.array):
    return x[:, :TF_STEPS], x[:, TF_STEPS:]


def _transformer_module(nn):
    class EncoderDecoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = nn.Transformer(**TF)

        def __call__(self, x):
            src, tgt = _split(x)
            return self.transformer(src, tgt, None, _causal(TF_STEPS), None)

    return EncoderDecoder()


def _transformer_pair():
    import funcnn.functional as F

    def forward(run, x):
        src, tgt = _split(x)
        return run("transformer", src, tgt, None, _causal(TF_STEPS), None)

    return _named({"transformer": F.transformer(**TF)}, forward)


TRANSFORMER = _spec(
    _transformer_module,
    _transformer_pair,
    lambda: (_normal(91, TF_BATCH, 2 * TF_STEPS, TF["dims"]), _normal(92, TF_BATCH, TF_STEPS, 64)),
    "mse",
    "adamw",
)

VARIANTS = C.TRAIN_VARIANTS[:-1]  # no hand-written variant for these
