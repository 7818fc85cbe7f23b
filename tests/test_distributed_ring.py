"""Real 2-rank ring jobs: funcnn against mlx.nn, and the launcher itself.

The comparisons run in one launch of ``ranks/distributed_checks.py`` (every
check on both ranks, results as JSON); each check is one test here.  The
launcher tests use ``ranks/launcher_cases.py``, which mostly does not even
import MLX.  Every launch has a timeout, so nothing here can hang, and
``run_ranks`` kills every rank it started before returning.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from funcnn.parallel import RankError, RankResult, free_ports, run_ranks
from funcnn.parallel.launch import _lock_port

RANKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ranks")
CHECKS_SCRIPT = os.path.join(RANKS, "distributed_checks.py")
CASES_SCRIPT = os.path.join(RANKS, "launcher_cases.py")

CHECKS = [
    "group_is_checked",
    "check_group_detects_another_job",
    "average_gradients_matches_mlx",
    "average_gradients_keeps_node_types_and_none",
    "sum_gradients_matches_mlx",
    "clip_grad_norm_sharded_matches_mlx",
    "shard_linear_matches_mlx_and_the_full_layer",
    "from_linear_and_direct_layers_match_mlx",
    "shard_inplace_matches_mlx",
    "quantized_sharded_layers_match_mlx",
    "fully_shard_forward_matches_mlx",
    "fully_shard_backward_on_ring_raises_clearly",
]


@pytest.fixture(scope="module")
def ring_results() -> list[dict]:
    results = run_ranks(CHECKS_SCRIPT, n=2, timeout=120)
    return [r.json("RESULT") for r in results]


def test_every_check_ran(ring_results):
    assert [list(r) for r in ring_results] == [CHECKS, CHECKS]


@pytest.mark.parametrize("name", CHECKS)
def test_two_ranks(ring_results, name):
    for rank, results in enumerate(ring_results):
        assert results[name]["ok"], f"rank {rank}: {results[name]['detail']}"


def test_fully_shard_backward_messages(ring_results):
    detail = ring_results[0]["fully_shard_backward_on_ring_raises_clearly"]["detail"]
    # mlx.nn: the backend's terse error, and only at mx.eval; funcnn: at the call,
    # naming the backend and what works instead.
    assert "mlx.nn at eval: '[ring] sum_scatter not supported.'" in detail
    assert "the ring backend does not support" in detail and "shard_linear" in detail


# --- the launcher -----------------------------------------------------------------------------


def test_a_failing_rank_is_reported_and_the_others_are_stopped():
    start = time.monotonic()
    with pytest.raises(RankError) as err:
        run_ranks(CASES_SCRIPT, n=3, args=["fail"], timeout=60)
    assert time.monotonic() - start < 30  # not the 120 s the other ranks sleep
    results = err.value.results
    assert [r.rank for r in results] == [0, 1, 2]
    assert results[1].returncode == 3 and "fails on purpose" in results[1].stderr
    assert not results[1].stopped and not results[1].timed_out
    for r in (results[0], results[2]):
        assert r.stopped and not r.ok and r.returncode != 0
    message = str(err.value)
    assert "rank 1 exited with status 3" in message and "fails on purpose" in message
    assert "rank 0 was stopped after another rank failed" in message


def test_check_false_returns_the_failure():
    results = run_ranks(CASES_SCRIPT, n=2, args=["fail"], timeout=60, check=False)
    assert [r.ok for r in results] == [False, False]
    assert results[1].returncode == 3


def test_a_rank_without_its_peer_times_out_cleanly():
    start = time.monotonic()
    with pytest.raises(RankError) as err:
        run_ranks(CASES_SCRIPT, n=2, args=["no_peer"], timeout=4)
    assert time.monotonic() - start < 20
    results = err.value.results
    assert all(r.timed_out and not r.ok for r in results)
    assert "joined" not in results[0].stdout
    assert "rank 0 timed out" in str(err.value) and "rank 1 timed out" in str(err.value)


def test_concurrent_jobs_get_different_ports():
    outcome: dict[int, list[RankResult]] = {}

    def job(i: int) -> None:
        outcome[i] = run_ranks(CASES_SCRIPT, n=2, args=["ports"], timeout=60)

    threads = [threading.Thread(target=job, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    jobs = [[r.json() for r in outcome[i]] for i in range(2)]
    for ranks in jobs:
        assert ranks[0] == ranks[1]  # one hostfile and one token per job
        assert len(set(map(tuple, ranks[0]["hosts"]))) == 2
        assert all(h[0].startswith("127.0.0.1:") for h in ranks[0]["hosts"])
    ports = [{h[0] for h in ranks[0]["hosts"]} for ranks in jobs]
    assert not ports[0] & ports[1]
    assert jobs[0][0]["token"] != jobs[1][0]["token"]


def test_reserved_ports_are_not_handed_out_again():
    with free_ports(2) as ports:
        assert len(set(ports)) == 2
        assert all(_lock_port(p) is None for p in ports)
    lock = _lock_port(ports[0])  # released with the block
    assert lock is not None
    lock.close()


def test_a_module_function_target():
    env = {"PYTHONPATH": RANKS + os.pathsep + os.environ.get("PYTHONPATH", "")}
    results = run_ranks("launcher_cases:main", n=2, args=["ok"], env=env, timeout=60)
    assert [r.stdout for r in results] == ["rank 0 ok\n", "rank 1 ok\n"]


@pytest.mark.parametrize(
    "target,kwargs,error,match",
    [
        ("no/such/script.py", {}, FileNotFoundError, "does not exist"),
        ("not a target", {}, ValueError, "'module:function', received 'not a target'"),
        (CASES_SCRIPT, {"n": 0}, ValueError, "positive int, received 0"),
        (CASES_SCRIPT, {"timeout": 0}, ValueError, "positive number of seconds, received 0"),
    ],
)
def test_bad_arguments(target, kwargs, error, match):
    with pytest.raises(error, match=match):
        run_ranks(target, **kwargs)
