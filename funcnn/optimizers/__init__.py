"""Optimizers with explicit state: ``(init, update)`` pairs over :mod:`mlx.optimizers`' math.

::

    opt = funcnn.optimizers.adamw(learning_rate=1e-3, weight_decay=0.01)
    state = opt.init(params)                             # or opt.init(model)
    params, state = opt.update(grads, state, params)     # pure; fine inside mx.compile

Each factory (:func:`sgd`, :func:`adam`, :func:`adamw`, :func:`rmsprop`,
:func:`adagrad`, :func:`adadelta`, :func:`adamax`, :func:`lion`,
:func:`adafactor`, :func:`muon`) takes the hyper-parameters of the
:mod:`mlx.optimizers` class of the same name, with the same defaults, and
reuses that class's ``init_single``/``apply_single``: trajectories match
:mod:`mlx.optimizers` to float32 round-off (bitwise, eagerly).

**State.** A plain dict of arrays, dicts and lists::

    {"step": uint64 array,            # updates done so far
     "learning_rate": float32 array,  # constant: read from here; scheduled: schedule(step)
     "per_param": {...}}              # slots nested like the parameters:
                                      # per_param["layers"][0]["weight"]["m"]

It holds everything :mod:`mlx.optimizers` keeps on the optimizer object, so
``update`` is a pure function of ``(grads, state, params)``: nothing passed in
is modified, the optimizer object never changes, and a compiled step follows
the same trajectory as an eager one.  Save it as it is, resume exactly::

    mx.save_safetensors("opt.safetensors", funcnn.tree.tree_flatten(state, destination={}))
    state = funcnn.tree.tree_unflatten(mx.load("opt.safetensors"))

**Frozen parameters.** ``init(params, mask=...)`` decides which parameters are
optimized; for a Module the default is its trainable parameters (what
``module.trainable_parameters()`` holds).  Frozen parameters get no state, so
the state itself records the mask, and ``update`` leaves them untouched (no
step, no weight decay) whether or not ``grads`` has entries for them.  A
parameter is updated when it has state and a gradient.

**Modules.** ``params`` may be a funcnn (or mlx.nn) Module: ``update`` then
returns a new tree shaped like ``module.parameters()`` (plain dicts and lists;
frozen parameters are the module's own arrays), for ``module.update(...)`` or
for the functional pair's ``apply``.  The module is never modified.

**Clipping.** :func:`clip_grad_norm` rescales a gradient tree and returns the
norm; :func:`clip_by_global_norm` wraps an optimizer so it clips the gradients
of the parameters it updates.  **Schedules** (:func:`step_decay`,
:func:`exponential_decay`, :func:`cosine_decay`, :func:`linear_schedule`,
:func:`join_schedules`) are MLX's, usable as ``learning_rate=``.

Importing this package imports :mod:`mlx.optimizers`, which imports
:mod:`mlx.nn`.  That is why ``import funcnn`` does not import it: use
``import funcnn.optimizers`` when you need it.

Example:
    >>> import mlx.core as mx
    >>> import funcnn.functional as F
    >>> import funcnn.optimizers as optim
    >>> mlp = F.sequential(F.linear(2, 8), F.relu(), F.linear(8, 1))
    >>> params = mlp.init(mx.random.key(0))
    >>> loss = lambda p, x: (mlp.apply(p, x) ** 2).mean()
    >>> opt = optim.clip_by_global_norm(1.0, optim.adamw(optim.cosine_decay(1e-2, 100)))
    >>> state = opt.init(params)
    >>> @mx.compile
    ... def step(params, state, x):
    ...     value, grads = mx.value_and_grad(loss)(params, x)
    ...     params, state = opt.update(grads, state, params)
    ...     return value, params, state
    >>> x = mx.ones((4, 2))
    >>> first, params, state = step(params, state, x)
    >>> for _ in range(20):
    ...     value, params, state = step(params, state, x)
    >>> bool(value < first), state["step"].item()
    (True, 21)
"""

from ._base import Optimizer
from .clip import clip_by_global_norm, clip_grad_norm
from .rules import adadelta, adafactor, adagrad, adam, adamax, adamw, lion, muon, rmsprop, sgd
from .schedules import (
    Schedule,
    cosine_decay,
    exponential_decay,
    join_schedules,
    linear_schedule,
    step_decay,
)

__all__ = [
    "Optimizer",
    "sgd",
    "adam",
    "adamw",
    "rmsprop",
    "adagrad",
    "adadelta",
    "adamax",
    "lion",
    "adafactor",
    "muon",
    "Schedule",
    "step_decay",
    "exponential_decay",
    "cosine_decay",
    "linear_schedule",
    "join_schedules",
    "clip_grad_norm",
    "clip_by_global_norm",
]
