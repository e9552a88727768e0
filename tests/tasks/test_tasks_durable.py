"""Durable series on a real ``FileStore``: what is stored, what is refused, what survives.

A task of a durable series is stored as ``(importable function name, args, kwargs)``; a
task that cannot be stored raises ``SerializationError`` at submit and stores nothing; a
task added in that form through the queue API runs, and one whose stored function cannot
be imported back moves to ``"task-dead:S"`` saying why (more in
``test_tasks_dead_letter.py``); a store that cannot commit or write; a restart (a
new ``MessageQueue`` on the same directory, in this process) runs what was left;
``cancel_futures`` removes what it cancels, and so do a caller's cancel and the queue
cleared at awkward moments; a reassigned task is acknowledged once. The kill -9 of a
real process is in ``test_tasks_crash.py``.
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
import threading
import types
from pathlib import Path
from typing import Any, Callable, Iterator, List, Tuple

import pytest
from helpers import wait_until

from unidist_queue.errors import SerializationError, ShutDown, StoreError
from unidist_queue.queues import MessageQueue
from unidist_queue.store.file import FileStore
from unidist_queue.tasks import TaskHandler

WAIT = 10.0  # every wait in these tests is bounded

RAN: List[Any] = []
RAN_LOCK = threading.Lock()
NOT_CALLABLE = 42  # a stored function name may import to something that cannot be called


def record(*args: Any, **kwargs: Any) -> Tuple[Any, ...]:
    """A module-level task (importable by name) that records its arguments."""
    with RAN_LOCK:
        RAN.append((args, kwargs))
    return args


def fail(x: Any) -> None:
    raise ValueError(f"fail {x}")


class Holder:
    """Holds a worker on ``hold`` until ``release`` is set (a module-level instance below)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def reset(self) -> None:
        self.started.clear()
        self.release.clear()
        self.calls = 0


HOLDER = Holder()


def hold(x: Any) -> Any:
    """Blocks the first call until ``HOLDER.release``; later calls return at once."""
    HOLDER.calls += 1
    if HOLDER.calls == 1:
        HOLDER.started.set()
        assert HOLDER.release.wait(WAIT)
    return record(x)


@pytest.fixture(autouse=True)
def fresh_state() -> Iterator[None]:
    with RAN_LOCK:
        RAN.clear()
    HOLDER.reset()
    yield
    HOLDER.release.set()


def ran() -> List[Any]:
    with RAN_LOCK:
        return list(RAN)


def open_mq(path: Path, **options: Any) -> MessageQueue:
    return MessageQueue(store=FileStore(path, fsync="never", **options))


def stored_name(fn: Any) -> str:
    """The name a durable series stores ``fn`` under: ``"module:qualname"``."""
    return f"{__name__}:{fn.__qualname__}"


def resolve(name: str) -> Any:
    """Import ``name`` given as ``"module:qualname"`` or ``"module.qualname"``."""
    if ":" in name:
        module, _, qualname = name.partition(":")
    else:
        module, _, qualname = name.rpartition(".")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


# -- what is stored ---------------------------------------------------------------------------


def test_a_task_is_stored_as_function_name_args_kwargs_and_reply_address(tmp_path: Path) -> None:
    mq = open_mq(tmp_path)
    th = TaskHandler(0, mq=mq)
    try:
        th.submit_to("d", record, 1, "two", three=3)
        (msg,) = mq.messages("task:d")
        name, args, kwargs, reply = msg.body
        assert isinstance(name, str) and resolve(name) is record
        assert tuple(args) == (1, "two") and dict(kwargs) == {"three": 3}
        assert set(reply) == {"reply_to", "key"} and reply["reply_to"].startswith("task-reply:")
        assert mq.exists(reply["reply_to"]) and not mq.stats(reply["reply_to"]).durable
        assert mq.stats("task:d").durable
    finally:
        th.shutdown(timeout=WAIT)
        mq.close()


def test_importable_functions_of_other_modules_are_stored(tmp_path: Path) -> None:
    mq = open_mq(tmp_path)
    with TaskHandler(0, mq=mq) as th:
        th.hire()
        assert th.submit(functools.reduce, max, [3, 9, 4]).result(WAIT) == 9
        assert th.submit(Path.exists, tmp_path).result(WAIT) is True  # a function found as Path.exists
    assert mq.stats("task:default").added == 2 and mq.count("task:default") == 0
    mq.close()


def _local_function() -> Callable[[], int]:
    def local() -> int:
        return 1

    return local


class _Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("not today")


@pytest.mark.parametrize(
    ("fn", "args", "kwargs"),
    [
        (lambda: 1, (), {}),
        (_local_function(), (), {}),
        (HOLDER.reset, (), {}),  # a bound method
        (functools.partial(record, 1), (), {}),
        (record, (threading.Lock(),), {}),
        (record, (), {"k": _Unpicklable()}),
        (record, (lambda: 1,), {}),
    ],
    ids=["lambda", "local", "bound-method", "partial", "lock-arg", "unpicklable-kwarg", "lambda-arg"],
)
def test_a_task_that_cannot_be_stored_is_refused_and_nothing_is_stored(
    tmp_path: Path, fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Any
) -> None:
    mq = open_mq(tmp_path)
    th = TaskHandler(0, mq=mq)
    try:
        with pytest.raises(SerializationError) as info:
            th.submit_to("d", fn, *args, **kwargs)
        assert isinstance(info.value, TypeError)
        kept = th.submit_to("d", record, "kept")  # waits: nobody serves "d"
        assert mq.count("task:d") == 1 and mq.stats("task:d").added == 1
        assert th.status()["series"]["d"]["waiting"] == 1
    finally:
        th.shutdown(timeout=WAIT)
        mq.close()
    assert kept.cancelled()
    mq = open_mq(tmp_path)  # only the good task was written
    try:
        assert len(mq.messages("task:d")) == 1
        with TaskHandler(0, mq=mq) as th:
            th.hire("d")
    finally:
        mq.close()
    assert ran() == [(("kept",), {})]


def test_json_store_refuses_what_json_cannot_hold(tmp_path: Path) -> None:
    mq = open_mq(tmp_path, serializer="json")
    with TaskHandler(0, mq=mq) as th:
        with pytest.raises(SerializationError):
            th.submit_to("d", record, {1, 2})
        th.submit_to("d", record, [1, "a"], key={"x": None})  # waits: nobody serves "d"
    mq.close()
    mq = open_mq(tmp_path, serializer="json")
    try:
        with TaskHandler(0, mq=mq) as th:
            th.hire("d")
    finally:
        mq.close()
    assert ran() == [(([1, "a"],), {"key": {"x": None}})]


def test_a_series_declared_not_durable_takes_any_callable(tmp_path: Path) -> None:
    mq = open_mq(tmp_path)
    mq.declare("task:mem", durable=False)
    with TaskHandler(0, mq=mq) as th:
        th.hire(["mem", "d"])
        assert th.submit_to("mem", lambda x: x + 1, 1).result(WAIT) == 2
        with pytest.raises(SerializationError):
            th.submit_to("d", lambda: 1)
    assert not mq.stats("task:mem").durable
    mq.close()


def test_a_task_added_through_the_queue_api_is_run(tmp_path: Path) -> None:
    with open_mq(tmp_path) as mq, TaskHandler(0, mq=mq) as th:
        mq.add("task:default", (stored_name(record), ["from the API"], {}))
        th.hire()
        th.submit(record, "submitted").result(WAIT)
    assert sorted(args for args, _ in ran()) == [("from the API",), ("submitted",)]
    with open_mq(tmp_path) as mq:
        assert mq.count("task:default") == 0


def test_stored_functions_that_cannot_be_imported_move_to_task_dead_with_the_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with open_mq(tmp_path) as mq:
        mq.add("task:default", ("no_such_module_for_tests:fn", [], {}))
        mq.add("task:default", (stored_name(record), ["fine"], {}))
    caplog.set_level(logging.ERROR, logger="unidist_queue.tasks")
    with open_mq(tmp_path) as mq:
        with TaskHandler(0, mq=mq) as th:  # recovered at start-up
            mq.add("task:default", (f"{__name__}:NOT_CALLABLE", [], {}))  # adopted when taken
            th.hire()
            th.submit(record, "last").result(WAIT)
            assert th.status()["series"]["default"]["failed"] == 2
        assert mq.count("task:default") == 0
        assert [body[0] for body in mq.all("task-dead:default")] == [
            "no_such_module_for_tests:fn", f"{__name__}:NOT_CALLABLE",
        ]
    assert [args for args, _ in ran()] == [("fine",), ("last",)]
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


# -- a store that cannot commit or write ----------------------------------------------------


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
            th.submit(record, 2)
        store.failing = False
    assert "could not commit; a restart may rerun tasks" in caplog.text and "fsync failed" in caplog.text


def test_a_read_only_store_refuses_tasks(tmp_path: Path) -> None:
    open_mq(tmp_path).close()
    with open_mq(tmp_path, read_only=True) as mq, TaskHandler(1, mq=mq) as th, pytest.raises(
        StoreError, match="read-only"
    ):
        th.submit(record, 1)
    assert ran() == []


# -- restarts ---------------------------------------------------------------------------------


def test_waiting_tasks_run_after_restart_in_order(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    mq = open_mq(tmp_path)
    th = TaskHandler(0, mq=mq)
    futures = [th.submit_to("d", record, i) for i in range(5)]
    futures.append(th.submit_to("d", fail, "x"))
    unfinished = th.shutdown(timeout=WAIT)  # nobody serves "d": returned, futures cancelled
    assert {t.future for t in unfinished} == set(futures)
    assert all(f.cancelled() for f in futures)
    with pytest.raises(ShutDown):
        th.submit_to("d", record, "late")
    assert mq.count("task:d") == 6  # they stay in their queue
    mq.close()

    mq = open_mq(tmp_path)
    try:
        th = TaskHandler(0, mq=mq)
        assert th.status()["series"]["d"]["waiting"] == 6
        with caplog.at_level(logging.ERROR):
            th.hire("d")
            assert th.shutdown(timeout=WAIT) == []
        assert ran() == [((i,), {}) for i in range(5)]
        assert "fail x" in caplog.text  # a recovered task's exception is logged
        s = th.status()["series"]["d"]
        assert (s["processed"], s["failed"]) == (6, 1)
        assert mq.count("task:d") == 0 and mq.stats("task:d").reserved == 0
    finally:
        mq.close()


def test_cancel_futures_removes_durable_tasks(tmp_path: Path) -> None:
    mq = open_mq(tmp_path)
    th = TaskHandler(0, mq=mq)
    th.hire("busy")
    held = th.submit_to("busy", hold, "held")
    assert HOLDER.started.wait(WAIT)
    waiting = [th.submit_to("busy", record, i) for i in range(3)]
    orphans = [th.submit_to("nobody", record, i) for i in range(2)]
    unfinished = th.shutdown(wait=False, cancel_futures=True)
    assert {t.future for t in unfinished} == {*waiting, *orphans}
    assert all(f.cancelled() for f in waiting + orphans)
    HOLDER.release.set()
    assert th.shutdown(wait=True, timeout=WAIT) == []  # joins; idempotent
    assert held.result(0) == ("held",)
    assert mq.count("task:busy") == mq.count("task:nobody") == 0
    mq.close()

    mq = open_mq(tmp_path)
    try:
        with TaskHandler(0, mq=mq) as th:
            status = th.status()["series"]
            assert status["busy"]["waiting"] == status["nobody"]["waiting"] == 0
            th.hire(["busy", "nobody"])
    finally:
        mq.close()
    assert ran() == [(("held",), {})]


def test_shutdown_timeout_keeps_the_abandoned_task_for_a_restart(tmp_path: Path) -> None:
    mq = open_mq(tmp_path)
    th = TaskHandler(0, mq=mq)
    th.hire("d")
    stuck = th.submit_to("d", hold, "stuck")
    assert HOLDER.started.wait(WAIT)
    waiting = th.submit_to("d", record, "next")
    unfinished = th.shutdown(timeout=0.01)
    assert {t.future for t in unfinished} == {stuck, waiting}
    assert stuck.running() and waiting.cancelled()
    (thread,) = [t for t in threading.enumerate() if t.name == "worker-1_0"]
    HOLDER.release.set()
    thread.join(WAIT)  # the abandoned run ends: its output (and its ack) is discarded
    mq.close()

    mq = open_mq(tmp_path)
    try:
        with TaskHandler(0, mq=mq) as th:
            th.hire("d")
    finally:
        mq.close()
    assert [args for args, _ in ran()].count(("next",)) == 1
    assert ("stuck",) in [args for args, _ in ran()]  # at least once: it may have run twice


def test_reassigned_durable_task_is_acknowledged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mq = open_mq(tmp_path)
    try:
        with caplog.at_level(logging.WARNING), TaskHandler(0, mq=mq) as th:
            first = th.hire("d")
            f = th.submit_to("d", hold, "again")
            assert HOLDER.started.wait(WAIT)
            (thread,) = [t for t in threading.enumerate() if t.name == "worker-1_0"]
            later = th.submit_to("d", record, "later")
            assert th.terminate(first, crash=True, reassign=True) == []
            th.hire("d")
            assert f.result(WAIT) == ("again",)  # the rerun (the first run is still held)
            assert later.result(WAIT) == ("later",)
            HOLDER.release.set()
            thread.join(WAIT)  # the abandoned first run ends: its result and ack are dropped
            assert f.result(0) == ("again",)
        stats = mq.stats("task:d")
        assert (stats.ready, stats.reserved, stats.added, stats.removed) == (0, 0, 2, 2)
        assert caplog.text == ""
    finally:
        mq.close()
    mq = open_mq(tmp_path)
    try:
        assert mq.count("task:d") == 0 and mq.stats("task:d").reserved == 0
    finally:
        mq.close()


def test_durable_series_over_workers_and_slots_runs_each_once(tmp_path: Path) -> None:
    mq = open_mq(tmp_path)
    with TaskHandler(0, mq=mq) as th:
        th.hire(["a", "b"], slots=2)
        th.hire([(1, "b")])
        fs = [th.submit_to("ab"[i % 2], record, i) for i in range(300)]
        assert [f.result(WAIT) for f in fs] == [(i,) for i in range(300)]
    assert sorted(args[0] for args, _ in ran()) == list(range(300))
    for q in ("task:a", "task:b"):
        stats = mq.stats(q)
        assert (stats.ready, stats.reserved, stats.added, stats.removed) == (0, 0, 150, 150)
    mq.close()


def test_shutdown_returns_each_unfinished_durable_task_once(tmp_path: Path) -> None:
    mq = MessageQueue(store=FileStore(str(tmp_path / "s"), fsync="never"))
    try:
        th = TaskHandler(0, mq=mq)
        futures = [th.submit_to("nobody", record, i) for i in range(3)]
        unfinished = th.shutdown(wait=True, timeout=WAIT)
        assert [t.future for t in unfinished] == futures
        assert all(f.cancelled() for f in futures)
        assert mq.count("task:nobody") == 3  # kept for a restart
    finally:
        mq.close()


def test_a_waiting_task_cancelled_by_its_caller_leaves_the_store(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    with MessageQueue(store=FileStore(path, fsync="never")) as mq:
        th = TaskHandler(0, mq=mq)
        keep = th.submit_to("later", record, "keep")
        gone = th.submit_to("later", record, "gone")
        assert gone.cancel()
        assert mq.count("task:later") == 1
        th.shutdown(wait=False)
        assert keep.cancelled()  # nobody serves "later": shutdown cancels it, and keeps it
        assert mq.count("task:later") == 1
    with MessageQueue(store=FileStore(path, fsync="never")) as mq:
        assert [m.body[1] for m in mq.messages("task:later")] == [("keep",)]


# -- cancelled by the caller, or the queue cleared, at awkward moments ------------------------


def test_clearing_the_queue_while_a_task_runs_lets_it_finish_and_leaves_nothing(tmp_path: Path) -> None:
    with open_mq(tmp_path) as mq, TaskHandler(1, mq=mq) as th:
        future = th.submit(hold, "running")
        assert HOLDER.started.wait(WAIT)
        assert mq.clear("task:default") == 1
        HOLDER.release.set()
        assert future.result(WAIT) == ("running",)
        assert th.status()["series"]["default"]["processed"] == 1
    with open_mq(tmp_path) as mq:
        assert mq.count("task:default") == 0 and mq.stats("task:default").reserved == 0


def test_cancelling_a_task_given_to_a_worker_busy_with_an_update(tmp_path: Path) -> None:
    with open_mq(tmp_path) as mq, TaskHandler(1, mq=mq) as th:
        update = th.update(hold, args=("update",), ephemeral=True)
        assert HOLDER.started.wait(WAIT)  # the worker's one thread runs the update: it is free
        future = th.submit(record, "cancelled")  # given to it (reserved), not started
        assert future.cancel()
        HOLDER.release.set()
        assert update.result(WAIT) == [("update",)]
        assert th.submit(record, "next").result(WAIT) == ("next",)
        assert mq.stats("task:default").reserved == 0
    assert [args for args, _ in ran()] == [("update",), ("next",)]
    with open_mq(tmp_path) as mq:
        assert mq.count("task:default") == 0


def test_cancelling_waiting_tasks_removes_only_them(tmp_path: Path) -> None:
    with open_mq(tmp_path) as mq, TaskHandler(0, mq=mq) as th:
        futures = [th.submit(record, i) for i in range(4)]  # nobody serves: they wait
        assert futures[1].cancel() and futures[2].cancel()  # from the middle of the queue
        assert mq.count("task:default") == 2
        assert mq.clear("task:default") == 2
        assert futures[3].cancel()  # its message is already gone: nothing to remove
        assert mq.count("task:default") == 0
    with open_mq(tmp_path) as mq, TaskHandler(0, mq=mq) as th:
        th.hire()
        assert th.submit(record, "after").result(WAIT) == ("after",)
    assert ran() == [(("after",), {})]


def test_a_stored_function_is_imported_by_the_worker_outside_the_pools_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Importing runs a module's code: here that code asks the handler for its status,
    which needs the pool's lock, so an import made under that lock would hang."""
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "uq_import_probe.py").write_text(
        "import threading\n"
        "import unidist_queue_probe_handler as h\n"
        "STATUS = h.handler.status()\n"
        "THREAD = threading.current_thread().name\n"
        "def fn(x):\n"
        "    return x * 2\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    probe = types.ModuleType("unidist_queue_probe_handler")
    monkeypatch.setitem(sys.modules, "unidist_queue_probe_handler", probe)
    monkeypatch.delitem(sys.modules, "uq_import_probe", raising=False)
    with open_mq(tmp_path / "s") as mq, TaskHandler(0, mq=mq) as th:
        probe.handler = th
        mq.add("task:default", ("uq_import_probe:fn", [21], {}))
        th.hire()
        wait_until(lambda: mq.stats("task:default").removed == 1)
        module = sys.modules["uq_import_probe"]
        assert module.STATUS["series"]["default"]["waiting"] in (0, 1)
        assert threading.current_thread().name != module.THREAD
