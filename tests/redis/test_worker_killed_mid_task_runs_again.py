"""A worker process SIGKILLed mid-task: the task runs again in another worker process
and its outcome resolves the submitter's future (DESIGN 12, issue 15 point 5).

The test process submits (``max_workers=0``: it runs nothing); worker-only processes
(``TaskHandler(max_workers=N, mq=RedisMessageQueue(..., session_lease=LEASE))``) run the
tasks. Each task (:func:`_redis_crash_tasks.record_then_wait`) records its start with its
process id in a Redis list, then waits for the test's word addressed to that run (its
task and process), so the test decides which run may finish. Once the first worker
process runs the tasks, the test kills it; its reservations lapse after its session
lease and a second worker process runs them. Process ids say where each run happened.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Iterator, List, Set, Tuple

import _redis_crash_tasks
import pytest
import redis
from procs_helpers import WAIT, Child, task_worker, wait_for

from unidist_queue import RedisMessageQueue, TaskHandler

NS = "killed"
LEASE = 1.0  # the worker processes' session lease, seconds
QUEUE = "task:default"  # where the tasks of series "default" wait
HERE = os.path.dirname(os.path.abspath(__file__))

def worker(tmp: Path, url: str, workers: int) -> Child:
    """A worker-only process serving the series of namespace :data:`NS`, once ready."""
    return task_worker(tmp, url, workers, namespace=NS, lease=LEASE, paths=[HERE])


def runs(client: redis.Redis, key: str, which: str = "started") -> List[Tuple[int, int]]:
    """``(task, pid)`` of every start (or finish) of the tasks of ``key`` so far, in order."""
    name = _redis_crash_tasks.started_key(key) if which == "started" else _redis_crash_tasks.done_key(key)
    return [(int(n), int(pid)) for n, pid in (line.split() for line in
                                               client.lrange(name, 0, -1))]


def let_go(client: redis.Redis, key: str, n: int, pid: int) -> None:
    client.rpush(_redis_crash_tasks.go_key(key, n, pid), "go")


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url, decode_responses=True) as c:
        yield c


@pytest.fixture
def submitter(redis_url: str) -> Iterator[Tuple[RedisMessageQueue, TaskHandler]]:
    """The test process's queue client and a handler that submits only."""
    with RedisMessageQueue(redis_url, namespace=NS) as mq:
        th = TaskHandler(max_workers=0, mq=mq)
        try:
            yield mq, th
        finally:
            th.shutdown(timeout=WAIT)


def settled(mq: RedisMessageQueue) -> bool:
    stats = mq.stats(QUEUE)
    return stats.ready == stats.reserved == stats.delayed == 0


def test_a_task_whose_worker_process_was_killed_runs_again_in_another(
        tmp_path: Path, redis_url: str, client: redis.Redis,
        submitter: Tuple[RedisMessageQueue, TaskHandler]) -> None:
    mq, th = submitter
    with worker(tmp_path, redis_url, 1) as a:
        future = th.submit(_redis_crash_tasks.record_then_wait, redis_url, "one", 0)
        wait_for(lambda: runs(client, "one"), "the task started in the first worker process")
        assert runs(client, "one") == [(0, a.pid)]
        a.kill()
    # the killed client's reservation lapses: the task is ready again, its attempt counted
    back = wait_for(lambda: mq.messages(QUEUE), "the task back in its queue")
    assert [m.attempts for m in back] == [1]
    assert not future.done()

    with worker(tmp_path, redis_url, 1) as b:
        wait_for(lambda: len(runs(client, "one")) == 2, "the task started again")
        assert runs(client, "one") == [(0, a.pid), (0, b.pid)]  # once per process
        let_go(client, "one", 0, b.pid)
        assert future.result(timeout=WAIT) == (0, b.pid)
        assert runs(client, "one", "done") == [(0, b.pid)]
        wait_for(lambda: settled(mq), "the task acked")
        assert mq.stats(QUEUE).removed == 1
        b.stop()
    assert runs(client, "one") == [(0, a.pid), (0, b.pid)]


def test_every_task_of_a_killed_worker_process_runs_in_another_none_lost(
        tmp_path: Path, redis_url: str, client: redis.Redis,
        submitter: Tuple[RedisMessageQueue, TaskHandler]) -> None:
    """Five tasks, two running in the first worker process when it is killed (the others
    waiting, or reserved by it ahead of time): the second process, started at once,
    takes them all when the lease lapses; every future resolves with its outcome."""
    mq, th = submitter
    with worker(tmp_path, redis_url, 2) as a:
        futures = [th.submit(_redis_crash_tasks.record_then_wait, redis_url, "five", n) for n in range(5)]
        wait_for(lambda: len(runs(client, "five")) == 2, "two tasks running in the first process")
        in_a = runs(client, "five")
        assert {pid for _, pid in in_a} == {a.pid}
        a.kill()
    assert not any(f.done() for f in futures)

    with worker(tmp_path, redis_url, 2) as b:
        released: Set[int] = set()
        while len(released) < 5:
            def new_runs_in_b() -> List[int]:
                return [n for n, pid in runs(client, "five")[2:] if pid == b.pid and n not in released]
            for n in wait_for(new_runs_in_b, f"a task started in the second process ({released} done)"):
                let_go(client, "five", n, b.pid)
                released.add(n)
        assert [f.result(timeout=WAIT) for f in futures] == [(n, b.pid) for n in range(5)]
        wait_for(lambda: settled(mq), "every task acked")
        b.stop()
    started = runs(client, "five")
    assert started[:2] == in_a and {pid for _, pid in started[2:]} == {b.pid}
    # each task ran to its end once, in the second process; those cut short ran twice
    assert Counter(n for n, _ in started) == Counter({n: 1 + (n in dict(in_a)) for n in range(5)})
    assert sorted(runs(client, "five", "done")) == [(n, b.pid) for n in range(5)]
    assert mq.stats(QUEUE).removed == 5


def test_a_worker_process_already_running_runs_the_task_of_one_killed_beside_it(
        tmp_path: Path, redis_url: str, client: redis.Redis,
        submitter: Tuple[RedisMessageQueue, TaskHandler]) -> None:
    """Two worker processes serve the series; the one that took the task is killed: the
    other, idle meanwhile, runs it once the lease lapses."""
    mq, th = submitter
    with worker(tmp_path, redis_url, 1) as a, worker(tmp_path, redis_url, 1) as b:
        future = th.submit(_redis_crash_tasks.record_then_wait, redis_url, "beside", 0)
        first = wait_for(lambda: runs(client, "beside"), "the task started in one of them")
        dead, alive = (a, b) if first == [(0, a.pid)] else (b, a)
        assert first == [(0, dead.pid)]
        dead.kill()
        wait_for(lambda: len(runs(client, "beside")) == 2, "the task started again")
        assert runs(client, "beside") == [(0, dead.pid), (0, alive.pid)]
        let_go(client, "beside", 0, alive.pid)
        assert future.result(timeout=WAIT) == (0, alive.pid)
        wait_for(lambda: settled(mq), "the task acked")
        alive.stop()
