"""MLX transforms whose arguments and results may be any funcnn pytree.

``mx.grad``/``mx.vmap`` accept only trees of arrays, and ``mx.compile`` hands a
Module argument to the function as a plain dict.  The transforms here take and
return any funcnn tree (Modules, dicts, lists, tuples, NamedTuples, ...):

* **array leaves** are traced; every other leaf (ints, strings, ``None``,
  callables, dtypes, ...) is **static** data passed through unchanged;
* the function receives **rebuilt copies** of its tree arguments (Modules of
  the same class and attributes holding the traced arrays), so nothing traced
  can leak into the caller's models, even when ``fn`` raises;
* which arrays are differentiated is chosen by ``filter``: by default the
  floating-point arrays and, inside a Module (at any depth), only what
  ``trainable_parameters()`` holds (public, not frozen; ``_private`` and frozen
  arrays stay constant).  A predicate on array leaves replaces the
  floating-point test (the Module rule still applies); a tree of booleans (a
  prefix of the differentiated arguments) chooses exactly, frozen arrays too;
* gradients keep the structure of their argument: the gradient of a Module is
  a Module of the same class and attributes, with ``None`` at every leaf that
  was not differentiated (static leaves included) -- an optimizer skips them;
* **module state is carried out, never lost**: arrays a Module of the
  arguments stores during ``fn`` (BatchNorm's running statistics in training
  mode, weights an optimizer step wrote with ``update``) are returned by
  ``grad``, ``value_and_grad`` and ``compile`` as extra outputs and stored in
  the caller's module at the same place, as an eager call would leave them.
  Any other change (an item removed, a list grown, a plain attribute changed),
  and any change under ``vmap``, ``jvp`` or ``vjp`` (whose outputs are batched
  or tangents), raises ``ValueError`` naming the module and the item
  (:mod:`funcnn.transforms._state`);
* ``compile`` threads MLX's global random state through every call, so random
  draws without a key (a facade ``Dropout``) advance as they would eagerly
  instead of repeating the traced ones.

A Module or array reachable through two paths of an argument is two
independent leaves (optree does not share nodes): each path gets the gradient
of its own uses, and the full gradient of a tied weight is their sum
(``mlx.nn.value_and_grad`` gives all of it to the last alias instead).

Example:
    >>> import mlx.core as mx
    >>> import funcnn as nn
    >>> import funcnn.transforms as T
    >>> model = nn.Linear(2, 1)
    >>> loss = lambda m, x: (m(x) ** 2).mean()
    >>> g = T.grad(loss)(model, mx.ones((4, 2)))
    >>> type(g).__name__, g["weight"].shape
    ('Linear', (1, 2))
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Union

import mlx.core as mx

from .. import tree as _tree
from ._functional_call import functional_call, stateful_call
from ._state import Tracker, write_back
from ._structure import (
    Structure,
    StructureCache,
    all_arrays,
    apply_out_axes,
    axes_leaves_ok,
    check_mapped,
    in_axes_per_array,
)
from ._structure import arg_leaves as _arg_leaves
from ._structure import describe as _describe
from ._structure import join as _join
from ._structure import prefix_leaves as _prefix_leaves
from ._structure import show as _show
from ._structure import split as _split

__all__ = [
    "grad", "value_and_grad", "vmap", "compile", "jvp", "vjp", "functional_call", "stateful_call"
]

Tree = Any
Filter = Union[None, Callable[[mx.array], bool], Tree]
ArgNums = Union[int, Sequence[int]]

_ARRAY = mx.array
_FLOATING = frozenset({mx.float16, mx.bfloat16, mx.float32, mx.float64})
_COMPILE_CACHE_SIZE = 64  # structures per compiled function; the oldest is dropped
_CACHE_SIZE = 8  # structures per grad/vmap wrapper
_RANDOM_STATE = [mx.random.state]


# --------------------------------------------------------------------------
# Filters and argument checks
# --------------------------------------------------------------------------


def _rebuild_with(s: Structure, arrays: list, positions: list, traced: Sequence) -> Any:
    """``s`` rebuilt from ``arrays`` with ``traced`` at ``positions`` (a transform's tracers)."""
    new = list(arrays)
    for i, t in zip(positions, traced):
        new[i] = t
    return s.rebuild(new)


def _show_args(nums: Sequence[int]) -> Callable[[tuple], str]:
    """How a Module's path in the tuple of ``args[n] for n in nums`` reads in a message."""

    def show(keys: tuple) -> str:
        return f"args[{nums[keys[0]]}]" + "".join(f".{k}" for k in keys[1:])

    return show


def _show_call(keys: tuple) -> str:
    """A Module's path in ``(args, kwargs)``, for messages."""
    head = f"args[{keys[1]}]" if keys[0] == 0 else f"kwargs[{keys[1]!r}]"
    return head + "".join(f".{k}" for k in keys[2:])


def _diff_mask(name: str, s: Structure, arrays: list, filter: Filter, prefix: Tree) -> list[bool]:
    """Per array leaf of ``s``: is it differentiated?  ``prefix``: ``filter`` shaped like ``s``."""
    if s.trainable is None and not isinstance(filter, (dict, list, tuple, bool)):
        raise NotImplementedError(
            f"{name}: the arguments hold a node type funcnn cannot analyse, so it cannot tell "
            "which arrays are trainable; pass a tree of booleans as filter."
        )
    if filter is None:
        return [ok and x.dtype in _FLOATING for ok, x in zip(s.trainable, arrays)]
    if isinstance(filter, (dict, list, tuple, bool)):  # a tree of booleans (Modules are dicts)
        mask = s.cache.get("filter")
        if mask is None:
            leaves = _prefix_leaves(name, "filter", prefix, s, "the differentiated arguments")
            bad = [b for b in leaves if b is not None and not isinstance(b, bool)]
            if bad:
                raise ValueError(
                    f"{name}: a filter tree holds booleans (or None); received {_describe(bad[0])}."
                )
            mask = s.cache["filter"] = [bool(leaves[i]) for i in s.array_pos]
        return mask
    if callable(filter):
        return [ok and bool(filter(x)) for ok, x in zip(s.trainable, arrays)]
    raise TypeError(
        f"{name}: filter must be None, a predicate on arrays or a tree of booleans; "
        f"received {_describe(filter)}."
    )


def _nothing_to_differentiate(
    name: str, where: str, args: Sequence, nums: Sequence[int], filter: Filter
) -> ValueError:
    rule = (
        "floating-point arrays and, inside Modules, trainable parameters"
        if filter is None
        else f"filter {filter!r}"
    )
    leaves = _arg_leaves(args, nums)
    shown = ", ".join(f"{k!r}: {_describe(v)}" for k, v in leaves[:8])
    more = f", ... ({len(leaves)} leaves)" if len(leaves) > 8 else ""
    return ValueError(
        f"{name}: nothing to differentiate: no leaf of {where} is selected ({rule}); "
        f"received {{{shown}{more}}}."
    )


def _argnums(argnums: ArgNums, name: str) -> tuple[tuple[int, ...], bool]:
    single = isinstance(argnums, int) and not isinstance(argnums, bool)
    nums = (argnums,) if single else tuple(argnums) if isinstance(argnums, (tuple, list)) else ()
    if not nums or any(not isinstance(n, int) or isinstance(n, bool) or n < 0 for n in nums):
        raise ValueError(
            f"{name}: argnums must be a non-negative int or a non-empty tuple of them; "
            f"received {argnums!r}."
        )
    if len(set(nums)) != len(nums):
        raise ValueError(f"{name}: argnums {argnums!r} names an argument twice.")
    return nums, single


def _check_loss(name: str, out: Any) -> None:
    head = out[0] if isinstance(out, tuple) and out else out
    if not isinstance(head, _ARRAY) or head.ndim != 0:
        where = "the first element of the tuple fn returned" if head is not out else "fn's result"
        raise ValueError(
            f"{name}: fn must return a scalar array (shape ()) or a tuple whose first element "
            f"is one; {where} is {_describe(head)}."
        )


# --------------------------------------------------------------------------
# grad, value_and_grad
# --------------------------------------------------------------------------


class _Entry:
    __slots__ = ("structure",)

    def __init__(self, structure: Structure) -> None:
        self.structure = structure


def value_and_grad(fn: Callable, argnums: ArgNums = 0, *, filter: Filter = None) -> Callable:
    """Like :func:`mlx.core.value_and_grad`, over any funcnn trees.

    ``fn`` returns a scalar array, or a tuple whose first element is one (the
    rest, ``aux``, may be any tree, static leaves included); the wrapper returns
    ``(value, grads)`` where ``value`` is what ``fn`` returned and ``grads`` has
    the structure of ``args[argnums]`` (a tuple of such trees, in the order of
    ``argnums``, when it is a tuple; MLX sorts them), ``None`` at every leaf
    not differentiated.  Keyword arguments are passed through and never
    differentiated.  See the module docstring for ``filter``.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.transforms as T
        >>> f = lambda p: ((p["w"] * p["n"]).sum(), "aux")
        >>> (loss, aux), g = T.value_and_grad(f)({"w": mx.ones(3), "n": 2})
        >>> loss.item(), aux, g["w"].tolist(), g["n"]
        (6.0, 'aux', [2.0, 2.0, 2.0], None)
    """
    return _make_grad(fn, argnums, filter, "value_and_grad", with_value=True)


def grad(fn: Callable, argnums: ArgNums = 0, *, filter: Filter = None) -> Callable:
    """Like :func:`mlx.core.grad`, over any funcnn trees; see :func:`value_and_grad`.

    ``fn`` may also return ``(loss, aux...)``; only the gradients are returned.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.transforms as T
        >>> T.grad(lambda x, y: (x * y).sum(), argnums=(0, 1))(mx.ones(2), mx.full(2, 3.0))
        (array([3, 3], dtype=float32), array([1, 1], dtype=float32))
    """
    return _make_grad(fn, argnums, filter, "grad", with_value=False)


def _make_grad(
    fn: Callable, argnums: ArgNums, filter: Filter, name: str, with_value: bool
) -> Callable:
    nums, single = _argnums(argnums, name)
    cache = StructureCache(_Entry, _CACHE_SIZE)
    prefix = (filter,) if single else filter
    top = max(nums)
    show = _show_args(nums)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if top >= len(args):
            raise ValueError(
                f"{name}: argnums={argnums!r}, but fn received {len(args)} positional argument(s)."
            )
        selected = tuple(args[n] for n in nums)
        entry, arrays = cache.lookup(selected)
        s = entry.structure
        mask = _diff_mask(name, s, arrays, filter, prefix)
        diff = [i for i, m in enumerate(mask) if m]
        if not diff:
            raise _nothing_to_differentiate(name, f"argnums={argnums!r}", selected, nums, filter)
        box: list = []

        def inner(traced: list) -> tuple:
            call = list(args)
            rebuilt = _rebuild_with(s, arrays, diff, traced)
            tracker = Tracker(s, rebuilt, show)
            for n, a in zip(nums, rebuilt):
                call[n] = a
            out = fn(*call, **kwargs)
            _check_loss(name, out)
            plan, state = tracker.changes(name, carried=True)
            spec, statics, pos, out_arrays = _split(out)
            box.append(((spec, statics, pos), plan))
            return (*out_arrays, *state)  # the loss is the first array leaf

        values, grads = mx.value_and_grad(inner)([arrays[i] for i in diff])
        info, plan = box[-1]
        if plan:  # the new module state: the caller's modules get it
            write_back(s.modules(selected), plan, values[len(values) - len(plan) :])
            values = values[: len(values) - len(plan)]
        per_array = [None] * len(arrays)
        for i, g in zip(diff, grads):
            per_array[i] = g
        gtree = s.unflatten_arrays(per_array)
        gtree = gtree[0] if single else gtree
        if not with_value:
            return gtree
        return _join(info, values), gtree

    return functools.wraps(fn)(wrapped)


# --------------------------------------------------------------------------
# vmap
# --------------------------------------------------------------------------


def vmap(fn: Callable, in_axes: Tree = 0, out_axes: Tree = 0) -> Callable:
    """Like :func:`mlx.core.vmap`, over any funcnn trees.

    ``in_axes`` is an int or ``None`` (for every argument), or a tuple with one
    entry per positional argument, each an int, ``None`` or a tree prefix of
    that argument (a tuple always means this; MLX matches a tuple against a
    single argument).  With a single positional argument a non-tuple tree (a
    dict, a Module, ...) is matched against it directly, as MLX does.  Static
    leaves are never mapped.  ``out_axes`` is an int or a tree prefix of the result
    (``None`` is refused: MLX cannot return an unmapped output).  Keyword
    arguments are passed through unmapped (MLX refuses them).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> import funcnn.transforms as T
        >>> models = nn.tree.tree_stack([nn.Linear(3, 2) for _ in range(4)])  # an ensemble
        >>> T.vmap(lambda m, x: m(x), in_axes=(0, None))(models, mx.ones((5, 3))).shape
        (4, 5, 2)
    """
    if type(in_axes) is not tuple:
        axes_leaves_ok("vmap", "in_axes", _tree.tree_leaves(in_axes))
    cache = StructureCache(_Entry, _CACHE_SIZE)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        entry, arrays = cache.lookup(args)
        s = entry.structure
        axes = s.cache.get("axes")
        if axes is None:
            axes = s.cache["axes"] = in_axes_per_array(in_axes, args, s)
        mapped = [i for i, ax in enumerate(axes) if ax is not None]
        if not mapped:
            raise ValueError(
                f"vmap: in_axes={in_axes!r} maps none of the {len(arrays)} array leaves of the "
                "arguments; map at least one."
            )
        check_mapped(args, s, arrays, axes, mapped)
        box: list = []

        def inner(traced: list) -> list:
            rebuilt = _rebuild_with(s, arrays, mapped, traced)
            tracker = Tracker(s, rebuilt, _show_args(range(len(args))))
            out = fn(*rebuilt, **kwargs)
            tracker.changes("vmap", carried=False)
            spec, statics, pos, out_arrays = _split(out)
            if not out_arrays:
                raise ValueError(
                    f"vmap: fn must return at least one array; it returned {_describe(out)}."
                )
            box.append((spec, statics, pos))
            return out_arrays

        outs = mx.vmap(inner, in_axes=[axes[i] for i in mapped])([arrays[i] for i in mapped])
        return _join(box[-1], apply_out_axes(out_axes, box[-1], outs))

    return functools.wraps(fn)(wrapped)


# --------------------------------------------------------------------------
# compile
# --------------------------------------------------------------------------


def _discard(entries: list, entry: Any) -> None:
    # Tolerant: another thread may have moved or dropped the entry meanwhile.
    try:
        entries.remove(entry)
    except ValueError:
        pass


def _restore_random_state(key: mx.array) -> None:
    """Put ``key`` back as MLX's global random key.

    When a compiled function raises while MLX traces it, MLX leaves the
    captured random state holding a placeholder, and every later random draw
    fails; reseeding with the key's own 64 bits restores it exactly
    (``mx.random.key(s)`` is ``[s >> 32, s & 0xffffffff]``).
    """
    hi, lo = key.tolist()
    mx.random.seed((hi << 32) | lo)


class _NotAnArray(Exception):
    """A value that is not an array reached an array position of a compiled structure."""


class _Compiled:
    __slots__ = ("structure", "call", "outputs")

    def __init__(self, structure: Structure, fn: Callable, shapeless: bool) -> None:
        self.structure = structure
        outputs: list = []  # output structure of every trace MLX made for this entry
        self.outputs = outputs

        def traced(arrays: list) -> tuple:
            if not all_arrays(arrays):  # see ``compiled``
                raise _NotAnArray()
            rebuilt = structure.rebuild(arrays)
            tracker = Tracker(structure, rebuilt, _show_call)
            args, kwargs = rebuilt
            out = fn(*args, **kwargs)
            plan, state = tracker.changes("compile", carried=True)
            spec, statics, pos, out_arrays = _split(out)
            outputs.append(((spec, statics, pos), plan))
            # MLX keeps the constants a trace returns with that trace, so the
            # index finds the right output structure (and state plan) even
            # when MLX keeps several traces (one per input shape) for this entry.
            return out_arrays, state, len(outputs) - 1

        # MLX's global random state goes in and out of every call, as an eager
        # call would advance it: dropout without a key draws a new mask each
        # time (mx.compile alone would replay the traced one).
        self.call = mx.compile(
            traced, inputs=_RANDOM_STATE, outputs=_RANDOM_STATE, shapeless=shapeless
        )


def compile(fn: Callable, *, shapeless: bool = False) -> Callable:  # noqa: A001 - MLX's name
    """Like :func:`mlx.core.compile`, with any funcnn trees as arguments and result.

    The structure of the arguments (``(args, kwargs)``), their static leaves
    and every Module's plain attributes (``training``, ``eps``, frozen keys,
    ...) select a cached trace: changing one of them traces again, changing
    array values (or shapes, which MLX handles) does not, and going back to
    earlier static values finds the earlier trace.  Static leaves are compared
    with ``==`` (same type), attributes as the module's ``__dict__``; key order
    is not part of the key (items are matched by key).  The result may be any
    tree, static leaves included.

    Arrays ``fn`` reaches only through a closure (not an argument) are
    constants of the trace, as in MLX: pass models as arguments (then the
    state they store during the call, such as BatchNorm statistics, reaches
    them after every call; see the module docstring).  MLX's global random
    state goes in and out of every call.  A static
    value that changes on every call (a step counter, a Python float learning
    rate) traces on every call: pass it as an array.  The cache keeps the 64
    most recently used structures.

    Example:
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> import funcnn.transforms as T
        >>> step = T.compile(lambda m, x: (m(x).sum(), m.training))
        >>> model = nn.Linear(2, 1)
        >>> loss, training = step(model, mx.ones((3, 2)))
        >>> training, step(model.eval(), mx.ones((3, 2)))[1]   # the flag is part of the key
        (True, False)
    """
    entries: list[_Compiled] = []

    def run(entry: _Compiled, arrays: list, tree: Any) -> Any:
        key = _RANDOM_STATE[0][0]  # the global key, to restore if MLX's capture fails
        try:
            outs, state, k = entry.call(arrays)
        except BaseException:
            _restore_random_state(key)
            # fn (or MLX) failed on valid inputs: forget the entry, since MLX
            # may keep a half-made trace for its function.  A refused
            # non-array (see below) leaves the entry's traces valid.
            if all_arrays(arrays):
                _discard(entries, entry)
            raise
        info, plan = entry.outputs[k]
        if plan:  # module state the call changed (BatchNorm statistics): to the caller's model
            write_back(entry.structure.modules(tree), plan, state)
        return _join(info, outs)

    def compiled(*args: Any, **kwargs: Any) -> Any:
        tree = (args, kwargs)
        for entry in tuple(entries):
            # Unchecked: a non-array where the structure has an array changes
            # MLX's own cache key (its argument constants), so MLX traces, and
            # ``traced`` refuses it; we then try the other structures or
            # analyse the tree afresh.  This saves a pass over every array.
            arrays = entry.structure.match(tree, check=False)
            if arrays is None:
                continue
            if entries[:1] != [entry]:  # most recently used first
                _discard(entries, entry)
                entries.insert(0, entry)
            try:
                return run(entry, arrays, tree)
            except BaseException:
                if all_arrays(arrays):
                    raise
        structure, arrays = Structure.build(tree)
        # Build the matcher now, before tracing: compiling its generated source
        # is a transient of several MB for big trees, and done here it reuses
        # memory the trace will need anyway instead of raising the peak later.
        structure.match(tree, check=False)
        entry = _Compiled(structure, fn, shapeless)
        entries.insert(0, entry)
        del entries[_COMPILE_CACHE_SIZE:]
        return run(entry, arrays, tree)

    return functools.wraps(fn)(compiled)


# --------------------------------------------------------------------------
# jvp, vjp
# --------------------------------------------------------------------------


def _primals(name: str, primals: Any) -> tuple:
    if not isinstance(primals, (tuple, list)):
        raise ValueError(
            f"{name}: primals must be a tuple or list of fn's arguments; "
            f"received {_describe(primals)}."
        )
    return tuple(primals)


def jvp(
    fn: Callable, primals: Sequence[Tree], tangents: Sequence[Tree], *, filter: Filter = None
) -> tuple[Tree, Tree]:
    """Forward-mode derivative of ``fn(*primals)`` along ``tangents``.

    ``tangents`` is shaped like ``primals`` (a tree prefix: ``None`` means no
    tangent for a whole subtree); the tangent of a differentiated array leaf
    (see ``filter`` in the module docstring) must be an array of its shape,
    tangents at other leaves are ignored.  Returns ``(outputs, output_tangents)``:
    ``fn``'s result, and a tree of the same structure with the tangent of every
    array output (``None`` at static outputs).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.transforms as T
        >>> out, t = T.jvp(lambda p: {"y": p["w"] ** 2, "n": p["n"]},
        ...                ({"w": mx.array(3.0), "n": 1},), ({"w": mx.array(1.0), "n": None},))
        >>> out["y"].item(), t["y"].item(), t["n"]
        (9.0, 6.0, None)
    """
    primals = _primals("jvp", primals)
    s, arrays = Structure.build(primals)
    if not isinstance(tangents, (tuple, list)) or len(tangents) != len(primals):
        raise ValueError(
            f"jvp: tangents must be a tuple or list with one tree per primal ({len(primals)}); "
            f"received {_describe(tangents)}."
        )
    tan = _prefix_leaves("jvp", "tangents", tuple(tangents), s, "primals")
    mask = _diff_mask("jvp", s, arrays, filter, filter)
    diff, tangent_arrays = [], []
    for i, (x, m) in enumerate(zip(arrays, mask)):
        t = tan[s.array_pos[i]]
        if not m or t is None:
            continue
        if not isinstance(t, _ARRAY) or t.shape != x.shape:
            name = _arg_leaves(primals, range(len(primals)))[s.array_pos[i]][0]
            raise ValueError(
                f"jvp: the tangent at {name!r} must be an array of the primal's shape "
                f"{tuple(x.shape)}; received {_describe(t)}."
            )
        diff.append(i)
        tangent_arrays.append(t)
    if not diff:
        raise _nothing_to_differentiate(
            "jvp", "the primals with a tangent", primals, range(len(primals)), filter
        )
    box: list = []

    def inner(*traced: mx.array) -> list:
        rebuilt = _rebuild_with(s, arrays, diff, traced)
        tracker = Tracker(s, rebuilt, _show_args(range(len(primals))))
        spec, statics, pos, out_arrays = _split(fn(*rebuilt))
        tracker.changes("jvp", carried=False)
        if not out_arrays:
            raise ValueError("jvp: fn must return at least one array.")
        box.append((spec, statics, pos))
        return out_arrays

    outs, out_tangents = mx.jvp(inner, [arrays[i] for i in diff], tangent_arrays)
    spec, statics, pos = box[-1]
    return _join(box[-1], outs), _join((spec, [None] * len(statics), pos), out_tangents)


def vjp(
    fn: Callable, primals: Sequence[Tree], cotangents: Tree, *, filter: Filter = None
) -> tuple[Tree, Union[tuple, list]]:
    """Reverse-mode derivative of ``fn(*primals)`` against ``cotangents``.

    ``cotangents`` has the structure of ``fn``'s result, with an array (of the
    output's shape) at every array output and ``None`` at static outputs.
    Returns ``(outputs, primal_cotangents)``: ``fn``'s result, and a tuple (a
    list if ``primals`` is one) shaped like ``primals`` with ``None`` at every
    leaf not differentiated (see ``filter`` in the module docstring).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.transforms as T
        >>> out, (g,) = T.vjp(lambda p: (p["w"] * 2, "tag"), ({"w": mx.ones(2)},),
        ...                   (mx.array([1.0, 3.0]), None))
        >>> out[1], g["w"].tolist()
        ('tag', [2.0, 6.0])
    """
    as_list = isinstance(primals, list)
    primals = _primals("vjp", primals)
    s, arrays = Structure.build(primals)
    mask = _diff_mask("vjp", s, arrays, filter, filter)
    diff = [i for i, m in enumerate(mask) if m]
    if not diff:
        raise _nothing_to_differentiate("vjp", "the primals", primals, range(len(primals)), filter)
    cot_spec, cot_leaves, cot_pos, cot_arrays = _split(cotangents)
    box: list = []

    def inner(*traced: mx.array) -> list:
        rebuilt = _rebuild_with(s, arrays, diff, traced)
        tracker = Tracker(s, rebuilt, _show_args(range(len(primals))))
        spec, statics, pos, out_arrays = _split(fn(*rebuilt))
        tracker.changes("vjp", carried=False)
        if spec != cot_spec or pos != cot_pos:
            raise ValueError(
                "vjp: cotangents must have the structure of fn's result, with an array at "
                f"every array output and None elsewhere: expected {_show(spec)} with arrays at "
                f"leaves {pos}, received {_show(cot_spec)} with arrays at leaves {cot_pos}."
            )
        for k, (o, c) in enumerate(zip(out_arrays, cot_arrays)):
            if o.shape != c.shape:
                name = _tree.tree_flatten(cotangents)[cot_pos[k]][0] or "<the result>"
                raise ValueError(
                    f"vjp: the cotangent at {name!r} must have the output's shape "
                    f"{tuple(o.shape)}; received {_describe(c)}."
                )
        box.append((spec, statics, pos))
        return out_arrays

    outs, grads = mx.vjp(inner, [arrays[i] for i in diff], cot_arrays)
    per_array = [None] * len(arrays)
    for i, g in zip(diff, grads):
        per_array[i] = g
    result = s.unflatten_arrays(per_array)
    return _join(box[-1], outs), list(result) if as_list else result
