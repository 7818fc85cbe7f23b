"""The stateful ``Module`` facade: :class:`mlx.nn.Module`'s documented semantics.

A :class:`Module` is a ``dict`` whose items are its state (parameters,
sub-modules, lists and dicts of them); plain Python attributes hold
configuration.  The facade holds no math: layers build their parameters with
their functional pair's ``init`` and call their family's pure functions
(:mod:`funcnn.functional`) with their settings (see
:mod:`funcnn.layers._template`).

Where :mod:`mlx.nn` crashes or silently does the wrong thing, funcnn keeps the
documented contract and does better:

* ``load_weights`` with a key given twice raises ``ValueError`` naming it (MLX
  recurses until ``RecursionError``); a ``.npy`` file (a single array) is a
  ``ValueError`` rather than an ``AttributeError``;
* ``load_weights``/``save_weights`` accept :class:`pathlib.Path`;
* ``freeze(keys=("weight", "bias"))`` freezes both keys (MLX stores the tuple
  as one bogus key).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterable
from typing import Any, Optional, Union

import mlx.core as mx

from .. import checkpoint
from ..tree import register_module_type, tree_flatten, tree_unflatten
from . import _walk
from ._walk import identity as _identity
from ._walk import invalid_type as _invalid_type
from ._walk import not_container as _not_container
from ._walk import unwrap as _unwrap

__all__ = ["Module"]

Keys = Optional[Union[str, Iterable[str]]]


class Module(dict):
    """Base class of funcnn layers and models; a drop-in for :class:`mlx.nn.Module`.

    Any public :class:`mlx.core.array` stored on a module, directly or nested in
    lists, dicts and sub-modules, is a parameter.  Names starting with ``_``
    are private state: kept in :attr:`state`, never in :meth:`parameters`.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> class MyMLP(nn.Module):
        ...     def __init__(self, in_dims, out_dims, hidden_dims=16):
        ...         super().__init__()
        ...         self.in_proj = nn.Linear(in_dims, hidden_dims)
        ...         self.out_proj = nn.Linear(hidden_dims, out_dims)
        ...     def __call__(self, x):
        ...         return self.out_proj(mx.maximum(self.in_proj(x), 0))
        >>> model = MyMLP(2, 1)
        >>> [k for k, _ in nn.tree_flatten(model.parameters())]
        ['in_proj.weight', 'in_proj.bias', 'out_proj.weight', 'out_proj.bias']
    """

    __call__: Callable

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register_module_type(cls)

    def __init__(self) -> None:
        """Subclasses must call ``super().__init__()``."""
        self._no_grad: set = set()
        self._training = True

    # ------------------------------------------------------------------
    # Attribute protocol: arrays and containers are dict items.
    # ------------------------------------------------------------------

    @property
    def training(self) -> bool:
        """Whether the module is in training mode (read-only; see :meth:`train`)."""
        return self._training

    @property
    def state(self) -> Module:
        """The module itself: every item, including private arrays and tuples.

        Writes to it are writes to the module; this is what
        ``mx.compile(..., inputs=model.state, outputs=model.state)`` captures.
        """
        return self

    def _extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = tree_flatten(self.children(), is_leaf=self.is_module)
        text = f"{type(self).__name__}({self._extra_repr()}"
        for key, child in children:
            text += "\n" + textwrap.indent(f"({key}): {child!r}", prefix="  ")
        if children:
            text += "\n"
        return text + ")"

    def __getattr__(self, key: str) -> Any:
        value = self.get(key, None)
        if value is not None:
            return value
        return object.__getattribute__(self, key)

    def __setattr__(self, key: str, value: Any) -> None:
        if isinstance(value, (mx.array, dict, list, tuple)):
            # A plain attribute of the same name would shadow the item.
            if hasattr(self, key) and key not in self:
                delattr(self, key)
            self[key] = value
        else:
            object.__setattr__(self, key, value)
            self.pop(key, None)

    def __delattr__(self, key: str) -> None:
        if self.get(key, None) is not None:
            del self[key]
        else:
            object.__delattr__(self, key)

    def _rebuild(self, items: Iterable[tuple[str, Any]]) -> Module:
        """A module like this one (same class and attributes) holding ``items``."""
        new = type(self).__new__(type(self))
        attrs = dict(self.__dict__)
        if "_no_grad" in attrs:
            attrs["_no_grad"] = set(attrs["_no_grad"])
        new.__dict__.update(attrs)
        dict.update(new, items)
        return new

    # ------------------------------------------------------------------
    # Filters and traversal
    # ------------------------------------------------------------------

    @staticmethod
    def is_module(value: Any) -> bool:
        return isinstance(value, Module)

    @staticmethod
    def valid_child_filter(module: Module, key: str, value: Any) -> bool:
        return isinstance(value, (dict, list))

    @staticmethod
    def valid_parameter_filter(module: Module, key: str, value: Any) -> bool:
        return isinstance(value, (dict, list, mx.array)) and not key.startswith("_")

    @staticmethod
    def trainable_parameter_filter(module: Module, key: str, value: Any) -> bool:
        return (
            Module.valid_parameter_filter(module, key, value)
            and key not in module._no_grad
        )

    def filter_and_map(
        self,
        filter_fn: Callable[[Module, str, Any], bool],
        map_fn: Callable | None = None,
        is_leaf_fn: Callable[[Module, str, Any], bool] | None = None,
    ) -> dict:
        """Recursively select ``(module, key, value)`` triples with ``filter_fn``.

        Sub-modules are entered with their own keys; entries of list and dict
        members are tested with dotted keys (``"ws.0"``) against the module that
        owns the member, and entries that fail the filter stay as ``{}``
        placeholders.  Leaves (by default anything that is not a Module, dict or
        list) are passed through ``map_fn``.  Returns plain dicts and lists.

        Example:
            >>> import funcnn as nn
            >>> nn.Linear(2, 1).filter_and_map(
            ...     nn.Module.valid_parameter_filter, map_fn=lambda x: x.shape)
            {'weight': (1, 2), 'bias': (1,)}
        """
        map_fn = map_fn or _identity
        is_leaf_fn = is_leaf_fn or _not_container
        return {
            k: _unwrap(self, k, v, filter_fn, map_fn, is_leaf_fn)
            for k, v in self.items()
            if filter_fn(self, k, v)
        }

    # Each operation below takes a direct walk (funcnn/layers/_walk.py) while
    # the module keeps Module's own hooks, else mlx.nn's generic one.

    def parameters(self) -> dict:
        """All public arrays (frozen ones included) as nested dicts and lists."""
        if _walk.uses_own(self, "filter_and_map", "valid_parameter_filter"):
            return _walk.parameter_tree(self, trainable=False)
        return self.filter_and_map(self.valid_parameter_filter)

    def trainable_parameters(self) -> dict:
        """The public arrays that are not frozen, as nested dicts and lists."""
        if _walk.uses_own(self, "filter_and_map", "trainable_parameter_filter") and (
            Module.valid_parameter_filter is _walk.ORIGINAL["valid_parameter_filter"]
        ):
            return _walk.parameter_tree(self, trainable=True)
        return self.filter_and_map(self.trainable_parameter_filter)

    def children(self) -> dict:
        """The direct sub-modules, including those inside list and dict members."""
        if _walk.uses_own(self, "filter_and_map", "valid_child_filter"):
            return _walk.child_tree(self)
        return self.filter_and_map(self.valid_child_filter, is_leaf_fn=_is_module_leaf)

    def leaf_modules(self) -> dict:
        """The sub-modules that contain no other modules, nested as in the model."""
        if _walk.uses_own(self, "filter_and_map", "valid_child_filter"):
            return _walk.leaf_tree(self)
        return self.filter_and_map(self.valid_child_filter, is_leaf_fn=_is_leaf_module)

    def apply_to_modules(self, apply_fn: Callable[[str, Module], Any]) -> Module:
        """Call ``apply_fn(path, module)`` on this module and every sub-module.

        The order is MLX's: a depth-first walk with a stack, so children are
        visited in reverse insertion order (``['', 'layers.2', 'layers.1', ...]``).
        """
        if _walk.uses_own(self, "is_module"):
            for prefix, module in _walk.iter_modules(self):
                apply_fn(prefix, module)
            return self
        stack = [("", self)]
        while stack:
            prefix, module = stack.pop()
            apply_fn(prefix, module)
            stack.extend(
                tree_flatten(
                    module.children(),
                    prefix="." + prefix if prefix else "",
                    is_leaf=self.is_module,
                )
            )
        return self

    def modules(self) -> list[Module]:
        """Every module in the tree, this one first, in :meth:`apply_to_modules` order."""
        if self._walks_itself():
            return [m for _, m in _walk.iter_modules(self)]
        found: list[Module] = []
        self.apply_to_modules(lambda _, m: found.append(m))
        return found

    def named_modules(self) -> list[tuple[str, Module]]:
        """``(dotted_path, module)`` for every module, the root as ``""``."""
        if self._walks_itself():
            return list(_walk.iter_modules(self))
        found: list[tuple[str, Module]] = []
        self.apply_to_modules(lambda k, m: found.append((k, m)))
        return found

    def _walks_itself(self) -> bool:
        # apply_to_modules(fn) is then exactly fn on each of iter_modules(self).
        return _walk.uses_own(self, "apply_to_modules", "is_module")

    # ------------------------------------------------------------------
    # Updating
    # ------------------------------------------------------------------

    def update(self, parameters: dict, strict: bool = True) -> Module:
        """Replace parameters with those in the (partial) tree ``parameters``.

        With ``strict``, every key must exist and an array may only be replaced
        by an array.  Shapes and dtypes are not checked (as in MLX).
        """
        _walk.update_parameters(self, parameters, strict)
        return self

    def update_modules(self, modules: dict, strict: bool = True) -> Module:
        """Replace sub-modules with those in the (partial) tree ``modules``."""
        _update_modules(self, modules, strict)
        return self

    def apply(
        self,
        map_fn: Callable[[mx.array], mx.array],
        filter_fn: Callable[[Module, str, Any], bool] | None = None,
    ) -> Module:
        """Map the selected parameters with ``map_fn`` and write them back.

        Example:
            >>> import mlx.core as mx
            >>> import funcnn as nn
            >>> nn.Linear(2, 2).apply(lambda x: x.astype(mx.float16)).weight.dtype
            mlx.core.float16
        """
        filter_fn = filter_fn or Module.valid_parameter_filter
        self.update(self.filter_and_map(filter_fn, map_fn))
        return self

    def set_dtype(
        self,
        dtype: mx.Dtype,
        predicate: Callable[[mx.Dtype], bool] | None = lambda t: mx.issubdtype(
            t, mx.floating
        ),
    ) -> None:
        """Cast the parameters whose dtype satisfies ``predicate`` (default: floating).

        ``predicate=None`` casts every parameter.  Returns ``None``, as in MLX.
        """
        if predicate is None:
            self.apply(lambda x: x.astype(dtype))
        else:
            self.apply(lambda x: x.astype(dtype) if predicate(x.dtype) else x)

    # ------------------------------------------------------------------
    # Freezing and training mode
    # ------------------------------------------------------------------

    def _validate_keys(self, keys: Keys, strict: bool) -> list:
        keys = _as_key_list(keys)
        if strict:
            for k in keys:
                if k not in self:
                    raise KeyError(f"Module doesn't contain member {k}.")
        return keys

    def _validate_keys_recursive(self, keys: Keys) -> None:
        # A key such as "bias" must exist somewhere, not in every module.
        modules = self.modules()
        for k in _as_key_list(keys):
            if not any(k in m for m in modules):
                raise KeyError(f"Module doesn't contain member {k}.")

    def freeze(self, *, recurse: bool = True, keys: Keys = None, strict: bool = False) -> Module:
        """Exclude parameters from :meth:`trainable_parameters` (and gradients).

        Args:
            recurse: Also freeze the sub-modules.
            keys: Member names (a string, or a list/tuple/set of them; names of
                list/dict entries are dotted, ``"ws.1"``); all parameters if omitted.
            strict: Raise ``KeyError`` for a key that no module has.

        Example:
            >>> import funcnn as nn
            >>> nn.Linear(2, 2).freeze(keys="bias").trainable_parameters().keys()
            dict_keys(['weight'])
        """

        def freeze_one(_: str, module: Module) -> None:
            local = keys
            if local is None and not strict_here:
                # With Module's own hooks: the keys directly (_validate_keys(keys,
                # False) would hand them back as they are).
                own = _walk.own_parameter_keys(module)
                if own is not None:
                    module._no_grad.update(own)
                    return
            if local is None:
                local = [
                    k
                    for k, _ in tree_flatten(
                        module.filter_and_map(_own_parameter_filter)
                    )
                ]
            local = module._validate_keys(local, strict_here)
            module._no_grad.update(local)

        strict_here = strict
        if recurse:
            if strict and keys is not None:
                self._validate_keys_recursive(keys)
                strict_here = False
            self.apply_to_modules(freeze_one)
        else:
            freeze_one("", self)
        return self

    def unfreeze(
        self, *, recurse: bool = True, keys: Keys = None, strict: bool = False
    ) -> Module:
        """Undo :meth:`freeze` for ``keys`` (all keys if omitted); same arguments."""

        def unfreeze_one(_: str, module: Module) -> None:
            if keys is None:
                module._no_grad.clear()
            else:
                local = module._validate_keys(keys, strict_here)
                module._no_grad.difference_update(local)

        strict_here = strict
        if recurse and keys is None and self._walks_itself():
            for _, module in _walk.iter_modules(self):
                module._no_grad.clear()
        elif recurse:
            if strict and keys is not None:
                self._validate_keys_recursive(keys)
                strict_here = False
            self.apply_to_modules(unfreeze_one)
        else:
            unfreeze_one("", self)
        return self

    def _set_training_mode(self, mode: bool) -> None:
        self._training = mode

    def train(self, mode: bool = True) -> Module:
        """Set training mode on this module and every sub-module it holds now."""
        self.apply_to_modules(lambda _, m: m._set_training_mode(mode))
        return self

    def eval(self) -> Module:
        """Same as ``train(False)``."""
        return self.train(False)

    # ------------------------------------------------------------------
    # Weights on disk
    # ------------------------------------------------------------------

    def load_weights(
        self,
        file_or_weights: Union[str, os.PathLike, list[tuple[str, mx.array]], dict],
        strict: bool = True,
        *,
        check_dtype: bool = False,
    ) -> Module:
        """Load weights from a ``.npz``/``.safetensors`` file or ``(name, array)`` pairs.

        With ``strict`` (default) the names must match the model's parameters
        exactly and every value must be an array of the parameter's shape
        (with ``check_dtype``, of its dtype too).  Every problem is reported
        in one ``ValueError`` (:class:`funcnn.checkpoint.MismatchError`) whose
        message starts with the error :mod:`mlx.nn` would raise.  Nothing is
        written unless every check passes.  Files are read with
        :func:`funcnn.checkpoint.read_arrays`: checked and fully evaluated, so
        a damaged file fails here and leaves the model as it was.

        Example:
            >>> import mlx.core as mx
            >>> import funcnn as nn
            >>> m = nn.Linear(2, 1)
            >>> m.load_weights([("weight", mx.zeros((1, 2))), ("bias", mx.zeros((1,)))]) is m
            True
        """
        weights = file_or_weights
        source = ""
        if isinstance(weights, (str, os.PathLike)):
            source = f"\n(in {os.fspath(weights)})"
            weights = list(checkpoint.read_arrays(weights)[0].items())
        elif isinstance(weights, dict):
            weights = list(weights.items())
        else:
            weights = list(weights)

        _check_unique_names(weights)
        slots = None
        if strict:
            if _walk.uses_own(self, "parameters", "filter_and_map", "valid_parameter_filter"):
                current, slots = _walk.flat_parameters(self)
            else:
                current = tree_flatten(self.parameters(), destination={})
            received = dict(weights)
            problems = checkpoint.find_problems(current, received, check_dtype)
            if problems:
                message = checkpoint.describe_problems(problems) + source
                raise checkpoint.MismatchError(message, problems)

        if weights:
            if slots is not None and _walk.uses_own(self, "update"):
                # Exactly where update(tree_unflatten(weights)) would write them.
                for name, (container, key) in zip(current, slots):
                    container[key] = received[name]
            else:
                self.update(tree_unflatten(weights), strict=False)
        return self

    def save_weights(self, file: Union[str, os.PathLike]) -> None:
        """Save the parameters (frozen ones included) by their dotted names.

        The extension picks the format: ``.npz`` or ``.safetensors``.  The file
        is written atomically (a temporary file renamed into place), so an
        error or a crash never leaves a torn file where a good one was.
        """
        file = os.fspath(file)
        params = tree_flatten(self.parameters(), destination={})
        checkpoint.write_arrays(file, params)


# ----------------------------------------------------------------------
# Helpers (module level so that filters and traversals stay allocation-free)
# ----------------------------------------------------------------------


def _is_module_leaf(module: Module, key: str, value: Any) -> bool:
    return isinstance(value, Module)


def _is_leaf_module(module: Module, key: str, value: Any) -> bool:
    return isinstance(value, Module) and _walk.is_leaf_module(value)


def _check_unique_names(weights: list) -> None:
    # The common case in C; the loop finds the first repeat (or bad pair) in order.
    try:
        names = [k for k, _ in weights]
        if len(set(names)) == len(names):
            return
    except Exception:  # noqa: BLE001 - the loop below raises it in its place
        pass
    seen: set = set()
    for k, _ in weights:
        if k in seen:
            raise ValueError(f"Duplicate weight name {k!r}: each name may appear once.")
        seen.add(k)


def _own_parameter_filter(module: Module, key: str, value: Any) -> bool:
    return not isinstance(value, Module) and module.valid_parameter_filter(module, key, value)


def _as_key_list(keys: Keys) -> list:
    # MLX wraps anything but a list, so a tuple becomes one bogus key; we take
    # any non-string iterable as a collection of keys.
    if isinstance(keys, str) or not isinstance(keys, Iterable):
        return [keys]
    return list(keys)


# What ``update_modules`` does at one position: True replaces the current
# value, False descends into it, None leaves it alone.  (``update`` has its
# own walk, ``_walk.update_parameters``.)
def _replaces_module(current: Any, value: Any, strict: bool) -> Optional[bool]:
    if isinstance(current, Module) and isinstance(value, Module):
        return True
    if isinstance(current, (dict, list)):
        return False
    # ``!= {}`` rather than ``not value``: MLX lets an empty module pass here.
    if strict and value != {}:
        raise _invalid_type(value)
    return None


def _update_tree(dst: Any, new: Any, strict: bool, rule: Callable, noun: str) -> None:
    """Walk ``new`` alongside ``dst``, applying ``rule`` at every position ``new`` names."""
    if isinstance(new, dict):
        entries = ((k, k in dst) for k in new)
    elif isinstance(new, list):
        entries = ((i, i < len(dst)) for i in range(len(new)))
    else:
        if strict:
            raise _invalid_type(new)
        return
    for k, present in entries:
        if not present:
            if not strict:
                continue
            if isinstance(new, dict):
                raise ValueError(f'Module does not have {noun} named "{k}".')
            raise ValueError(
                f"List index {k} is out of bounds for destination of length {len(dst)}."
            )
        current, value = dst[k], new[k]
        replace = rule(current, value, strict)
        if replace:
            dst[k] = value
        elif replace is False:
            _update_tree(current, value, strict, rule, noun)


def _update_modules(dst: Any, new: Any, strict: bool) -> None:
    _update_tree(dst, new, strict, _replaces_module, "sub-module")


register_module_type(Module)
_walk.bind(Module)
