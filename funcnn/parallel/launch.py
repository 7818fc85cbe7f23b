"""Start ``n`` local ranks of an ``mx.distributed`` ring job, bounded in time.

:func:`run_ranks` runs a script (or a ``"module:function"``) as ``n`` Python
processes on 127.0.0.1 and returns one :class:`RankResult` per rank.  It does
the work of ``mlx.launch --backend ring`` without its traps
(``/work/shared/reference/measured_facts.md``, "Distributed"):

* ``mlx.launch`` exits 0 when a rank fails; here every rank's exit status is
  reported and a failure raises :class:`RankError` (``check=True``);
* a rank waiting for a peer that never comes blocks forever; here a deadline
  kills every rank, and the first rank to fail stops the others at once;
* two jobs on the same ports silently exchange data; here the ports are
  free ports, reserved (a lock file per port) for the whole run, so
  concurrent jobs started by this launcher never share one, and
  :func:`init_checked` verifies the group after ``mx.distributed.init``.

The processes are started directly (``MLX_RANK``, ``MLX_HOSTFILE``) rather
than through ``mlx.launch``, which hides the exit statuses and has no
timeout.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import mlx.core as mx

__all__ = [
    "GroupMismatchError",
    "RankError",
    "RankResult",
    "check_group",
    "free_ports",
    "init_checked",
    "run_ranks",
]

HOST = "127.0.0.1"
JOB_TOKEN_ENV = "FUNCNN_JOB_TOKEN"
_LOCK_DIR = os.path.join(tempfile.gettempdir(), "funcnn-ring-ports")
# Seconds between polls of the ranks: short, as a failure should stop the others quickly.
_POLL = 0.02


@dataclass(frozen=True)
class RankResult:
    """What one rank did: exit status and output.

    ``returncode`` is the process's exit status (negative: killed by that
    signal); ``timed_out`` says the launcher's deadline killed it and
    ``stopped`` that it was killed because another rank failed.

    Example:
        >>> r = RankResult(rank=0, returncode=0, stdout="hi\\n", stderr="")
        >>> r.ok, r.lines()
        (True, ['hi'])
    """

    rank: int
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False
    stopped: bool = False

    @property
    def ok(self) -> bool:
        """Whether the rank exited with status 0 on its own."""
        return self.returncode == 0 and not self.timed_out and not self.stopped

    def lines(self) -> list[str]:
        """The lines of ``stdout``."""
        return self.stdout.splitlines()

    def json(self, prefix: str = "") -> Any:
        """The JSON value of the last stdout line starting with ``prefix`` (after it).

        Example:
            >>> RankResult(0, 0, 'log\\nRESULT{"a": 1}\\n', "").json("RESULT")
            {'a': 1}
        """
        for line in reversed(self.lines()):
            if line.startswith(prefix):
                return json.loads(line[len(prefix):])
        raise ValueError(f"rank {self.rank} printed no line starting with {prefix!r}.")


class RankError(RuntimeError):
    """A rank failed or the job ran out of time; ``results`` holds every rank's :class:`RankResult`.

    Example:
        >>> err = RankError([RankResult(0, 0, "", ""), RankResult(1, 3, "", "boom")], [5000, 5001])
        >>> print(str(err).splitlines()[0])
        ring job on 127.0.0.1 ports [5000, 5001] failed: rank 1 exited with status 3
    """

    def __init__(self, results: Sequence[RankResult], ports: Sequence[int]) -> None:
        self.results = list(results)
        self.ports = list(ports)
        super().__init__(self._message())

    def _message(self) -> str:
        def status(r: RankResult) -> str:
            if r.timed_out:
                return f"rank {r.rank} timed out"
            if r.stopped:
                return f"rank {r.rank} was stopped after another rank failed"
            return f"rank {r.rank} exited with status {r.returncode}"

        failed = [status(r) for r in self.results if not r.ok]
        lines = [f"ring job on {HOST} ports {self.ports} failed: " + "; ".join(failed)]
        for r in self.results:
            if not r.ok:
                tail = (r.stderr.strip() or r.stdout.strip())[-2000:]
                lines.append(f"--- rank {r.rank} output (tail) ---\n{tail}")
        return "\n".join(lines)


class GroupMismatchError(RuntimeError):
    """The group made by ``mx.distributed.init`` is not the job this process belongs to.

    Raised by :func:`check_group` (and :func:`init_checked`) when a member reports another
    rank, size or job token: typically a rank of another job that reused the same ports.

    Example:
        >>> issubclass(GroupMismatchError, RuntimeError)
        True
    """


# --- ports ---------------------------------------------------------------------------------


def _lock_port(port: int) -> IO[str] | None:
    """An open, exclusively locked file reserving ``port``, or ``None`` if it is taken.

    A lock (not the file's existence) is the reservation, so a killed job
    leaves nothing stale behind.
    """
    os.makedirs(_LOCK_DIR, exist_ok=True)
    # Kept open by the caller: closing the file releases the reservation.
    fh = open(os.path.join(_LOCK_DIR, str(port)), "w")  # noqa: SIM115
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        fh.close()
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fh


@contextlib.contextmanager
def free_ports(n: int) -> Iterator[list[int]]:
    """Reserve ``n`` distinct free TCP ports on 127.0.0.1 for the ``with`` block.

    Each port is one the kernel hands out for ``bind(("127.0.0.1", 0))``,
    locked against other users of this function until the block ends.

    Example:
        >>> with free_ports(2) as ports:
        ...     len(set(ports)) == 2 and all(1024 < p < 65536 for p in ports)
        True
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, received {n!r}.")
    locks: list[IO[str]] = []
    ports: list[int] = []
    try:
        for _ in range(100 * n):
            if len(ports) == n:
                break
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((HOST, 0))
                port = s.getsockname()[1]
            if port in ports:
                continue
            lock = _lock_port(port)
            if lock is not None:
                locks.append(lock)
                ports.append(port)
        if len(ports) < n:
            raise RuntimeError(f"could not reserve {n} free ports on {HOST}, got {ports}.")
        yield ports
    finally:
        for lock in locks:
            lock.close()


# --- running the ranks ------------------------------------------------------------------------


_CALLABLE_RUNNER = (
    "import importlib, sys; m, f = sys.argv[1].split(':'); "
    "sys.argv = sys.argv[1:]; getattr(importlib.import_module(m), f)()"
)


def _command(target: str, args: Sequence[str], python: str) -> list[str]:
    if target.endswith(".py") or os.path.sep in target:
        if not os.path.isfile(target):
            raise FileNotFoundError(f"rank script {target!r} does not exist.")
        return [python, target, *args]
    if target.count(":") == 1 and all(target.split(":")):
        return [python, "-c", _CALLABLE_RUNNER, target, *args]
    raise ValueError(
        "target must be a path to a .py script or 'module:function', "
        f"received {target!r}."
    )


def _kill(proc: subprocess.Popen) -> None:
    # Each rank leads its own session: its children (if any) die with it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_ranks(
    target: str,
    n: int = 2,
    *,
    args: Sequence[str] = (),
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    cwd: str | None = None,
    python: str = sys.executable,
) -> list[RankResult]:
    """Run ``target`` as ``n`` ranks of a ring job on 127.0.0.1 and wait for all of them.

    ``target`` is a script path (``python target *args``) or
    ``"module:function"`` (the function is called without arguments, with
    ``sys.argv[1:] == args``).  Each rank gets ``MLX_RANK``,
    ``MLX_HOSTFILE`` (a ring hostfile of reserved free ports) and
    ``FUNCNN_JOB_TOKEN`` (random, the same for the whole job; see
    :func:`init_checked`), on top of ``os.environ`` updated with ``env``.

    When a rank exits with a non-zero status the others are killed at once;
    after ``timeout`` seconds every rank still running is killed.  With
    ``check=True`` either case raises :class:`RankError` (carrying all the
    results); otherwise the results are returned and ``RankResult.ok`` tells.

    Example:
        >>> results = run_ranks("my_rank_script.py", n=2, timeout=30)  # doctest: +SKIP
        >>> [r.returncode for r in results]  # doctest: +SKIP
        [0, 0]
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, received {n!r}.")
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, received {timeout!r}.")
    command = _command(target, [str(a) for a in args], python)
    base_env = dict(os.environ)
    base_env.update(env or {})
    base_env[JOB_TOKEN_ENV] = secrets.token_hex(8)

    with contextlib.ExitStack() as stack:
        ports = stack.enter_context(free_ports(n))
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="funcnn-ring-"))
        hostfile = os.path.join(tmp, "hostfile.json")
        with open(hostfile, "w") as fh:
            json.dump([[f"{HOST}:{p}"] for p in ports], fh)
        procs: list[subprocess.Popen] = []
        outs: list[tuple[IO[bytes], IO[bytes]]] = []
        try:
            for rank in range(n):
                # Files, not pipes: a chatty rank must never block on a full pipe.
                out = stack.enter_context(open(os.path.join(tmp, f"{rank}.out"), "w+b"))
                err = stack.enter_context(open(os.path.join(tmp, f"{rank}.err"), "w+b"))
                outs.append((out, err))
                rank_env = dict(base_env, MLX_RANK=str(rank), MLX_HOSTFILE=hostfile)
                procs.append(
                    subprocess.Popen(
                        command, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                        env=rank_env, cwd=cwd, start_new_session=True,
                    )
                )
            timed_out, stopped = _wait(procs, time.monotonic() + timeout)
        finally:
            # Whatever happened (even KeyboardInterrupt), no rank outlives this call.
            for p in procs:
                if p.poll() is None:
                    _kill(p)
                p.wait()
        results = []
        for rank, (p, (out, err)) in enumerate(zip(procs, outs)):
            out.seek(0)
            err.seek(0)
            results.append(
                RankResult(
                    rank, p.returncode, out.read().decode(errors="replace"),
                    err.read().decode(errors="replace"), rank in timed_out, rank in stopped,
                )
            )
    if check and not all(r.ok for r in results):
        raise RankError(results, ports)
    return results


def _wait(procs: list[subprocess.Popen], deadline: float) -> tuple[set, set]:
    """Wait for ``procs``; kill all at the deadline or when one fails. ``(timed_out, stopped)``."""
    while True:
        codes = [p.poll() for p in procs]
        if any(c not in (None, 0) for c in codes):
            running = {i for i, c in enumerate(codes) if c is None}
            for i in running:
                _kill(procs[i])
            return set(), running
        if all(c is not None for c in codes):
            return set(), set()
        if time.monotonic() > deadline:
            running = {i for i, c in enumerate(codes) if c is None}
            for i in running:
                _kill(procs[i])
            return running, set()
        time.sleep(_POLL)


# --- checking the group ---------------------------------------------------------------------


def _hosts() -> list[str]:
    path = os.environ.get("MLX_HOSTFILE")
    if not path:
        return []
    try:
        with open(path) as fh:
            return [h[0] if isinstance(h, list) else str(h) for h in json.load(fh)]
    except (OSError, ValueError, IndexError):
        return []


def _expected_token() -> str:
    """This job's token: :func:`run_ranks`'s, else the hosts (plus the common parent).

    ``mlx.launch`` writes a hostfile per rank, so its path cannot be part of
    the token; the hosts (ports included) are the same for every rank of a
    job, and when every host is local the launcher is every rank's parent, so
    its process id tells two jobs on the same ports apart.
    """
    token = os.environ.get(JOB_TOKEN_ENV)
    if token:
        return token
    hosts = _hosts()
    local = bool(hosts) and all(h.split(":")[0] in ("127.0.0.1", "localhost") for h in hosts)
    return json.dumps(hosts) + (f"|{os.getppid()}" if local else "")


def _words(token: str) -> list[int]:
    # 16-bit words in int32: exact through any collective and any dtype support.
    digest = hashlib.sha256(token.encode()).digest()[:16]
    return [int.from_bytes(digest[i:i + 2], "little") for i in range(0, 16, 2)]


def check_group(group: mx.distributed.Group, token: str | None = None) -> None:
    """Verify that every member of ``group`` belongs to this job, in rank order.

    Every member contributes ``(rank, size, digest of token)`` to one
    ``all_gather``; a row with another rank, size or token (a rank of another
    job sharing the ports) raises :class:`GroupMismatchError` naming the
    ranks and their addresses.  ``token`` defaults to the job token of
    :func:`run_ranks` (or, outside it, a digest of the hostfile); every
    member must call this, as it is a collective.

    Example:
        >>> import mlx.core as mx
        >>> check_group(mx.distributed.init())  # one process: trivially this job
    """
    token = _expected_token() if token is None else token
    rank, size = group.rank(), group.size()
    mine = [rank, size, *_words(token)]
    table = mx.distributed.all_gather(mx.array([mine], dtype=mx.int32), group=group).tolist()
    hosts = _hosts()

    def where(r: int) -> str:
        return f"rank {r} ({hosts[r]})" if 0 <= r < len(hosts) else f"rank {r}"

    bad = []
    for r, row in enumerate(table):
        if row[0] != r or row[1] != size:
            bad.append(f"{where(r)} reports rank {row[0]} of {row[1]}")
        elif row[2:] != mine[2:]:
            bad.append(f"{where(r)} has another job's token")
    if bad:
        raise GroupMismatchError(
            f"{where(rank)} of {size}: the distributed group mixes jobs (ports shared with "
            f"another job?): " + "; ".join(bad) + f". Hosts: {hosts or 'unknown'}."
        )


def init_checked(backend: str = "ring", *, token: str | None = None) -> mx.distributed.Group:
    """``mx.distributed.init(strict=True, backend=backend)``, then :func:`check_group`.

    Raises ``RuntimeError`` when the backend cannot start and
    :class:`GroupMismatchError` when the group is not this job's (the
    port cross-talk of the ring backend).  Every rank must call it.

    Example:
        >>> group = init_checked("ring")  # in a rank started by run_ranks  # doctest: +SKIP
        >>> group.size()  # doctest: +SKIP
        2
    """
    group = mx.distributed.init(strict=True, backend=backend)
    check_group(group, token)
    return group
