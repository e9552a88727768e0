"""A stored task whose function cannot be imported when a worker takes it is never dropped:
it moves, the same body, to the series' dead-letter queue ``"task-dead:S"``, with an ERROR
log; ``retry_dead(series)`` moves such tasks back.

The main case is a real restart: a durable series on a ``FileStore``, a task stored while
its module exists, the module removed from disk and ``sys.path``, then a second
``MessageQueue`` opened on the same directory after the first was closed.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from helpers import wait_until

from unidist_queue import _deadletter
from unidist_queue.errors import Full, ShutDown, StoreError
from unidist_queue.queues import MessageQueue
from unidist_queue.store.file import FileStore
from unidist_queue.tasks import TaskHandler

WAIT = 10.0  # every wait in these tests is bounded
MODULE = "uq_dead_letter_probe"  # written to disk by the tests, removed before a restart
SOURCE = "def work(path, text):\n    with open(path, 'a') as f:\n        f.write(text)\n"


class Module:
    """The module :data:`MODULE`, put on disk and ``sys.path`` and taken away again."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.folder = folder
        self.file = folder / f"{MODULE}.py"
        self.monkeypatch = monkeypatch
        folder.mkdir()

    def put(self) -> Any:
        self.file.write_text(SOURCE)
        self.monkeypatch.syspath_prepend(str(self.folder))
        return importlib.import_module(MODULE)

    def remove(self) -> None:
        self.file.unlink()
        sys.modules.pop(MODULE, None)
        sys.path.remove(str(self.folder))
        importlib.invalidate_caches()


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Module]:
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    yield Module(tmp_path / "code", monkeypatch)
    sys.modules.pop(MODULE, None)


def open_mq(path: Path) -> MessageQueue:
    return MessageQueue(store=FileStore(path, fsync="never"))


def store_a_task_then_lose_its_module(store: Path, module: Module, out: Path) -> Any:
    """A first process: a task stored (nobody serves it), the store closed; then the
    module is gone. Returns the stored body."""
    work = module.put().work
    with open_mq(store) as mq:
        with TaskHandler(0, mq=mq) as th:
            th.submit(work, str(out), "ran")
        (message,) = mq.messages("task:default")
    module.remove()
    return message.body


def test_a_task_whose_module_is_gone_after_a_restart_moves_to_task_dead(
    tmp_path: Path, module: Module, caplog: pytest.LogCaptureFixture
) -> None:
    store, out = tmp_path / "s", tmp_path / "out.txt"
    body = store_a_task_then_lose_its_module(store, module, out)
    caplog.set_level(logging.ERROR, logger="unidist_queue.tasks")
    with open_mq(store) as mq:  # the restart
        with TaskHandler(1, mq=mq) as th:
            wait_until(lambda: mq.count("task-dead:default") == 1)
            assert th.status()["series"]["default"]["failed"] == 1
        assert mq.count("task:default") == 0 and mq.stats("task:default").reserved == 0
        (dead,) = mq.messages("task-dead:default")
        assert tuple(dead.body) == tuple(body)  # the same stored task
    assert not out.exists()
    (record,) = [r for r in caplog.records if "task-dead:default" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert f"'{MODULE}:work' cannot be imported" in record.getMessage()
    assert "No module named" in record.getMessage()
    assert "recovered task" not in caplog.text  # logged once, as moved
    with open_mq(store) as mq:  # durable: still there after another restart, and not run
        with TaskHandler(1, mq=mq):
            pass
        assert mq.count("task-dead:default") == 1 and mq.count("task:default") == 0
    assert not out.exists()


def test_retry_dead_runs_the_tasks_once_their_module_is_back(tmp_path: Path, module: Module) -> None:
    store, out = tmp_path / "s", tmp_path / "out.txt"
    store_a_task_then_lose_its_module(store, module, out)
    with open_mq(store) as mq, TaskHandler(1, mq=mq) as th:
        wait_until(lambda: mq.count("task-dead:default") == 1)
        module.put()
        assert th.retry_dead() == 1
        wait_until(lambda: out.exists() and mq.stats("task:default").reserved == 0)
        assert mq.count("task-dead:default") == 0 and mq.count("task:default") == 0
        assert th.retry_dead("default") == 0  # nothing left
    assert out.read_text() == "ran"


def test_a_task_still_missing_goes_back_to_task_dead_once_per_retry(tmp_path: Path) -> None:
    with open_mq(tmp_path / "s") as mq, TaskHandler(1, mq=mq) as th:
        mq.add("task:default", ("uq_no_such_module:fn", [1], {}))
        wait_until(lambda: mq.count("task-dead:default") == 1)
        for n in (2, 3):
            assert th.retry_dead() == 1
            wait_until(lambda n=n: mq.stats("task-dead:default").added == n)
            th.submit(len, "x").result(WAIT)  # the worker went on: it took the task once, no loop
            assert mq.count("task-dead:default") == 1 and mq.stats("task-dead:default").added == n
            assert mq.stats("task:default").added == 2 * n - 1  # the first add; a retry, a submit each
        assert th.status()["series"]["default"]["failed"] == 3


def test_retry_dead_to_a_series_nobody_serves_waits_for_a_hire(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    with open_mq(tmp_path / "s") as mq, TaskHandler(0, mq=mq) as th:
        mq.add("task-dead:reports", ("pathlib:Path.write_text", [out, "sent"], {}))
        assert th.retry_dead("reports") == 1
        assert th.status()["series"]["reports"]["waiting"] == 1
        assert mq.count("task-dead:reports") == 0
        th.hire("reports")
    assert out.read_text() == "sent"


def test_a_task_that_cannot_be_moved_stays_reserved_and_returns_after_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "s"
    caplog.set_level(logging.ERROR, logger="unidist_queue.tasks")
    with open_mq(store) as mq:
        mq.declare("task-dead:default", maxlen=1, overflow="reject")
        mq.add("task-dead:default", "full")
        mq.add("task:default", ("uq_no_such_module:fn", [], {}))
        with TaskHandler(1, mq=mq):
            wait_until(lambda: mq.stats("task:default").reserved == 1 and "could not be" in caplog.text)
        assert mq.count("task:default") == 0 and mq.all("task-dead:default") == ["full"]
    assert "stays reserved" in caplog.text
    with open_mq(store) as mq:  # the restart ends the reservation: the task is back
        assert mq.count("task:default") == 1


def test_retry_dead_that_cannot_add_leaves_the_tasks_dead(tmp_path: Path) -> None:
    with open_mq(tmp_path / "s") as mq, TaskHandler(0, mq=mq) as th:
        mq.declare("task:default", maxlen=1, overflow="reject")
        mq.add("task:default", ("uq_no_such_module:fn", [0], {}))
        mq.add_many("task-dead:default", [("uq_no_such_module:fn", [n], {}) for n in (1, 2)])
        with pytest.raises(Full):
            th.retry_dead()
        assert [body[1] for body in mq.all("task-dead:default")] == [[1], [2]]  # still there, in order
        assert mq.stats("task-dead:default").reserved == 0


def test_retry_dead_arguments_and_states() -> None:
    with TaskHandler(0) as th:
        assert th.retry_dead() == 0  # a private handler stores no task by name
        with pytest.raises(TypeError, match="series"):
            th.retry_dead(1)  # type: ignore[arg-type]
    with pytest.raises(ShutDown):
        th.retry_dead()
    with MessageQueue() as mq, TaskHandler(0, mq=mq) as th:
        assert th.retry_dead("nothing-dead-here") == 0


class AckFails:
    """A queue-API object whose ``ack`` fails as ``error`` says (the rest: ``mq``'s)."""

    def __init__(self, mq: MessageQueue, error: Exception) -> None:
        self.mq = mq
        self.error = error

    def __getattr__(self, name: str) -> Any:
        return getattr(self.mq, name)

    def ack(self, message: Any) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "logged"),
    [(ValueError("not reserved"), "no longer reserved"), (StoreError("disk full"), "could not commit")],
    ids=["cleared-meanwhile", "store-error"],
)
def test_a_move_whose_ack_fails_keeps_the_task_in_both_queues(
    mq: MessageQueue, caplog: pytest.LogCaptureFixture, error: Exception, logged: str
) -> None:
    """Added to ``task-dead:S`` first: an ack that fails afterwards loses nothing."""
    mq.add("task:s", ("uq_no_such_module:fn", [], {}))
    message = mq.reserve("task:s")
    caplog.set_level(logging.DEBUG, logger="unidist_queue.tasks")
    _deadletter.bury(AckFails(mq, error), "s", message, "ModuleNotFoundError: gone")  # type: ignore[arg-type]
    assert mq.all("task-dead:s") == [("uq_no_such_module:fn", [], {})]
    assert mq.stats("task:s").reserved == 1  # still there: ready again after a restart
    assert logged in caplog.text


def test_retry_dead_when_another_consumer_took_them_first(mq: MessageQueue) -> None:
    class TakenMeanwhile:
        def __init__(self) -> None:
            self.count = mq.count
            self.reserve_many = self.take_then_fail

        def take_then_fail(self, queue: str, n: int, **options: Any) -> Any:
            mq.clear(queue)
            return mq.reserve_many(queue, n, **options)

    mq.add("task-dead:s", ("uq_no_such_module:fn", [], {}))
    assert _deadletter.revive(TakenMeanwhile(), "s", "task:s") == 0  # type: ignore[arg-type]
    assert mq.count("task:s") == 0
