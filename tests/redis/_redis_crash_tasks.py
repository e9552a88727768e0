"""Task functions of ``test_worker_killed_mid_task_runs_again.py``, importable by the same
name (``_redis_crash_tasks``) in the test and in its worker processes (the test puts
tests/redis/ on the children's path).

The tasks talk to the test through plain Redis lists (keys outside any queue
namespace): a task records its start, waits until the test lets it go, then records
that it finished.
"""

from __future__ import annotations

import os
from typing import Tuple

import redis

HOLD = 120  # seconds a task waits for the test's word at most (a bound, never reached)


def started_key(key: str) -> str:
    """The list of ``"<n> <pid>"`` lines, one per start of a task."""
    return f"{key}:started"


def done_key(key: str) -> str:
    """The list of ``"<n> <pid>"`` lines, one per task that finished."""
    return f"{key}:done"


def go_key(key: str, n: int, pid: int) -> str:
    """The list the test pushes to, to let task ``n`` finish in process ``pid`` (a word
    meant for one run never reaches another: not even a dead process's blocked pop)."""
    return f"{key}:go:{n}:{pid}"


def record_then_wait(url: str, key: str, n: int) -> Tuple[int, int]:
    """Record the start of task ``n`` (with this process's id), wait until the test lets
    it go, record that it finished; return ``(n, pid)``.

    :raises TimeoutError: the test did not let it go within :data:`HOLD` seconds.
    """
    pid = os.getpid()
    with redis.Redis.from_url(url) as client:
        client.rpush(started_key(key), f"{n} {pid}")
        if client.blpop([go_key(key, n, pid)], timeout=HOLD) is None:
            raise TimeoutError(f"task {n} was never let go")
        client.rpush(done_key(key), f"{n} {pid}")
    return n, pid
