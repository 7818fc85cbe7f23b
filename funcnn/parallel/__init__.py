"""More than one process, the functional way: collectives that name their group, exact data
parallelism, an in-process emulator of N ranks, and a launcher for local ring jobs.

(The name is ``funcnn.parallel`` because ``funcnn.distributed`` is already taken, as in
:mod:`mlx.nn`, by the layer family ``funcnn.layers.distributed``.)

* :mod:`~funcnn.parallel.collectives`: ``all_sum``, ``all_gather``, ``all_max``,
  ``all_min``, ``rank``, ``size``, each taking its group explicitly (a real
  ``mx.distributed`` group or an :class:`EmulatedGroup`);
* :mod:`~funcnn.parallel.data_parallel`: the gradient of the *global* loss from
  per-rank ``(sum, count)`` losses (:func:`value_and_grad`, :class:`Sums`,
  :func:`reduce_sums`), one bucketed all-reduce per step (:func:`all_sum_tree`),
  and :func:`check_replicated`;
* :mod:`~funcnn.parallel.emulate`: :func:`emulate` runs per-rank code for N virtual
  ranks in one process (``mx.vmap`` over a rank axis);
* :mod:`~funcnn.parallel.launch`: :func:`run_ranks` starts local ring jobs with free
  ports, a timeout and per-rank exit statuses; :func:`init_checked` verifies the
  group after ``mx.distributed.init``.

Importing it starts no process and initialises no group.
"""

from .collectives import Group, all_gather, all_max, all_min, all_sum, rank, size
from .data_parallel import (
    Sums,
    add_sums,
    all_sum_tree,
    check_replicated,
    leaf_mismatch,
    local_sums,
    reduce_sums,
    value_and_grad,
)
from .emulate import EmulatedGroup, emulate, stack_shards
from .launch import (
    GroupMismatchError,
    RankError,
    RankResult,
    check_group,
    free_ports,
    init_checked,
    run_ranks,
)

__all__ = [
    # collectives
    "Group",
    "all_sum",
    "all_gather",
    "all_max",
    "all_min",
    "rank",
    "size",
    # data parallelism
    "Sums",
    "local_sums",
    "add_sums",
    "reduce_sums",
    "value_and_grad",
    "all_sum_tree",
    "leaf_mismatch",
    "check_replicated",
    # the emulator
    "EmulatedGroup",
    "emulate",
    "stack_shards",
    # launching
    "RankResult",
    "RankError",
    "GroupMismatchError",
    "free_ports",
    "run_ranks",
    "check_group",
    "init_checked",
]
