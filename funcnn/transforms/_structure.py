"""Argument structures for :mod:`funcnn.transforms`: analyse a tree once, match it fast.

A :class:`Structure` describes one argument tree: its optree treespec (funcnn
namespace), which leaves are arrays, the static (non-array) leaves, the
attributes of every Module in it, and which array leaves a Module exposes as
trainable parameters.  Its :meth:`Structure.match` checks that a new tree has
the same structure, static leaves and module attributes, and returns that
tree's array leaves in order (``None`` when anything differs).

``match`` is Python source generated for the one structure (key lookups,
static-leaf comparisons, then type, length and module-attribute checks in C
loops over all nodes at once).  optree 0.20 spends ~0.6 us per leaf in
``tree_flatten`` and calls back into Python for every Module node, which made
the compile hot path slower than ``mx.compile`` itself.  Measured on 2004
leaves (``benchmarks/compile_overhead.py``'s trees): nested dicts, ``match``
0.12 ms vs ``tree_flatten`` 1.3 ms (``flatten_up_to`` 0.11 ms, but it checks
no statics); a 1254-module model, 0.3 ms vs 4.0 ms (``flatten_up_to`` 3.1 ms).

Matching rules (those of ``PyTreeSpec.flatten_up_to``, plus statics and attributes):

* containers must have the same exact type and length; dict and Module items
  are matched *by key* (a dict whose keys were inserted in another order
  matches, and the traced function sees the order of the first call);
* a static leaf matches a value of the same type that is ``is`` or ``==`` it
  (a NaN matches a NaN); an array leaf matches any ``mx.array``;
* a Module's ``__dict__`` (its plain attributes: ``_training``, ``eps``,
  ``_no_grad``, ...) must compare equal to the one seen when the structure
  was built.

Example:
    >>> import mlx.core as mx
    >>> s, arrays = Structure.build({"w": mx.ones(2), "n": 3})
    >>> len(s.match({"w": mx.zeros(5), "n": 3}))
    1
    >>> s.match({"w": mx.zeros(5), "n": 4}) is None
    True
"""

from __future__ import annotations

import collections
import copy
import math
import operator
from collections.abc import Sequence
from typing import Any, Optional

import mlx.core as mx
import optree

from .. import tree as _tree
from ..layers.base import Module

__all__ = [
    "Structure",
    "StructureCache",
    "all_arrays",
    "split",
    "join",
    "describe",
    "arg_leaves",
    "show",
    "prefix_leaves",
    "axes_leaves_ok",
    "in_axes_per_array",
    "check_mapped",
    "apply_out_axes",
]

_ARRAY = mx.array
_OPTS = {"none_is_leaf": True, "namespace": _tree.NAMESPACE}
_ONLY_ARRAYS = frozenset({mx.array})
_EMPTY: frozenset = frozenset()
_K = optree.PyTreeKind
_dget = dict.__getitem__

# Node kinds, by exact type.  Only builtin leaf types are cached as leaves:
# any other type may be registered as a node later.
_KINDS: dict[type, str] = {t: "leaf" for t in (int, float, str, bool, bytes, complex, type(None))}
_BUILTIN = {
    _K.DICT: "dict", _K.ORDEREDDICT: "dict", _K.DEFAULTDICT: "defaultdict",
    _K.LIST: "seq", _K.TUPLE: "seq", _K.NAMEDTUPLE: "seq", _K.STRUCTSEQUENCE: "seq",
    _K.DEQUE: "deque",
}


def _kind(cls: type) -> str:
    kind = _KINDS.get(cls)
    if kind is not None:
        return kind
    entry = optree.register_pytree_node.get(cls, namespace=_tree.NAMESPACE)
    if entry is None:
        if optree.is_namedtuple_class(cls) or optree.is_structseq_class(cls):
            return "seq"
        return "leaf"
    if entry.kind == _K.CUSTOM:
        kind = "module" if entry.flatten_func is _tree._flatten_module else "custom"
    else:
        kind = _BUILTIN.get(entry.kind, "unknown")
    _KINDS[cls] = kind
    return kind


def same_leaf(a: Any, b: Any) -> bool:
    """Static-leaf equality: identical, or the same type and ``==`` (NaN equals NaN)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    try:
        if bool(a == b):
            return True
    except Exception:  # noqa: BLE001 - no usable equality: different
        return False
    return isinstance(a, float) and math.isnan(a) and math.isnan(b)


def all_arrays(values: list) -> bool:
    """Whether every value is an ``mx.array`` (one C-level pass)."""
    return _ONLY_ARRAYS.issuperset(map(type, values))


def snapshot_attrs(module: Module) -> dict:
    """A copy of a module's plain attributes that later in-place changes do not reach."""
    # Copy mutable containers (``_no_grad`` is a set) so that a later in-place
    # change is seen as a change rather than mutating our reference copy too
    # (a frozenset compares equal to a set of the same items).
    def frozen(v: Any) -> Any:
        if isinstance(v, set):
            return frozenset(v) if v else _EMPTY  # one object for all: less memory to scan
        return copy.copy(v) if isinstance(v, (list, dict, bytearray)) else v

    return {k: frozen(v) for k, v in module.__dict__.items()}


class _Codegen:
    """Walks a tree in optree's order, writing ``match`` and the trainable mask."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {
            "_same": same_leaf, "_dget": _dget, "_getdict": operator.attrgetter("__dict__")
        }
        self.leaves: list = []
        self.exprs: list[str] = []  # accessor expression of every array leaf
        self.trainable: list[bool] = []  # per leaf: a Module allows differentiating it
        self.n = 0
        self.type_names: dict[type, str] = {}
        # Checked together at the end, in C loops (``map``): exact type and
        # length of every container, ``__dict__`` of every module.
        self.nodes: list[str] = []
        self.types: list[type] = []
        self.lens: list[int] = []
        self.modules: list[str] = []
        self.attrs: list[dict] = []
        self.keypaths: dict[str, tuple] = {"r": ()}  # var -> keys from the root
        # The mutable containers a Module owns (itself, its dict and list members at
        # any depth): var, and (index of the owning module, keys inside it).
        self.tracked: list[str] = []
        self.tracked_at: list[tuple[int, tuple]] = []
        self.module_var: dict[int, str] = {}  # id(module) -> var
        self.module_index: dict[str, int] = {}  # var -> index among the modules

    def const(self, value: Any) -> str:
        name = f"c{len(self.consts)}"
        self.consts[name] = value
        return name

    def type_const(self, cls: type) -> str:
        name = self.type_names.get(cls)
        if name is None:
            name = self.type_names[cls] = self.const(cls)
        return name

    def fresh(self) -> str:
        self.n += 1
        return f"v{self.n}"

    def key(self, k: Any) -> str:
        return repr(k) if type(k) in (str, int) else self.const(k)

    def check(self, cond: str) -> None:
        self.lines.append(f"    if {cond}: return None")

    def leaf(self, x: Any, expr: str, ok: bool) -> None:
        self.leaves.append(x)
        if type(x) is _ARRAY:
            self.exprs.append(expr)
            self.trainable.append(ok)
            return
        self.trainable.append(False)
        if x is None or x is True or x is False:
            self.check(f"{expr} is not {x!r}")
        elif type(x) in (int, str):
            v = self.fresh()
            self.check(f"type({v} := {expr}) is not {type(x).__name__} or {v} != {x!r}")
        else:
            self.check(f"not _same({expr}, {self.const(x)})")

    def visit(self, x: Any, var: str, owner: Optional[Module], prefix: str, ok: bool, filt) -> None:
        """``owner``: innermost Module containing ``x``; ``prefix``: ``x``'s dotted key in it."""
        cls = type(x)
        kind = "leaf" if cls is _ARRAY else _kind(cls)
        if kind == "leaf":
            self.leaf(x, var, ok)
            return
        if kind != "custom":
            self.nodes.append(var)
            self.types.append(cls)
            self.lens.append(len(x))
        if kind == "module":
            # What ``trainable_parameters`` keeps: the root module's filter on
            # (module, key, value) at every level (``Module._unwrap``).
            filt = filt or x.trainable_parameter_filter
            self.module_var[id(x)] = var
            self.module_index[var] = len(self.modules)
            self.tracked.append(var)
            self.tracked_at.append((len(self.modules), ()))
            self.modules.append(var)
            self.attrs.append(snapshot_attrs(x))
            get = "{}[{}]" if cls.__getitem__ is dict.__getitem__ else "_dget({}, {})"
            for k in list(x):
                v = _dget(x, k)
                expr = get.format(var, self.key(k))
                self.child(v, expr, x, k, ok and filt(x, k, v), filt, self.keypaths[var] + (k,))
            return
        if owner is not None and cls in (dict, list):
            owner_var = self.module_var[id(owner)]
            inside = self.keypaths[var][len(self.keypaths[owner_var]) :]
            self.tracked.append(var)
            self.tracked_at.append((self.module_index[owner_var], inside))
        if kind in ("dict", "defaultdict"):
            if kind == "defaultdict":
                self.check(f"not _same({var}.default_factory, {self.const(x.default_factory)})")
            get = "{}[{}]" if cls in (dict, collections.OrderedDict) else "_dget({}, {})"
            items = [(k, _dget(x, k), get.format(var, self.key(k))) for k in list(x)]
        elif kind in ("seq", "deque"):
            if kind == "deque":
                self.check(f"{var}.maxlen != {x.maxlen!r}")
            items = [(i, v, f"{var}[{i}]") for i, v in enumerate(x)]
        elif kind == "custom":  # a registered node: use its own flatten function
            entry = optree.register_pytree_node.get(cls, namespace=_tree.NAMESPACE)
            children, meta, *rest = entry.flatten_func(x)
            children = list(children)
            keys = list(rest[0]) if rest and rest[0] is not None else list(range(len(children)))
            flat, ch = self.const(entry.flatten_func), self.fresh()
            # Checked now: the flatten function must only see its own type.
            self.check(f"type({var}) is not {self.type_const(cls)}")
            self.lines.append(f"    {ch} = {flat}({var})")
            self.check(f"not _same({ch}[1], {self.const(meta)})")
            self.lines.append(f"    {ch} = list({ch}[0])")
            self.check(f"len({ch}) != {len(children)}")
            items = [(k, v, f"{ch}[{i}]") for i, (k, v) in enumerate(zip(keys, children))]
        else:
            raise _Unsupported(cls)
        # Inside a module, dict and list members are parameters entry by entry
        # (dotted keys against the owner); anything else (tuples, ...) is not.
        visible = isinstance(x, (dict, list))
        for k, v, expr in items:
            if owner is None:
                child_ok = ok
            else:
                sub = f"{prefix}.{k}"
                child_ok = ok and visible and filt(owner, sub, v)
            sub = f"{prefix}.{k}" if owner is not None else ""
            self.child(v, expr, owner, sub, child_ok, filt, self.keypaths[var] + (k,))

    def child(self, v: Any, expr: str, owner, prefix: str, ok: bool, filt, keys: tuple) -> None:
        if type(v) is _ARRAY or _kind(type(v)) == "leaf":
            self.leaf(v, expr, ok)
            return
        var = self.fresh()
        self.keypaths[var] = keys
        self.lines.append(f"    {var} = {expr}")
        self.visit(v, var, owner, prefix, ok, filt)

    def containers_source(self) -> str:
        """``containers(r)``: the tracked containers of a tree of this structure, in order."""
        return "\n".join(
            ["def containers(r):", *self.lines, f"    return [{', '.join(self.tracked)}]"]
        )

    def source(self) -> str:
        # Any exception (a missing key, a fetch from a wrong type, ...) is a
        # mismatch; the batched checks run before any array is returned.
        lines = ["def match(r):", "  try:", *self.lines]
        if self.nodes:
            lines.append(f"    nodes = ({', '.join(self.nodes)},)")
            types, lens = self.const(self.types), self.const(self.lens)
            lines.append(f"    if list(map(type, nodes)) != {types}: return None")
            lines.append(f"    if list(map(len, nodes)) != {lens}: return None")
        if self.modules:
            attrs = self.const(self.attrs)
            modules = ", ".join(self.modules)
            lines.append(f"    if list(map(_getdict, ({modules},))) != {attrs}: return None")
        lines += [f"    return [{', '.join(self.exprs)}]", "  except Exception:", "    return None"]
        return "\n".join(lines)


class _Unsupported(Exception):
    pass


class Structure:
    """One argument tree's structure; see the module docstring."""

    __slots__ = ("spec", "n_leaves", "array_pos", "statics", "trainable", "_source",
                 "_consts", "_match", "cache", "module_paths", "module_attrs", "tracked_at",
                 "module_slots", "_containers_source", "_containers")

    @classmethod
    def build(cls, tree: Any) -> tuple[Structure, list]:
        """Analyse ``tree``: returns its structure and its array leaves."""
        leaves, spec = _tree._flatten(tree, None)
        self = cls.__new__(cls)
        self.spec = spec
        self.n_leaves = len(leaves)
        self.array_pos = [i for i, x in enumerate(leaves) if type(x) is _ARRAY]
        # Arrays are replaced by None: a cached structure must not keep them alive.
        self.statics = [None if type(x) is _ARRAY else x for x in leaves]
        self.cache = {}  # per-transform data that depends only on the structure
        self._match = self._containers = None
        self.module_paths: list = []  # keys from the root of each Module, in visiting order
        self.module_attrs: list = []  # their plain attributes when the structure was built
        self.tracked_at: list = []  # (module index, keys inside it) of each tracked container
        self.module_slots: list = []  # the index among tracked containers of each Module
        gen = _Codegen()
        try:
            gen.visit(tree, "r", None, "", True, None)
            agrees = len(gen.leaves) == len(leaves) and all(
                a is b for a, b in zip(gen.leaves, leaves)
            )
        except _Unsupported:
            agrees = False
        if agrees:
            self._source, self._consts = gen.source(), gen.consts
            self.trainable = [gen.trainable[i] for i in self.array_pos]
            self._containers_source = gen.containers_source()
            self.module_paths = [gen.keypaths[var] for var in gen.modules]
            self.module_attrs = gen.attrs
            self.tracked_at = gen.tracked_at
            self.module_slots = [gen.tracked.index(var) for var in gen.modules]
        else:  # a node kind we do not know: never matches (rebuilt per call)
            self._source = self._consts = self._containers_source = None
            self.trainable = None  # unknown: only an explicit boolean-tree filter works
        return self, [leaves[i] for i in self.array_pos]

    def containers(self, tree: Any) -> list:
        """The Modules of ``tree`` (of this structure) and the dicts and lists they own.

        In the order of :attr:`tracked_at`; the Modules are at
        :attr:`module_slots`, in the order of :attr:`module_paths`.  Empty when
        the structure could not be analysed (an unknown node kind).
        """
        if self._containers_source is None or not self.tracked_at:
            return []
        fn = self._containers
        if fn is None:
            namespace = dict(self._consts)
            code = compile(self._containers_source, "<funcnn.transforms containers>", "exec")
            exec(code, namespace)  # noqa: S102 - our own generated source
            fn = self._containers = namespace["containers"]
        return fn(tree)

    def modules(self, tree: Any) -> list:
        """The Modules of ``tree`` (of this structure), in the order of :attr:`module_paths`."""
        found = self.containers(tree)
        return [found[i] for i in self.module_slots] if found else []

    def match(self, tree: Any, check: bool = True) -> Optional[list]:
        """The array leaves of ``tree`` if it has this structure, else ``None``.

        With ``check=False`` the values found at array positions are returned
        without checking that they are arrays (see ``funcnn.transforms.compile``).
        """
        m = self._match
        if m is None:
            if self._source is None:
                return None
            namespace = dict(self._consts)
            code = compile(self._source, "<funcnn.transforms match>", "exec")
            exec(code, namespace)  # noqa: S102 - our own generated source
            m = self._match = namespace["match"]
        arrays = m(tree)
        if check and arrays is not None and not all_arrays(arrays):
            return None
        return arrays

    def rebuild(self, arrays: list) -> Any:
        """The tree with ``arrays`` at the array positions and the static leaves elsewhere."""
        merged = self.statics.copy()
        for i, a in zip(self.array_pos, arrays):
            merged[i] = a
        return self.spec.unflatten(merged)

    def unflatten_arrays(self, arrays: list, fill: Any = None) -> Any:
        """The tree with ``arrays`` at the array positions and ``fill`` at every other leaf."""
        merged = [fill] * self.n_leaves
        for i, a in zip(self.array_pos, arrays):
            merged[i] = a
        return self.spec.unflatten(merged)


class StructureCache:
    """A few recently used structures, each with its entry; most recent first."""

    def __init__(self, make_entry, size: int = 64) -> None:
        self._make = make_entry
        self._size = size
        self.entries: list = []  # entries have a ``structure`` attribute

    def lookup(self, tree: Any) -> tuple[Any, list]:
        entries = self.entries
        for i, entry in enumerate(entries):
            arrays = entry.structure.match(tree)
            if arrays is not None:
                if i:
                    entries.insert(0, entries.pop(i))
                return entry, arrays
        structure, arrays = Structure.build(tree)
        entry = self._make(structure)
        entries.insert(0, entry)
        del entries[self._size :]
        return entry, arrays


# --------------------------------------------------------------------------
# Results and messages (shared by the transforms)
# --------------------------------------------------------------------------


def split(tree: Any) -> tuple[Any, list, list[int], list]:
    """``(spec, statics, array_positions, arrays)`` of a result tree."""
    leaves, spec = _tree._flatten(tree, None)
    pos = [i for i, x in enumerate(leaves) if type(x) is _ARRAY]
    arrays = [leaves[i] for i in pos]
    for i in pos:  # keep no traced array in what outlives the trace
        leaves[i] = None
    return spec, leaves, pos, arrays


def join(info: tuple, arrays: Sequence) -> Any:
    """Inverse of :func:`split`: ``info`` is its ``(spec, statics, array_positions)``."""
    spec, statics, pos = info
    if len(pos) == len(statics):
        return spec.unflatten(arrays)
    merged = statics.copy()
    for i, a in zip(pos, arrays):
        merged[i] = a
    return spec.unflatten(merged)


def describe(x: Any) -> str:
    """A short description of a received value, for error messages."""
    if isinstance(x, _ARRAY):
        return f"an array of shape {tuple(x.shape)} and dtype {x.dtype}"
    if isinstance(x, (dict, list, tuple)):
        return f"a {type(x).__name__} of length {len(x)}"
    text = repr(x)
    return f"{type(x).__name__} {text if len(text) < 60 else text[:57] + '...'}"


def arg_leaves(args: Sequence, nums: Sequence[int]) -> list[tuple[str, Any]]:
    """``("args[n].dotted.path", leaf)`` for the leaves of ``args``, numbered by ``nums``."""
    return [
        (f"args[{n}]" + (f".{k}" if k else ""), leaf)
        for n, a in zip(nums, args)
        for k, leaf in _tree.tree_flatten(a)
    ]


def show(spec: Any) -> str:
    """A treespec as text, without optree's boilerplate."""
    text = str(spec)
    if text.startswith("PyTreeSpec(") and text.endswith(")"):
        text = text[len("PyTreeSpec(") : -1]
        text = text.replace(f", NoneIsLeaf, namespace='{_tree.NAMESPACE}'", "")
    return text


def _index_tree(structure: Structure) -> Any:
    """The structure with each leaf replaced by its index (to broadcast prefixes against)."""
    return structure.spec.unflatten(list(range(structure.n_leaves)))


def prefix_leaves(name: str, what: str, prefix: Any, structure: Structure, target: str) -> list:
    """``prefix`` broadcast to every leaf of ``structure`` (a tree prefix, ``None`` a leaf)."""
    full = _index_tree(structure)
    try:
        return optree.broadcast_prefix(prefix, full, **_OPTS)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"{name}: {what} must be a tree prefix of {target}: expected a prefix of "
            f"{show(structure.spec)}, received {show(_tree.tree_structure(prefix))}."
        ) from err


# --------------------------------------------------------------------------
# vmap's axes
# --------------------------------------------------------------------------


def axes_leaves_ok(name: str, what: str, leaves: list) -> None:
    """Axes are ints (not bools) or ``None``."""
    for ax in leaves:
        if ax is not None and (not isinstance(ax, int) or isinstance(ax, bool)):
            raise ValueError(f"{name}: {what} holds ints or None; received {describe(ax)}.")


def in_axes_per_array(in_axes: Any, args: tuple, s: Structure) -> list:
    """``vmap``'s ``in_axes`` for each array leaf of the positional arguments ``args``."""
    if in_axes is None or (isinstance(in_axes, int) and not isinstance(in_axes, bool)):
        return [in_axes] * len(s.array_pos)
    if type(in_axes) is tuple:
        if len(in_axes) != len(args):
            raise ValueError(
                f"vmap: in_axes has {len(in_axes)} entries, but fn received {len(args)} positional "
                f"argument(s); expected one entry per argument, received {in_axes!r}."
            )
        prefix = in_axes
    elif len(args) == 1:
        prefix = (in_axes,)
    else:
        raise ValueError(
            "vmap: in_axes must be an int, None, or a tuple with one entry per positional "
            f"argument ({len(args)} here); received {describe(in_axes)}."
        )
    leaves = prefix_leaves("vmap", "in_axes", prefix, s, "the positional arguments")
    axes_leaves_ok("vmap", "in_axes", leaves)
    return [leaves[i] for i in s.array_pos]


def check_mapped(args: tuple, s: Structure, arrays: list, axes: list, mapped: list) -> None:
    """Every mapped axis exists and all have one size; the errors name the arguments' paths."""
    sizes = []
    for i in mapped:
        x, ax = arrays[i], axes[i]
        if not -x.ndim <= ax < x.ndim:
            name = arg_leaves(args, range(len(args)))[s.array_pos[i]][0]
            raise ValueError(
                f"vmap: in_axes gives axis {ax} for the array at {name!r} of shape "
                f"{tuple(x.shape)}; expected an axis in [{-x.ndim}, {x.ndim})."
            )
        sizes.append(x.shape[ax])
    if any(n != sizes[0] for n in sizes):
        names = [k for k, _ in arg_leaves(args, range(len(args)))]
        shown = ", ".join(f"{names[s.array_pos[i]]!r}: {n}" for i, n in zip(mapped, sizes))
        raise ValueError(f"vmap: the mapped axes must have one size; received {{{shown}}}.")


def apply_out_axes(out_axes: Any, info: tuple, outs: list) -> list:
    """Move the batch axis (0, from ``mx.vmap``) of each output to its ``out_axes`` entry."""
    spec, statics, pos = info
    if isinstance(out_axes, int) and not isinstance(out_axes, bool):
        per_array = [out_axes] * len(outs)
    else:
        full = spec.unflatten(list(range(len(statics))))
        try:
            leaves = optree.broadcast_prefix(out_axes, full, **_OPTS)
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"vmap: out_axes must be an int or a tree prefix of fn's result: expected a "
                f"prefix of {show(spec)}, received {show(_tree.tree_structure(out_axes))}."
            ) from err
        per_array = [leaves[i] for i in pos]
    result = []
    for y, ax in zip(outs, per_array):
        if ax is None or not isinstance(ax, int) or isinstance(ax, bool):
            raise ValueError(
                f"vmap: out_axes must give an int for every array output; received {ax!r} "
                "(MLX's vmap cannot return an unmapped output)."
            )
        if not -y.ndim <= ax < y.ndim:
            raise ValueError(
                f"vmap: out_axes gives axis {ax} for an output of shape {tuple(y.shape)} "
                f"(batch axis included); expected an axis in [{-y.ndim}, {y.ndim})."
            )
        result.append(y if ax % y.ndim == 0 else mx.moveaxis(y, 0, ax))
    return result
