"""Rank behaviours that exercise :func:`funcnn.parallel.run_ranks` itself.

``python launcher_cases.py MODE``, or ``launcher_cases:main`` with
``sys.argv[1] == MODE``:

* ``fail``: rank 1 exits with status 3 at once, the others sleep;
* ``no_peer``: rank 0 waits in ``init`` for a peer; the others sleep instead of joining;
* ``ports``: print the hostfile's addresses and the job token, then linger a little
  so that concurrent jobs overlap;
* ``ok``: print the rank and exit 0.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> None:
    mode = sys.argv[1]
    rank = int(os.environ["MLX_RANK"])
    if mode == "fail":
        if rank == 1:
            print("rank 1 fails on purpose", file=sys.stderr, flush=True)
            sys.exit(3)
        time.sleep(120)
    elif mode == "no_peer":
        if rank == 0:
            from funcnn.parallel import init_checked

            init_checked("ring")
            print("joined: impossible", flush=True)
        else:
            time.sleep(120)
    elif mode == "ports":
        with open(os.environ["MLX_HOSTFILE"]) as fh:
            hosts = json.load(fh)
        print(json.dumps({"hosts": hosts, "token": os.environ["FUNCNN_JOB_TOKEN"]}), flush=True)
        time.sleep(1.0)
    elif mode == "ok":
        print(f"rank {rank} ok", flush=True)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
