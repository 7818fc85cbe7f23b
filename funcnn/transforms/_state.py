"""State a Module changes inside a transform: found, carried out to the caller's model, or refused.

The transforms call ``fn`` on rebuilt copies of the argument trees, so a
module that stores something during the call (BatchNorm's running statistics,
``self.running_mean = ...``) stores it on a copy.  Dropping that silently
would train a BatchNorm model whose statistics never move; instead:

* :class:`Tracker` snapshots the items of every Module of the rebuilt
  arguments (and the dicts and lists inside them) before ``fn`` runs;
* afterwards :meth:`Tracker.changes` lists what ``fn`` changed.  An array
  replacing an array, or an array stored under a new name, is an *update*:
  ``grad``/``value_and_grad``/``compile`` return its new value as an extra
  output and :func:`write_back` stores it in the caller's module at the same
  place.  Any other change (an item removed, a non-array stored, a plain
  attribute changed, a list grown) cannot be carried out and is an error
  naming the module and the item; so are updates under ``vmap``/``jvp``/``vjp``,
  whose outputs are batched or tangents.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional

import mlx.core as mx

from ..layers.base import Module
from ._structure import describe, snapshot_attrs

__all__ = ["Tracker", "write_back"]

_ARRAY = mx.array
_MISSING = object()

Plan = list  # [(module index, keys inside the module, key)] of each update, in order


class Tracker:
    """The Modules of one rebuilt argument tree, as they were before ``fn`` ran."""

    __slots__ = ("paths", "modules", "entries", "attrs", "show")

    def __init__(self, structure: Any, rebuilt: Any, show: Callable[[tuple], str]) -> None:
        self.paths = structure.module_paths or []
        self.modules = structure.modules(rebuilt) if self.paths else []
        self.show = show
        self.entries: list = []  # (module index, keys inside it, container, contents)
        for i, module in enumerate(self.modules):
            self._add(i, (), module)
        self.attrs = [snapshot_attrs(m) for m in self.modules]

    def _add(self, index: int, keys: tuple, container: Any) -> None:
        if isinstance(container, dict):
            contents = list(dict.items(container))
            items = contents
        else:
            contents = list(container)
            items = enumerate(contents)
        self.entries.append((index, keys, container, contents))
        for k, v in items:
            if isinstance(v, (dict, list)) and not isinstance(v, Module):
                self._add(index, keys + (k,), v)

    def changes(self, name: str, carried: bool) -> tuple[Plan, list]:
        """``(plan, new arrays)`` of the updates ``fn`` made; anything else raises ``ValueError``.

        With ``carried=False`` (vmap, jvp, vjp) every change raises.
        """
        plan: Plan = []
        arrays: list = []
        for index, keys, container, before in self.entries:
            if isinstance(container, dict):
                if len(container) == len(before) and all(
                    dict.get(container, k, _MISSING) is v for k, v in before
                ):
                    continue
                old = dict(before)
                for k in old:
                    if k not in container:
                        self._refuse(name, index, keys, k, "removed it", carried)
                for k, v in dict.items(container):
                    was = old.get(k, _MISSING)
                    if v is not was:
                        self._note(name, index, keys, k, was, v, carried, plan, arrays)
            else:
                if len(container) != len(before):
                    self._refuse(
                        name, index, keys, None,
                        f"changed the length of a list from {len(before)} to {len(container)}",
                        carried,
                    )
                for k, (v, was) in enumerate(zip(container, before)):
                    if v is not was:
                        self._note(name, index, keys, k, was, v, carried, plan, arrays)
        for index, module in enumerate(self.modules):
            if snapshot_attrs(module) != self.attrs[index]:
                now, then = vars(module), self.attrs[index]
                changed = sorted(
                    k for k in set(now) | set(then) if now.get(k, _MISSING) != then.get(k, _MISSING)
                )
                self._refuse(
                    name, index, (), None, f"changed its plain attribute(s) {changed}", carried
                )
        return plan, arrays

    def _note(self, name, index, keys, k, was, v, carried, plan, arrays) -> None:
        if type(v) is _ARRAY and (was is _MISSING or type(was) is _ARRAY):
            if not carried:
                self._refuse(name, index, keys, k, "stored a new array there", carried)
            plan.append((index, keys, k))
            arrays.append(v)
            return
        what = "stored" if was is _MISSING else f"replaced {describe(was)} by"
        self._refuse(name, index, keys, k, f"{what} {describe(v)}", carried)

    def _refuse(self, name, index, keys, k, what, carried) -> None:
        module = self.modules[index]
        where = self.show(self.paths[index])
        inner = ".".join(str(x) for x in (*keys, *(() if k is None else (k,))))
        item = f" item {inner!r}" if inner else ""
        if carried:
            rule = (
                f"funcnn.transforms.{name} carries out only arrays stored on a Module (such "
                "as BatchNorm's running statistics): this change would be lost"
            )
        else:
            rule = (
                f"funcnn.transforms.{name} cannot carry out a Module's state changes (its "
                "outputs are batched or tangents); call the model in evaluation mode "
                "(model.eval()), or use its functional pair, whose updates are explicit"
            )
        raise ValueError(
            f"{name}: fn changed the {type(module).__name__} at {where}:{item} {what}; {rule}."
        )


def write_back(modules: Optional[Sequence], plan: Plan, arrays: Sequence) -> None:
    """Store ``arrays`` in the caller's ``modules`` where :meth:`Tracker.changes` found them."""
    for (index, keys, k), value in zip(plan, arrays):
        container = modules[index]
        for key in keys:
            container = container[key] if not isinstance(container, dict) else dict.__getitem__(
                container, key
            )
        if isinstance(container, dict):
            dict.__setitem__(container, k, value)
        else:
            list.__setitem__(container, k, value)
