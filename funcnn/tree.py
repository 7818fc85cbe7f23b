"""Pytrees for funcnn, built on optree.

Every function here uses one optree namespace, :data:`NAMESPACE`, in which

* dicts keep their insertion order (MLX's order, not optree's sorted keys);
* ``None`` is a leaf, as in :mod:`mlx.utils`;
* every :class:`funcnn.Module` subclass is a node whose children are the
  module's dict items, rebuilt as a module of the same class.

The MLX-style names (``"layers.0.weight"``) come from :func:`tree_flatten`,
and :func:`tree_unflatten` inverts it.  Where :mod:`mlx.utils` is buggy,
funcnn raises a clear error instead: duplicate keys and keys such as ``"1"``
and ``"01"`` that name the same list index are a ``ValueError`` here.

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

import functools
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
    """Holds a node object in a treespec; compares by identity, not by value.

    Module equality is dict equality over arrays, which is neither cheap nor a
    boolean, so treespecs must never compare modules by value.
    """

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Template) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __repr__(self) -> str:
        return f"<{type(self.obj).__name__}>"


def _flatten_module(module):
    keys = tuple(module.keys())
    return [dict.__getitem__(module, k) for k in keys], (keys, _Template(module)), keys


def _unflatten_module(meta, children):
    keys, template = meta
    return template.obj._rebuild(zip(keys, children))


def register_module_type(cls: type) -> type:
    """Make ``cls`` (a :class:`funcnn.Module` subclass) a node of funcnn trees.

    Called automatically for every subclass; registration in optree is by
    exact type, so each subclass needs its own entry.
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
    sight so that results agree with MLX.
    """
    if issubclass(cls, dict):

        def flatten(d):
            keys = tuple(d.keys())
            return [d[k] for k in keys], keys, keys

        def unflatten(keys, children):
            return cls(zip(keys, children))

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


def _is_foreign_container(leaf: Any, is_leaf: IsLeaf | None) -> bool:
    return isinstance(leaf, (dict, list, tuple)) and not (
        is_leaf is not None and is_leaf(leaf)
    )


def _flatten_with_path(tree: Tree, is_leaf: IsLeaf | None):
    """optree's flatten with paths, registering unknown container subclasses."""
    while True:
        paths, leaves, spec = optree.tree_flatten_with_path(tree, is_leaf, **_OPTS)
        foreign = {type(x) for x in leaves if _is_foreign_container(x, is_leaf)}
        if not foreign:
            return paths, leaves, spec
        for cls in foreign:
            _register_container(cls)


def _flatten(tree: Tree, is_leaf: IsLeaf | None):
    while True:
        leaves, spec = optree.tree_flatten(tree, is_leaf, **_OPTS)
        foreign = {type(x) for x in leaves if _is_foreign_container(x, is_leaf)}
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
    ``{}``); any other level becomes a dict in first-seen order.  Unlike MLX
    (which recurses forever), a key given twice or two keys naming the same
    index (``"1"`` and ``"01"``) raise ``ValueError`` naming them.

    Example:
        >>> tree_unflatten([("layers.0.w", 1), ("layers.2.w", 2)])
        {'layers': [{'w': 1}, {}, {'w': 2}]}
    """
    items = list(tree.items()) if isinstance(tree, dict) else list(tree)
    if len(items) == 1 and items[0][0] == "":
        return items[0][1]
    return _unflatten_level(items, "")


def _unflatten_level(items: list, path: str) -> Tree:
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

    indices = {}
    try:
        for head in groups:
            indices.setdefault(int(head), []).append(head)
    except ValueError:
        return {h: child(h, g) for h, g in groups.items()}
    for i, heads in indices.items():
        if len(heads) > 1:
            names = ", ".join(repr(path + h) for h in heads)
            raise ValueError(f"Keys {names} name the same list index {i}.")
    out: list = []
    for i in sorted(indices):
        head = indices[i][0]
        out.extend({} for _ in range(i - len(out)))
        out.append(child(head, groups[head]))
    return out


def tree_leaves(tree: Tree, is_leaf: IsLeaf | None = None) -> list:
    """The leaves of ``tree`` in funcnn order (insertion order, ``None`` a leaf)."""
    return _flatten(tree, is_leaf)[0]


def tree_structure(tree: Tree, is_leaf: IsLeaf | None = None) -> optree.PyTreeSpec:
    """The optree treespec of ``tree`` in funcnn's namespace."""
    return _flatten(tree, is_leaf)[1]


def _leaves_like(paths: list, spec: optree.PyTreeSpec, other: Tree) -> list:
    """Leaves of ``other`` at the paths of ``spec``; ``other`` may be a superset."""
    try:
        return spec.flatten_up_to(other)
    except (ValueError, TypeError):
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
        names = [path + "." + _dotted(p) if p else path for p in paths]
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
    try:
        mask = spec.flatten_up_to(where)
    except (ValueError, TypeError) as err:
        raise ValueError(
            "The mask must have the structure of the tree (or be a predicate): "
            f"expected {spec}, received {tree_structure(where)}"
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

    Example:
        >>> tree_combine({"a": 1, "b": None}, {"a": None, "b": 2})
        {'a': 1, 'b': 2}
    """
    if not trees:
        raise ValueError("tree_combine needs at least one tree.")
    leaves, spec = _flatten(trees[0], is_leaf)
    columns = [leaves] + [spec.flatten_up_to(t) for t in trees[1:]]
    merged = [next((x for x in col if x is not None), None) for col in zip(*columns)]
    return spec.unflatten(merged)


def tree_stack(trees: Sequence[Tree], axis: int = 0) -> Tree:
    """Stack trees of one structure leaf by leaf along a new axis (for ensembles).

    Array leaves are stacked with :func:`mlx.core.stack`; non-array leaves
    must be equal in every tree and are kept once.

    Example:
        >>> import mlx.core as mx
        >>> tree_stack([{"w": mx.zeros(3)}, {"w": mx.ones(3)}])["w"].shape
        (2, 3)
    """
    trees = list(trees)
    if not trees:
        raise ValueError("tree_stack needs at least one tree.")
    leaves, spec = _flatten(trees[0], None)
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
    for path_leaves in zip(*columns):
        first = path_leaves[0]
        if isinstance(first, mx.array):
            out.append(mx.stack(list(path_leaves), axis=axis))
        else:
            if any(x != first for x in path_leaves[1:]):
                raise ValueError(
                    f"tree_stack: non-array leaves differ between trees: {path_leaves}"
                )
            out.append(first)
    return spec.unflatten(out)


def tree_unstack(tree: Tree, axis: int = 0) -> list[Tree]:
    """Split every array leaf along ``axis``; the inverse of :func:`tree_stack`.

    Example:
        >>> import mlx.core as mx
        >>> [t["w"].shape for t in tree_unstack({"w": mx.zeros((2, 3))})]
        [(3,), (3,)]
    """
    leaves, spec = _flatten(tree, None)
    sizes = {x.shape[axis] for x in leaves if isinstance(x, mx.array)}
    if len(sizes) != 1:
        raise ValueError(
            f"tree_unstack: array leaves must share one size along axis {axis}, "
            f"got sizes {sorted(sizes)}."
        )
    (n,) = sizes
    split = [
        [mx.take(x, i, axis=axis) for i in range(n)] if isinstance(x, mx.array) else [x] * n
        for x in leaves
    ]
    return [spec.unflatten([col[i] for col in split]) for i in range(n)]
