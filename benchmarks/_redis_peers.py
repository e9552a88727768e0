"""The peers of the Redis benchmark: RQ and huey on the same private server.

Each peer gets a database of its own, flushed after every figure (their jobs leave keys
behind). Figures are items per second for the same kind of work as ours: enqueue one
no-op task, and take one, run it and settle it. Their guarantees differ from ours
(at-least-once: a reservation is leased and a fenced ``ack`` ends it; a crashed
client's messages come back):

* RQ: at-least-once delivery, at-most-once run (a job whose worker died goes to the
  failed registry, it is not run again); its ``SimpleWorker`` runs jobs in its own
  process, no fork per job.
* huey: at-most-once (documented): a task is popped before it runs, so a worker killed
  in between loses it.

Both are optional (the ``bench`` extra): where one is not installed its figures are
``None`` and the table says so.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional

import redis


def noop() -> None:
    """The task every system runs: nothing (found by import path by RQ's worker)."""
    return None


def installed(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


class RQPeer:
    """RQ 2/3: ``Queue.enqueue`` and a burst ``SimpleWorker``."""

    guarantee = "at-least-once delivery, at-most-once run (a crashed job is not re-run)"

    def __init__(self, url: str) -> None:
        import rq

        self.rq = rq
        self.r = redis.Redis.from_url(url)
        self.r.flushdb()
        self.queue = rq.Queue("bench", connection=self.r)
        logging.getLogger("rq").setLevel(logging.WARNING)

    def _fill(self, n: int) -> float:
        enqueue = self.queue.enqueue
        t0 = time.perf_counter()
        for _ in range(n):
            enqueue(noop)
        return n / (time.perf_counter() - t0)

    def enqueue_rate(self, n: int) -> float:
        """Jobs enqueued per second (``Queue.enqueue``, one job per call)."""
        try:
            return self._fill(n)
        finally:
            self.r.flushdb()

    def run_rate(self, n: int) -> float:
        """Jobs run per second by one ``SimpleWorker(...).work(burst=True)`` over ``n``
        queued no-op jobs (worker start-up included: a few round trips)."""
        self._fill(n)
        try:
            worker = self.rq.SimpleWorker([self.queue], connection=self.r)
            t0 = time.perf_counter()
            worker.work(burst=True, logging_level="WARNING")
            elapsed = time.perf_counter() - t0
            left = self.queue.count
            assert left == 0, f"RQ left {left} jobs"
            return n / elapsed
        finally:
            self.r.flushdb()

    def close(self) -> None:
        self.r.flushdb()
        self.r.close()


class HueyPeer:
    """huey: calling a task enqueues it; ``dequeue()`` + ``execute()`` is its consumer's
    loop body (a worker thread of ``huey_consumer`` does exactly that)."""

    guarantee = "at-most-once (documented: a task is popped before it runs)"

    def __init__(self, url: str) -> None:
        from huey import RedisHuey

        self.r = redis.Redis.from_url(url)
        self.r.flushdb()
        self.huey = RedisHuey("bench", url=url)
        self.task: Any = self.huey.task()(noop)
        logging.getLogger("huey").setLevel(logging.WARNING)

    def _fill(self, n: int) -> float:
        task = self.task
        t0 = time.perf_counter()
        for _ in range(n):
            task()
        return n / (time.perf_counter() - t0)

    def enqueue_rate(self, n: int) -> float:
        """Tasks enqueued per second (calling the task, one per call)."""
        try:
            return self._fill(n)
        finally:
            self.r.flushdb()

    def run_rate(self, n: int) -> float:
        """Tasks dequeued and executed per second (``huey.dequeue()`` + ``huey.execute()``)."""
        self._fill(n)
        dequeue, execute = self.huey.dequeue, self.huey.execute
        try:
            t0 = time.perf_counter()
            for _ in range(n):
                task: Optional[Any] = dequeue()
                assert task is not None, "huey's queue ran dry"
                execute(task)
            return n / (time.perf_counter() - t0)
        finally:
            self.r.flushdb()

    def close(self) -> None:
        self.r.flushdb()
        self.r.close()
        self.huey.storage.pool.disconnect()
