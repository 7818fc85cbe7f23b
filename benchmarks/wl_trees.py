"""W5: tree operations of a 48-layer model, ``mlx.nn`` against the funcnn facade.

The model and the operations are ``tree_ops.py``'s (``build``, ``pairs``,
``OPERATIONS``), so that this driver and that in-process benchmark measure the
same thing: 48 blocks of ``MultiHeadAttention`` (query/key/value/out
projections), two ``LayerNorm`` and an MLP of two ``Linear``, width 64.  The
rows here are the operations the benchmark issue names (:data:`OPS`), each a
step of its own benchmark in its own process:

* ``parameters``, ``trainable_parameters``: the call;
* ``update``: ``model.update(tree)`` with the full nested parameter tree;
* ``freeze``, ``unfreeze``: the call, repeated (on a frozen / unfrozen model);
* ``load_weights``: ``model.load_weights(pairs)`` (``strict=True``, MLX's default).

Both libraries' models hold the same arrays (loaded from the ``mlx.nn`` model
built with ``mx.random.seed(SEED)``).  ``check()`` digests what must be
identical after the operation: the result (names and bit patterns, when it is
a tree), the model's parameters, its trainable parameters and every module's
frozen keys.  ``tree_ops.py`` also times children/modules/named_modules/...
"""

from __future__ import annotations

import mlx.core as mx

from wl_common import SEED, Bench, exact_digest

OPS = ("parameters", "trainable_parameters", "update", "freeze", "unfreeze", "load_weights")


def build(op: str, variant: str, quick: bool = False) -> Bench:
    """``variant``: ``mlxnn_eager`` or ``facade_eager`` (tree operations are never compiled)."""
    import mlx.nn
    from mlx.utils import tree_flatten

    import tree_ops

    family = variant.rpartition("_")[0]
    if family == "mlxnn":
        nn = mlx.nn
    elif family == "facade":
        import funcnn as nn
    else:
        raise ValueError(f"W5 has no variant {variant!r}")
    if op not in OPS:
        raise ValueError(f"unknown W5 operation {op!r}")

    mx.random.seed(SEED)
    flat = tree_ops.pairs(tree_ops.build(mlx.nn))  # the same values in every process
    model = tree_ops.build(nn)
    model.load_weights(list(flat))
    if op == "unfreeze":
        model.freeze()
    operation = tree_ops.OPERATIONS[op]
    out: dict = {}

    def step():
        out["result"] = operation(model, flat)

    def check():
        result = out["result"]
        digest = {
            "parameters": exact_digest(tree_flatten(model.parameters())),
            "trainable": exact_digest(tree_flatten(model.trainable_parameters())),
            "frozen": sorted((k, sorted(m._no_grad)) for k, m in model.named_modules()),
            "returns_model": result is model,
        }
        if result is not model:
            digest["result"] = exact_digest(tree_flatten(result))
        return digest

    return Bench(step, check, None)
