"""TaskHandler as a ``concurrent.futures.Executor``: what ``ThreadPoolExecutor`` users rely on.

Complements ``test_tasks.py``: ``max_workers``, the context manager, ``map``'s eager
submission, ``timeout`` and early close, ``BaseException`` in a task, callbacks, and
cancelling waiting tasks.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
from typing import Any, Callable, List, Tuple

import pytest
from helpers import Recorder, blocker, worker_threads

from unidist_queue.errors import ShutDown, UnidistQueueError
from unidist_queue.tasks import TaskHandler

WAIT = 10.0  # every wait in these tests is bounded


# -- max_workers and the context manager -----------------------------------------------------


@pytest.mark.parametrize("n", [1, 3, 5])
def test_max_workers_hires_n_default_workers(n: int) -> None:
    with TaskHandler(n) as th:
        assert th.roster() == th.roster("default") == list(range(1, n + 1))
        workers = th.status()["workers"]
        assert len(workers) == n
        assert all(w["series"] == [[0, "default"]] and w["slots"] == 1 for w in workers.values())
        # n tasks run at once: each waits at a barrier for the n - 1 others
        barrier = threading.Barrier(n, timeout=WAIT)
        fs = [th.submit(barrier.wait) for _ in range(n)]
        assert sorted(f.result(WAIT) for f in fs) == list(range(n))


def test_zero_max_workers_hires_nobody() -> None:
    th = TaskHandler(0)
    assert th.roster() == [] and th.status()["workers"] == {}
    f = th.submit(int, "7")  # waits for a hire
    assert not f.done()
    th.hire()
    assert f.result(WAIT) == 7
    assert th.shutdown(timeout=WAIT) == []


def test_context_manager_shuts_down_and_waits() -> None:
    record = Recorder()
    handler = TaskHandler(2)
    with handler as th:
        assert th is handler
        fs = [th.submit(record, i) for i in range(50)]
    assert all(f.done() and not f.cancelled() for f in fs)
    assert sorted(record.values()) == list(range(50))
    assert worker_threads() == []
    with pytest.raises(ShutDown):
        th.submit(record, 1)


def test_context_manager_on_error_still_shuts_down() -> None:
    with pytest.raises(KeyError), TaskHandler(1) as th:
        f = th.submit(pow, 2, 10)
        raise KeyError("in the with block")
    assert f.result(0) == 1024
    assert worker_threads() == []


def test_shutdown_is_a_unidist_queue_error() -> None:
    th = TaskHandler(1)
    assert th.shutdown(timeout=WAIT) == []
    assert th.shutdown(timeout=WAIT) == []  # idempotent
    with pytest.raises(UnidistQueueError):
        th.submit(int)


# -- map --------------------------------------------------------------------------------------


def test_map_submits_everything_before_the_first_result() -> None:
    all_in = threading.Barrier(5, timeout=WAIT)

    def double(i: int) -> int:
        all_in.wait()
        return i * 2

    with TaskHandler(4) as th:
        results = th.map(double, range(4))
        all_in.wait()  # the four calls run before anyone asked for a result
        assert list(results) == [0, 2, 4, 6]


def test_map_stops_at_the_shortest_iterable_and_keeps_order() -> None:
    with TaskHandler(3) as th:
        assert list(th.map(pow, [2, 3, 4, 5], [1, 2, 3])) == [2, 9, 64]
        assert list(th.map(str, [])) == []
        for chunksize in (1, 5, 1000):
            assert list(th.map(abs, range(-20, 0), chunksize=chunksize)) == list(range(20, 0, -1))


def test_map_raises_at_the_failing_item_after_earlier_results() -> None:
    def half(x: int) -> float:
        if x == 3:
            raise ZeroDivisionError("three")
        return x / 2

    with TaskHandler(2) as th:
        results = th.map(half, range(6))
        assert [next(results) for _ in range(3)] == [0.0, 0.5, 1.0]
        with pytest.raises(ZeroDivisionError, match="three"):
            next(results)


def test_map_timeout_cancels_what_did_not_run() -> None:
    record = Recorder()
    started, release, fn = blocker()
    with TaskHandler(1) as th:
        first = th.submit(fn, "first")
        assert started.wait(WAIT)
        results = th.map(record, range(5), timeout=0.01)  # the only worker is held
        with pytest.raises(cf.TimeoutError):
            next(results)
        release.set()
        assert first.result(WAIT) == "first"
        assert th.submit(record, "after").result(WAIT) == "after"
    # the mapped calls were cancelled as waiting tasks (Python < 3.11 does not cancel the
    # call whose result timed out: it may run)
    assert [v for v in record.values() if v != 0] == ["after"]


def test_map_timeout_met_returns_everything() -> None:
    with TaskHandler(2) as th:
        assert list(th.map(divmod, range(10), [3] * 10, timeout=WAIT)) == [divmod(i, 3) for i in range(10)]


def test_closing_map_early_cancels_the_waiting_calls() -> None:
    record = Recorder()
    started, release, fn = blocker()

    def task(i: int) -> int:
        if i == 1:
            fn()
        return record(i)  # type: ignore[no-any-return]

    with TaskHandler(1) as th:
        results = th.map(task, range(5))
        assert next(results) == 0
        assert started.wait(WAIT)  # 1 runs, 2..4 wait
        results.close()  # as the stdlib: the futures not yet returned are cancelled
        release.set()
        assert th.submit(record, "after").result(WAIT) == "after"
    assert record.values() == [0, 1, "after"]


# -- exceptions and callbacks -----------------------------------------------------------------


class Abort(BaseException):
    """Not an Exception: ThreadPoolExecutor still puts it in the future."""


@pytest.mark.parametrize("exc", [Abort("abort"), SystemExit(3), KeyboardInterrupt()])
def test_base_exception_lands_in_the_future_and_worker_survives(exc: BaseException) -> None:
    def raise_it() -> None:
        raise exc

    with TaskHandler(1) as th:
        f = th.submit(raise_it)
        assert f.exception(WAIT) is exc
        with pytest.raises(type(exc)):
            f.result(0)
        assert th.submit(pow, 3, 2).result(WAIT) == 9
        assert th.roster() == [1]
        assert th.status()["series"]["default"]["failed"] == 1


def test_every_callback_runs_once_with_the_future() -> None:
    calls: List[Tuple[str, cf.Future[Any]]] = []
    lock = threading.Lock()
    called = threading.Semaphore(0)
    started, release, fn = blocker()

    def callback(tag: str) -> Callable[[cf.Future[Any]], None]:
        def cb(fut: cf.Future[Any]) -> None:
            assert fut.done()
            with lock:
                calls.append((tag, fut))
            called.release()

        return cb

    with TaskHandler(1) as th:
        f = th.submit(fn, 5)
        assert started.wait(WAIT)
        f.add_done_callback(callback("a"))
        f.add_done_callback(callback("b"))
        release.set()
        assert called.acquire(timeout=WAIT) and called.acquire(timeout=WAIT)
        assert calls == [("a", f), ("b", f)]  # in the order they were added
        assert f.result(0) == 5
        late: List[Any] = []
        f.add_done_callback(late.append)  # on a done future: at once, in this thread
        assert late == [f]
    assert len(calls) == 2


def test_a_raising_callback_breaks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    def bad_callback(_: cf.Future[Any]) -> None:
        raise RuntimeError("callback failed")

    started, release, fn = blocker()
    with caplog.at_level(logging.ERROR), TaskHandler(1) as th:
        f = th.submit(fn, 1)
        assert started.wait(WAIT)
        f.add_done_callback(bad_callback)
        release.set()
        assert f.result(WAIT) == 1
        assert [th.submit(abs, -i).result(WAIT) for i in range(5)] == list(range(5))
        assert th.roster() == [1]
    assert "callback failed" in caplog.text  # the stdlib logs it


def test_cancel_waiting_tasks_calls_back_and_they_never_run(th: TaskHandler) -> None:
    record = Recorder()
    started, release, fn = blocker()
    th.hire()
    running = th.submit(fn, "running")
    assert started.wait(WAIT)
    waiting = [th.submit(record, i) for i in range(10)]
    cancelled: List[cf.Future[Any]] = []
    for f in waiting[::2]:
        f.add_done_callback(cancelled.append)
        assert f.cancel()
    assert cancelled == waiting[::2]  # called back at once, in the cancelling thread
    assert not running.cancel()
    release.set()
    assert [f.result(WAIT) for f in waiting[1::2]] == [1, 3, 5, 7, 9]
    assert record.values() == [1, 3, 5, 7, 9]  # in order; the cancelled ones never ran
    assert all(f.cancelled() for f in waiting[::2])
    assert th.status()["series"]["default"]["processed"] == 6


def test_cancel_a_task_waiting_for_a_hire(th: TaskHandler) -> None:
    record = Recorder()
    f = th.submit_to("later", record, "cancelled")
    g = th.submit_to("later", record, "kept")
    assert f.cancel()
    th.hire("later")
    assert g.result(WAIT) == "kept"
    assert record.values() == ["kept"]


def test_a_done_future_cannot_be_cancelled(th: TaskHandler) -> None:
    th.hire()
    f = th.submit(abs, -3)
    assert f.result(WAIT) == 3
    assert not f.cancel() and not f.cancelled()


# -- submitting from many threads and from tasks ----------------------------------------------


def test_submit_from_many_threads() -> None:
    record = Recorder()
    start = threading.Barrier(8, timeout=WAIT)
    futures: List[List[cf.Future[Any]]] = [[] for _ in range(8)]

    with TaskHandler(3) as th:

        def submitter(k: int) -> None:
            start.wait()
            futures[k] = [th.submit(record, (k, i)) for i in range(300)]

        threads = [threading.Thread(target=submitter, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        assert not any(t.is_alive() for t in threads)
        for k, fs in enumerate(futures):
            assert [f.result(WAIT) for f in fs] == [(k, i) for i in range(300)]
    assert sorted(record.values()) == sorted((k, i) for k in range(8) for i in range(300))


def test_a_task_can_submit_and_wait_for_another(th: TaskHandler) -> None:
    th.hire(slots=2)

    def outer(x: int) -> int:
        return th.submit(pow, x, 2).result(WAIT) + 1

    assert th.submit(outer, 4).result(WAIT) == 17


def test_keyword_arguments_named_like_the_parameters_reach_the_task(th: TaskHandler) -> None:
    th.hire(["default", "x"])
    assert th.submit(dict, fn=1, series=2, self=3).result(WAIT) == {"fn": 1, "series": 2, "self": 3}
    assert th.submit_to("x", dict, fn=1, series=2).result(WAIT) == {"fn": 1, "series": 2}


def test_a_callback_can_submit_from_the_worker_thread(th: TaskHandler) -> None:
    th.hire()
    second: List[cf.Future[Any]] = []
    chained = threading.Event()

    def callback(_: cf.Future[Any]) -> None:
        f = th.submit(abs, -2)  # no lock of the handler is held while a future resolves
        second.append(f)
        f.add_done_callback(lambda _: chained.set())

    first = th.submit(abs, -1)
    first.add_done_callback(callback)
    assert first.result(WAIT) == 1
    assert chained.wait(WAIT)
    assert second[0].result(0) == 2
