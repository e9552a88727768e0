"""TaskHandler over Redis: the handler's prefetch (one extra task per worker slot held in
hand, reserved) and its batched settles (outcomes and acks written together). Tasks held
in hand count as waiting, are given back at shutdown and are not run once cancelled;
the outcomes of many tasks run by a worker process all reach the submitter."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import _prefetch_tasks as tasks
import pytest
from procs_helpers import WAIT, task_worker

from unidist_queue import RedisMessageQueue, TaskHandler

QUEUE = "task:default"

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(autouse=True)
def _gate() -> Iterator[None]:
    tasks.GATE.clear()
    tasks.RAN.clear()
    while tasks.STARTED.acquire(blocking=False):
        pass
    yield
    tasks.GATE.set()  # never leave a worker waiting


def _one_running_one_held(rmq: RedisMessageQueue, th: TaskHandler) -> None:
    """Three tasks wait; a worker with one slot takes the first (it runs, gated) and holds
    the second in hand."""
    th.hire(slots=1)
    assert tasks.STARTED.acquire(timeout=WAIT)
    stats = rmq.stats(QUEUE)
    assert (stats.reserved, stats.ready) == (2, 1)


def test_status_counts_prefetched_tasks_as_waiting(rmq: RedisMessageQueue) -> None:
    with TaskHandler(0, mq=rmq) as th:
        futures = [th.submit(tasks.gated, 0), th.submit(tasks.record, 1), th.submit(tasks.record, 2)]
        _one_running_one_held(rmq, th)
        series = th.status()["series"]["default"]
        assert (series["waiting"], series["running"]) == (2, 1)
        tasks.GATE.set()
        assert [f.result(WAIT) for f in futures] == [0, 1, 2]
        assert th.status()["series"]["default"]["waiting"] == 0


def test_prefetched_tasks_are_given_back_at_shutdown(
    rmq: RedisMessageQueue, other: RedisMessageQueue
) -> None:
    th = TaskHandler(0, mq=rmq)
    first = th.submit(tasks.gated, 0)
    th.submit(tasks.record, 1)
    th.submit(tasks.record, 2)
    held = [m.id for m in rmq.messages(QUEUE)][1]
    _one_running_one_held(rmq, th)
    th.shutdown(wait=False)
    stats = other.stats(QUEUE)
    assert (stats.reserved, stats.ready) == (1, 2)  # only the running task stays reserved
    taken = other.reserve(QUEUE, timeout=0)  # another client takes it at once, front first
    assert taken.id == held
    other.nack(taken)
    tasks.GATE.set()
    th.shutdown(wait=True, timeout=WAIT)
    assert first.result(WAIT) == 0


def test_a_cancelled_future_of_a_prefetched_task_does_not_run(rmq: RedisMessageQueue) -> None:
    with TaskHandler(0, mq=rmq) as th:
        first = th.submit(tasks.gated, 0)
        cancelled = th.submit(tasks.record, 1)
        last = th.submit(tasks.record, 2)
        _one_running_one_held(rmq, th)
        assert cancelled.cancel()
        tasks.GATE.set()
        assert (first.result(WAIT), last.result(WAIT)) == (0, 2)
    assert tasks.RAN == [2]
    stats = rmq.stats(QUEUE)
    assert (stats.reserved, stats.ready) == (0, 0)


def test_outcomes_of_many_tasks_run_by_a_worker_process_all_reach_the_submitter(
    tmp_path: Path, redis_url: str
) -> None:
    with RedisMessageQueue(redis_url) as mq:
        th = TaskHandler(max_workers=0, mq=mq)  # submits only: every task runs in the worker
        n = 300
        futures = [th.submit(tasks.boom if i % 7 == 0 else tasks.square, i) for i in range(n)]
        with task_worker(tmp_path, redis_url, 4, paths=[HERE]) as worker:
            for i, f in enumerate(futures):
                if i % 7 == 0:
                    with pytest.raises(ValueError, match=f"boom {i}$"):
                        f.result(timeout=WAIT)
                else:
                    assert f.result(timeout=WAIT) == (i * i, worker.pid)
            th.shutdown(timeout=WAIT)
            worker.stop()
        stats = mq.stats(QUEUE)
        assert (stats.reserved, stats.ready) == (0, 0)
