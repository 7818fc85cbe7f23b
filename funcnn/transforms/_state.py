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
from operator import is_
from typing import Any, Optional

import mlx.core as mx

from ._structure import describe

__all__ = ["Tracker", "write_back"]

_ARRAY = mx.array
_MISSING = object()

Plan = list  # [(module index, keys inside the module, key)] of each update, in order


class Tracker:
    """The containers Modules own in one rebuilt argument tree, as they were before ``fn`` ran.

    The structure lists them (each Module, and the dicts and lists inside it),
    so a snapshot is one generated function call plus a copy of each
    container's keys and values; :meth:`changes` compares by identity.
    """

    __slots__ = ("structure", "containers", "keys", "values", "show")

    def __init__(self, structure: Any, rebuilt: Any, show: Callable[[tuple], str]) -> None:
        self.structure = structure
        self.show = show
        self.containers = structure.containers(rebuilt)
        self.keys = [list(c) if isinstance(c, dict) else None for c in self.containers]
        self.values = [
            list(dict.values(c)) if isinstance(c, dict) else list(c) for c in self.containers
        ]

    def changes(self, name: str, carried: bool) -> tuple[Plan, list]:
        """``(plan, new arrays)`` of the updates ``fn`` made; anything else raises ``ValueError``.

        With ``carried=False`` (vmap, jvp, vjp) every change raises.
        """
        plan: Plan = []
        arrays: list = []
        for c, keys, before, at in zip(
            self.containers, self.keys, self.values, self.structure.tracked_at
        ):
            if isinstance(c, dict):
                if len(c) == len(before) and all(map(is_, dict.values(c), before)) and (
                    list(c) == keys
                ):
                    continue
                self._dict_changes(name, at, c, dict(zip(keys, before)), carried, plan, arrays)
            else:
                if len(c) == len(before) and all(map(is_, c, before)):
                    continue
                if len(c) != len(before):
                    self._refuse(
                        name, at, None,
                        f"changed the length of a list from {len(before)} to {len(c)}", carried,
                    )
                for k, (v, was) in enumerate(zip(c, before)):
                    if v is not was:
                        self._note(name, at, k, was, v, carried, plan, arrays)
        modules = [self.containers[i] for i in self.structure.module_slots]
        if list(map(vars, modules)) != self.structure.module_attrs:
            for index, (module, then) in enumerate(zip(modules, self.structure.module_attrs)):
                now = vars(module)
                changed = sorted(
                    k for k in set(now) | set(then) if now.get(k, _MISSING) != then.get(k, _MISSING)
                )
                if changed:
                    self._refuse(
                        name, (index, ()), None, f"changed its plain attribute(s) {changed}", carried
                    )
        return plan, arrays

    def _dict_changes(self, name, at, c, old, carried, plan, arrays) -> None:
        for k in old:
            if k not in c:
                self._refuse(name, at, k, "removed it", carried)
        for k, v in dict.items(c):
            was = old.get(k, _MISSING)
            if v is not was:
                self._note(name, at, k, was, v, carried, plan, arrays)

    def _note(self, name, at, k, was, v, carried, plan, arrays) -> None:
        if type(v) is _ARRAY and (was is _MISSING or type(was) is _ARRAY):
            if not carried:
                self._refuse(name, at, k, "stored a new array there", carried)
            plan.append((*at, k))
            arrays.append(v)
            return
        what = "stored" if was is _MISSING else f"replaced {describe(was)} by"
        self._refuse(name, at, k, f"{what} {describe(v)}", carried)

    def _refuse(self, name, at, k, what, carried) -> None:
        index, keys = at
        module = self.containers[self.structure.module_slots[index]]
        where = self.show(self.structure.module_paths[index])
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
