"""Direct walks behind :class:`funcnn.Module`'s tree operations.

:mod:`mlx.nn` builds ``parameters()``, ``children()``, ``leaf_modules()``,
``apply_to_modules`` (hence ``freeze``, ``named_modules``, ...) and
``load_weights`` from one generic walk, ``filter_and_map``, that calls a
filter, a leaf test and a map function on every entry and often flattens the
result again.  Each function here does one of them directly -- exact type
tests first, no callbacks -- and gives the same result in the same order, with
the same errors.

A module takes these paths only while it keeps Module's own hooks (the
methods mlx.nn looks up on it during the walk), checked on its class and on
the instance at every call; nothing is cached.  Otherwise the generic code
(``_unwrap`` here, and :mod:`funcnn.layers.base`, which follows mlx.nn line by
line) runs for that module.

:mod:`funcnn.layers.base` imports this file and, once ``Module`` exists, hands
the class over with :func:`bind`; this file imports nothing of the facade.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Optional

import mlx.core as mx

from ..tree import tree_flatten

A = mx.array

# Set by bind(): the Module class, and its hooks as Module defines them (a
# class or instance with another one, or Module itself patched, takes the
# generic path).
Module: Any = None
ORIGINAL: dict = {}
_HOOKS = (
    "items", "children", "filter_and_map", "valid_child_filter",
    "valid_parameter_filter", "trainable_parameter_filter", "is_module",
    "_validate_keys", "apply_to_modules", "parameters", "update",
    "__getitem__", "__setitem__", "__contains__",
)
_CHILDREN = _FILTER_AND_MAP = _VALID_CHILD = _VALID_PARAM = _VALIDATE_KEYS = None
_DICT_ITEMS = dict.items
_ITEM_METHODS = ("items", "__getitem__", "__setitem__", "__contains__")


def bind(module_class: type) -> None:
    """Give the walks the Module class (called once, by :mod:`funcnn.layers.base`)."""
    global Module, _CHILDREN, _FILTER_AND_MAP, _VALID_CHILD, _VALID_PARAM, _VALIDATE_KEYS
    Module = module_class
    ORIGINAL.update((name, getattr(module_class, name)) for name in _HOOKS)
    _CHILDREN = ORIGINAL["children"]
    _FILTER_AND_MAP = ORIGINAL["filter_and_map"]
    _VALID_CHILD = ORIGINAL["valid_child_filter"]
    _VALID_PARAM = ORIGINAL["valid_parameter_filter"]
    _VALIDATE_KEYS = ORIGINAL["_validate_keys"]


# ----------------------------------------------------------------------
# mlx.nn's generic walk (filter_and_map's recursion) and shared pieces
# ----------------------------------------------------------------------


def identity(x: Any) -> Any:
    return x


def not_container(module: Any, key: str, value: Any) -> bool:
    return not isinstance(value, (Module, dict, list))


def invalid_type(value: Any) -> ValueError:
    return ValueError(f"Received invalid type: {type(value).__name__}.")

def unwrap(owner, key, value, filter_fn, map_fn, is_leaf_fn):
    """mlx.nn's ``_unwrap``: one entry of ``filter_and_map``, statement for statement."""
    if is_leaf_fn(owner, key, value):
        return map_fn(value)
    if isinstance(value, Module):
        return {
            k: unwrap(value, k, v, filter_fn, map_fn, is_leaf_fn)
            for k, v in value.items()
            if filter_fn(value, k, v)
        }
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            sub = f"{key}.{k}"
            out[k] = (
                unwrap(owner, sub, v, filter_fn, map_fn, is_leaf_fn)
                if filter_fn(owner, sub, v)
                else {}
            )
        return out
    if isinstance(value, list):
        out_list = []
        for i, v in enumerate(value):
            sub = f"{key}.{i}"
            out_list.append(
                unwrap(owner, sub, v, filter_fn, map_fn, is_leaf_fn)
                if filter_fn(owner, sub, v)
                else {}
            )
        return out_list
    raise RuntimeError("Unexpected leaf found while traversing the module")


def uses_own(module: Any, *names: str) -> bool:
    """Whether ``module`` (class and instance) gets every hook in ``names`` from Module."""
    if not _class_uses_own(type(module), names):
        return False
    own = vars(module)
    for name in names:
        if name in own:
            return False
    return True


def _class_uses_own(cls: type, names: tuple) -> bool:
    for name in names:
        if getattr(cls, name) is not ORIGINAL[name]:
            return False
    return True


def _own_children(module: Any) -> bool:
    """Whether ``module.children()`` is Module's (filter_and_map, valid_child_filter, items too).

    False for anything but a module: a user's ``children()`` can put any
    object on a walk's stack, and mlx.nn then calls its ``children``.
    """
    cls = type(module)
    try:
        if (
            cls.children is not _CHILDREN
            or cls.filter_and_map is not _FILTER_AND_MAP
            or cls.valid_child_filter is not _VALID_CHILD
            or cls.items is not _DICT_ITEMS
        ):
            return False
        own = module.__dict__
    except AttributeError:  # not a module
        return False
    return not (
        "children" in own or "filter_and_map" in own
        or "valid_child_filter" in own or "items" in own
    )


# In the walks below, ``"_" <= k < "`"`` is ``k.startswith("_")`` for a str
# key at a third of the cost ("`" follows "_"); any other key raises
# TypeError there, and the module is then redone the generic way, which
# raises mlx.nn's own error (or none, as mlx.nn).


# ----------------------------------------------------------------------
# parameters() and trainable_parameters()
# ----------------------------------------------------------------------


def parameter_tree(module: Module, trainable: bool) -> dict:
    """``module.filter_and_map`` with the (trainable) parameter filter, as one walk.

    The caller checks the root's hooks; below it mlx.nn only calls ``items()``
    and reads ``_no_grad``, as this walk does.
    """
    no_grad = None
    if trainable:
        try:
            no_grad = module._no_grad
        except AttributeError:
            no_grad = None
        if type(no_grad) is not set:  # odd state: mlx.nn's walk decides (and raises)
            return _generic_parameters(module, trainable)
    out = {}
    try:
        for k, v in module.items():
            t = type(v)
            if t is A:
                if not ("_" <= k < "`" or (no_grad and k in no_grad)):
                    out[k] = v
            elif isinstance(v, Module):
                if not ("_" <= k < "`" or (no_grad and k in no_grad)):
                    out[k] = parameter_tree(v, trainable)
            elif t is list or t is dict or isinstance(v, (dict, list, A)):
                if not ("_" <= k < "`" or (no_grad and k in no_grad)):
                    out[k] = _parameter_entry(k, v, no_grad, trainable)
    except TypeError:
        return _generic_parameters(module, trainable)
    return out


def _parameter_entry(key: str, value: Any, no_grad: Optional[set], trainable: bool) -> Any:
    """``_unwrap`` of a kept member or nested entry; ``key`` is its dotted name."""
    if isinstance(value, Module):
        return parameter_tree(value, trainable)
    if isinstance(value, dict):
        return {
            k: _parameter_item(f"{key}.{k}", v, no_grad, trainable) for k, v in value.items()
        }
    if isinstance(value, list):
        # Names only where _no_grad needs them: "key.i" cannot fail to format.
        out = []
        for i, v in enumerate(value):
            if no_grad and f"{key}.{i}" in no_grad:
                out.append({})
            elif type(v) is A:
                out.append(v)
            elif isinstance(v, Module):
                out.append(parameter_tree(v, trainable))
            elif isinstance(v, (dict, list, A)):
                out.append(_parameter_entry(f"{key}.{i}", v, no_grad, trainable))
            else:
                out.append({})
        return out
    return value  # an array subclass: a leaf


def _parameter_item(key: str, v: Any, no_grad: Optional[set], trainable: bool) -> Any:
    # An entry of a list/dict member: kept, or mlx.nn's ``{}`` placeholder.
    if type(v) is A:
        return {} if no_grad and key in no_grad else v
    if isinstance(v, (dict, list, A)) and not (no_grad and key in no_grad):
        return _parameter_entry(key, v, no_grad, trainable)
    return {}


def _generic_parameters(module: Module, trainable: bool) -> dict:
    name = "trainable_parameter_filter" if trainable else "valid_parameter_filter"
    filter_fn = ORIGINAL[name]
    return {
        k: unwrap(module, k, v, filter_fn, identity, not_container)
        for k, v in module.items()
        if filter_fn(module, k, v)
    }


# ----------------------------------------------------------------------
# children(), leaf_modules(), apply_to_modules()
# ----------------------------------------------------------------------


def child_tree(module: Module) -> dict:
    """``children()``: members that are dicts or lists, with modules as leaves."""
    out = {}
    for k, v in module.items():
        if type(v) is A:
            continue
        if isinstance(v, Module):
            out[k] = v
        elif isinstance(v, (dict, list)):
            out[k] = _child_entry(v)
    return out


def _child_entry(value: Any) -> Any:
    # A dict/list member (not a module).  The default child filter ignores
    # keys, so unlike mlx.nn this builds no dotted names.
    if isinstance(value, dict):
        return {k: _child_item(v) for k, v in value.items()}
    return [_child_item(v) for v in value]


def _child_item(v: Any) -> Any:
    if isinstance(v, Module):
        return v
    return _child_entry(v) if isinstance(v, (dict, list)) else {}


def leaf_tree(module: Module) -> dict:
    """``leaf_modules()``: as :func:`child_tree`, but entering modules that have children."""
    return {k: _leaf_entry(v) for k, v in module.items() if isinstance(v, (dict, list))}


def _leaf_entry(value: Any) -> Any:
    if isinstance(value, Module):
        return value if is_leaf_module(value) else leaf_tree(value)
    if isinstance(value, dict):
        return {k: _leaf_entry(v) if isinstance(v, (dict, list)) else {} for k, v in value.items()}
    return [_leaf_entry(v) if isinstance(v, (dict, list)) else {} for v in value]


def is_leaf_module(module: Module) -> bool:
    """mlx.nn's ``len(tree_flatten(module.children())) == 0``, without building either."""
    if not _own_children(module):
        return not _has_leaf(module.children())
    for v in dict.values(module):
        if isinstance(v, Module):
            if _has_leaf(v):
                return False
        elif isinstance(v, (dict, list)) and _has_module_with_leaf(v):
            return False
    return True


def _has_module_with_leaf(container: Any) -> bool:
    # children() keeps a container's modules and containers; the rest become {}.
    values = (v for _, v in container.items()) if isinstance(container, dict) else container
    for v in values:
        if isinstance(v, Module):
            if _has_leaf(v):
                return True
        elif isinstance(v, (dict, list)) and _has_module_with_leaf(v):
            return True
    return False


def _has_leaf(tree: Any) -> bool:
    """Whether ``mlx.utils.tree_flatten(tree)`` would yield anything."""
    if isinstance(tree, (list, tuple)):
        values = tree
    elif isinstance(tree, dict):
        values = (v for _, v in tree.items())
    else:
        return True
    for v in values:
        if _has_leaf(v):
            return True
    return False


def iter_modules(root: Module) -> Iterator[tuple[str, Module]]:
    """``apply_to_modules``' walk: ``(path, module)`` in MLX's stack order.

    A module's children are read when the walk resumes, that is after the
    caller has handled the module, as mlx.nn reads them after ``apply_fn``.
    The caller checks the root's ``is_module`` (the leaf test of the
    generic path).
    """
    stack = [("", root)]
    pop, push = stack.pop, stack.append
    while stack:
        prefix, module = pop()
        yield prefix, module
        # _own_children(module), inlined: this test is most of the walk's cost.
        cls = type(module)
        try:
            fast = (
                cls.children is _CHILDREN
                and cls.filter_and_map is _FILTER_AND_MAP
                and cls.valid_child_filter is _VALID_CHILD
                and cls.items is _DICT_ITEMS
            )
            own = module.__dict__
        except AttributeError:  # not a module
            fast = False
        if fast and not (
            "children" in own or "filter_and_map" in own
            or "valid_child_filter" in own or "items" in own
        ):
            for k, v in _DICT_ITEMS(module):
                if type(v) is A:
                    continue
                # mlx.nn's name, f"{'.' + prefix}.{k}"[1:], in one step.
                if isinstance(v, Module):
                    push((f"{prefix}.{k}" if prefix else f"{k}", v))
                elif isinstance(v, (dict, list)):
                    _push_nested(f".{prefix}.{k}" if prefix else f".{k}", v, push)
        else:
            base = "." + prefix if prefix else ""
            stack.extend(tree_flatten(module.children(), prefix=base, is_leaf=root.is_module))


def _push_nested(path: str, container: Any, push: Callable) -> None:
    # tree_flatten's order and names over children()'s nested entries.
    items = container.items() if isinstance(container, dict) else enumerate(container)
    for k, v in items:
        if isinstance(v, Module):
            push((f"{path}.{k}"[1:], v))
        elif isinstance(v, (dict, list)):
            _push_nested(f"{path}.{k}", v, push)


# ----------------------------------------------------------------------
# freeze()
# ----------------------------------------------------------------------


def own_parameter_keys(module: Module) -> Optional[list]:
    """The keys ``freeze()`` computes for ``module`` alone: its arrays, not its sub-modules'.

    ``None`` when the generic way must decide (hooks that are not Module's
    own, a key that is not a string).
    """
    if not isinstance(module, Module):
        return None
    cls, own = type(module), module.__dict__
    if (
        cls.filter_and_map is not _FILTER_AND_MAP
        or cls.valid_parameter_filter is not _VALID_PARAM
        or cls._validate_keys is not _VALIDATE_KEYS
        or cls.items is not _DICT_ITEMS
        or "filter_and_map" in own or "valid_parameter_filter" in own
        or "_validate_keys" in own or "items" in own
    ):
        return None
    keys = []
    try:
        for k, v in _DICT_ITEMS(module):
            t = type(v)
            if t is A:
                if not "_" <= k < "`":
                    keys.append(k)
            elif isinstance(v, Module):
                continue
            elif t is list or t is dict or isinstance(v, (dict, list, A)):
                if not "_" <= k < "`":
                    _array_keys(k, v, keys)
    except TypeError:
        return None
    return keys


def _array_keys(key: str, value: Any, keys: list) -> None:
    # Dotted names of the arrays in a member, skipping sub-modules (freeze's filter).
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:  # an array subclass
        keys.append(key)
        return
    for k, v in items:
        sub = f"{key}.{k}"
        if type(v) is A:
            keys.append(sub)
        elif not isinstance(v, Module) and isinstance(v, (dict, list, A)):
            _array_keys(sub, v, keys)


# ----------------------------------------------------------------------
# update() and load_weights()
# ----------------------------------------------------------------------


def update_parameters(dst: Any, new: Any, strict: bool) -> None:
    """mlx.nn's ``Module.update`` walk, statement for statement.

    Only the array tests differ: ``isinstance(x, mx.array)`` is slow for an
    ``x`` that is not an array (mx.array's metaclass is not ``type``), so the
    exact type and "is a Module" come first.
    """
    if type(new) is dict or isinstance(new, dict):
        for k in new:
            if k in dst:
                current = dst[k]
                value = new[k]
                if type(current) is A or (
                    not isinstance(current, Module) and isinstance(current, A)
                ):
                    if strict and type(value) is not A and not isinstance(value, A):
                        raise invalid_type(value)
                    dst[k] = value
                else:
                    update_parameters(current, value, strict)
            elif strict:
                raise ValueError(f'Module does not have parameter named "{k}".')
    elif isinstance(new, list):
        for i in range(len(new)):
            if i >= len(dst):
                if strict:
                    raise ValueError(
                        f"List index {i} is out of bounds for destination of length {len(dst)}."
                    )
                continue
            current = dst[i]
            value = new[i]
            if type(current) is A or (
                not isinstance(current, Module) and isinstance(current, A)
            ):
                if strict and type(value) is not A and not isinstance(value, A):
                    raise invalid_type(value)
                dst[i] = value
            else:
                update_parameters(current, value, strict)
    elif strict:
        raise invalid_type(new)


class _Flattener:
    """:func:`flat_parameters`' walk: mirrors ``parameters()`` and ``tree_flatten``."""

    def __init__(self) -> None:
        self.names: dict = {}  # dotted name -> array, as tree_flatten(destination={})
        self.slots: list = []  # (container, key) of each array, in order
        self.safe = True  # whether slots are where update(tree_unflatten(...)) writes
        self.containers: set = set()  # ids, to spot a container reached twice
        self.visits = 0

    def module(self, module: Module, prefix: str) -> None:
        self._enter(module)
        if self.safe:  # update() finds and writes items with dict's own methods
            self.safe = (
                _class_uses_own(type(module), _ITEM_METHODS) and "items" not in module.__dict__
            )
        for k, v in module.items():
            t = type(v)
            if t is A or t is list or t is dict or isinstance(v, (dict, list, A)):
                if not k.startswith("_"):
                    self.value(module, k, v, f"{prefix}{k}", True)

    def value(self, container: Any, key: Any, v: Any, name: str, named: bool) -> None:
        # A kept value at container[key]; ``named``: key must survive tree_unflatten.
        if named and not (type(key) is str and key.isidentifier()):
            self.safe = False
        if type(v) is A:
            self.names[name] = v
            self.slots.append((container, key))
        elif isinstance(v, Module):
            self.module(v, name + ".")
        elif isinstance(v, dict):
            self._enter(v)
            if type(v) is not dict:
                self.safe = False
            for k, x in v.items():
                if isinstance(x, (dict, list, A)):
                    self.value(v, k, x, f"{name}.{k}", True)
        elif isinstance(v, list):
            self._enter(v)
            if type(v) is not list:
                self.safe = False
            for i, x in enumerate(v):
                if isinstance(x, (dict, list, A)):
                    self.value(v, i, x, f"{name}.{i}", False)
        else:  # an array subclass: a leaf
            self.names[name] = v
            self.slots.append((container, key))

    def _enter(self, container: Any) -> None:
        self.containers.add(id(container))
        self.visits += 1


def flat_parameters(module: Module) -> tuple[dict, Optional[list]]:
    """``tree_flatten(module.parameters(), destination={})``, and where each array lives.

    The second value lists ``(container, key)`` per name, in order, when
    ``update(tree_unflatten(pairs), strict=False)`` given exactly these names
    would write each value to that slot: every key a plain identifier (so
    tree_unflatten neither splits it nor reads it as a list index), no
    container reached twice, Module's own item methods.  Else ``None``.
    The caller checks the root's ``parameters`` hooks.
    """
    walk = _Flattener()
    walk.module(module, "")
    safe = (
        walk.safe
        and len(walk.containers) == walk.visits
        and len(walk.slots) == len(walk.names)
    )
    return walk.names, walk.slots if safe else None
