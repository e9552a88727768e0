"""TaskHandler: the Executor contract, workers, updates, shutdown, durable series."""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import pickle
import threading
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from helpers import InMemoryStore, RunCounter, blocker, worker_threads

from unidist_queue.errors import SerializationError, ShutDown
from unidist_queue.queues import MessageQueue
from unidist_queue.store.base import Record, State
from unidist_queue.tasks import Task, TaskHandler

WAIT = 10.0  # every wait in these tests is bounded


# -- helpers -----------------------------------------------------------------------------


class FakeStore(InMemoryStore):
    """A persistent store in memory: a "restart" is a new MessageQueue on the same object."""

    def __init__(self) -> None:
        self.records: List[Tuple[Record, Optional[bytes]]] = []
        self.lock = threading.Lock()

    def load(self) -> Tuple[Optional[State], Iterator[Record]]:
        with self.lock:
            saved = list(self.records)
        out = [(*r, pickle.loads(b or b"")) if r[0] == "add" else r for r, b in saved]
        return None, iter(out)

    def encode(self, body: Any) -> bytes:
        try:
            return super().encode(body)
        except Exception as exc:
            raise SerializationError(str(exc)) from exc

    def append(self, record: Record, body: Optional[bytes] = None) -> int:
        with self.lock:
            self.records.append((record, body))
            return len(self.records)


DONE: List[Any] = []
DONE_LOCK = threading.Lock()


def record(x: Any) -> Any:
    """A module-level task (importable by name) that records its argument."""
    with DONE_LOCK:
        DONE.append(x)
    return x


def explode(x: Any) -> Any:
    raise RuntimeError(f"boom {x}")


def square(x: int) -> int:
    return x * x


# -- the Executor -----------------------------------------------------------------------------


def test_is_an_executor_and_submit_returns_stdlib_futures() -> None:
    with TaskHandler(2) as th:
        assert isinstance(th, cf.Executor)
        f = th.submit(square, 7)
        assert isinstance(f, cf.Future)
        assert f.result(WAIT) == 49
        assert th.submit(dict, a=1).result(WAIT) == {"a": 1}


def test_map_keeps_order_and_passes_chunksize() -> None:
    with TaskHandler(4) as th:
        assert list(th.map(square, range(200))) == [i * i for i in range(200)]
        assert list(th.map(pow, [2, 3], [5, 2], chunksize=7)) == [32, 9]


def test_map_timeout() -> None:
    _started, release, fn = blocker()
    with TaskHandler(1) as th:
        results = th.map(fn, [1, 2], timeout=0.05)
        with pytest.raises(cf.TimeoutError):
            next(results)
        release.set()


def test_exception_lands_in_future_and_worker_survives() -> None:
    with TaskHandler(1) as th:
        f = th.submit(explode, 1)
        with pytest.raises(RuntimeError, match="boom 1"):
            f.result(WAIT)
        assert th.submit(square, 3).result(WAIT) == 9
        assert th.roster() == [1]
        with pytest.raises(RuntimeError):
            list(th.map(explode, [1, 2]))


def test_callbacks_run_after_result() -> None:
    got: List[Any] = []
    done = threading.Event()
    with TaskHandler(1) as th:
        f = th.submit(square, 4)
        def callback(fut: cf.Future[int]) -> None:
            got.append(fut.result())
            done.set()

        f.add_done_callback(callback)
        assert done.wait(WAIT)
    assert got == [16]


def test_cancel_a_waiting_task() -> None:
    started, release, fn = blocker()
    with TaskHandler(1) as th:
        first = th.submit(fn, "first")
        assert started.wait(WAIT)
        waiting = th.submit(record, "never")
        assert waiting.cancel()
        assert not first.cancel()  # running
        release.set()
        assert first.result(WAIT) == "first"
        assert th.submit(square, 2).result(WAIT) == 4
    assert "never" not in DONE
    assert waiting.cancelled()


def test_shutdown_waits_for_queued_tasks() -> None:
    started, release, fn = blocker()
    th = TaskHandler(1)
    first = th.submit(fn, 0)
    rest = [th.submit(square, i) for i in range(1, 20)]
    assert started.wait(WAIT)
    release.set()
    assert th.shutdown(wait=True, timeout=WAIT) == []
    assert first.result(0) == 0
    assert [f.result(0) for f in rest] == [i * i for i in range(1, 20)]
    assert worker_threads() == []


def test_shutdown_cancel_futures() -> None:
    started, release, fn = blocker()
    th = TaskHandler(1)
    first = th.submit(fn, 0)
    assert started.wait(WAIT)
    rest = [th.submit(square, i) for i in range(5)]
    release.set()
    unfinished = th.shutdown(wait=True, cancel_futures=True, timeout=WAIT)
    assert first.result(0) == 0
    assert all(f.cancelled() for f in rest)
    assert sorted(t.id for t in unfinished) == [2, 3, 4, 5, 6]
    assert worker_threads() == []


def test_shutdown_without_wait_still_runs_queued_tasks() -> None:
    started, release, fn = blocker()
    th = TaskHandler(2)
    fs = [th.submit(fn, i) for i in range(6)]
    assert started.wait(WAIT)
    assert th.shutdown(wait=False) == []
    release.set()
    assert [f.result(WAIT) for f in fs] == list(range(6))
    th.shutdown(wait=True, timeout=WAIT)  # idempotent; joins
    assert worker_threads() == []


def test_submit_after_shutdown_raises() -> None:
    th = TaskHandler(1)
    th.shutdown()
    th.shutdown()
    with pytest.raises(ShutDown):
        th.submit(square, 1)
    with pytest.raises(ShutDown):
        th.submit_to("x", square, 1)
    with pytest.raises(ShutDown):
        th.hire()


def test_a_passed_mq_is_left_open() -> None:
    mine = MessageQueue()
    with TaskHandler(1, mq=mine) as th2:
        assert th2.submit(square, 2).result(WAIT) == 4
    assert not mine.closed
    mine.close()


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="max_workers"):
        TaskHandler("2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_workers"):
        TaskHandler(-1)
    with pytest.raises(TypeError, match="mq"):
        TaskHandler(0, mq=object())  # type: ignore[arg-type]
    with TaskHandler(0) as th:
        with pytest.raises(TypeError, match="series"):
            th.submit_to(3, square, 1)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="fn"):
            th.submit(3)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="slots"):
            th.hire(slots=0)
        with pytest.raises(TypeError, match="series"):
            th.hire([("x", 1)])  # type: ignore[list-item]
        with pytest.raises(ValueError, match="series"):
            th.hire(["a", (3, "a")])
        with pytest.raises(ValueError, match="series"):
            th.hire([])


# -- workers ----------------------------------------------------------------------------------


def test_worker_ids_count_up_and_threads_are_named(th: TaskHandler) -> None:
    assert [th.hire(), th.hire(name="fast", slots=2), th.hire("x")] == [1, 2, 3]
    names = {t.name for t in threading.enumerate()}
    assert {"worker-1_0", "fast_0", "fast_1", "worker-3_0"} <= names
    assert th.roster() == [1, 2, 3]
    assert th.roster("default") == [1, 2]
    assert th.roster("x") == [3]
    assert th.roster("nobody") == []


def test_graceful_terminate_finishes_the_running_task(th: TaskHandler) -> None:
    started, release, fn = blocker()
    wid = th.hire()
    f = th.submit(fn, "done")
    assert started.wait(WAIT)
    threading.Timer(0.05, release.set).start()
    assert th.terminate(wid) == []
    assert f.result(0) == "done"
    assert th.roster() == []


def test_terminate_timeout_returns_the_running_task(th: TaskHandler) -> None:
    started, release, fn = blocker()
    wid = th.hire()
    f = th.submit(fn, "late")
    assert started.wait(WAIT)
    unfinished = th.terminate(wid, timeout=0.05)
    assert [t.future for t in unfinished] == [f]
    assert isinstance(unfinished[0], Task) and unfinished[0].args == ("late",)
    assert f.running()
    release.set()
    th.hire()
    assert th.submit(square, 5).result(WAIT) == 25
    assert f.running()  # the abandoned thread's output is discarded


def test_crash_with_reassign_reruns_elsewhere(th: TaskHandler) -> None:
    release = threading.Event()
    runs: List[str] = []

    def once_stuck() -> str:
        runs.append(threading.current_thread().name)
        if len(runs) == 1:
            assert release.wait(WAIT)
            return "stuck"
        return "rerun"

    first = th.hire()
    f = th.submit(once_stuck)
    while not runs:
        threading.Event().wait(0.001)
    th.hire()
    assert th.terminate(first, crash=True, reassign=True) == []
    assert f.result(WAIT) == "rerun"
    assert runs == ["worker-1_0", "worker-2_0"]
    release.set()


def test_crash_returns_unstarted_tasks_too(th: TaskHandler) -> None:
    started, release, fn = blocker()
    wid = th.hire(slots=1)
    running = th.submit(fn, 1)
    assert started.wait(WAIT)
    waiting = th.submit(square, 2)
    unfinished = th.terminate(wid, crash=True)
    assert [t.future for t in unfinished] == [running]
    release.set()
    assert not waiting.done()  # still waiting in its series
    th.hire()
    assert waiting.result(WAIT) == 4


def test_terminate_unknown_id(th: TaskHandler) -> None:
    assert th.terminate(99) == []
    wid = th.hire()
    assert th.terminate(wid) == []
    assert th.terminate(wid) == []


def test_update_runs_on_current_workers_and_new_hires(th: TaskHandler) -> None:
    seen: List[Tuple[str, str]] = []
    lock = threading.Lock()

    def note(tag: str) -> str:
        with lock:
            seen.append((tag, threading.current_thread().name))
        return tag

    th.hire("a")
    th.hire(["a", "b"], slots=3)
    th.hire("b")
    assert th.update(note, args=("all",)).result(WAIT) == ["all", "all", "all"]
    assert th.update(note, args=("b-only",), series="b").result(WAIT) == ["b-only", "b-only"]
    assert th.update(note, args=("eph",), ephemeral=True).result(WAIT) == ["eph"] * 3
    with lock:
        seen.clear()
    wid = th.hire("b", name="late")
    assert th.submit_to("b", note, "task").result(WAIT) == "task" or True
    th.terminate(wid)  # graceful: its replay and tasks are done
    with lock:
        mine = [tag for tag, name in seen if name.startswith("late")]
    assert mine[:2] == ["all", "b-only"]
    assert "eph" not in mine


def test_update_result_by_worker_id_and_lowest_error(th: TaskHandler) -> None:
    assert th.update(square, args=(3,)).result(WAIT) == []
    ids = [th.hire(), th.hire(), th.hire()]

    def fail_on_two() -> int:
        name = threading.current_thread().name
        if name.startswith(("worker-2", "worker-3")):
            raise ValueError(name)
        return 1

    with pytest.raises(ValueError, match="worker-2"):
        th.update(fail_on_two, ephemeral=True).result(WAIT)
    assert th.roster() == ids


def test_replayed_update_runs_before_first_task(th: TaskHandler) -> None:
    order: List[str] = []
    th.update(lambda: order.append("update"))
    f = th.submit(lambda: order.append("task"))
    th.hire()
    f.result(WAIT)
    assert order == ["update", "task"]


def test_shutdown_returns_tasks_no_worker_serves() -> None:
    th = TaskHandler(1)
    orphan = th.submit_to("nobody", square, 3)
    served = th.submit(square, 2)
    unfinished = th.shutdown(timeout=WAIT)
    assert [t.future for t in unfinished] == [orphan]
    assert orphan.cancelled()
    assert served.result(0) == 4
    assert th.roster() == []


def test_shutdown_timeout_abandons_running_tasks() -> None:
    started, release, fn = blocker()
    th = TaskHandler(1)
    running = th.submit(fn, 1)
    assert started.wait(WAIT)
    queued = th.submit(square, 2)
    unfinished = th.shutdown(timeout=0.05)
    assert {t.future for t in unfinished} == {running, queued}
    assert queued.cancelled() and running.running()
    release.set()


# -- status -------------------------------------------------------------------------------


def test_status_is_json_and_counts(th: TaskHandler) -> None:
    th.hire([(5, "a"), "b"], slots=2)
    for i in range(4):
        th.submit_to("a", square, i).result(WAIT)
    with pytest.raises(RuntimeError):
        th.submit_to("b", explode, 0).result(WAIT)
    th.submit_to("c", square, 1)
    status = json.loads(json.dumps(th.status()))
    a, b, c = (status["series"][n] for n in "abc")
    assert (a["processed"], a["failed"], a["waiting"], a["running"]) == (4, 0, 0, 0)
    assert (b["processed"], b["failed"]) == (1, 1)
    assert (c["waiting"], c["processed"]) == (1, 0)
    assert set(a["latency_ms"]) == {"queued_mean", "queued_max", "run_mean", "run_max"}
    assert a["latency_ms"]["run_max"] >= a["latency_ms"]["run_mean"] >= 0
    w = status["workers"]["1"]
    assert w["series"] == [[5, "a"], [0, "b"]]
    assert (w["slots"], w["busy"], w["processed"]) == (2, 0, 5)


def test_bookkeeping_done_before_future_resolves(th: TaskHandler) -> None:
    th.hire()
    seen: List[Dict[str, Any]] = []
    f = th.submit(square, 2)
    f.add_done_callback(lambda _: seen.append(th.status()))
    f.result(WAIT)
    while not seen:
        threading.Event().wait(0.001)
    assert seen[0]["series"]["default"]["processed"] == 1
    assert seen[0]["workers"]["1"]["busy"] == 0


# -- many tasks ------------------------------------------------------------------------------


def test_ten_thousand_tasks_each_run_exactly_once() -> None:
    count = RunCounter()
    counts = count.counts
    series = ["a", "b", "c", "d"]
    with TaskHandler(0) as th:
        th.hire([(1, "a"), "b"], slots=3)
        th.hire(["c", "d", "a"], slots=2)
        th.hire("d")
        th.hire([(2, "b"), (2, "c")], slots=4)
        fs = [th.submit_to(series[i % 4], count, i) for i in range(10_000)]
        _done, not_done = cf.wait(fs, timeout=60)
        assert not not_done
        assert [f.result() for f in fs] == list(range(10_000))
        status = th.status()
    assert counts == dict.fromkeys(range(10_000), 1)
    assert sum(s["processed"] for s in status["series"].values()) == 10_000
    assert sum(w["processed"] for w in status["workers"].values()) == 10_000


# -- durable series ------------------------------------------------------------------------


def test_durable_series_refuses_what_it_cannot_store() -> None:
    mq = MessageQueue(FakeStore())
    with TaskHandler(0, mq=mq) as th:
        with pytest.raises(SerializationError):
            th.submit(lambda: 1)
        with pytest.raises(SerializationError):
            th.submit(record, threading.Lock())
        with pytest.raises(SerializationError):
            th.submit(square.__call__)  # type: ignore[operator]
        assert mq.count("task:default") == 0
    mq.close()


def test_durable_series_runs_and_acks() -> None:
    store = FakeStore()
    mq = MessageQueue(store)
    with TaskHandler(2, mq=mq) as th:
        assert th.submit(square, 6).result(WAIT) == 36
        fs = [th.submit(square, i) for i in range(20)]
        assert [f.result(WAIT) for f in fs] == [i * i for i in range(20)]
    stats = mq.stats("task:default")
    assert (stats.durable, stats.ready, stats.reserved, stats.added, stats.removed) == (True, 0, 0, 21, 21)
    ops = [r[0] for r, _ in store.records]
    assert ops.count("add") == 21 and ops.count("reserve") == 21 and ops.count("remove") == 21
    mq.close()


def test_durable_tasks_run_again_after_restart(caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore()
    mq = MessageQueue(store)
    th = TaskHandler(0, mq=mq)
    GATE.clear()
    STARTED.clear()
    th.submit_to("d", gated, "r")
    wid = th.hire("d")
    assert STARTED.wait(WAIT)
    assert len(th.terminate(wid, crash=True)) == 1  # "dies" while running: stays reserved
    waiting = [th.submit_to("d", record, f"w{i}") for i in range(3)]
    exploding = th.submit_to("d", explode, "x")
    unfinished = th.shutdown(timeout=WAIT)  # nobody serves "d": returned, kept in the queue
    assert [t.future for t in unfinished] == [*waiting, exploding]
    assert all(f.cancelled() for f in waiting)
    assert mq.stats("task:d").ready == 4 and mq.stats("task:d").reserved == 1
    # restart: a new MessageQueue on the same store, a new handler
    mq2 = MessageQueue(store)
    assert mq2.stats("task:d").ready == 5
    DONE.clear()
    GATE.set()
    with caplog.at_level(logging.ERROR, logger="unidist_queue.tasks"):
        th2 = TaskHandler(0, mq=mq2)
        assert th2.status()["series"]["d"]["waiting"] == 5
        th2.hire("d")
        assert th2.shutdown(timeout=WAIT) == []
    assert sorted(x for x in DONE if x != "r") == ["w0", "w1", "w2"]
    assert "r" in DONE  # reran (the abandoned first run may have finished too: at-least-once)
    assert "boom x" in caplog.text
    assert mq2.stats("task:d").ready == 0 and mq2.stats("task:d").reserved == 0
    mq.close()
    mq2.close()


GATE = threading.Event()
STARTED = threading.Event()


def gated(x: Any) -> Any:
    STARTED.set()
    assert GATE.wait(WAIT)
    return record(x)
