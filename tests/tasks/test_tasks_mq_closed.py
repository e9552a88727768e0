"""Closing the MessageQueue given as ``mq=`` before its TaskHandler: nothing hangs.

The futures of the tasks still waiting in ``mq`` fail with ``ShutDown``, the handler shuts
itself down (its worker threads end, ``submit`` raises ``ShutDown``), with workers idle,
busy, or none at all; a task already running finishes. A durable series keeps the failed
tasks stored: they run after a restart. Every wait is bounded.
"""

from __future__ import annotations

import logging
import threading
import types
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any, List, Sequence

import pytest
from helpers import blocker, threads_named, wait_until

from unidist_queue import _closewatch, _replies
from unidist_queue.errors import Full, ShutDown, StoreError
from unidist_queue.queues import MessageQueue
from unidist_queue.store.file import FileStore
from unidist_queue.tasks import TaskHandler

WAIT = 10.0  # every wait in these tests is bounded


def assert_shut_down(th: TaskHandler) -> None:
    """The handler shut itself down (its watching thread tells it, at once): submitting
    is refused, its threads end."""
    wait_until(lambda: not threads_named("worker-") and not threads_named("TaskHandler-watch"))
    with pytest.raises(ShutDown, match="MessageQueue was closed") as info:
        th.submit(abs, -1)
    assert isinstance(info.value, RuntimeError)
    with pytest.raises(ShutDown):
        th.hire()
    assert th.shutdown(timeout=WAIT) == []  # idempotent: nothing more to return
    assert th.roster() == []


def test_closing_mq_under_idle_workers_fails_the_waiting_futures(caplog: pytest.LogCaptureFixture) -> None:
    mq = MessageQueue()
    th = TaskHandler(2, mq=mq)
    waiting = [th.submit_to("nobody", abs, -n) for n in range(3)]  # no worker serves "nobody"
    assert th.submit(abs, -5).result(WAIT) == 5  # the workers ran one task, now idle
    with caplog.at_level(logging.WARNING, logger="unidist_queue.tasks"):
        mq.close()
        for future in waiting:
            assert isinstance(future.exception(WAIT), ShutDown)
        assert_shut_down(th)
    assert "3 waiting tasks failed with ShutDown" in caplog.text


def test_closing_mq_under_a_busy_worker_lets_the_running_task_finish() -> None:
    mq = MessageQueue()
    th = TaskHandler(1, mq=mq)
    started, release, hold = blocker()
    running = th.submit(hold, "finished")
    assert started.wait(WAIT)
    waiting = [th.submit(abs, -n) for n in range(3)]  # behind the running task
    cancelled = th.submit(abs, -9)
    assert cancelled.cancel()
    mq.close()
    for future in waiting:
        assert isinstance(future.exception(WAIT), ShutDown)
    assert cancelled.cancelled()
    with pytest.raises(CancelledError):
        cancelled.result(0)
    assert not running.done()
    release.set()
    assert running.result(WAIT) == "finished"
    assert_shut_down(th)


def test_closing_mq_under_a_handler_with_no_worker() -> None:
    mq = MessageQueue()
    th = TaskHandler(0, mq=mq)
    future = th.submit(abs, -1)
    mq.close()
    assert isinstance(future.exception(WAIT), ShutDown)
    assert_shut_down(th)


def test_closing_mq_with_no_task_and_shutting_down_afterwards() -> None:
    mq = MessageQueue()
    th = TaskHandler(1, mq=mq)
    mq.close()
    assert_shut_down(th)
    with pytest.raises(ShutDown):
        th.retry_dead()


def test_tasks_of_a_durable_series_stay_stored_and_run_after_a_restart(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    mq = MessageQueue(store=FileStore(tmp_path / "s", fsync="never"))
    th = TaskHandler(0, mq=mq)
    future = th.submit(Path.write_text, out, "ran")
    mq.close()
    assert isinstance(future.exception(WAIT), ShutDown)
    assert_shut_down(th)
    assert not out.exists()
    with MessageQueue(store=FileStore(tmp_path / "s")) as mq2:
        with TaskHandler(1, mq=mq2):
            pass  # shutdown waits for the stored task
        assert mq2.count("task:default") == 0
    assert out.read_text() == "ran"


def test_shutting_down_first_then_closing_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    mq = MessageQueue()
    with caplog.at_level(logging.WARNING, logger="unidist_queue.tasks"):
        with TaskHandler(1, mq=mq) as th:
            assert th.submit(abs, -2).result(WAIT) == 2
        assert not threads_named("TaskHandler-watch")  # shutdown(wait=True) joined it
        mq.close()
    assert caplog.text == ""


def test_the_watching_thread_creates_no_queue_and_ignores_stray_items_in_its_reply_queue(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(_replies.uuid, "uuid4", lambda: types.SimpleNamespace(hex="fixed"))
    mq = MessageQueue()
    th = TaskHandler(1, mq=mq)
    (watch,) = threads_named("TaskHandler-watch")
    try:
        assert mq.queues() == []  # waiting on a queue name does not create it
        with caplog.at_level(logging.WARNING, logger="unidist_queue.tasks"):
            mq.add("task-reply:fixed", "stray")
            wait_until(lambda: mq.count("task-reply:fixed") == 0)  # taken, logged, ignored
            wait_until(lambda: "is not a task outcome" in caplog.text)
        assert th.submit(abs, -3).result(WAIT) == 3
        assert watch.is_alive()
    finally:
        mq.close()
    assert_shut_down(th)


def test_only_the_tasks_still_waiting_fail(caplog: pytest.LogCaptureFixture) -> None:
    """A task another handler on the same queue ran keeps its result; a task refused by
    the queue (full) raised at submit; a task whose message was cleared fails too,
    instead of staying pending for ever."""
    mq = MessageQueue()
    mq.declare("task:bounded", maxlen=1, overflow="reject")
    owner = TaskHandler(0, mq=mq)
    other = TaskHandler(0, mq=mq)
    ran_elsewhere = owner.submit_to("shared", abs, -4)
    other.hire("shared")
    assert ran_elsewhere.result(WAIT) == 4
    bounded = owner.submit_to("bounded", abs, -1)
    with pytest.raises(Full):
        owner.submit_to("bounded", abs, -2)
    cleared = owner.submit_to("cleared", abs, -3)
    assert mq.clear("task:cleared") == 1
    with caplog.at_level(logging.WARNING, logger="unidist_queue.tasks"):
        mq.close()
        assert isinstance(bounded.exception(WAIT), ShutDown)
        assert isinstance(cleared.exception(WAIT), ShutDown)
        assert_shut_down(owner)
        assert_shut_down(other)
    assert ran_elsewhere.result(0) == 4
    assert "2 waiting tasks failed with ShutDown" in caplog.text
    assert "0 waiting tasks failed with ShutDown" in caplog.text


def test_reassigned_tasks_put_back_in_the_queue_fail_too() -> None:
    mq = MessageQueue()
    th = TaskHandler(0, mq=mq)
    wid = th.hire("s")
    started, release, hold = blocker()
    running = th.submit_to("s", hold, 1)
    assert started.wait(WAIT)
    behind = th.submit_to("s", abs, -1)  # waits: the worker's one slot is busy
    assert th.terminate(wid, crash=True, reassign=True) == []  # "running" goes back to "s"
    mq.close()
    assert isinstance(behind.exception(WAIT), ShutDown)
    assert isinstance(running.exception(WAIT), ShutDown)  # nobody will run it again
    release.set()  # the abandoned thread ends; what it returns is discarded
    assert_shut_down(th)


@pytest.mark.parametrize("with_mq", [False, True], ids=["private", "mq"])
def test_a_future_resolved_by_its_caller_before_its_task_started_is_skipped(with_mq: bool) -> None:
    """``Future.set_exception`` is public (for executors and tests); a worker meeting such a
    future skips its task and goes on, as for a cancelled one (so does a race with a close)."""
    mq = MessageQueue()
    th = TaskHandler(0, mq=mq if with_mq else None)
    skipped = th.submit(abs, -1)
    skipped.set_exception(ValueError("resolved by its caller"))
    th.hire()
    assert th.submit(abs, -2).result(WAIT) == 2
    th.shutdown(timeout=WAIT)
    assert isinstance(skipped.exception(0), ValueError)
    assert th.status()["series"]["default"]["processed"] == 1
    mq.close()


class FakeView:
    """A view whose ``get`` raises each of ``errors`` in turn, then gives each of
    ``items``, then waits until it is shut down (``ShutDown``)."""

    def __init__(self, errors: List[Exception], items: Sequence[Any] = ()) -> None:
        self.errors = list(errors)
        self.items = list(items)
        self.is_shutdown = False
        self.down = threading.Event()

    def get(self) -> Any:
        if self.errors:
            raise self.errors.pop(0)
        if self.items:
            return self.items.pop(0)
        assert self.down.wait(WAIT)
        raise ShutDown("shut down")

    def shutdown(self) -> None:
        self.is_shutdown = True
        self.down.set()


class FakeQueue:
    def __init__(self, view: FakeView) -> None:
        self.the_view = view

    def view(self, name: str) -> FakeView:
        assert name.startswith("task-reply:")
        return self.the_view


def test_the_watching_thread_logs_an_on_close_that_raises(caplog: pytest.LogCaptureFixture) -> None:
    def on_close() -> None:
        raise RuntimeError("on_close failed")

    fake: Any = FakeQueue(FakeView([ShutDown("closed")]))
    watch = _closewatch.CloseWatch(fake, on_close, "task-reply:x", print)
    watch.join(WAIT)
    assert not watch.thread.is_alive()
    (record,) = [r for r in caplog.records if "whose MessageQueue was closed failed" in r.getMessage()]
    assert record.levelno == logging.ERROR


def test_the_watching_thread_tries_a_failing_get_again_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    """A lost connection, say: logged at WARNING once per streak, then DEBUG; items
    after it are handled; an item whose handling raises is logged and skipped."""
    got: List[Any] = []
    two = threading.Event()

    def on_item(item: Any) -> None:
        if item == "bad":
            raise ValueError("cannot handle")
        got.append(item)
        if len(got) == 2:
            two.set()

    caplog.set_level(logging.DEBUG, logger="unidist_queue.tasks")
    view = FakeView([StoreError("connection lost"), RuntimeError("broken")], ["a", "bad", "b"])
    watch = _closewatch.CloseWatch(FakeQueue(view), print, "task-reply:x", on_item)  # type: ignore[arg-type]
    try:
        assert two.wait(WAIT) and got == ["a", "b"]
        levels = [r.levelno for r in caplog.records if "cannot read the task replies" in r.getMessage()]
        assert levels == [logging.WARNING, logging.DEBUG]
        assert "a task outcome could not be handled" in caplog.text
    finally:
        watch.stop()
        watch.join(WAIT)
    assert not watch.thread.is_alive()


def test_stopping_the_watching_thread_ends_its_pause_after_a_failed_get(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="unidist_queue.tasks")
    view = FakeView([StoreError("read-only")] * 1000)
    watch = _closewatch.CloseWatch(FakeQueue(view), print, "task-reply:x", print)  # type: ignore[arg-type]
    wait_until(lambda: "cannot read the task replies" in caplog.text)
    watch.stop()  # from within a pause of up to RETRY_MAX seconds
    watch.join(WAIT)
    assert not watch.thread.is_alive() and view.errors  # it did not try them all
