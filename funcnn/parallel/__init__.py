"""More than one process, the functional way: collectives that name their group, exact data
parallelism, an in-process emulator of N ranks, and a launcher for local ring jobs.

(The name is ``funcnn.parallel`` because ``funcnn.distributed`` is already taken, as in
:mod:`mlx.nn`, by the layer family ``funcnn.layers.distributed``.)

* :mod:`~funcnn.parallel.collectives`: ``all_sum``, ``all_gather``, ``all_max``,
  ``all_min``, ``rank``, ``size``, ``rank_key`` (per-rank randomness from a shared key),
  each taking its group explicitly (a real
  ``mx.distributed`` group or an :class:`EmulatedGroup`);
* :mod:`~funcnn.parallel.data_parallel`: the gradient of the *global* loss from
  per-rank ``(sum, count)`` losses (:func:`value_and_grad`, :class:`Sums`,
  :func:`reduce_sums`), one bucketed all-reduce per step (:func:`all_sum_tree`),
  and :func:`check_replicated`;
* :mod:`~funcnn.parallel.tensor_parallel`: spec trees (:class:`Shard`,
  :class:`Replicated`, :func:`spec_from_patterns`), :func:`shard`/:func:`gather` that
  round-trip bit for bit, :func:`reshard_arrays` (N -> M ranks), Megatron's
  :func:`copy_to_parallel`/:func:`reduce_from_parallel` and column/row-parallel blocks, and
  :func:`clip_grad_norm` counting replicated leaves once;
* :mod:`~funcnn.parallel.emulate`: :func:`emulate` runs per-rank code for N virtual
  ranks in one process (``mx.vmap`` over a rank axis);
* :mod:`~funcnn.parallel.launch`: :func:`run_ranks` starts local ring jobs with free
  ports, a timeout and per-rank exit statuses; :func:`init_checked` verifies the
  group after ``mx.distributed.init``.

Importing it starts no process and initialises no group.
"""

from .collectives import Group, all_gather, all_max, all_min, all_sum, rank, rank_key, size
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
from .tensor_parallel import (
    Replicated,
    Shard,
    clip_grad_norm,
    column_parallel_linear_apply,
    copy_to_parallel,
    gather,
    gather_arrays,
    megatron_spec,
    parallel_attention_apply,
    parallel_encoder_layer_apply,
    parallel_mlp_apply,
    reduce_from_parallel,
    reshard_arrays,
    row_parallel_linear_apply,
    shard,
    shard_arrays,
    spec_from_patterns,
)
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
    "rank_key",
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
    # tensor parallelism
    "Shard",
    "Replicated",
    "spec_from_patterns",
    "shard",
    "gather",
    "shard_arrays",
    "gather_arrays",
    "reshard_arrays",
    "copy_to_parallel",
    "reduce_from_parallel",
    "column_parallel_linear_apply",
    "row_parallel_linear_apply",
    "megatron_spec",
    "parallel_mlp_apply",
    "parallel_attention_apply",
    "parallel_encoder_layer_apply",
    "clip_grad_norm",
    # launching
    "RankResult",
    "RankError",
    "GroupMismatchError",
    "free_ports",
    "run_ranks",
    "check_group",
    "init_checked",
]
