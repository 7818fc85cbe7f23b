"""``functional_call``: run any Module as a pure function of its parameters.

Example:
    >>> import mlx.core as mx
    >>> import funcnn as nn
    >>> model = nn.Linear(2, 1)
    >>> params = {"weight": mx.ones((1, 2)), "bias": mx.zeros(1)}
    >>> nn.functional_call(model, params, mx.array([[1.0, 2.0]])).item()
    3.0
    >>> model["weight"] is params["weight"]   # the model keeps its own arrays
    False
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx

from ..layers.base import Module
from ..tree import tree_flatten, tree_leaves, tree_unflatten

__all__ = ["functional_call", "stateful_call"]


def functional_call(module: Module, params: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Call ``module(*args, **kwargs)`` with the arrays of ``params`` in place of its own.

    ``params`` is a tree shaped like ``module.parameters()`` (nested dicts and
    lists, or a Module-shaped tree such as a gradient from
    :mod:`funcnn.transforms`).  It may name only some parameters; ``None`` or
    ``{}`` keeps the module's own value, and positions that are not parameters
    (private ``_name`` items, tuples) may hold anything but arrays.  Every path
    is checked before anything is written: an unknown key, an index out of
    range, an array for something that is not a parameter, or a mismatch of
    kind (a dict for an array, ...) is a ``ValueError`` naming its dotted path.

    Afterwards -- also when the call raises -- every container of the module
    (each module's items, its dicts and lists) holds exactly the objects it
    held before: the substituted arrays are taken out again.  So the call is
    pure and safe under ``mx.grad``, ``mx.vmap`` (e.g. over stacked parameters
    with ``in_axes=(0, None)``), ``mx.compile`` and :mod:`funcnn.transforms`:
    no tracer stays in the model.  Arrays not named in ``params`` are used as
    they are (constants of a transform).  Not thread-safe for one module: the
    substitution is visible to other threads during the call.

    A call that changes the module's state (a BatchNorm in training mode
    storing running statistics, a cache, an appended layer) would lose the
    change, so it raises ``ValueError`` naming what changed (the module is
    restored first): use :func:`stateful_call`, which returns the new arrays
    as explicit updates, or call the model in evaluation mode.

    Shared submodules (one Module object at several paths) follow
    ``Module.update``: each path writes into the same object, so the **last**
    path of ``params`` (in its order) wins, and under ``mx.grad`` the gradient
    flows to that last alias, the others getting zeros -- as with
    ``mlx.nn.value_and_grad``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> model = nn.Linear(3, 2)
        >>> stacked = nn.tree.tree_stack([model.parameters(), model.parameters()])
        >>> run = lambda p, x: nn.functional_call(model, p, x)
        >>> mx.vmap(run, in_axes=(0, None))(stacked, mx.ones((4, 3))).shape
        (2, 4, 2)
        >>> nn.functional_call(model, {"wieght": mx.ones((2, 3))}, mx.ones(3))
        Traceback (most recent call last):
        ...
        ValueError: functional_call: 'wieght' is not a parameter of the Linear (its parameters: 'weight', 'bias').
    """
    out, updates = _call("functional_call", module, params, args, kwargs)
    if updates:
        names = ", ".join(repr(k) for k, _ in tree_flatten(updates))
        raise ValueError(
            f"functional_call: the call stored new arrays in the module at {names} (its state, "
            "e.g. BatchNorm's running statistics in training mode); functional_call restores "
            "the module, so they would be lost.  Use funcnn.stateful_call(module, params, ...) "
            "to receive them as updates, or call module.eval() first."
        )
    return out


def stateful_call(module: Module, params: Any, /, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """:func:`functional_call` that returns the state the call changed: ``(output, updates)``.

    ``updates`` is a partial tree of the module's items (``{}`` where nothing
    changed) holding every array the call stored in the module -- BatchNorm's
    running statistics in training mode -- computed from ``params``.  The
    module itself is left as it was; apply the updates with
    ``module.update(updates)`` or, for a parameter tree,
    :func:`funcnn.functional.merge_updates`.  Under a transform the updates are
    outputs like any other.  Changes that are not new arrays (an item removed,
    a new item, a list grown) raise ``ValueError``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm(3))
        >>> out, updates = nn.stateful_call(model, model.parameters(), mx.ones((4, 2)))
        >>> sorted(updates["layers"][1]), model.layers[1].running_mean.tolist()
        (['running_mean', 'running_var'], [0.0, 0.0, 0.0])
        >>> model.update(updates).layers[1].running_mean.shape
        (3,)
    """
    return _call("stateful_call", module, params, args, kwargs)


def _call(name: str, module: Module, params: Any, args: tuple, kwargs: dict) -> tuple[Any, Any]:
    if not isinstance(module, Module):
        raise TypeError(
            f"{name}: module must be a funcnn Module; received {type(module).__name__}."
        )
    writes: list = []
    _plan(module, params, "", writes, owner=module, where="")
    saved = _snapshot(module)
    try:
        for container, key, value in writes:
            container[key] = value
        written = [(c, _contents(c)) for c, _, _ in saved]
        out = module(*args, **kwargs)
        updates = _changes(name, saved, written)
    finally:
        _restore(saved)
    return out, updates


def _skip(value: Any) -> bool:
    """Nothing to write at a non-parameter position: ``value`` holds no array."""
    return not any(isinstance(x, mx.array) for x in tree_leaves(value))


def _plan(target: Any, new: Any, path: str, writes: list, owner: Module, where: str) -> None:
    """Collect the ``(container, key, array)`` writes of ``new`` over ``target``; check paths."""
    if isinstance(target, dict):
        if not isinstance(new, dict):
            raise _error(path, f"expected a dict (the module has {_kind(target)} here)", new)
        if isinstance(target, Module):
            owner, where = target, path
            visible = [k for k, v in target.items() if target.valid_parameter_filter(target, k, v)]
        else:
            visible = [k for k, v in target.items() if isinstance(v, (dict, list, mx.array))]
        for k, v in new.items():
            sub = f"{path}.{k}" if path else str(k)
            if k not in visible:
                if k in target and _skip(v):
                    continue
                shown = ", ".join(repr(x) for x in visible) or "none"
                where_text = f"the {type(owner).__name__}" + (f" at {where!r}" if where else "")
                raise ValueError(
                    f"functional_call: {sub!r} is not a parameter of {where_text} "
                    f"(its parameters: {shown})."
                )
            _plan_child(target, k, v, sub, writes, owner, where)
    elif isinstance(target, list):
        if not isinstance(new, list):
            raise _error(path, "expected a list (the module has a list here)", new)
        if len(new) > len(target):
            raise ValueError(
                f"functional_call: params gives {len(new)} entries at {path!r}, "
                f"but the module has {len(target)}."
            )
        for i, v in enumerate(new):
            sub = f"{path}.{i}" if path else str(i)
            if not isinstance(target[i], (dict, list, mx.array)):
                if _skip(v):
                    continue
                raise ValueError(
                    f"functional_call: {sub!r} is not a parameter (the module has "
                    f"{_kind(target[i])} there)."
                )
            _plan_child(target, i, v, sub, writes, owner, where)
    else:  # pragma: no cover - guarded by the callers
        raise _error(path, "not a parameter", new)


def _plan_child(container: Any, key: Any, new: Any, path: str, writes: list, owner, where) -> None:
    if new is None or (type(new) is dict and not new):  # keep the module's own
        return
    current = container[key]
    if isinstance(current, mx.array):
        if not isinstance(new, mx.array):
            raise _error(path, "expected an array (the module has an array here)", new)
        writes.append((container, key, new))
    elif isinstance(new, mx.array):
        raise _error(path, f"expected a {type(current).__name__} of parameters, not an array", new)
    else:
        _plan(current, new, path, writes, owner, where)


def _kind(x: Any) -> str:
    if isinstance(x, Module):
        return f"a {type(x).__name__} module"
    return f"a {type(x).__name__}"


def _error(path: str, problem: str, received: Any) -> ValueError:
    shown = f"an array of shape {tuple(received.shape)}" if isinstance(received, mx.array) else (
        f"{type(received).__name__} {received!r}"[:80]
    )
    return ValueError(f"functional_call: at {path!r}: {problem}; received {shown}.")


def _contents(c: Any) -> list:
    return list(dict.items(c)) if isinstance(c, dict) else list(c)


def _snapshot(module: Module) -> list:
    """``(container, contents, path)`` for the module and every dict, list and module inside it.

    ``path`` is the first path (a tuple of keys) that reaches the container.
    """
    saved, seen, stack = [], set(), [(module, ())]
    while stack:
        c, path = stack.pop()
        if id(c) in seen:
            continue
        seen.add(id(c))
        contents = _contents(c)
        saved.append((c, contents, path))
        items = contents if isinstance(c, dict) else enumerate(contents)
        stack.extend((v, path + (k,)) for k, v in items if isinstance(v, (dict, list)))
    return saved


def _changes(name: str, saved: list, written: list) -> Any:
    """The updates tree of what the call changed in the containers, after the writes."""
    flat = []
    for (c, _, path), (_, before) in zip(saved, written):
        now = _contents(c)
        if _same(now, before):
            continue
        where = ".".join(str(k) for k in path) or "the module"
        if isinstance(c, dict):
            old = dict(before)
            for k, v in now:
                was = old.pop(k, None)
                if v is was:
                    continue
                if was is None:  # not expressible as an update of an existing entry
                    raise _state_error(name, where, f"added {k!r}")
                if not (isinstance(v, mx.array) and isinstance(was, mx.array)):
                    raise _state_error(name, where, f"stored {type(v).__name__} at {k!r}")
                flat.append((path + (k,), v))
            if old:
                raise _state_error(name, where, f"removed {sorted(map(str, old))}")
        else:
            if len(now) != len(before):
                raise _state_error(name, where, f"changed a list's length to {len(now)}")
            for i, (v, was) in enumerate(zip(now, before)):
                if v is not was:
                    if not (isinstance(v, mx.array) and isinstance(was, mx.array)):
                        raise _state_error(name, where, f"stored {type(v).__name__} at {i}")
                    flat.append((path + (i,), v))
    return tree_unflatten([(".".join(map(str, p)), v) for p, v in flat]) if flat else {}


def _same(now: list, before: list) -> bool:
    return len(now) == len(before) and all(
        (a is b) if not isinstance(a, tuple) else (a[0] == b[0] and a[1] is b[1])
        for a, b in zip(now, before)
    )


def _state_error(name: str, where: str, what: str) -> ValueError:
    return ValueError(
        f"{name}: the call changed the module's state at {where!r} ({what}); only arrays "
        "replacing arrays (such as BatchNorm's running statistics) can be returned as updates, "
        "and the module is restored after the call, so this change would be lost."
    )


def _restore(saved: list) -> None:
    for c, contents, _ in saved:
        if isinstance(c, dict):
            dict.clear(c)
            dict.update(c, contents)
        else:
            list.__setitem__(c, slice(None), contents)
