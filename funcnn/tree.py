"""Pytrees for funcnn, built on optree.

Every function here uses one optree namespace, :data:`NAMESPACE`, in which

* dicts keep their insertion order (MLX's order, not optree's sorted keys);
* ``None`` is a leaf, as in :mod:`mlx.utils`;
* every :class:`funcnn.Module` subclass is a node whose children are the
  module's dict items, rebuilt as a module of the same class.

The MLX-style names (``"layers.0.weight"``) come from :func:`tree_flatten`,
and :func:`tree_unflatten` inverts it.  Where :mod:`mlx.utils` is buggy,
funcnn raises a clear error instead: duplicate keys, a key given both as a
leaf and as a subtree, keys such as ``"1"`` and ``"01"`` that name the same
list index, and negative list indices are a ``ValueError`` here.  Unlike
:mod:`mlx.utils`, :func:`tree_map` keeps node types: a Module maps to a
Module of the same class, an ``OrderedDict`` to an ``OrderedDict``.

Example:
    >>> import mlx.core as mx
    >>> from funcnn.tree import tree_flatten, tree_unflatten
    >>> flat = tree_flatten({"b": [mx.zeros(1), None], "a": {"x": 3}})
    >>> [k for k, _ in flat]
    ['b.0', 'b.1', 'a.x']
    >>> tree_unflatten(flat)["a"]
    {'x': 3}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import mlx.core as mx
import optree

__all__ = [
    "NAMESPACE",
    "tree_flatten",
    "tree_unflatten",
    "tree_leaves",
    "tree_structure",
    "tree_map",
    "tree_map_with_path",
    "tree_reduce",
    "tree_partition",
    "tree_combine",
    "tree_stack",
    "tree_unstack",
    "register_module_type",
]

NAMESPACE = "funcnn"

# optree offers insertion order per namespace only as a context manager; we
# enter it once for the life of the process.  The reference keeps the
# generator alive: if it were collected, its ``finally`` would undo the mode.
_INSERTION_ORDER = optree.dict_insertion_ordered(True, namespace=NAMESPACE)
_INSERTION_ORDER.__enter__()

_OPTS = {"none_is_leaf": True, "namespace": NAMESPACE}

Tree = Any
IsLeaf = Callable[[Any], bool]


# --------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------


class _Template:
    """Holds a module's class and attributes in a treespec, without its items.

    Two templates are equal when their modules have the same class: two
    modules with the same class and keys have the same structure, so
    ``optree.tree_map`` over two models, :func:`tree_stack` of an ensemble and
    :func:`tree_combine` of a partition all match them up.  Plain attributes
    (configuration) of the result come from the first tree.  Modules are never
    compared by value: their equality is dict equality over arrays, which is
    neither cheap nor a boolean.  The template is an empty copy of the module,
    so a treespec does not keep the module's arrays alive.
    """

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Template) and type(other.obj) is type(self.obj)

    def __hash__(self) -> int:
        return hash(type(self.obj))

    def __repr__(self) -> str:
        return f"<{type(self.obj).__name__}>"


def _flatten_module(module):
    keys = tuple(module.keys())
    children = [dict.__getitem__(module, k) for k in keys]
    return children, (keys, _Template(module._rebuild(()))), keys


def _unflatten_module(meta, children):
    keys, template = meta
    return template.obj._rebuild(zip(keys, children))


def register_module_type(cls: type) -> type:
    """Make ``cls`` (a :class:`funcnn.Module` subclass) a node of funcnn trees.

    Called automatically for every subclass; registration in optree is by
    exact type, so each subclass needs its own entry.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> class Scale(nn.Module):          # registered when the class is made
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.factor = mx.array(2.0)
        >>> tree_leaves(Scale())
        [array(2, dtype=float32)]
    """
    optree.register_pytree_node(
        cls,
        _flatten_module,
        _unflatten_module,
        path_entry_type=optree.MappingEntry,
        namespace=NAMESPACE,
    )
    return cls


def _register_container(cls: type) -> None:
    """Register a dict/list/tuple subclass that optree does not know.

    :mod:`mlx.utils` traverses every dict, list and tuple subclass; optree
    treats unregistered subclasses as leaves.  We register them on first
    sight so that results agree with MLX.  Rebuilt nodes keep their type,
    except dict subclasses with their own ``__init__`` or ``__new__`` (such as
    :class:`mlx.nn.Module`), which become plain dicts as in :mod:`mlx.utils`.
    """
    if issubclass(cls, dict):
        # A subclass with its own constructor (mlx.nn.Module, Counter) cannot
        # be rebuilt from items; like mlx.utils, it comes back a plain dict.
        plain = cls.__init__ is dict.__init__ and cls.__new__ is dict.__new__
        rebuild = cls if plain else dict

        def flatten(d):
            items = list(d.items())  # what mlx.utils traverses
            keys = tuple(k for k, _ in items)
            return [v for _, v in items], keys, keys

        def unflatten(keys, children):
            return rebuild(zip(keys, children))

        entry = optree.MappingEntry
    else:

        def flatten(seq):
            return list(seq), None, None

        def unflatten(_, children):
            return cls(children)

        entry = optree.SequenceEntry
    try:
        optree.register_pytree_node(
            cls, flatten, unflatten, path_entry_type=entry, namespace=NAMESPACE
        )
    except ValueError:  # registered concurrently: nothing to do
        pass


def _foreign_containers(leaves: list, is_leaf: IsLeaf | None) -> set:
    """The container types among ``leaves`` that optree does not know (yet).

    Types are collected first (in C) and tested once each: this runs on every
    flatten, and a per-leaf test cost more than the flatten itself.
    """
    candidates = {t for t in set(map(type, leaves)) if issubclass(t, (dict, list, tuple))}
    if not candidates or is_leaf is None:
        return candidates
    return {type(x) for x in leaves if type(x) in candidates and not is_leaf(x)}


def _flatten_with_path(tree: Tree, is_leaf: IsLeaf | None):
    """optree's flatten with paths, registering unknown container subclasses."""
    while True:
        paths, leaves, spec = optree.tree_flatten_with_path(tree, is_leaf, **_OPTS)
        foreign = _foreign_containers(leaves, is_leaf)
        if not foreign:
            return paths, leaves, spec
        for cls in foreign:
            _register_container(cls)


def _flatten(tree: Tree, is_leaf: IsLeaf | None):
    while True:
        leaves, spec = optree.tree_flatten(tree, is_leaf, **_OPTS)
        foreign = _foreign_containers(leaves, is_leaf)
        if not foreign:
            return leaves, spec
        for cls in foreign:
            _register_container(cls)


def _dotted(path: tuple) -> str:
    return ".".join(map(str, path))


# --------------------------------------------------------------------------
# MLX-compatible functions
# --------------------------------------------------------------------------


def tree_flatten(
    tree: Tree,
    prefix: str = "",
    is_leaf: IsLeaf | None = None,
    destination: list | dict | None = None,
) -> list[tuple[str, Any]] | dict[str, Any]:
    """Flatten a tree into ``(dotted_key, leaf)`` pairs, as :func:`mlx.utils.tree_flatten`.

    Keys join dict keys and list/tuple indices with ``"."``; empty containers
    produce nothing; ``None`` is a leaf.  As in MLX, the first character of
    ``prefix`` is dropped (pass ``"." + name`` to prefix with ``name``).

    Args:
        tree: Any funcnn tree (dicts, lists, tuples, Modules, ...).
        prefix: Prepended to every key (its first character is dropped).
        is_leaf: Optional predicate that stops the traversal at a subtree.
        destination: A list to extend or a dict to fill; ``None`` makes a list.

    Example:
        >>> tree_flatten({"a": [1, {"b": 2}]})
        [('a.0', 1), ('a.1.b', 2)]
    """
    if destination is not None and not isinstance(destination, (list, dict)):
        raise ValueError("Destination should be either a list or a dictionary or None")
    paths, leaves, _ = _flatten_with_path(tree, is_leaf)
    if prefix:
        keys = [(prefix + "." + _dotted(p) if p else prefix)[1:] for p in paths]
    else:
        keys = [_dotted(p) for p in paths]
    if destination is None:
        return list(zip(keys, leaves))
    if isinstance(destination, list):
        destination.extend(zip(keys, leaves))
    else:
        destination.update(zip(keys, leaves))
    return destination


def tree_unflatten(tree: Sequence[tuple[str, Any]] | dict[str, Any]) -> Tree:
    """Rebuild a tree from dotted keys, as :func:`mlx.utils.tree_unflatten`.

    A level whose keys are all integers becomes a list (gaps filled with
    ``{}``; ``int()`` decides, so ``"01"``, ``" 1"`` and ``"+1"`` are index 1);
    any other level becomes a dict in first-seen order.  A lone key ``""`` at
    any level is the value itself (so ``"a"`` and ``"a."`` both give
    ``{"a": value}``), as in MLX.  Where MLX recurses forever or silently
    builds something else, funcnn raises ``ValueError`` naming the keys: a key
    given twice, a key given both as a leaf and as a subtree (``"a"`` and
    ``"a.b"``), two keys naming the same index (``"1"`` and ``"01"``), and a
    negative index (``"-1"``, which MLX puts at the front of the list).

    Example:
        >>> tree_unflatten([("layers.0.w", 1), ("layers.2.w", 2)])
        {'layers': [{'w': 1}, {}, {'w': 2}]}
        >>> tree_unflatten({"a": 1, "a.b": 2})
        Traceback (most recent call last):
        ...
        ValueError: Key 'a' is given both as a leaf and as a subtree.
    """
    items = list(tree.items()) if isinstance(tree, dict) else list(tree)
    return _unflatten_level(items, "")


def _unflatten_level(items: list, path: str) -> Tree:
    if len(items) == 1 and items[0][0] == "":
        return items[0][1]
    groups: dict[str, list] = {}
    for key, value in items:
        head, dot, rest = key.partition(".")
        group = groups.setdefault(head, [])
        if group:
            leaf_before, leaf_now = group[0][0] is None, not dot
            if leaf_before and leaf_now:
                raise ValueError(
                    f"Duplicate key {path + head!r}: each key may appear only once."
                )
            if leaf_before or leaf_now:
                raise ValueError(
                    f"Key {path + head!r} is given both as a leaf and as a subtree."
                )
        group.append((rest if dot else None, value))

    def child(head: str, group: list) -> Tree:
        if group[0][0] is None:
            return group[0][1]
        return _unflatten_level(group, path + head + ".")

    indices: dict[int, list[str]] = {}
    try:
        for head in groups:
            indices.setdefault(int(head), []).append(head)
    except ValueError:
        return {h: child(h, g) for h, g in groups.items()}
    for i, heads in indices.items():
        if len(heads) > 1:
            names = ", ".join(repr(path + h) for h in heads)
            raise ValueError(f"Keys {names} name the same list index {i}.")
        if i < 0:
            raise ValueError(
                f"Key {path + heads[0]!r} is a negative list index; "
                "list indices must be 0 or more."
            )
    out: list = []
    for i in sorted(indices):
        head = indices[i][0]
        out.extend({} for _ in range(i - len(out)))
        out.append(child(head, groups[head]))
    return out


def tree_leaves(tree: Tree, is_leaf: IsLeaf | None = None) -> list:
    """The leaves of ``tree`` in funcnn order (insertion order, ``None`` a leaf).

    Example:
        >>> tree_leaves({"b": 1, "a": [2, None]})
        [1, 2, None]
    """
    return _flatten(tree, is_leaf)[0]


def tree_structure(tree: Tree, is_leaf: IsLeaf | None = None) -> optree.PyTreeSpec:
    """The optree treespec of ``tree`` in funcnn's namespace.

    Example:
        >>> tree_structure({"w": 1, "b": None}).num_leaves
        2
    """
    return _flatten(tree, is_leaf)[1]


def _leaves_like(paths: list, spec: optree.PyTreeSpec, other: Tree) -> list:
    """Leaves of ``other`` at the paths of ``spec``; ``other`` may be a superset."""
    try:
        return spec.flatten_up_to(other)
    except Exception:  # noqa: BLE001 - indexing below gives MLX's errors
        pass
    out = []
    for path in paths:
        node = other
        for entry in path:
            node = node[entry]
        out.append(node)
    return out


def tree_map(fn: Callable, tree: Tree, *rest: Tree, is_leaf: IsLeaf | None = None) -> Tree:
    """Apply ``fn`` to every leaf, as :func:`mlx.utils.tree_map`.

    Each tree in ``rest`` must contain ``tree`` (it may have more keys); its
    matching leaves are passed to ``fn`` as extra arguments.  Node types are
    kept (a Module maps to a Module of the same class, an OrderedDict to an
    OrderedDict) where MLX would rebuild dict subclasses as plain dicts.

    Example:
        >>> tree_map(lambda a, b: a + b, {"x": 1}, {"x": 2, "y": 3})
        {'x': 3}
    """
    if not rest:
        paths, leaves, spec = None, *_flatten(tree, is_leaf)
    else:
        paths, leaves, spec = _flatten_with_path(tree, is_leaf)
    others = [_leaves_like(paths, spec, r) for r in rest]
    return spec.unflatten([fn(*args) for args in zip(leaves, *others)])


def tree_map_with_path(
    fn: Callable,
    tree: Tree,
    *rest: Tree,
    is_leaf: IsLeaf | None = None,
    path: str | None = None,
) -> Tree:
    """Like :func:`tree_map`, but ``fn(path, leaf, *rest_leaves)`` gets the dotted path.

    Example:
        >>> tree_map_with_path(lambda p, x: p, {"a": [0, 0]})
        {'a': ['a.0', 'a.1']}
    """
    paths, leaves, spec = _flatten_with_path(tree, is_leaf)
    others = [_leaves_like(paths, spec, r) for r in rest]
    if path:
        names = [f"{path}.{_dotted(p)}" if p else path for p in paths]
    else:
        names = [_dotted(p) if p else path for p in paths]
    return spec.unflatten([fn(*args) for args in zip(names, leaves, *others)])


def tree_reduce(
    fn: Callable, tree: Tree, initializer: Any = None, is_leaf: IsLeaf | None = None
) -> Any:
    """Fold the leaves of ``tree`` with ``fn(accumulator, leaf)``, as MLX's ``tree_reduce``.

    Without an ``initializer`` the first leaf starts the accumulation; an
    empty tree gives back ``initializer``.

    Example:
        >>> tree_reduce(lambda acc, x: acc + x, {"a": [1, 2], "b": 3}, 0)
        6
    """
    accumulator = initializer
    for leaf in tree_leaves(tree, is_leaf):
        accumulator = leaf if accumulator is None else fn(accumulator, leaf)
    return accumulator


# --------------------------------------------------------------------------
# What pure training needs
# --------------------------------------------------------------------------


def _mask_leaves(tree: Tree, where: Tree | Callable, spec, leaves, is_leaf) -> list[bool]:
    if callable(where) and not isinstance(where, (dict, list, tuple)):
        return [bool(where(x)) for x in leaves]
    # optree's own error may fail to format (it calls repr on the nodes, and
    # a module whose arrays were partitioned away may not repr), so catch all.
    try:
        mask = spec.flatten_up_to(where)
    except Exception as err:  # noqa: BLE001
        raise ValueError(
            "tree_partition: the mask must have the structure of the tree (or be "
            f"a predicate): expected {spec}, received {tree_structure(where)}"
        ) from err
    return [bool(m) for m in mask]


def tree_partition(
    tree: Tree, where: Tree | Callable[[Any], bool], is_leaf: IsLeaf | None = None
) -> tuple[Tree, Tree]:
    """Split ``tree`` into ``(selected, rest)``; the unchosen leaves become ``None``.

    ``where`` is a predicate on leaves or a tree of booleans with the shape
    of ``tree``.  :func:`tree_combine` puts the halves back together.

    Example:
        >>> import mlx.core as mx
        >>> arrays, static = tree_partition({"w": mx.ones(2), "n": 3},
        ...                                 lambda x: isinstance(x, mx.array))
        >>> static
        {'w': None, 'n': 3}
    """
    leaves, spec = _flatten(tree, is_leaf)
    mask = _mask_leaves(tree, where, spec, leaves, is_leaf)
    chosen = [x if m else None for x, m in zip(leaves, mask)]
    others = [None if m else x for x, m in zip(leaves, mask)]
    return spec.unflatten(chosen), spec.unflatten(others)


def tree_combine(*trees: Tree, is_leaf: IsLeaf | None = None) -> Tree:
    """Merge trees of one structure, taking at each leaf the first value that is not ``None``.

    The inverse of :func:`tree_partition`; the result has the node types (and,
    for modules, the attributes) of the first tree.

    Example:
        >>> tree_combine({"a": 1, "b": None}, {"a": None, "b": 2})
        {'a': 1, 'b': 2}
    """
    if not trees:
        raise ValueError("tree_combine needs at least one tree.")
    leaves, spec = _flatten(trees[0], is_leaf)
    columns = [leaves]
    for i, t in enumerate(trees[1:], start=1):
        try:
            columns.append(spec.flatten_up_to(t))
        except Exception as err:  # noqa: BLE001 - see _mask_leaves
            raise ValueError(
                f"tree_combine: tree {i} has structure {tree_structure(t, is_leaf)}, "
                f"expected {spec} (the structure of tree 0)."
            ) from err
    merged = [next((x for x in col if x is not None), None) for col in zip(*columns)]
    return spec.unflatten(merged)


def tree_stack(trees: Sequence[Tree], axis: int = 0) -> Tree:
    """Stack trees of one structure leaf by leaf along a new axis (for ensembles).

    Array leaves are stacked with :func:`mlx.core.stack` (they must have one
    shape); non-array leaves must be equal in every tree and are kept once.
    Modules of the same class and keys stack into one module, which takes its
    attributes from the first tree.

    Example:
        >>> import mlx.core as mx
        >>> tree_stack([{"w": mx.zeros(3)}, {"w": mx.ones(3)}])["w"].shape
        (2, 3)
        >>> tree_stack([{"w": mx.zeros(3)}, {"w": mx.ones(2)}])
        Traceback (most recent call last):
        ...
        ValueError: tree_stack: the arrays at 'w' have different shapes: [(3,), (2,)].
    """
    trees = list(trees)
    if not trees:
        raise ValueError("tree_stack needs at least one tree.")
    paths, leaves, spec = _flatten_with_path(trees[0], None)
    columns = [leaves]
    for i, t in enumerate(trees[1:], start=1):
        other_leaves, other_spec = _flatten(t, None)
        if other_spec != spec:
            raise ValueError(
                f"tree_stack: tree {i} has structure {other_spec}, "
                f"expected {spec} (the structure of tree 0)."
            )
        columns.append(other_leaves)
    out = []
    for path, column in zip(paths, zip(*columns)):
        is_array = [isinstance(x, mx.array) for x in column]
        if all(is_array):
            shapes = [x.shape for x in column]
            if any(shape != shapes[0] for shape in shapes):
                raise ValueError(
                    f"tree_stack: the arrays at {_dotted(path)!r} have different "
                    f"shapes: {shapes}."
                )
            out.append(mx.stack(list(column), axis=axis))
        elif any(is_array):
            raise ValueError(
                f"tree_stack: the leaf at {_dotted(path)!r} is an array in some "
                "trees and not in others."
            )
        elif any(not _same_leaf(x, column[0]) for x in column[1:]):
            raise ValueError(
                f"tree_stack: the non-array leaves at {_dotted(path)!r} differ "
                f"between trees: {list(column)}."
            )
        else:
            out.append(column[0])
    return spec.unflatten(out)


def _same_leaf(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - no usable equality: not the same
        return False


def tree_unstack(tree: Tree, axis: int = 0) -> list[Tree]:
    """Split every array leaf along ``axis``; the inverse of :func:`tree_stack`.

    Non-array leaves are repeated in every tree.

    Example:
        >>> import mlx.core as mx
        >>> [t["w"].shape for t in tree_unstack({"w": mx.zeros((2, 3))})]
        [(3,), (3,)]
    """
    paths, leaves, spec = _flatten_with_path(tree, None)
    sizes: dict[str, int] = {}
    for path, x in zip(paths, leaves):
        if isinstance(x, mx.array):
            if not -x.ndim <= axis < x.ndim:
                raise ValueError(
                    f"tree_unstack: the array at {_dotted(path)!r} has shape "
                    f"{x.shape}, which has no axis {axis}."
                )
            sizes[_dotted(path)] = x.shape[axis]
    if not sizes:
        raise ValueError("tree_unstack: the tree has no array leaves to split.")
    if len(set(sizes.values())) != 1:
        raise ValueError(
            f"tree_unstack: array leaves must share one size along axis {axis}, "
            f"got {sizes}."
        )
    n = next(iter(sizes.values()))
    if n == 0:
        return []
    split = [_unstack_array(x, n, axis) if isinstance(x, mx.array) else [x] * n for x in leaves]
    return [spec.unflatten([col[i] for col in split]) for i in range(n)]


def _unstack_array(x: mx.array, n: int, axis: int) -> list[mx.array]:
    # split + reshape rather than indexing: MLX cannot index (take) arrays
    # with zero elements, which stacked empty leaves are.
    axis = axis % x.ndim
    shape = x.shape[:axis] + x.shape[axis + 1 :]
    return [part.reshape(shape) for part in mx.split(x, n, axis=axis)]
