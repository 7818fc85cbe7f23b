"""Helpers of ``test_checkpoint.py`` and ``test_bad_inputs.py``.

* :func:`bits` and :func:`snapshot_dir` describe arrays bit for bit and a
  directory byte for byte, to check that a call changed nothing.
* :func:`execute` runs one call (``load``, ``load_like``, ``load_weights``,
  ``save``, ``save_weights``) on a standard model and reports what happened as
  a dict ``{type, message, unchanged}``.
* :func:`run_batch` runs :func:`execute` for a few cases in a fresh
  interpreter with a timeout.  Damaged files are read there, never in the
  pytest process: many failing evaluations of corrupt files in one process
  have deadlocked ``mx.eval`` (``/work/shared/reference/measured_facts.md``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import funcnn  # before mlx.core: funcnn picks its BLAS at import

import mlx.core as mx  # noqa: I001

HERE = os.path.dirname(os.path.abspath(__file__))

# Unsigned integer dtype of each width, to compare arrays bit for bit.
_UINT = {1: mx.uint8, 2: mx.uint16, 4: mx.uint32, 8: mx.uint64}


def bits(x: mx.array) -> tuple:
    """``(dtype, shape, raw bits)`` of ``x``: equal iff the arrays are bitwise equal."""
    raw = x.astype(mx.uint8) if x.dtype == mx.bool_ else x.view(_UINT[x.dtype.size])
    return (str(x.dtype), tuple(x.shape), raw.tolist())


def tree_bits(tree) -> list:
    """``bits`` of every array leaf of ``tree`` (a Module: its parameters), with its name."""
    if callable(getattr(tree, "parameters", None)):
        tree = tree.parameters()
    return [(k, bits(v) if isinstance(v, mx.array) else repr(v)) for k, v in funcnn.tree_flatten(tree)]


def snapshot_dir(directory: str) -> dict:
    """Every file (its bytes and mode) and folder under ``directory``."""
    out = {}
    for root, dirs, files in os.walk(directory):
        for d in dirs:
            out[os.path.relpath(os.path.join(root, d), directory)] = "<dir>"
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, directory)] = (fh.read(), os.stat(p).st_mode)
    return out


def make_model() -> funcnn.Module:
    """The model every load_weights/save_weights case uses (seeded)."""
    mx.random.seed(0)
    return funcnn.Sequential(funcnn.Linear(4, 3), funcnn.Linear(3, 2))


def execute(call: str, args: list, kwargs: dict, directory: str) -> dict:
    """Run ``call`` and report ``{type, message, unchanged}``.

    ``unchanged``: ``directory`` holds the same files (bytes and modes) as
    before and, for ``load_weights``, the model the same parameters.
    """
    model = make_model()
    before = (snapshot_dir(directory), tree_bits(model))
    err = None
    try:
        if call == "load":
            funcnn.load(*args, **kwargs)
        elif call == "load_like":
            funcnn.load(*args, like=make_model(), **kwargs)
        elif call == "load_weights":
            model.load_weights(*args, **kwargs)
        elif call == "save":
            funcnn.save(*args, **kwargs)
        elif call == "save_weights":
            (args[1] if len(args) > 1 else model).save_weights(args[0], **kwargs)
        else:
            raise AssertionError(f"unknown call {call}")
    except Exception as e:  # noqa: BLE001 - we report whatever is raised
        err = e
    after = (snapshot_dir(directory), tree_bits(model))
    return {
        "type": None if err is None else type(err).__name__,
        "mro": [] if err is None else [c.__name__ for c in type(err).__mro__],
        "message": "" if err is None else str(err),
        "unchanged": before == after,
    }


_SCRIPT = """
import json, sys
sys.path.insert(0, {here!r})
import _subproc
out = [_subproc.execute(**spec) for spec in json.loads(sys.stdin.read())]
print("RESULT" + json.dumps(out))
"""


def run_batch(specs: list[dict], timeout: float = 60) -> list[dict]:
    """``execute(**spec)`` for each spec in one fresh interpreter (JSON-able specs only)."""
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(here=HERE)],
        input=json.dumps(specs),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    for line in proc.stdout.splitlines():  # the exit status may be an abort at exit (see below)
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT"):])
    raise RuntimeError(f"subprocess failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def run_script(code: str, timeout: float = 60) -> dict:
    """Run ``code`` in a fresh interpreter; it must ``print(json.dumps(result))`` last."""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=HERE
    )
    # Not the exit status: MLX sometimes aborts at interpreter exit after an .npz load
    # ("terminate called without an active exception"), after the result is printed.
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"subprocess failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
