"""Helpers of the registry-driven layer tests (``test_layers.py``, ``test_layer_channels.py``).

Tolerances, tree comparison, the parameters each check loads into every
library, and one way to run a layer of each library in a given mode: the pure
pair through its channels (``key``, ``training``, state merged back into the
parameters), a Module through ``train(mode)`` and its own attributes.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from layer_registry import FUNCTIONAL, LAYERS, MLX, make, normal
from mlx.utils import tree_flatten, tree_map_with_path

import funcnn.functional as F

# pair.apply vs mlx.nn, facade vs pair, compile vs eager: same ops in the same
# order, so bit-exact.
EXACT = dict(rtol=0.0, atol=0.0)
# Gradients: funcnn differentiates the same graph; bit-exact in practice, but
# asserted to float32 round-off.
GRAD_TOL = dict(rtol=1e-5, atol=1e-6)
# vmap reorders reductions / batches matmuls: float32 round-off.
VMAP_TOL = dict(rtol=1e-5, atol=1e-5)
# Half precision against mlx.nn under the same cast (same ops: exact in practice).
HALF_TOL = {mx.float16: dict(rtol=1e-3, atol=1e-3), mx.bfloat16: dict(rtol=1e-2, atol=1e-2)}

SEEDS = (0, 1234)
CALL_SEED = 4242  # the global RNG is reseeded with it before every call that may draw
MODES = pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])


def case_ids(cases):
    return [c.id for c in cases]


def with_known_failures(check: str, cases=LAYERS):
    """Parametrize ``cases``, marking registry-declared failures of ``check`` as strict xfails."""
    params = []
    for case in cases:
        marks = []
        if check in case.known_failures:
            marks.append(pytest.mark.xfail(strict=True, reason=case.known_failures[check]))
        params.append(pytest.param(case, id=case.id, marks=marks))
    return pytest.mark.parametrize("case", params)


# --- trees ------------------------------------------------------------------------


def is_float(a) -> bool:
    return isinstance(a, mx.array) and mx.issubdtype(a.dtype, mx.floating)


def structure(tree):
    """The tree with every array replaced by ``(shape, dtype)``; containers kept."""
    if isinstance(tree, mx.array):
        return ("array", tree.shape, tree.dtype)
    if isinstance(tree, dict):
        return {k: structure(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(structure(v) for v in tree)
    return tree


def bits(a: mx.array) -> np.ndarray:
    """The raw bits of ``a`` (so ``-0.0 != 0.0`` and NaN payloads count)."""
    view = {1: mx.uint8, 2: mx.uint16, 4: mx.uint32, 8: mx.uint64}[a.dtype.size]
    if a.dtype == mx.bool_:
        return np.array(a)
    return np.array(mx.view(a, view))


def assert_params_identical(got, want):
    """Same names in the same flatten order, same containers, shapes, dtypes and bits."""
    assert structure(got) == structure(want)
    got_flat, want_flat = tree_flatten(got), tree_flatten(want)
    assert [k for k, _ in got_flat] == [k for k, _ in want_flat]
    for (name, g), (_, w) in zip(got_flat, want_flat):
        assert g.shape == w.shape and g.dtype == w.dtype, name
        np.testing.assert_array_equal(bits(g), bits(w), err_msg=name)


def assert_close(got, want, rtol, atol, label=""):
    got_flat, want_flat = tree_flatten(got), tree_flatten(want)
    assert [k for k, _ in got_flat] == [k for k, _ in want_flat], label
    for (name, g), (_, w) in zip(got_flat, want_flat):
        assert g.shape == w.shape, (label, name)
        assert g.dtype == w.dtype, (label, name)
        if rtol == 0 and atol == 0:
            np.testing.assert_array_equal(
                np.array(g.astype(mx.float32)),
                np.array(w.astype(mx.float32)),
                err_msg=f"{label} {name}",
            )
        else:
            np.testing.assert_allclose(
                np.array(g.astype(mx.float32)),
                np.array(w.astype(mx.float32)),
                rtol=rtol,
                atol=atol,
                err_msg=f"{label} {name}",
            )


def rng_state() -> np.ndarray:
    return np.array(mx.random.state[0])


def select(tree, mask):
    """The entries of ``tree`` where ``mask`` is not ``False``, shaped as ``trainable_parameters()``.

    Dict entries masked out disappear; list entries become ``{}`` placeholders.
    """
    if mask is False:
        return {}
    if isinstance(tree, dict):
        return {k: select(v, mask[k]) for k, v in tree.items() if mask[k] is not False}
    if isinstance(tree, list):
        return [select(v, m) for v, m in zip(tree, mask)]
    return tree


# --- parameters and calls -------------------------------------------------------------


def params_for(case, seed: int):
    """Keyed init, then perturbed so that no parameter sits at a symmetric value (ones, zeros).

    Running variances stay positive (a negative one is a NaN in evaluation mode).
    """
    params = make(case, FUNCTIONAL).init(mx.random.key(seed))
    counter = iter(range(10_000))

    def perturb(path, a):
        if not is_float(a):
            return a
        noise = 0.3 * normal(seed * 1000 + next(counter), *a.shape).astype(a.dtype)
        return mx.abs(a + noise) + 0.1 if path.endswith("running_var") else a + noise

    return tree_map_with_path(perturb, params)


def mlx_with(case, params):
    """The mlx.nn module of ``case`` holding ``params``."""
    module = make(case, MLX)
    module.update(params)
    return module


def cotangent_loss(out: mx.array) -> mx.array:
    """A scalar loss with a non-uniform cotangent (sum() would zero many norm gradients)."""
    if isinstance(out, tuple):  # several outputs (LSTM's hidden and cell states)
        return sum(cotangent_loss(o) * (i + 1) for i, o in enumerate(out))
    weights = normal(777, *out.shape).astype(out.dtype)
    return (out * weights).sum()


def channels(pair, training: bool = True, key=None) -> dict:
    """The keyword arguments ``pair.apply`` takes for ``training`` and ``key``."""
    kwargs = {}
    if pair.takes_training:
        kwargs["training"] = training
    if pair.takes_key:
        kwargs["key"] = key
    return kwargs


def output_of(pair, result):
    """``apply``'s output without the updates of a stateful pair."""
    return result[0] if pair.stateful else result


def run_pair(pair, params, inputs, training: bool = True, key=None, seed: int = CALL_SEED):
    """``(output, params after the call)``: updates merged in, global RNG reseeded first."""
    mx.random.seed(seed)
    result = pair.apply(params, *inputs, **channels(pair, training, key))
    if pair.stateful:
        out, updates = result
        return out, F.merge_updates(params, updates)
    return result, params


def run_module(module, inputs, training: bool = True, seed: int = CALL_SEED):
    """``(output, parameters after the call)`` of a Module in ``training`` mode, RNG reseeded."""
    module.train(training)
    mx.random.seed(seed)
    out = module(*inputs)
    return out, module.parameters()
