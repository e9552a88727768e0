"""The reply queue of a submitting handler: a task run twice resolves its future once,
replies for a submitter that is gone do not pile up, bodies of the previous version and
stray messages are handled (issue 15).

Two handlers on one queue object stand for two processes. Task functions are
module-level (stored by name). Every wait is bounded.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from conftest import ManualClock
from helpers import WAIT, ApiOnly, wait_until

from unidist_queue import FileStore, MessageQueue, QueueAPI, SerializationError, StoreError, TaskHandler
from unidist_queue._replies import REPLY_MAX_AGE

COUNTS: Dict[Any, int] = {}
COUNTS_LOCK = threading.Lock()


def counted(tag: Any) -> int:
    """How many times it ran with ``tag``, this run included."""
    with COUNTS_LOCK:
        COUNTS[tag] = COUNTS.get(tag, 0) + 1
        return COUNTS[tag]


HOLD = threading.Event()  # held_counted() waits for it
HELD = threading.Event()  # set once held_counted() started


def held_counted(tag: Any) -> int:
    HELD.set()
    assert HOLD.wait(WAIT)
    return counted(tag)


def runs(tag: Any) -> int:
    with COUNTS_LOCK:
        return COUNTS.get(tag, 0)


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    with COUNTS_LOCK:
        COUNTS.clear()
    HOLD.clear()
    HELD.clear()
    yield
    HOLD.set()


@pytest.fixture
def mq(tmp_path: Path) -> Iterator[MessageQueue]:
    with MessageQueue(FileStore(tmp_path / "s", fsync="never")) as queue:
        yield queue


def reply_queues(mq: QueueAPI) -> List[str]:
    return [q for q in mq.queues() if q.startswith("task-reply:")]


def duplicate(mq: QueueAPI, queue: str) -> Any:
    """Add a copy of the first waiting task of ``queue`` (a second delivery of it, as
    after a crash before its ack); return its body."""
    (message,) = mq.messages(queue)
    mq.add(queue, message.body)
    return message.body


class Deaf(ApiOnly):
    """A backend on which a handler never reads its reply queue (its watching thread
    waits on another name): a submitter gone without a shutdown, its queue left."""

    def view(self, queue: str, maxsize: int = 0) -> Any:
        return self._inner.view(f"elsewhere:{queue}", maxsize)


def test_a_task_run_twice_resolves_its_future_once(mq: MessageQueue) -> None:
    with TaskHandler(0, mq=mq) as submitter:
        future = submitter.submit_to("s", counted, "twice")
        duplicate(mq, "task:s")
        (replies,) = reply_queues(mq)
        with TaskHandler(0, mq=mq) as worker:
            worker.hire("s")
            wait_until(lambda: mq.stats(replies).removed == 2)  # both outcomes read
            assert runs("twice") == 2
        assert future.result(WAIT) == 1  # the first outcome won; the second was ignored


def test_a_second_delivery_of_a_resolved_task_is_skipped_by_its_submitter(mq: MessageQueue) -> None:
    with TaskHandler(0, mq=mq) as submitter:
        future = submitter.submit_to("s", counted, "again")
        body = duplicate(mq, "task:s")  # the copy waits behind the original
        with TaskHandler(0, mq=mq) as worker:
            worker.hire("s")
            assert future.result(WAIT) == 1
            wait_until(lambda: mq.count("task:s") == 0)
        mq.add("task:s", body)  # delivered again, now to its submitter
        submitter.hire("s")
        wait_until(lambda: mq.stats("task:s").removed == 3)  # acked without running
        assert runs("again") == 2 and future.result(WAIT) == 1


def test_a_second_delivery_taken_with_the_first_by_its_submitter_runs_once(mq: MessageQueue) -> None:
    with TaskHandler(0, mq=mq) as submitter:
        future = submitter.submit_to("s", counted, "pair")
        duplicate(mq, "task:s")
        submitter.hire("s", slots=2)  # takes both in one reserve_many
        assert future.result(WAIT) == 1
        wait_until(lambda: mq.stats("task:s").removed == 2)
    assert runs("pair") == 1


def test_a_task_moved_to_a_new_message_runs_as_its_submitters_live_task(mq: MessageQueue) -> None:
    with TaskHandler(0, mq=mq) as submitter:
        future = submitter.submit_to("s", counted, "moved")
        taken = mq.reserve("task:s", timeout=0)
        mq.add("task:s", taken.body)  # as retry_dead moves a task: add, then ack
        mq.ack(taken)
        submitter.hire("s")
        assert future.result(WAIT) == 1
        (replies,) = reply_queues(mq)
        assert mq.stats(replies).added == 0  # its own worker resolved it: no reply


def test_replies_for_a_submitter_that_shut_down_are_dropped(mq: MessageQueue) -> None:
    submitter = TaskHandler(0, mq=mq)
    future = submitter.submit_to("s", counted, "orphan")
    assert [t.future for t in submitter.shutdown()] == [future]  # nobody served "s": cancelled
    assert future.cancelled() and reply_queues(mq) == []
    assert mq.count("task:s") == 1  # durable: it stays stored, to run after all
    with TaskHandler(0, mq=mq) as worker:
        worker.hire("s")
        wait_until(lambda: mq.stats("task:s").removed == 1)
    assert runs("orphan") == 1
    assert reply_queues(mq) == []  # the reply was not sent: no queue made again


def test_replies_to_a_submitter_gone_without_a_shutdown_expire() -> None:
    clock = ManualClock()
    with MessageQueue(clock=clock) as inner:
        mq = Deaf(inner)
        submitter = TaskHandler(0, mq=mq)
        try:
            futures = [submitter.submit(counted, i) for i in range(5)]
            (replies,) = reply_queues(mq)
            with TaskHandler(2, mq=mq):
                wait_until(lambda: mq.stats("task:default").removed == 5)
            assert mq.count(replies) == 5 and not any(f.done() for f in futures)  # unread
            clock.advance(REPLY_MAX_AGE + 1)
            assert mq.count(replies) == 0 and mq.stats(replies).expired == 5
        finally:
            submitter.shutdown(timeout=WAIT)
        assert reply_queues(mq) == []


def test_a_task_stored_by_the_previous_version_runs_as_recovered(
    mq: MessageQueue, caplog: pytest.LogCaptureFixture
) -> None:
    mq.add("task:default", (f"{__name__}:counted", ["old"], {}))
    mq.add("task:default", (f"{__name__}:counted", [None, "too many"], {}))  # raises: logged
    with caplog.at_level(logging.ERROR, logger="unidist_queue.tasks"), TaskHandler(1, mq=mq):
        wait_until(lambda: mq.stats("task:default").removed == 2)
    assert runs("old") == 1
    assert "recovered task" in caplog.text and "TypeError" in caplog.text


def test_an_outcome_that_comes_back_as_no_exception_fails_the_future_with_serialization_error(
    mq: MessageQueue, caplog: pytest.LogCaptureFixture
) -> None:
    """As a JSON serializer gives back: the replies a worker sends name the key."""
    with TaskHandler(0, mq=mq) as submitter:
        futures = [submitter.submit_to("s", counted, i) for i in range(3)]
        keys = [m.body[3]["key"] for m in mq.messages("task:s")]
        (replies,) = reply_queues(mq)
        with caplog.at_level(logging.WARNING, logger="unidist_queue.tasks"):
            mq.add(replies, {"task": keys[0], "error": {"type": "ValueError"}})
            mq.add(replies, {"task": keys[1], "unserializable": 42})
            mq.add(replies, {"task": keys[2], "result": 1, "error": 2})  # not a reply
            mq.add(replies, {"task": str(keys[2]), "result": 1})  # not a reply either
            mq.add(replies, {"task": keys[2], "result_pickle": "not bytes"})  # nor this
            with pytest.raises(SerializationError, match="came back as"):
                futures[0].result(WAIT)
            with pytest.raises(SerializationError, match="42"):
                futures[1].result(WAIT)
            wait_until(lambda: caplog.text.count("is not a task outcome") == 3)
        assert not futures[2].done()
        submitter.hire("s")  # its own worker: the waiting tasks run here
        assert futures[2].result(WAIT) == 1


def test_a_task_naming_no_reply_queue_sends_nothing(
    mq: MessageQueue, caplog: pytest.LogCaptureFixture
) -> None:
    mq.add("task:default", (f"{__name__}:counted", ["x"], {}, {"reply_to": "orders", "key": 1}))
    mq.add("task:default", (f"{__name__}:counted", ["y"], {}, {"reply_to": 5, "key": 1}))  # not a task
    mq.add("task:default", (f"{__name__}:counted", ["z"], {}, ["reply"]))  # not a task
    with caplog.at_level(logging.WARNING, logger="unidist_queue.tasks"), TaskHandler(1, mq=mq):
        wait_until(lambda: mq.stats("task:default").removed == 3)
    assert runs("x") == 1 and runs("y") == runs("z") == 0
    assert not mq.exists("orders")
    assert "not a reply queue" in caplog.text and caplog.text.count("is not a task") == 2


class RefusingReplies(ApiOnly):
    """A backend whose adds to reply queues fail (a store error)."""

    def add(self, queue: str, message: Any, **options: Any) -> int:
        if queue.startswith("task-reply:"):
            raise StoreError("disk full")
        return self._inner.add(queue, message, **options)  # type: ignore[no-any-return]


def test_a_reply_that_cannot_be_sent_is_logged_and_the_task_acked(
    mq: MessageQueue, caplog: pytest.LogCaptureFixture
) -> None:
    with TaskHandler(0, mq=mq) as submitter:
        future = submitter.submit(counted, "lost")
        refusing = RefusingReplies(mq)
        with caplog.at_level(logging.ERROR, logger="unidist_queue.tasks"), TaskHandler(1, mq=refusing):
            wait_until(lambda: mq.stats("task:default").removed == 1)
        assert "could not send the outcome" in caplog.text and not future.done()


class RefusingDrop(ApiOnly):
    """A backend that cannot drop queues (a store error)."""

    def drop(self, queue: str) -> bool:
        raise StoreError("disk full")


def test_a_reply_queue_that_cannot_be_dropped_at_shutdown_is_logged(
    mq: MessageQueue, caplog: pytest.LogCaptureFixture
) -> None:
    refusing = RefusingDrop(mq)
    with caplog.at_level(logging.ERROR, logger="unidist_queue.tasks"), TaskHandler(1, mq=refusing) as th:
        assert th.submit(counted, "d").result(WAIT) == 1
    assert "could not drop the reply queue" in caplog.text
    assert len(reply_queues(mq)) == 1  # left: its replies would expire


def test_a_cancelled_future_ignores_the_outcome_of_its_task_running_elsewhere(mq: MessageQueue) -> None:
    """Its submitter cannot know that another handler started it: cancel() succeeds."""
    with TaskHandler(0, mq=mq) as submitter:
        future = submitter.submit(held_counted, "cancelled")
        (replies,) = reply_queues(mq)
        with TaskHandler(1, mq=mq):
            assert HELD.wait(WAIT)
            assert future.cancel()
            HOLD.set()
            wait_until(lambda: mq.stats(replies).removed == 1)  # the reply was read, ignored
        assert future.cancelled() and runs("cancelled") == 1
