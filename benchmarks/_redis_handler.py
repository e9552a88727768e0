"""The Redis benchmark's TaskHandler figure: no-op tasks run by workers in another process.

This process submits ``n`` no-op tasks (``_redis_peers.noop``, stored by its importable
name) through a handler with no worker (``TaskHandler(max_workers=0, mq=...)``),
untimed; then it tells a client process of the pool (``_redis_procs.ClientPool``) to
make a worker-only handler (``TaskHandler(mq=..., max_workers=WORKERS)``) and times from
that "go" to the moment every future here is resolved (the outcomes come back through
this handler's reply queue). The worker process stays for the next repetition: only its
handler is made and shut down per figure. RQ's and huey's figures drain a backlog
filled beforehand the same way (``_redis_peers.py``).
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any, Iterable, List

from _redis_peers import noop
from _redis_procs import ClientPool

import unidist_queue

WORKERS = 4
"""Workers (one thread each) of the worker-only handler: a no-op task is all round
trips, and a few threads overlap them (each releases the GIL while it waits on its
socket) where one thread would leave the process idle between replies; many more only
contend for the GIL and the one client CPU (2 cores: the server keeps the other)."""

SERIES = "default"
WAIT = 300.0


class TasksSide:
    """The submitting handler of this process, open for the whole run."""

    def __init__(self, url: str, namespace: str, pool: ClientPool, cpus: Iterable[int]) -> None:
        self.mq: Any = unidist_queue.RedisMessageQueue(url, namespace=namespace)
        self.th: Any = None
        try:
            self.mq.clear(f"task:{SERIES}")
            self.th = unidist_queue.TaskHandler(max_workers=0, mq=self.mq)
        except BaseException:
            self.mq.close()
            raise
        self.pool = pool
        self.cpus = frozenset(cpus)

    def rate(self, n: int) -> float:
        """Tasks per second: ``n`` no-op tasks waiting, run by a worker-only handler made
        in another process, from its "go" until every future here is resolved."""
        submit = self.th.submit_to
        futures: List[concurrent.futures.Future[Any]] = [submit(SERIES, noop) for _ in range(n)]
        t0 = time.perf_counter()
        self.pool.tasks_begin(WORKERS, self.cpus)
        done, pending = concurrent.futures.wait(futures, timeout=WAIT)
        elapsed = time.perf_counter() - t0
        self.pool.tasks_end()
        assert not pending, f"{len(pending)} tasks did not finish in {WAIT} s"
        assert all(f.exception() is None for f in done)
        return n / elapsed

    def close(self) -> None:
        try:
            if self.th is not None:
                self.th.shutdown(wait=True, timeout=60.0)
        finally:
            self.mq.close()
