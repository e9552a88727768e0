"""TaskHandler over a queue-API object: it needs nothing of the backend but the QueueAPI.

Each test runs over three backends: ``ApiOnly(MessageQueue())`` (only the QueueAPI
methods, in memory: not a ``MessageQueue``, so tasks wait in their stored form, as over
any other backend), ``ApiOnly(MessageQueue(FileStore))`` (durable) and a durable
``MessageQueue(FileStore)`` itself. Everything is observed through public behaviour:
futures, ``status()``, worker thread names and the queue's ``stats``/``count``. Task
functions are module-level, so they can be stored by name. Every wait is bounded.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator, List

import pytest
from helpers import WAIT, ApiOnly

from unidist_queue import FileStore, MessageQueue, QueueAPI, TaskHandler

RAN: List[Any] = []
RAN_LOCK = threading.Lock()
RAN_EVENT = threading.Event()  # set by every run of record()
HOLD = threading.Event()  # held() waits for it
HELD = threading.Semaphore(0)  # released by every held() that started


def record(x: Any) -> Any:
    with RAN_LOCK:
        RAN.append(x)
    RAN_EVENT.set()
    return x


def square(x: int) -> int:
    return x * x


def explode(x: Any) -> None:
    raise ValueError(f"boom {x}")


def whoami(_: Any = None) -> str:
    """The worker name of the running thread ("worker-3_0" -> "worker-3")."""
    return threading.current_thread().name.rsplit("_", 1)[0]


def held(x: Any) -> Any:
    HELD.release()
    assert HOLD.wait(WAIT)
    return x


def ran() -> List[Any]:
    with RAN_LOCK:
        return list(RAN)


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    global HELD
    with RAN_LOCK:
        RAN.clear()
    RAN_EVENT.clear()
    HOLD.clear()
    HELD = threading.Semaphore(0)
    yield
    HOLD.set()


@pytest.fixture(params=["api-only memory", "api-only durable", "durable MessageQueue"])
def mq(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QueueAPI]:
    if request.param == "api-only memory":
        backend: Any = ApiOnly(MessageQueue())
    elif request.param == "api-only durable":
        backend = ApiOnly(MessageQueue(FileStore(tmp_path / "s", fsync="never")))
    else:
        backend = MessageQueue(FileStore(tmp_path / "s", fsync="never"))
    yield backend
    backend.close()


def started(n: int = 1) -> None:
    for _ in range(n):
        assert HELD.acquire(timeout=WAIT)


def test_tasks_run_and_futures_get_results_and_exceptions(mq: QueueAPI) -> None:
    with TaskHandler(2, mq=mq) as th:
        futures = [th.submit(square, i) for i in range(20)]
        failing = th.submit(explode, "x")
        assert [f.result(WAIT) for f in futures] == [i * i for i in range(20)]
        with pytest.raises(ValueError, match="boom x"):
            failing.result(WAIT)
        status = th.status()["series"]["default"]
        assert (status["processed"], status["failed"], status["waiting"]) == (21, 1, 0)
    stats = mq.stats("task:default")
    assert (stats.ready, stats.reserved, stats.added, stats.removed) == (0, 0, 21, 21)


def test_tasks_are_routed_by_series_and_priority(mq: QueueAPI) -> None:
    with TaskHandler(0, mq=mq) as th:
        low = th.hire("a")
        high = th.hire([(5, "a"), "b"])
        only_c = th.hire("c")
        assert th.submit_to("a", whoami).result(WAIT) == f"worker-{high}"  # both free: priority
        HOLD.clear()
        th.submit_to("a", held, 1)  # the high-priority worker is free again: it takes it
        started()
        assert th.submit_to("a", whoami).result(WAIT) == f"worker-{low}"  # busy: falls back
        assert th.submit_to("c", whoami).result(WAIT) == f"worker-{only_c}"
        b = th.submit_to("b", whoami)  # only the busy worker serves "b": it waits
        assert not b.done() and mq.count("task:b") == 1
        HOLD.set()
        assert b.result(WAIT) == f"worker-{high}"


def test_a_worker_reserves_no_more_tasks_than_its_free_slots_and_the_prefetch(mq: QueueAPI) -> None:
    with TaskHandler(0, mq=mq) as th:
        futures = [th.submit(held, i) for i in range(5)]  # nobody serves yet: all wait
        assert mq.stats("task:default").ready == 5
        th.hire(slots=2)
        started(2)
        stats = mq.stats("task:default")
        # two taken, for its two slots; over a backend that is not an in-process
        # MessageQueue, one more per slot held in hand (the handler's prefetch)
        prefetch = 0 if isinstance(mq, MessageQueue) else 2
        assert (stats.reserved, stats.ready) == (2 + prefetch, 3 - prefetch)
        assert th.status()["workers"]["1"]["busy"] == 2
        assert th.status()["series"]["default"]["waiting"] == 3  # held ones wait too
        HOLD.set()
        assert [f.result(WAIT) for f in futures] == list(range(5))
    stats = mq.stats("task:default")
    assert (stats.ready, stats.reserved) == (0, 0)


def test_shutdown_gives_back_what_a_worker_held_without_starting_it(mq: QueueAPI) -> None:
    th = TaskHandler(0, mq=mq)
    update_started, release_update = threading.Event(), threading.Event()

    def busy_update() -> None:
        update_started.set()
        assert release_update.wait(WAIT)

    try:
        th.hire()
        th.update(busy_update, ephemeral=True)
        assert update_started.wait(WAIT)  # its one thread is busy; the worker is free
        future = th.submit(record, "held back")  # handed to it (reserved), not started
        assert mq.stats("task:default").reserved == 1
        unfinished = th.shutdown(timeout=0.05)  # the update outlives the timeout: abandoned
        assert [t.future for t in unfinished] == [future] and not future.done()
        stats = mq.stats("task:default")
        assert (stats.reserved, stats.ready) == (0, 1)  # given back to its queue
    finally:
        release_update.set()
    assert ran() == []
    with TaskHandler(1, mq=mq):  # the next handler runs it
        assert RAN_EVENT.wait(WAIT)
    assert ran() == ["held back"]
    assert mq.stats("task:default").reserved == 0


def test_graceful_shutdown_leaves_nothing_reserved(mq: QueueAPI) -> None:
    th = TaskHandler(3, mq=mq)
    futures = [th.submit(square, i) for i in range(50)]
    assert th.shutdown(wait=True) == []
    assert all(f.done() for f in futures)
    stats = mq.stats("task:default")
    assert (stats.ready, stats.reserved, stats.removed) == (0, 0, 50)


def test_a_task_added_to_the_queue_by_other_code_wakes_a_free_worker(mq: QueueAPI) -> None:
    with TaskHandler(0, mq=mq) as th:
        th.hire("outside")
        assert th.submit_to("outside", square, 3).result(WAIT) == 9  # the worker is idle now
        body = (f"{__name__}:record", ["from outside"], {})  # the stored form of a task
        mq.add("task:outside", body)  # plain add: the subscription rings the free worker
        assert RAN_EVENT.wait(WAIT)
        assert ran() == ["from outside"]
        status = th.status()["series"]["outside"]
        assert (status["processed"], status["waiting"]) == (2, 0)
    assert mq.count("task:outside") == 0 and mq.stats("task:outside").reserved == 0


def test_a_task_nacked_by_other_code_runs_again(mq: QueueAPI) -> None:
    mq.add("task:again", (f"{__name__}:record", ["nacked"], {}))
    taken = mq.reserve("task:again", timeout=0)  # another consumer takes it...
    with TaskHandler(0, mq=mq) as th:
        th.hire("again")
        assert th.submit_to("again", square, 2).result(WAIT) == 4
        assert ran() == []
        mq.nack(taken)  # ...and gives it back: a free worker hears of it
        assert RAN_EVENT.wait(WAIT)
    assert ran() == ["nacked"]


def test_terminate_with_reassign_nacks_and_the_next_worker_runs_it(mq: QueueAPI) -> None:
    with TaskHandler(0, mq=mq) as th:
        first = th.hire()
        future = th.submit(held, "again")
        started()
        assert th.terminate(first, crash=True, reassign=True) == []
        stats = mq.stats("task:default")
        assert (stats.reserved, stats.ready) == (0, 1)  # back in its queue
        th.hire()
        started()  # the second worker runs it (the first run is still held)
        HOLD.set()
        assert future.result(WAIT) == "again"
    assert mq.stats("task:default").reserved == 0
