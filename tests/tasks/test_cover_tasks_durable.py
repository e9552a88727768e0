"""TaskHandler on a persistent store: tasks added through the queue's public API, stored
functions that cannot be imported back, a store that cannot commit or write, and the
queue cleared or a task cancelled at the awkward moments.

Task functions are module-level, so that a durable series can store them by name.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from unidist_queue import FileStore, MessageQueue, SerializationError, StoreError, TaskHandler

WAIT = 10.0

SEEN: List[Any] = []
NOT_CALLABLE = 42
STARTED = threading.Event()
RELEASE = threading.Event()


def remember(x: Any) -> Any:
    SEEN.append(x)
    return x


def held(x: Any) -> Any:
    """Signals ``STARTED``, then waits for ``RELEASE``."""
    STARTED.set()
    assert RELEASE.wait(WAIT)
    return remember(x)


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    SEEN.clear()
    STARTED.clear()
    RELEASE.clear()
    yield
    RELEASE.set()


def open_mq(path: Path, **options: Any) -> MessageQueue:
    return MessageQueue(store=FileStore(path, fsync="never", **options))


def name(fn: Any) -> str:
    return f"{__name__}:{fn.__qualname__}"


def test_a_task_added_through_the_queue_api_is_run(tmp_path: Path) -> None:
    with open_mq(tmp_path) as mq, TaskHandler(0, mq=mq) as th:
        mq.add("task:default", (name(remember), ["from the API"], {}))
        th.hire()
        th.submit(remember, "submitted").result(WAIT)
    assert sorted(SEEN) == ["from the API", "submitted"]
    with open_mq(tmp_path) as mq:
        assert mq.count("task:default") == 0


def test_stored_functions_that_cannot_be_imported_fail_with_the_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with open_mq(tmp_path) as mq:
        mq.add("task:default", ("no_such_module_for_tests:fn", [], {}))
        mq.add("task:default", (name(remember), ["fine"], {}))
    caplog.set_level(logging.ERROR, logger="unidist_queue.tasks")
    with open_mq(tmp_path) as mq:
        with TaskHandler(0, mq=mq) as th:  # recovered at start-up
            mq.add("task:default", (f"{__name__}:NOT_CALLABLE", [], {}))  # adopted when taken
            th.hire()
            th.submit(remember, "last").result(WAIT)
            assert th.status()["series"]["default"]["failed"] == 2
        assert mq.count("task:default") == 0
    assert SEEN == ["fine", "last"]
    assert "'no_such_module_for_tests:fn' cannot be imported" in caplog.text
    assert "NOT_CALLABLE' is not callable" in caplog.text


def test_a_function_whose_module_cannot_be_imported_is_refused(tmp_path: Path) -> None:
    def orphan() -> None:
        pass

    orphan.__module__ = "no_such_module_for_tests"
    orphan.__qualname__ = "orphan"
    with open_mq(tmp_path) as mq, TaskHandler(0, mq=mq) as th:
        with pytest.raises(SerializationError, match="cannot be imported back"):
            th.submit(orphan)
        assert mq.count("task:default") == 0


class CommitFails(FileStore):
    """Commits fail (an fsync error) while ``failing``."""

    failing = False

    def commit(self, seq: int) -> None:
        if self.failing:
            raise StoreError("fsync failed")
        super().commit(seq)


FAILING: List[CommitFails] = []  # the store of the running test


def fails_commits_from_now(x: Any) -> Any:
    """A task after which the store of the running test fails every commit."""
    FAILING[0].failing = True
    return x


def test_a_failed_commit_is_logged_and_the_task_still_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The ack of a task that ran cannot be committed: it is logged (a restart may run the
    task again) and the task's result is delivered. A submit whose add cannot be
    committed raises the store's error (the add may or may not have happened, as the
    queue API's ``add`` says)."""
    caplog.set_level(logging.ERROR, logger="unidist_queue.tasks")
    store = CommitFails(tmp_path, fsync="always")
    FAILING[:] = [store]
    with MessageQueue(store=store) as mq, TaskHandler(1, mq=mq) as th:
        assert th.submit(fails_commits_from_now, 1).result(WAIT) == 1
        with pytest.raises(StoreError, match="fsync failed"):
            th.submit(remember, 2)
        store.failing = False
    assert "could not commit; a restart may rerun tasks" in caplog.text and "fsync failed" in caplog.text


def test_a_read_only_store_refuses_tasks(tmp_path: Path) -> None:
    open_mq(tmp_path).close()
    with open_mq(tmp_path, read_only=True) as mq, TaskHandler(1, mq=mq) as th, pytest.raises(
        StoreError, match="read-only"
    ):
        th.submit(remember, 1)
    assert SEEN == []


def test_clearing_the_queue_while_a_task_runs_lets_it_finish_and_leaves_nothing(tmp_path: Path) -> None:
    with open_mq(tmp_path) as mq, TaskHandler(1, mq=mq) as th:
        future = th.submit(held, "running")
        assert STARTED.wait(WAIT)
        assert mq.clear("task:default") == 1
        RELEASE.set()
        assert future.result(WAIT) == "running"
        assert th.status()["series"]["default"]["processed"] == 1
    with open_mq(tmp_path) as mq:
        assert mq.count("task:default") == 0 and mq.stats("task:default").reserved == 0


def test_cancelling_a_task_given_to_a_worker_busy_with_an_update(tmp_path: Path) -> None:
    with open_mq(tmp_path) as mq, TaskHandler(1, mq=mq) as th:
        update = th.update(held, args=("update",), ephemeral=True)
        assert STARTED.wait(WAIT)  # the worker's one thread runs the update: it is free
        future = th.submit(remember, "cancelled")  # given to it (reserved), not started
        assert future.cancel()
        RELEASE.set()
        assert update.result(WAIT) == ["update"]
        assert th.submit(remember, "next").result(WAIT) == "next"
        assert mq.stats("task:default").reserved == 0
    assert SEEN == ["update", "next"]
    with open_mq(tmp_path) as mq:
        assert mq.count("task:default") == 0


def test_cancelling_waiting_tasks_removes_only_them(tmp_path: Path) -> None:
    with open_mq(tmp_path) as mq, TaskHandler(0, mq=mq) as th:
        futures = [th.submit(remember, i) for i in range(4)]  # nobody serves: they wait
        assert futures[1].cancel() and futures[2].cancel()  # from the middle of the queue
        assert mq.count("task:default") == 2
        assert mq.clear("task:default") == 2
        assert futures[3].cancel()  # its message is already gone: nothing to remove
        assert mq.count("task:default") == 0
    with open_mq(tmp_path) as mq, TaskHandler(0, mq=mq) as th:
        th.hire()
        assert th.submit(remember, "after").result(WAIT) == "after"
    assert SEEN == ["after"]
