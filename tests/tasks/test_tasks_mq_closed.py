"""Closing the MessageQueue given as ``mq=`` before its TaskHandler: nothing hangs.

The futures of the tasks still waiting in ``mq`` fail with ``ShutDown``, the handler shuts
itself down (its worker threads end, ``submit`` raises ``ShutDown``), with workers idle,
busy, or none at all; a task already running finishes. A durable series keeps the failed
tasks stored: they run after a restart. Every wait is bounded.
"""

from __future__ import annotations

import logging
import types
from concurrent.futures import CancelledError
from pathlib import Path

import pytest
from helpers import blocker, threads_named, wait_until

from unidist_queue import _closewatch
from unidist_queue.errors import ShutDown
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


def test_the_watching_thread_creates_no_queue_and_ignores_items_added_to_its_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_closewatch.uuid, "uuid4", lambda: types.SimpleNamespace(hex="fixed"))
    mq = MessageQueue()
    th = TaskHandler(1, mq=mq)
    (watch,) = threads_named("TaskHandler-watch")
    try:
        assert mq.queues() == []  # waiting on a queue name does not create it
        mq.add("task-watch:fixed", "stray")
        wait_until(lambda: mq.count("task-watch:fixed") == 0)  # taken and ignored
        assert th.submit(abs, -3).result(WAIT) == 3
        assert watch.is_alive()
    finally:
        mq.close()
    assert_shut_down(th)
