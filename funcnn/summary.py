"""``summary``: a Keras/Flax-style table of a model's modules, output shapes and parameters."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Optional

import mlx.core as mx

from .functional._pair import Pair
from .tree import tree_flatten

__all__ = ["summary", "ModelSummary", "SummaryRow"]

_MISSING = object()
_COLUMNS = ("Path", "Type", "Output shape", "Trainable", "Frozen", "Dtype", "Bytes")
_I = range(len(_COLUMNS))


@dataclass(frozen=True)
class SummaryRow:
    """One module (or, for a pair, one parameter group) of a :class:`ModelSummary`.

    ``output_shapes`` holds one entry per call: a shape tuple for an array, the
    same structure (tuple, list, dict) for containers, ``None`` for ``None``.
    Counts, ``dtypes`` and ``nbytes`` cover the module's *own* parameters only.
    ``shared_with`` is, for a module met again under this path, its first path.
    """

    path: str
    type: str
    output_shapes: list
    trainable: int
    frozen: int
    dtypes: str
    nbytes: int
    shared_with: Optional[str] = None


@dataclass
class ModelSummary:
    """What :func:`summary` returns; ``str()`` renders it as an aligned table."""

    rows: list
    inputs: str
    total_params: int
    trainable_params: int
    frozen_params: int
    total_bytes: int
    name: str = ""

    def __str__(self) -> str:
        cells = [
            [
                r.path or "(root)",
                r.type if r.shared_with is None else f"{r.type} (= {r.shared_with or '(root)'})",
                _format_calls(r.output_shapes),
                f"{r.trainable:,}",
                f"{r.frozen:,}",
                r.dtypes or "-",
                _human_bytes(r.nbytes) if r.nbytes else "-",
            ]
            for r in self.rows
        ]
        widths = [max(len(c[i]) for c in [list(_COLUMNS), *cells]) for i in _I]
        numeric = {3, 4, 6}

        def line(cs: list) -> str:
            padded = (c.rjust(w) if i in numeric else c.ljust(w) for i, c, w in zip(_I, cs, widths))
            return "  ".join(padded).rstrip()

        rule = "-" * len(line(list(_COLUMNS)))
        return "\n".join(
            [
                f"{self.name} summary, inputs: {self.inputs}",
                rule,
                line(list(_COLUMNS)),
                rule,
                *(line(c) for c in cells),
                rule,
                f"Total params: {self.total_params:,} ({_human_bytes(self.total_bytes)}), "
                f"trainable: {self.trainable_params:,}, frozen: {self.frozen_params:,}",
            ]
        )

    __repr__ = __str__


def summary(model: Any, *example_inputs: Any, **example_kwargs: Any) -> ModelSummary:
    """Tabulate ``model``'s modules: output shapes, trainable/frozen parameters, dtypes, bytes.

    The model is called once on the example inputs, but MLX is lazy and nothing
    is evaluated, so the inputs may be placeholders (``mx.zeros(shape)``) and a
    huge forward costs only its graph.  Each sub-module's outputs are captured
    by wrapping, for the duration of the call, ``__call__`` of the classes in
    the model; the wrappers, and every item and attribute of every module, are
    restored afterwards, even if the call raises.  Random layers still draw
    from MLX's global random state, as any call would.

    Counts, dtypes and bytes of a row are the module's own parameters (arrays
    stored on it, directly or in its lists and dicts, not in sub-modules).  A
    module shared under several paths gets a row per path; the totals count
    every array once.  Parameter-less and uncalled modules get rows too (an
    uncalled one shows ``-`` as output shape).

    For a functional pair pass its parameters first: ``summary(pair, params,
    *inputs)``.  Its ``apply`` is opaque, so there is one output row (the
    pair's name, path ``""``) plus one row per parameter group (the leaves that
    share a parent path, e.g. ``layers.0``).  Parameters are trainable where
    ``pair.trainable(params)`` says so (state, such as BatchNorm's running
    statistics, is frozen, as in the facade), and a stateful pair's row shows
    its output (not its updates).

    Args:
        model: A funcnn :class:`~funcnn.Module` (an :class:`mlx.nn.Module` works
            too), or a :class:`~funcnn.functional.Pair` followed by its params.
        *example_inputs: Positional inputs of one call.
        **example_kwargs: Keyword inputs of one call.

    Returns:
        A :class:`ModelSummary` (``rows`` and totals; ``print`` it for the table).

    Raises:
        Exception: Whatever the model raises, with a note naming the innermost
            sub-module that raised it.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> from funcnn.summary import summary
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> print(summary(model, mx.zeros((16, 4))))
        Sequential summary, inputs: (16, 4)
        ---------------------------------------------------------------------
        Path      Type        Output shape  Trainable  Frozen  Dtype    Bytes
        ---------------------------------------------------------------------
        (root)    Sequential  (16, 2)               0       0  -            -
        layers.0  Linear      (16, 8)              40       0  float32  160 B
        layers.1  ReLU        (16, 8)               0       0  -            -
        layers.2  Linear      (16, 2)              18       0  float32   72 B
        ---------------------------------------------------------------------
        Total params: 58 (232 B), trainable: 58, frozen: 0
        >>> summary(model, mx.zeros((16, 4))).trainable_params
        58
    """
    if isinstance(model, Pair):
        if not example_inputs:
            raise TypeError("summary(pair, params, *inputs): the pair's params are missing")
        return _summarize_pair(model, example_inputs[0], example_inputs[1:], example_kwargs)
    if not (isinstance(model, dict) and hasattr(type(model), "named_modules")):
        kind = type(model).__name__
        raise TypeError(f"summary expects a Module or a functional Pair, not {kind}")

    named = _walk("", model)
    paths: dict[int, list[str]] = {}
    for path, module in named:
        paths.setdefault(id(module), []).append(path)
    recorder = _Recorder(set(paths))
    # Capture every call's original before patching any, so that a subclass's
    # wrapper calls the real method rather than its base class's wrapper.
    classes = {type(m) for _, m in named if callable(getattr(type(m), "__call__", None))}
    originals = {c: (c.__dict__.get("__call__", _MISSING), c.__call__) for c in classes}
    saved = _snapshot([m for _, m in named])
    try:
        for cls, (_, call) in originals.items():
            cls.__call__ = _wrap(cls, call, recorder)
        model(*example_inputs, **example_kwargs)
    except BaseException as error:
        failed = recorder.failed
        if failed is not None and failed[1] is error and hasattr(error, "add_note"):
            where = " / ".join(p or "(root)" for p in paths[failed[0]])
            error.add_note(f"funcnn.summary: raised in sub-module {where}")
        raise
    finally:
        for cls, (own, _) in originals.items():
            if own is _MISSING:
                delattr(cls, "__call__")
            else:
                cls.__call__ = own
        _restore(saved)

    rows = []
    for path, module in named:
        own = _own_arrays(module, module.valid_parameter_filter)
        trainable = {id(a) for a in _own_arrays(module, module.trainable_parameter_filter)}
        row = _row(path, type(module).__name__, recorder.calls.get(id(module), []), own, trainable)
        first = paths[id(module)][0]
        rows.append(row if first == path else dataclasses.replace(row, shared_with=first))
    all_params = _unique(a for _, a in tree_flatten(model.parameters()))
    trainable_ids = {id(a) for _, a in tree_flatten(model.trainable_parameters())}
    return _finish(type(model).__name__, rows, all_params, trainable_ids, example_inputs,
                   example_kwargs)


class _Recorder:
    def __init__(self, ids: set) -> None:
        self.ids = ids
        self.calls: dict[int, list] = {}
        self.failed: Optional[tuple[int, BaseException]] = None


def _wrap(cls: type, call: Any, recorder: _Recorder) -> Any:
    @functools.wraps(call)
    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
        # ``super().__call__`` from a subclass reaches this wrapper too: only
        # the instance's own class records, so that a call is seen once.
        if type(self) is not cls or id(self) not in recorder.ids:
            return call(self, *args, **kwargs)
        try:
            out = call(self, *args, **kwargs)
        except BaseException as error:
            # The innermost module that raised this very exception is the culprit.
            if recorder.failed is None or recorder.failed[1] is not error:
                recorder.failed = (id(self), error)
            raise
        recorder.calls.setdefault(id(self), []).append(_shape_tree(out))
        return out

    return __call__


def _walk(prefix: str, module: Any) -> list:
    # Depth-first in insertion order (``named_modules`` lists children reversed).
    found = [(prefix, module)]
    for key, child in tree_flatten(module.children(), is_leaf=module.is_module):
        found += _walk(f"{prefix}.{key}" if prefix else key, child)
    return found


def _own_arrays(module: Any, keep: Any) -> list:
    found: list = []

    def own(owner: Any, key: str, value: Any) -> bool:
        return not module.is_module(value) and keep(owner, key, value)

    module.filter_and_map(own, map_fn=lambda x: isinstance(x, mx.array) and found.append(x))
    return found


def _snapshot(modules: list) -> list:
    # Shallow copies of every mutable container a forward could touch (module
    # items, nested lists/dicts/sets, attributes), to be put back in place so
    # that object identities survive (a forward may update running stats).
    saved: list = []
    seen: set = set()

    def visit(obj: Any) -> None:
        if id(obj) in seen or not isinstance(obj, (dict, list, set)):
            return
        seen.add(id(obj))
        saved.append((obj, dict(obj) if isinstance(obj, dict) else list(obj)))
        for v in obj.values() if isinstance(obj, dict) else obj:
            if not (isinstance(v, dict) and hasattr(type(v), "named_modules")):
                visit(v)

    for m in modules:
        visit(m)
        visit(vars(m))
    return saved


def _restore(saved: list) -> None:
    # Through the base types' methods: Module overrides ``update``.
    for obj, items in saved:
        base = next(t for t in (dict, list, set) if isinstance(obj, t))
        base.clear(obj)
        (list.extend if base is list else base.update)(obj, items)


def _summarize_pair(pair: Pair, params: Any, inputs: tuple, kwargs: dict) -> ModelSummary:
    out = pair.apply(params, *inputs, **kwargs)
    if pair.stateful:  # (output, updates): the row shows the output
        out = out[0]
    groups: dict[str, list] = {"": []}
    for key, leaf in tree_flatten(params):
        if isinstance(leaf, mx.array):
            groups.setdefault(key.rpartition(".")[0], []).append(leaf)
    # State (BatchNorm's running statistics) counts as frozen, as in the facade.
    trainable = {
        id(a) for (_, a), (_, ok) in zip(tree_flatten(params), tree_flatten(pair.trainable(params)))
        if ok and isinstance(a, mx.array)
    }
    rows = [
        _row(path, pair.name if path == "" else "params", [_shape_tree(out)] if path == "" else [],
             arrays, trainable)
        for path, arrays in groups.items()
    ]
    all_params = _unique(a for _, a in tree_flatten(params) if isinstance(a, mx.array))
    return _finish(pair.name, rows, all_params, trainable, inputs, kwargs)


def _row(path: str, kind: str, calls: list, arrays: list, trainable_ids: set) -> SummaryRow:
    arrays = _unique(arrays)
    dtypes = dict.fromkeys(str(a.dtype).rpartition(".")[2] for a in arrays)  # "mlx.core.float16"
    trainable = sum(a.size for a in arrays if id(a) in trainable_ids)
    return SummaryRow(path, kind, calls, trainable, sum(a.size for a in arrays) - trainable,
                      ", ".join(dtypes), sum(a.nbytes for a in arrays))


def _finish(
    name: str, rows: list, params: list, trainable_ids: set, args: tuple, kwargs: dict
) -> ModelSummary:
    total = sum(a.size for a in params)
    trainable = sum(a.size for a in params if id(a) in trainable_ids)
    inputs = [_format(_shape_tree(a)) for a in args]
    inputs += [f"{k}={_format(_shape_tree(v))}" for k, v in kwargs.items()]
    return ModelSummary(rows, ", ".join(inputs) or "-", total, trainable, total - trainable,
                        sum(a.nbytes for a in params), name)


def _unique(arrays: Any) -> list:
    return list({id(a): a for a in arrays}.values())


def _shape_tree(x: Any) -> Any:
    # Reads only metadata: ``.shape`` of a lazy array evaluates nothing.
    if isinstance(x, mx.array):
        return tuple(x.shape)
    if isinstance(x, (list, tuple)):
        return (list if isinstance(x, list) else tuple)(_shape_tree(v) for v in x)
    if isinstance(x, dict):
        return {k: _shape_tree(v) for k, v in x.items()}
    if x is None:
        return None
    return repr(x) if isinstance(x, (str, bool)) else type(x).__name__


def _format(s: Any) -> str:
    if isinstance(s, tuple) and all(isinstance(d, int) for d in s):
        return "(" + ", ".join(map(str, s)) + ("," if len(s) == 1 else "") + ")"
    if isinstance(s, (list, tuple)):
        inner = ", ".join(_format(v) for v in s)
        return f"[{inner}]" if isinstance(s, list) else f"({inner}{',' if len(s) == 1 else ''})"
    if isinstance(s, dict):
        return "{" + ", ".join(f"{k}: {_format(v)}" for k, v in s.items()) + "}"
    return str(s)


def _format_calls(calls: list) -> str:
    if not calls:
        return "-"
    if all(c == calls[0] for c in calls):
        return _format(calls[0]) + (f" x{len(calls)}" if len(calls) > 1 else "")
    return "; ".join(_format(c) for c in calls)


def _human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size, unit = float(n), "B"
    for unit in ("KB", "MB", "GB", "TB"):
        size /= 1024
        if size < 1024:
            break
    return f"{size:.1f} {unit}"
