"""The explicit-state :class:`Optimizer`: an ``(init, update)`` pair around one mlx rule.

The per-parameter math is :mod:`mlx.optimizers`' own (``init_single`` and
``apply_single`` of an ``mlx.optimizers.Adam``, ``SGD``, ...).  Everything that
object would keep between steps lives in the state pytree instead; see
:mod:`funcnn.optimizers` for its layout.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any, Optional

import mlx.core as mx

from ..tree import tree_flatten, tree_unflatten
from ._plan import plan_for

__all__ = ["Optimizer"]

Params = Any
State = dict
GradTransform = Callable[[dict], dict]

# Keys of the state dict other than the rule's hyper-parameters.
STEP = "step"
PER_PARAM = "per_param"


def _is_module(tree: Any) -> bool:
    """A funcnn or mlx.nn Module (duck-typed on the class; mlx.nn is never imported)."""
    cls = type(tree)
    return isinstance(tree, dict) and all(
        callable(getattr(cls, name, None)) for name in ("parameters", "trainable_parameters")
    )


def _param_tree(params: Params) -> Any:
    if _is_module(params):
        return params.parameters()
    if isinstance(params, mx.array):
        raise TypeError(
            "params must be a tree (dict, list or Module) of arrays, not a bare array; "
            "wrap it, e.g. {'w': w}."
        )
    return params


def _named_arrays(tree: Any) -> list[tuple[str, mx.array]]:
    return [(k, x) for k, x in tree_flatten(tree) if isinstance(x, mx.array)]


def _trainable_names(
    params: Params, tree: Any, named: list[tuple[str, mx.array]], mask: Any
) -> set[str]:
    """The dotted names of the parameters to optimize (see ``Optimizer.init``)."""
    names = [k for k, _ in named]
    known = set(names)
    if mask is None and not _is_module(params):
        return known
    if mask is None or _is_module(mask):
        source = params if mask is None else mask
        chosen = {k for k, x in tree_flatten(source.trainable_parameters())
                  if isinstance(x, mx.array)}
        unknown = sorted(chosen - known)
        if unknown:
            raise ValueError(
                f"The mask module has trainable parameters that params lacks: {unknown}."
            )
        return chosen
    if callable(mask) and not isinstance(mask, (dict, list, tuple)):
        return {k for k, x in named if mask(k, x)}
    flat = tree_flatten(mask, destination={})
    leaves = {k for k, _ in tree_flatten(tree)}  # non-array leaves may have a mask entry
    missing, extra = sorted(known - flat.keys()), sorted(flat.keys() - leaves)
    if missing or extra:
        raise ValueError(
            "The mask must be a tree of booleans shaped like params "
            f"(missing: {missing}, not parameters: {extra})."
        )
    chosen = set()
    for k in names:
        value = flat[k]
        if isinstance(value, mx.array) and value.dtype == mx.bool_ and value.size == 1:
            value = value.item()
        if not isinstance(value, bool) and type(value).__name__ != "bool_":
            raise TypeError(
                f"Mask leaf {k!r} is {type(value).__name__}, not a boolean.  To take the "
                "trainable set of a Module, pass the Module itself as the mask."
            )
        if value:
            chosen.add(k)
    return chosen


def _nest_slots(order: list[str], slots: dict[str, dict]) -> Any:
    """Nested per-parameter state: ``slots[name][slot]`` under ``"name.slot"``.

    Parameters in ``order`` and slots by name, whatever order the state came
    in (``mx.load`` returns its own): ``update`` always returns one layout.
    """
    flat = [(f"{k}.{s}", slots[k][s]) for k in order if k in slots for s in sorted(slots[k])]
    return tree_unflatten(flat) if flat else {}


class Optimizer:
    """An explicit-state optimizer: ``init(params, mask=None) -> state`` and
    ``update(grads, state, params) -> (params, state)``.

    Made by the factories of :mod:`funcnn.optimizers` (:func:`~funcnn.optimizers.adam`,
    :func:`~funcnn.optimizers.sgd`, ...).  ``rule`` is the :mod:`mlx.optimizers`
    object whose ``init_single``/``apply_single`` do the math; the optimizer
    never changes it (each call works on a shallow copy whose ``step`` and
    learning rate come from the explicit state), so one optimizer can serve
    any number of independent states, eagerly or under :func:`mlx.core.compile`.

    Like a functional pair it unpacks: ``init, update = adam(1e-3)``.

    Another rule (a subclass of ``mlx.optimizers.Optimizer``) can be wrapped
    directly, ``Optimizer(MyRule(learning_rate=...), "my_rule", {})``, if its
    ``init_single`` stores at least one array per parameter (the stored names
    are how the state records which parameters are trainable) and everything
    else it keeps between steps is in ``self.state`` (step, learning rate).

    Example:
        >>> import mlx.core as mx
        >>> import funcnn.optimizers as optim
        >>> opt = optim.sgd(learning_rate=0.1)
        >>> params = {"w": mx.array([1.0, 2.0])}
        >>> state = opt.init(params)
        >>> params, state = opt.update({"w": mx.array([1.0, 1.0])}, state, params)
        >>> [round(x, 4) for x in params["w"].tolist()], state["step"].item()
        ([0.9, 1.9], 1)
    """

    def __init__(
        self,
        rule: Any,
        name: str,
        hyperparams: dict,
        grad_transforms: tuple[tuple[str, GradTransform], ...] = (),
    ) -> None:
        self.rule = rule
        self.name = name
        self.hyperparams = dict(hyperparams)
        self._grad_transforms = tuple(grad_transforms)
        # The rule's scalar state besides the step: "learning_rate" (absent for
        # Adafactor without one), each either constant or on a schedule.
        self._hyper_names = tuple(k for k in rule._state if k != STEP)
        self._schedules = dict(rule._schedulers)

    # ------------------------------------------------------------------

    def __iter__(self) -> Iterator[Callable]:
        yield self.init
        yield self.update

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparams.items())
        text = f"{self.name}({args})"
        for label, _ in reversed(self._grad_transforms):
            text = f"{label[:-1]}, {text})"
        return text

    def _with_grad_transform(self, label: str, transform: GradTransform) -> Optimizer:
        """A copy that passes the selected gradients through ``transform`` first.

        ``transform`` maps ``{name: gradient}`` (the parameters this step
        updates, in parameter order) to a dict with the same keys.
        """
        return Optimizer(
            self.rule, self.name, self.hyperparams, ((label, transform),) + self._grad_transforms
        )

    def _bound_rule(self, scalars: dict) -> Any:
        """A shallow copy of the rule holding ``scalars`` as its state (the rule is untouched)."""
        rule = copy.copy(self.rule)
        rule._state = scalars
        return rule

    def _hyper(self, step: mx.array, state: Optional[State]) -> dict:
        out = {}
        for k in self._hyper_names:
            if k in self._schedules:
                out[k] = self._schedules[k](step)
            elif state is None:
                out[k] = mx.array(self.rule._state[k])  # a copy, never the rule's array
            else:
                try:
                    out[k] = state[k]
                except KeyError:
                    raise ValueError(
                        f"The optimizer state has no {k!r}; was it made by init() of "
                        f"this optimizer ({self.name})?"
                    ) from None
        return out

    # ------------------------------------------------------------------

    def init(self, params: Params, mask: Any = None) -> State:
        """The state for ``params``: step 0, the learning rate and per-parameter slots.

        Args:
            params: A tree of arrays (dicts, lists, tuples) or a funcnn (or
                mlx.nn) Module, whose :meth:`parameters` are then the tree.
            mask: Which parameters to optimize.  ``None``: all of them, or, for
                a Module, those in ``params.trainable_parameters()``.  A Module:
                its trainable parameters.  A tree of booleans shaped like the
                parameter tree.  Or a predicate ``mask(name, array) -> bool`` on
                dotted names (``"layers.0.bias"``).  Frozen parameters get no
                state at all, and because the state records which parameters
                it holds, :meth:`update` needs no mask.

        Returns:
            ``{"step": uint64 0, "learning_rate": ..., "per_param": {...}}``: the
            per-parameter slots nest like the parameters (``per_param["layers"][0]
            ["weight"]["m"]``).

        Example:
            >>> import mlx.core as mx
            >>> import funcnn.optimizers as optim
            >>> params = {"w": mx.zeros(2), "b": mx.zeros(1)}
            >>> state = optim.adam(1e-3).init(params, mask={"w": True, "b": False})
            >>> sorted(state), list(state["per_param"]), sorted(state["per_param"]["w"])
            (['learning_rate', 'per_param', 'step'], ['w'], ['m', 'v'])
        """
        tree = _param_tree(params)
        named = _named_arrays(tree)
        names = [k for k, _ in named]
        trainable = _trainable_names(params, tree, named, mask)
        step = mx.array(0, mx.uint64)
        hyper = self._hyper(step, None)
        rule = self._bound_rule({STEP: step, **hyper})
        slots: dict[str, dict] = {}
        for k, x in named:
            if k not in trainable:
                continue
            slot: dict = {}
            rule.init_single(x, slot)
            bad = [s for s, v in slot.items() if "." in s or not isinstance(v, mx.array)]
            if not slot or bad:
                raise TypeError(
                    f"{type(self.rule).__name__}.init_single must store at least one "
                    "array, under names without dots, for funcnn to keep its state "
                    f"explicit (got {sorted(slot)} for {k!r})."
                )
            slots[k] = slot
        return {STEP: step, **hyper, PER_PARAM: _nest_slots(names, slots)}

    def update(self, grads: Any, state: State, params: Params) -> tuple[Any, State]:
        """One step: ``(new_params, new_state)``; a pure function of its arguments.

        A parameter changes when it has state (it was trainable at
        :meth:`init`) and a gradient; every other parameter, and its state,
        comes back as the same array.  ``grads`` may hold every parameter or
        only the trainable ones (``{}`` placeholders and ``None`` are skipped,
        as in what :func:`funcnn.value_and_grad` returns).  A scheduled learning
        rate is recomputed from ``state["step"]``; a constant one is read from
        ``state["learning_rate"]`` (edit it there to change it).

        ``mx.compile(opt.update)``, or a compiled training step that calls it,
        follows the eager trajectory; ``params`` may be a tree or a Module.

        Returns:
            ``new_params`` with the structure of ``params``; for a Module, that of
            ``params.parameters()`` (plain dicts and lists), which
            ``module.update(new_params)`` accepts.  The module is not modified.

        Example:
            >>> import mlx.core as mx
            >>> import funcnn as nn
            >>> import funcnn.optimizers as optim
            >>> model = nn.Linear(2, 1).freeze(keys="bias")
            >>> opt = optim.adamw(learning_rate=1e-2)
            >>> state = opt.init(model)               # no state for the frozen bias
            >>> _, grads = nn.value_and_grad(model, lambda x: model(x).sum())(mx.ones((4, 2)))
            >>> new_params, state = opt.update(grads, state, model)
            >>> new_params["bias"] is model.bias, model.update(new_params) is model
            (True, True)
        """
        if not isinstance(state, dict) or STEP not in state:
            raise ValueError(
                f"update() needs the state made by init(); got {type(state).__name__} "
                f"without a {STEP!r} entry."
            )
        tree = _param_tree(params)
        plan, p_leaves, g_leaves, s_leaves, p_spec = plan_for(
            tree, grads, state.get(PER_PARAM, {}), _nest_slots
        )
        names = plan.names
        gradients = {names[pi]: g_leaves[gi] for pi, gi in plan.with_grad}
        for _, transform in self._grad_transforms:  # outermost wrapper first
            gradients = transform(gradients)

        step = state[STEP]
        hyper = self._hyper(step, state)
        new_step = step + 1
        rule = self._bound_rule({STEP: new_step, **hyper})
        new_params = list(p_leaves)
        new_slots = list(s_leaves)
        for pi, positions in plan.work:
            slot = {s: s_leaves[j] for s, j in positions}  # apply_single writes into it
            new_params[pi] = rule.apply_single(gradients[names[pi]], p_leaves[pi], slot)
            if len(slot) != len(positions):
                raise TypeError(
                    f"{type(self.rule).__name__}.apply_single added state entries "
                    f"{sorted(set(slot) - {s for s, _ in positions})} for {names[pi]!r}; "
                    "funcnn needs every entry created by init_single."
                )
            for s, j in positions:
                new_slots[j] = slot[s]
        per_param = plan.out_spec.unflatten([new_slots[j] for j in plan.out_order])
        return p_spec.unflatten(new_params), {STEP: new_step, **hyper, PER_PARAM: per_param}
