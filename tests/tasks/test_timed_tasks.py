"""TaskHandler over ``mq=``: tasks that become ready by a timed change run by themselves.

A MessageQueue promotes delayed messages and lapsed leases lazily and rings its
subscribers only then, so a handler's idle worker must wake at the queue's ``next_due``
on its own: a task added with a delay, nacked with a delay, or whose lease held by
another consumer runs out, runs with nothing else touching the queue. Real clock; every
wait is bounded (the only threshold: it happens before a generous timeout). An idle
handler does not wake repeatedly (counted through a QueueAPI wrapper).

A handler learns of a new timed change when one of its workers turns free (it asks the
queue's ``next_due`` before it waits): the changes here are made while no worker is
free (before the hire, or while the only worker is busy).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator, List, Optional

import pytest
from conftest import ManualClock
from helpers import ApiOnly

from unidist_queue import MessageQueue, TaskHandler

LONG = 30.0  # generous: a timed task runs well before this

RAN: List[Any] = []
RAN_LOCK = threading.Lock()
RAN_EVENT = threading.Event()  # set by every run of record()
HOLD = threading.Event()  # held() waits for it
HELD = threading.Event()  # set once held() started


def record(x: Any) -> Any:
    with RAN_LOCK:
        RAN.append(x)
    RAN_EVENT.set()
    return x


def record_who(x: Any) -> Any:
    """``record((x, the worker name))`` ("high_0" -> "high")."""
    return record((x, threading.current_thread().name.rsplit("_", 1)[0]))


def held(x: Any) -> Any:
    HELD.set()
    assert HOLD.wait(LONG)
    return x


def ran() -> List[Any]:
    with RAN_LOCK:
        return list(RAN)


def stored(x: Any) -> Any:
    """The stored form of ``record(x)``: a task added by other code."""
    return (f"{__name__}:record", [x], {})


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    with RAN_LOCK:
        RAN.clear()
    RAN_EVENT.clear()
    HOLD.clear()
    HELD.clear()
    yield
    HOLD.set()


@pytest.fixture
def mq() -> Iterator[MessageQueue]:
    with MessageQueue() as queue:  # the real clock
        yield queue


class Counting(ApiOnly):
    """The queue API of a wrapped queue, counting the calls of ``next_due``."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.asked = 0

    def next_due(self, queue: str) -> Optional[float]:
        self.asked += 1
        return self._inner.next_due(queue)  # type: ignore[no-any-return]


def test_a_task_added_with_a_delay_runs_when_due(mq: MessageQueue) -> None:
    with TaskHandler(1, mq=mq) as th:
        busy = th.submit(held, "busy")
        assert HELD.wait(LONG)
        mq.add("task:default", stored("delayed"), delay=0.2)  # not ready: nobody is rung
        HOLD.set()  # the worker turns free, finds nothing ready: it wakes when it is due
        assert busy.result(LONG) == "busy"
        assert RAN_EVENT.wait(LONG)
        assert ran() == ["delayed"]


def test_a_task_added_with_a_delay_before_the_hire_runs_when_due(mq: MessageQueue) -> None:
    with TaskHandler(0, mq=mq) as th:
        mq.add("task:default", stored("delayed"), delay=0.2)
        th.hire()
        assert RAN_EVENT.wait(LONG)
        assert ran() == ["delayed"]


def test_a_task_whose_lease_lapses_runs(mq: MessageQueue) -> None:
    mq.add("task:default", stored("leased"))
    taken = mq.reserve("task:default", timeout=0, lease=0.2)  # another consumer, never acked
    with TaskHandler(0, mq=mq) as th:
        th.hire()
        assert RAN_EVENT.wait(LONG)
        assert ran() == ["leased"]
    with pytest.raises(ValueError):
        mq.ack(taken)  # its lease ran out


def test_a_task_nacked_with_a_delay_runs_when_due(mq: MessageQueue) -> None:
    mq.add("task:default", stored("nacked"))
    taken = mq.reserve("task:default", timeout=0)  # another consumer
    with TaskHandler(1, mq=mq) as th:
        busy = th.submit(held, "busy")
        assert HELD.wait(LONG)
        mq.nack(taken, delay=0.2)  # back after the delay: nobody is rung
        HOLD.set()
        assert busy.result(LONG) == "busy"
        assert RAN_EVENT.wait(LONG)
        assert ran() == ["nacked"]


def test_a_timed_task_goes_to_the_best_free_worker(mq: MessageQueue) -> None:
    with TaskHandler(0, mq=mq) as th:
        mq.add("task:s", (f"{__name__}:record_who", ["due"], {}), delay=0.2)
        th.hire([(0, "s")], name="low")
        th.hire([(5, "s")], name="high")
        assert RAN_EVENT.wait(LONG)
        assert ran() == [("due", "high")]


def test_an_idle_handler_does_not_keep_waking() -> None:
    counting = Counting(MessageQueue())
    try:
        with TaskHandler(2, mq=counting) as th:
            assert th.submit(record, "first").result(LONG) == "first"
            counting.add("task:default", stored("later"), delay=3600.0)  # due in an hour
            th.hire()  # a third worker: it finds the hour-long wait
            counting.asked = 0
            time.sleep(1.0)
            assert counting.asked < 10
            assert ran() == ["first"]
    finally:
        counting.close()


def test_a_due_time_on_another_clock_is_looked_at_once() -> None:
    """A queue whose clock is far behind ``time.time``: its due times look past; each is
    looked at once, then the worker waits for a ring (no spinning)."""
    clock = ManualClock()
    counting = Counting(MessageQueue(clock=clock))
    try:
        with TaskHandler(0, mq=counting) as th:
            counting.add("task:default", stored("later"), delay=5.0)
            th.hire()
            time.sleep(0.2)
            counting.asked = 0
            time.sleep(1.0)
            assert counting.asked < 10
            assert ran() == []
            counting.add("task:default", stored("now"))  # a ring: it is routed at once
            assert RAN_EVENT.wait(LONG)
            assert ran() == ["now"]
    finally:
        counting.close()
