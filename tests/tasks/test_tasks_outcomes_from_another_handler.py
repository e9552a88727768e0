"""A task series shared by handlers: a task submitted by one handler and run by a worker
of another resolves the submitter's future (issue 15).

Two handlers on ONE queue object stand for two processes: a submit-only handler
(``max_workers=0``) and a worker-only one. Backends: a durable ``MessageQueue``
(tasks stored by name, replies in memory) and ``Serializing`` (the queue API of a
``MessageQueue`` with every body pickled and unpickled, as a backend in another process
serializes them; in memory or durable). Task functions are module-level (stored by name).
Every wait is bounded.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Iterator, List

import pytest
from helpers import WAIT, ApiOnly, Serializing, wait_until

from unidist_queue import FileStore, MessageQueue, QueueAPI, SerializationError, ShutDown, TaskHandler

HOLD = threading.Event()  # held() waits for it
HELD = threading.Event()  # set once held() started


def square(x: int) -> int:
    return x * x


def explode(x: Any) -> None:
    raise ValueError(f"boom {x}")


def unpicklable_result() -> Any:
    return threading.Lock()


class Unprintable:
    """Cannot be pickled (it holds a lock), and its repr raises."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def unprintable_result() -> Any:
    return Unprintable()


def _refuse_to_load() -> None:
    raise RuntimeError("cannot be made here")


class LoadsNowhere:
    """Pickles, but cannot be unpickled (as an instance of a class the submitter
    cannot import)."""

    def __reduce__(self) -> Any:
        return (_refuse_to_load, ())


def unloadable_result() -> Any:
    return LoadsNowhere()


class TwoArgs(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a} and {b}")


def unloadable_error() -> None:
    raise TwoArgs(1, 2)  # pickles, but its args do not make it again


def unpicklable_error() -> None:
    raise ValueError(threading.Lock())


def held(x: Any) -> Any:
    HELD.set()
    assert HOLD.wait(WAIT)
    return x


def local_refused() -> Any:
    def inner() -> int:
        return 1

    return inner


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    HOLD.clear()
    HELD.clear()
    yield
    HOLD.set()


@pytest.fixture(params=["durable MessageQueue", "another backend", "another durable backend"])
def mq(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QueueAPI]:
    if request.param == "durable MessageQueue":
        backend: Any = MessageQueue(FileStore(tmp_path / "s", fsync="never"))
    elif request.param == "another backend":
        backend = Serializing(MessageQueue())
    else:
        backend = Serializing(MessageQueue(FileStore(tmp_path / "s", fsync="never")))
    yield backend
    backend.close()


def reply_queues(mq: QueueAPI) -> List[str]:
    return [q for q in mq.queues() if q.startswith("task-reply:")]


def test_results_and_exceptions_reach_the_submitters_future_from_another_handler(mq: QueueAPI) -> None:
    submitter = TaskHandler(0, mq=mq)
    worker = TaskHandler(2, mq=mq)
    try:
        futures = [submitter.submit(square, i) for i in range(20)]
        failing = submitter.submit(explode, "x")
        assert [f.result(WAIT) for f in futures] == [i * i for i in range(20)]
        with pytest.raises(ValueError, match="boom x"):
            failing.result(WAIT)
        assert worker.status()["series"]["default"]["processed"] == 21  # all ran there
        assert submitter.status()["series"]["default"]["processed"] == 0
        (replies,) = reply_queues(mq)  # the submitter's; the worker-only handler made none
        stats = mq.stats("task:default")
        assert (stats.ready, stats.reserved, stats.removed) == (0, 0, 21)
        wait_until(lambda: mq.stats(replies).removed == 21)  # every reply read
        assert submitter.shutdown(timeout=WAIT) == []
        assert reply_queues(mq) == []  # dropped by its owner
    finally:
        submitter.shutdown(timeout=WAIT)
        worker.shutdown(timeout=WAIT)


def test_map_over_another_handlers_workers_gives_results_in_order(mq: QueueAPI) -> None:
    with TaskHandler(0, mq=mq) as submitter, TaskHandler(3, mq=mq):
        assert list(submitter.map(square, range(30), timeout=WAIT)) == [i * i for i in range(30)]


def test_an_unserializable_result_or_exception_fails_the_future_with_serialization_error() -> None:
    with Serializing(MessageQueue()) as mq, TaskHandler(0, mq=mq) as submitter, TaskHandler(1, mq=mq):
        with pytest.raises(SerializationError, match=r"result <unlocked _thread\.lock"):
            submitter.submit(unpicklable_result).result(WAIT)
        with pytest.raises(SerializationError, match="raised ValueError"):
            submitter.submit(unpicklable_error).result(WAIT)
        with pytest.raises(SerializationError, match="<Unprintable object>"):
            submitter.submit(unprintable_result).result(WAIT)
        assert submitter.submit(square, 3).result(WAIT) == 9  # and it goes on
        stats = mq.stats("task:default")
        assert (stats.ready, stats.reserved, stats.removed) == (0, 0, 4)  # acked all the same


def test_an_outcome_the_submitter_cannot_unpickle_fails_only_its_own_future() -> None:
    """Another backend serializes bodies: the reply queue never holds a body its reader
    cannot decode (it would block every later reply)."""
    with Serializing(MessageQueue()) as mq, TaskHandler(0, mq=mq) as submitter, TaskHandler(1, mq=mq):
        with pytest.raises(SerializationError, match="cannot be unpickled here: RuntimeError"):
            submitter.submit(unloadable_result).result(WAIT)
        with pytest.raises(SerializationError, match="cannot be unpickled here: TypeError"):
            submitter.submit(unloadable_error).result(WAIT)
        assert submitter.submit(square, 5).result(WAIT) == 25  # later replies still come


class JsonLike(ApiOnly):
    """A backend with a JSON serializer: bodies become JSON and back (tuples come back
    as lists; bytes and exceptions cannot be serialized)."""

    def add(self, queue: str, message: Any, **options: Any) -> int:
        try:
            copy = json.loads(json.dumps(message))
        except (TypeError, ValueError) as exc:
            raise SerializationError(str(exc)) from exc
        return self._inner.add(queue, copy, **options)  # type: ignore[no-any-return]


def pair(x: int) -> Any:
    return (x, [x])


def test_over_a_json_backend_results_come_back_as_json_and_exceptions_cannot() -> None:
    with JsonLike(MessageQueue()) as mq, TaskHandler(0, mq=mq) as submitter, TaskHandler(1, mq=mq):
        assert submitter.submit(pair, 3).result(WAIT) == [3, [3]]  # JSON has no tuples
        with pytest.raises(SerializationError, match=r"raised ValueError.*cannot be serialized"):
            submitter.submit(explode, "j").result(WAIT)


def test_an_in_process_message_queue_passes_results_as_they_are(tmp_path: Path) -> None:
    """A durable MessageQueue's reply queue is not durable: nothing is serialized."""
    mq = MessageQueue(FileStore(tmp_path / "s", fsync="never"))
    with mq, TaskHandler(0, mq=mq) as submitter, TaskHandler(1, mq=mq):
        lock = submitter.submit(unpicklable_result).result(WAIT)
        assert isinstance(lock, type(threading.Lock()))


def test_a_lambda_is_refused_at_submit_over_a_backend_other_than_a_message_queue() -> None:
    with ApiOnly(MessageQueue()) as mq, TaskHandler(1, mq=mq) as th:
        with pytest.raises(SerializationError, match="no importable name"):
            th.submit(lambda: 1)
        with pytest.raises(SerializationError, match="no importable name"):
            th.submit(local_refused())
        assert mq.stats("task:default").added == 0  # nothing stored
        assert th.submit(square, 4).result(WAIT) == 16


def test_an_in_process_message_queue_keeps_its_fast_path_for_a_lambda() -> None:
    with MessageQueue() as mq, TaskHandler(0, mq=mq) as submitter, TaskHandler(1, mq=mq):
        assert submitter.submit(lambda: 5).result(WAIT) == 5  # the Job itself went through mq
        assert reply_queues(mq) == []  # no stored task: no reply queue


def test_a_task_running_elsewhere_at_the_submitters_shutdown_is_returned_cancelled(mq: QueueAPI) -> None:
    submitter = TaskHandler(0, mq=mq)
    worker = TaskHandler(1, mq=mq)
    try:
        future = submitter.submit(held, "late")
        assert HELD.wait(WAIT)
        assert [t.future for t in submitter.shutdown(timeout=WAIT)] == [future]
        assert future.cancelled() and reply_queues(mq) == []
        HOLD.set()  # it finishes over there: the reply finds no queue and is dropped
        wait_until(lambda: mq.stats("task:default").removed == 1)
        assert reply_queues(mq) == []
    finally:
        HOLD.set()
        worker.shutdown(timeout=WAIT)


def test_closing_the_queue_fails_the_future_of_a_task_running_elsewhere(mq: QueueAPI) -> None:
    submitter = TaskHandler(0, mq=mq)
    worker = TaskHandler(1, mq=mq)
    try:
        future = submitter.submit(held, "cut")
        assert HELD.wait(WAIT)
        mq.close()  # both handlers shut down; the reply cannot come any more
        with pytest.raises(ShutDown, match="closed"):
            future.result(WAIT)
    finally:
        HOLD.set()
        submitter.shutdown(timeout=WAIT)
        worker.shutdown(timeout=WAIT)



@pytest.mark.parametrize("cancel_futures", [False, True])
def test_a_submitters_shutdown_leaves_the_tasks_of_other_handlers_waiting(
    mq: QueueAPI, cancel_futures: bool
) -> None:
    mine, theirs = TaskHandler(0, mq=mq), TaskHandler(0, mq=mq)
    try:
        first = [mine.submit(square, 1), theirs.submit(square, 2)]
        second = [mine.submit(square, 3), theirs.submit(square, 4)]
        unfinished = mine.shutdown(cancel_futures=cancel_futures)
        assert [t.future for t in unfinished] == [first[0], second[0]]  # only its own
        assert first[0].cancelled() and second[0].cancelled()
        with TaskHandler(1, mq=mq):  # the other handler's tasks are still there
            assert [first[1].result(WAIT), second[1].result(WAIT)] == [4, 16]
    finally:
        theirs.shutdown(timeout=WAIT)
