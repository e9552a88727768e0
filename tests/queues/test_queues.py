"""Unit tests for MessageQueue, one behaviour each (DESIGN.md sections 2 and 3, issue #2)."""

from __future__ import annotations

import logging
import threading
from typing import Any, List

import pytest
from conftest import memory_only
from helpers import in_thread, join
from queue_core import wait_blocked

from unidist_queue import (
    Empty,
    Full,
    Message,
    MessageQueue,
    QueueAPI,
    QueueStats,
    ShutDown,
    UnidistQueueError,
)


@pytest.fixture
def mq(either_mq: QueueAPI) -> QueueAPI:
    """The contract runs on both backends (DESIGN 12): see ``either_mq`` in conftest.py."""
    return either_mq

# -- add and take ---------------------------------------------------------------------------


def test_fifo_oldest_newest_and_ids_increase(mq: MessageQueue) -> None:
    ids = [mq.add("q", i) for i in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert mq.add("other", "x") > ids[-1]
    assert mq.oldest("q", remove=False) == 0
    assert mq.newest("q", remove=False) == 4
    assert mq.count("q") == 5
    assert mq.oldest("q") == 0
    assert mq.newest("q") == 4
    assert mq.all("q") == [1, 2, 3]
    assert mq.get("q") == 1
    assert mq.get("q", timeout=0) == 2


def test_ids_are_never_reused(mq: MessageQueue) -> None:
    first = mq.add("q", 1)
    mq.drop("q")
    mq.clear("other")
    assert mq.add("q", 2) > first


def test_empty_and_default(mq: MessageQueue) -> None:
    for fn in (mq.oldest, mq.newest):
        with pytest.raises(Empty):
            fn("nope")
        assert fn("nope", default=None) is None
        assert fn("nope", default="d") == "d"
    mq.add("q", None)
    assert mq.oldest("q", default="d") is None  # None is a valid body
    with pytest.raises(Empty):
        mq.oldest("q")
    with pytest.raises(Empty):
        mq.get("q", timeout=0)
    with pytest.raises(Empty):
        mq.get("q", timeout=0.01)
    assert issubclass(Empty, UnidistQueueError)


def test_unknown_queue_looks_empty_and_does_not_exist(mq: MessageQueue) -> None:
    assert mq.count("nope") == 0
    assert mq.all("nope") == []
    assert mq.messages("nope") == []
    assert not mq.exists("nope")
    stats = mq.stats("nope")
    assert stats == QueueStats(0, 0, 0, 0, 0, 0, 0, 0, stats.durable)  # durable: the store's, or AOF
    with pytest.raises(Empty):
        mq.get("nope", timeout=0.01)
    with pytest.raises(Empty):
        mq.reserve("nope", timeout=0.01)
    # a getter waiting on an unknown queue does not make it exist
    assert not mq.exists("nope")
    assert mq.queues() == []
    assert mq.clear("nope") == 0
    assert mq.drop("nope") is False


def test_exists_queues_clear_drop(mq: MessageQueue) -> None:
    mq.declare("b")
    mq.add("a", 1)
    mq.add("a", 2, delay=10)
    mq.add("a", 3)
    mq.reserve("a")
    assert mq.queues() == ["a", "b"]
    assert mq.exists("a") and mq.exists("b")
    assert mq.clear("a") == 3  # ready, delayed and reserved
    assert mq.count("a") == 0
    assert mq.exists("a")  # an emptied queue still exists
    assert mq.stats("a").dropped == 3
    assert mq.drop("a") is True
    assert not mq.exists("a")
    assert mq.drop("a") is False
    assert mq.queues() == ["b"]
    mq.add("a", 4)
    assert mq.all("a") == [4]


def test_messages_are_envelopes(cmq: MessageQueue, clock: Any) -> None:
    i = cmq.add("q", "x")
    clock.advance(1)
    j = cmq.add("q", "y")
    m = cmq.messages("q")
    assert m == [
        Message(i, "q", "x", clock() - 1, 0),
        Message(j, "q", "y", clock(), 0),
    ]
    assert cmq.all("q") == ["x", "y"]
    r = cmq.reserve("q")
    assert r == Message(i, "q", "x", clock() - 1, 1)
    cmq.nack(r)
    assert cmq.messages("q")[0].attempts == 1


def test_stats_counters(cmq: MessageQueue, clock: Any) -> None:
    cmq.declare("q", maxlen=2, max_age=100)
    cmq.add("q", "later", delay=5)
    for i in range(4):
        cmq.add("q", i)  # 2 dropped by overflow
    cmq.reserve("q")
    assert cmq.stats("q") == QueueStats(1, 1, 1, 5, 0, 0, 2, 0, False)
    cmq.oldest("q")
    clock.advance(200)  # the delayed one falls due after max_age: expired
    s = cmq.stats("q")
    assert (s.ready, s.delayed, s.reserved, s.added, s.removed, s.expired, s.dropped) == (0, 0, 1, 5, 1, 1, 2)


# -- declare, overflow, eviction ----------------------------------------------------------------


def test_declare_defaults_and_partial_reconfigure(mq: MessageQueue) -> None:
    mq.declare("q")
    assert mq.exists("q")
    for i in range(100):
        mq.add("q", i)
    assert mq.count("q") == 100  # unbounded by default
    mq.declare("q", maxlen=3)
    assert mq.all("q") == [97, 98, 99]  # smaller maxlen evicts at once under drop_oldest
    assert mq.stats("q").dropped == 97
    mq.declare("q", overflow="reject")  # maxlen kept
    with pytest.raises(Full):
        mq.add("q", 100)
    with pytest.raises(ValueError, match="maxlen"):  # "reject" without a maxlen means nothing
        mq.declare("q", maxlen=None)
    mq.declare("q", maxlen=None, overflow="drop_oldest")
    mq.add("q", 100)
    assert mq.count("q") == 4


def test_drop_oldest(mq: MessageQueue) -> None:
    mq.declare("q", maxlen=2)
    for i in range(5):
        mq.add("q", i)
    assert mq.all("q") == [3, 4]


def test_reject_changes_nothing(mq: MessageQueue) -> None:
    mq.declare("q", maxlen=2, overflow="reject")
    mq.add("q", 1)
    last = mq.add("q", 2)
    with pytest.raises(Full) as info:
        mq.add("q", 3)
    assert isinstance(info.value, UnidistQueueError)
    assert mq.all("q") == [1, 2]
    assert mq.stats("q").added == 2
    assert mq.add("other", 0) == last + 1  # the rejected add used no id


def test_smaller_maxlen_under_reject_keeps_the_excess(mq: MessageQueue) -> None:
    mq.declare("q", maxlen=10, overflow="reject")
    for i in range(5):
        mq.add("q", i)
    mq.declare("q", maxlen=2)
    assert mq.count("q") == 5
    with pytest.raises(Full):
        mq.add("q", 5)
    for _ in range(4):
        mq.oldest("q")
    mq.add("q", 5)
    assert mq.all("q") == [4, 5]


def test_reserved_and_delayed_do_not_count_toward_maxlen(mq: MessageQueue) -> None:
    mq.declare("q", maxlen=1, overflow="reject")
    mq.add("q", 3, delay=60)
    mq.add("q", 1)
    r = mq.reserve("q")
    mq.add("q", 2)
    mq.nack(r)  # returning never overflows
    assert mq.all("q") == [1, 2]


def test_promotion_never_overflows(cmq: MessageQueue, clock: Any) -> None:
    cmq.declare("q", maxlen=1, overflow="reject")
    cmq.add("q", "d", delay=5)
    cmq.add("q", "a")
    clock.advance(6)
    assert cmq.all("q") == ["a", "d"]
    r = cmq.reserve("q")
    cmq.nack(r, delay=1)
    clock.advance(2)
    assert cmq.all("q") == ["a", "d"]


def test_block_wakes_when_the_oldest_expires(mq: MessageQueue) -> None:
    mq.declare("q", maxlen=1, overflow="block", max_age=0.05)
    mq.add("q", "old")
    mq.add("q", "new", timeout=60)  # no reader: only expiry makes room
    assert mq.all("q") in (["new"], [])
    assert mq.stats("q").expired >= 1


def test_block_times_out_with_full(mq: MessageQueue) -> None:
    mq.declare("q", maxlen=1, overflow="block")
    mq.add("q", 1)
    with pytest.raises(Full):
        mq.add("q", 2, timeout=0)
    with pytest.raises(Full):
        mq.add("q", 2, timeout=0.05)
    assert mq.all("q") == [1]


def test_block_waits_for_room(mq: MessageQueue) -> None:
    mq.declare("q", maxlen=1, overflow="block")
    mq.add("q", 1)
    t, results = in_thread(lambda: mq.add("q", 2, timeout=60))
    wait_blocked(mq, "q", putters=1)
    assert mq.get("q") == 1
    join(t)
    assert results[0][0] == "ok"
    assert mq.all("q") == [2]


def test_block_wakes_when_maxlen_grows(mq: MessageQueue) -> None:
    mq.declare("q", maxlen=1, overflow="block")
    mq.add("q", 1)
    t, results = in_thread(lambda: mq.add("q", 2, timeout=60))
    wait_blocked(mq, "q", putters=1)
    mq.declare("q", maxlen=2)
    join(t)
    assert results[0][0] == "ok"
    assert mq.all("q") == [1, 2]


def test_block_wakes_on_clear(mq: MessageQueue) -> None:
    mq.declare("q", maxlen=1, overflow="block")
    mq.add("q", 1)
    t, results = in_thread(lambda: mq.add("q", 2, timeout=60))
    wait_blocked(mq, "q", putters=1)
    mq.clear("q")
    join(t)
    assert results[0][0] == "ok"
    assert mq.all("q") == [2]


# -- max_age ------------------------------------------------------------------------------------


def test_max_age_expires_ready_messages(cmq: MessageQueue, clock: Any) -> None:
    cmq.declare("q", max_age=10)
    cmq.add("q", "old")
    clock.advance(5)
    cmq.add("q", "young")
    clock.advance(6)
    assert cmq.all("q") == ["young"]
    assert cmq.count("q") == 1
    assert cmq.stats("q").expired == 1
    clock.advance(10)
    assert cmq.count("q") == 0
    with pytest.raises(Empty):
        cmq.oldest("q")
    with pytest.raises(Empty):
        cmq.get("q", timeout=0)
    assert cmq.stats("q").expired == 2


def test_max_age_expires_delayed_messages(cmq: MessageQueue, clock: Any) -> None:
    cmq.declare("q", max_age=10)
    cmq.add("q", "late", delay=20)
    cmq.add("q", "soon", delay=5)
    clock.advance(6)
    assert cmq.all("q") == ["soon"]
    clock.advance(20)
    assert cmq.all("q") == []
    assert cmq.stats("q").expired == 2
    assert cmq.stats("q").delayed == 0


def test_max_age_expires_nacked_messages(cmq: MessageQueue, clock: Any) -> None:
    cmq.declare("q", max_age=10)
    cmq.add("q", "a")
    cmq.add("q", "b")
    ra = cmq.reserve("q")
    rb = cmq.reserve("q")
    clock.advance(11)
    cmq.nack(ra)  # too old: expired instead of returned
    cmq.nack(rb, delay=1)
    clock.advance(2)
    assert cmq.all("q") == []
    assert cmq.stats("q").expired == 2
    assert cmq.stats("q").reserved == 0


def test_max_age_with_lease_expiry(cmq: MessageQueue, clock: Any) -> None:
    cmq.declare("q", max_age=10)
    cmq.add("q", "a")
    cmq.reserve("q", lease=20)
    clock.advance(21)
    assert cmq.all("q") == []
    assert cmq.stats("q") == QueueStats(0, 0, 0, 1, 0, 1, 0, 0, False)


def test_expired_messages_make_room(cmq: MessageQueue, clock: Any) -> None:
    cmq.declare("q", maxlen=1, overflow="reject", max_age=10)
    cmq.add("q", "old")
    clock.advance(11)
    cmq.add("q", "new")  # the old one is expired: there is room
    assert cmq.all("q") == ["new"]
    assert cmq.stats("q").expired == 1
    assert cmq.stats("q").dropped == 0


# -- delay --------------------------------------------------------------------------------------


def test_delay_keeps_messages_invisible_until_due(cmq: MessageQueue, clock: Any) -> None:
    cmq.add("q", "later", delay=10)
    cmq.add("q", "now")
    assert cmq.all("q") == ["now"]
    assert cmq.stats("q").delayed == 1
    clock.advance(9)
    assert cmq.count("q") == 1
    clock.advance(1)
    assert cmq.all("q") == ["now", "later"]  # joins the back when due
    assert cmq.stats("q").delayed == 0


def test_delayed_messages_come_due_in_due_order(cmq: MessageQueue, clock: Any) -> None:
    cmq.add("q", "c", delay=3)
    cmq.add("q", "a", delay=1)
    cmq.add("q", "b", delay=2)
    cmq.add("q", "zero", delay=0)
    clock.advance(5)
    assert cmq.all("q") == ["zero", "a", "b", "c"]


def test_due_message_precedes_later_adds(cmq: MessageQueue, clock: Any) -> None:
    cmq.add("q", "delayed", delay=5)
    clock.advance(6)
    cmq.add("q", "added after it was due")
    assert cmq.all("q") == ["delayed", "added after it was due"]


def test_subscribers_hear_of_a_delayed_message_when_it_is_promoted(cmq: MessageQueue, clock: Any) -> None:
    seen: List[str] = []
    cmq.subscribe("q", seen.append)
    cmq.add("q", 1, delay=100)
    assert seen == []
    clock.advance(100)
    assert cmq.count("q") == 1  # promotion is lazy: the call that looks makes it
    assert seen == ["q"]


def test_blocked_get_wakes_when_delayed_message_is_due(mq: MessageQueue) -> None:
    t, results = in_thread(lambda: mq.get("q", timeout=120))
    wait_blocked(mq, "q", getters=1)
    mq.add("q", "x", delay=0.05)
    t.join(60)  # well before the get's own timeout
    try:
        assert not t.is_alive(), "the blocked get was not woken by the delayed message"
        assert results == [("ok", "x")]
    finally:
        mq.close()
        join(t)


def test_blocked_get_wakes_on_delayed_nack(mq: MessageQueue) -> None:
    mq.add("q", "x")
    r = mq.reserve("q")
    t, results = in_thread(lambda: mq.get("q", timeout=120))
    wait_blocked(mq, "q", getters=1)
    mq.nack(r, delay=0.05)
    t.join(60)
    try:
        assert not t.is_alive(), "the blocked get was not woken by the delayed nack"
        assert results == [("ok", "x")]
    finally:
        mq.close()
        join(t)


def test_blocked_get_wakes_when_lease_runs_out(mq: MessageQueue) -> None:
    mq.add("q", "x")
    mq.reserve("q", lease=0.05)
    assert mq.get("q", timeout=60) == "x"


def test_blocked_get_on_existing_delay_wakes(mq: MessageQueue) -> None:
    mq.add("q", "x", delay=0.05)
    assert mq.get("q", timeout=60) == "x"
    mq.add("q", "y", delay=0.05)
    assert mq.reserve("q", timeout=60).body == "y"


# -- reserve, ack, nack, lease ------------------------------------------------------------------


def test_reserve_ack(mq: MessageQueue) -> None:
    i = mq.add("q", "a")
    mq.add("q", "b")
    m = mq.reserve("q")
    assert (m.id, m.queue, m.body, m.attempts) == (i, "q", "a", 1)
    assert mq.all("q") == ["b"]
    assert mq.stats("q").reserved == 1
    mq.ack(m)
    assert mq.stats("q").reserved == 0
    assert mq.stats("q").removed == 1
    with pytest.raises(ValueError, match="message"):
        mq.ack(m)
    with pytest.raises(ValueError, match="message"):
        mq.nack(m)
    assert mq.all("q") == ["b"]


def test_nack_returns_to_front_in_id_order(mq: MessageQueue) -> None:
    for x in "abcd":
        mq.add("q", x)
    ra, rb, rc = (mq.reserve("q") for _ in range(3))
    mq.nack(rc)
    mq.nack(ra)
    mq.nack(rb)
    assert mq.all("q") == ["a", "b", "c", "d"]
    again = mq.reserve("q")
    assert again.id == ra.id and again.attempts == 2


def test_nack_goes_before_messages_that_became_due_later(cmq: MessageQueue, clock: Any) -> None:
    cmq.add("q", "d1", delay=5)
    cmq.add("q", "d2", delay=5)
    cmq.add("q", "r")
    r = cmq.reserve("q")
    clock.advance(6)
    assert cmq.all("q") == ["d1", "d2"]
    cmq.nack(r)
    assert cmq.all("q") == ["r", "d1", "d2"]  # nack: back at the front


def test_nack_with_delay(cmq: MessageQueue, clock: Any) -> None:
    cmq.add("q", "a")
    cmq.add("q", "b")
    r = cmq.reserve("q")
    cmq.nack(r, delay=10)
    assert cmq.all("q") == ["b"]
    assert cmq.stats("q").delayed == 1
    clock.advance(10)
    assert cmq.all("q") == ["a", "b"]  # front, after the delay


def test_lease_returns_message_to_front(cmq: MessageQueue, clock: Any) -> None:
    cmq.add("q", "a")
    cmq.add("q", "b")
    r = cmq.reserve("q", lease=10)
    clock.advance(9)
    assert cmq.all("q") == ["b"]
    cmq.ack(r)  # in time
    cmq.add("q", "c")
    r = cmq.reserve("q", lease=10)
    assert r.body == "b"
    clock.advance(10)
    assert cmq.all("q") == ["b", "c"]
    with pytest.raises(ValueError, match="message"):
        cmq.ack(r)  # lease ran out
    r2 = cmq.reserve("q", lease=10)
    assert r2.id == r.id and r2.attempts == 2
    with pytest.raises(ValueError, match="message"):
        cmq.ack(r)  # stale reservation of a re-reserved message
    cmq.ack(r2)
    assert cmq.all("q") == ["c"]


def test_ack_after_clear_or_drop_is_value_error(mq: MessageQueue) -> None:
    mq.add("q", 1)
    mq.add("q", 2)
    r1 = mq.reserve("q")
    mq.clear("q")
    with pytest.raises(ValueError, match="message"):
        mq.ack(r1)
    mq.add("q", 3)
    r3 = mq.reserve("q")
    mq.drop("q")
    with pytest.raises(ValueError, match="message"):
        mq.nack(r3)
    assert not mq.exists("q")


def test_ack_wrong_type(mq: MessageQueue) -> None:
    with pytest.raises(TypeError, match="message"):
        mq.ack("not a message")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="message"):
        mq.ack(Message(12345, "q", None, 0.0, 1))


def test_blocked_reserve_wakes_on_add(mq: MessageQueue) -> None:
    t, results = in_thread(lambda: mq.reserve("q", timeout=60))
    wait_blocked(mq, "q", getters=1)
    mq.add("q", "x")
    join(t)
    assert results[0][0] == "ok" and results[0][1].body == "x"


# -- subscribe ----------------------------------------------------------------------------------


def test_subscribe_runs_in_adding_thread_before_add_returns(mq: MessageQueue) -> None:
    calls: List[Any] = []
    main = threading.current_thread()

    def callback(name: str) -> None:
        # visible and outside every lock: reading the queue does not deadlock
        calls.append(
            (name, threading.current_thread() is main, mq.count(name), mq.oldest(name, remove=False))
        )

    unsubscribe = mq.subscribe("q", callback)
    mq.add("q", "x")
    assert calls == [("q", True, 1, "x")]
    mq.add("other", "y")
    assert len(calls) == 1
    unsubscribe()
    unsubscribe()  # twice does nothing
    mq.add("q", "z")
    assert len(calls) == 1


def test_subscribe_any_queue_and_from_other_threads(mq: MessageQueue) -> None:
    calls: List[Any] = []
    mq.subscribe(None, lambda name: calls.append((name, threading.current_thread().name)))
    mq.add("a", 1)
    t = threading.Thread(target=lambda: mq.add("b", 2), name="adder")
    t.start()
    join(t)
    assert calls == [("a", threading.current_thread().name), ("b", "adder")]


def test_subscriber_may_add_and_take(mq: MessageQueue) -> None:
    def callback(name: str) -> None:
        if name == "in":
            mq.add("out", mq.get("in", timeout=5))

    mq.subscribe("in", callback)
    mq.add("in", "x")
    assert mq.all("in") == []
    assert mq.all("out") == ["x"]


def test_raising_subscriber_is_logged_and_changes_nothing(
    mq: MessageQueue, caplog: pytest.LogCaptureFixture
) -> None:
    later: List[str] = []

    def bad(name: str) -> None:
        raise RuntimeError("boom")

    mq.subscribe("q", bad)
    mq.subscribe("q", later.append)
    with caplog.at_level(logging.ERROR):
        i = mq.add("q", "x")
    assert isinstance(i, int)
    assert mq.all("q") == ["x"]
    assert later == ["q"]  # the other subscribers still run
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is RuntimeError
    assert "boom" in caplog.text and "Traceback" in caplog.text


def test_subscribe_bad_callback(mq: MessageQueue) -> None:
    with pytest.raises(TypeError, match="callback"):
        mq.subscribe("q", "not callable")  # type: ignore[arg-type]


# -- close ----------------------------------------------------------------------------------------


def test_close_wakes_blocked_get_reserve_and_add() -> None:
    mq = MessageQueue()
    mq.declare("full", maxlen=1, overflow="block")
    mq.add("full", 0)
    t1, r1 = in_thread(lambda: mq.get("q", timeout=120))
    t2, r2 = in_thread(lambda: mq.reserve("r", timeout=120))
    t3, r3 = in_thread(lambda: mq.add("full", 1, timeout=120))
    t4, r4 = in_thread(lambda: mq.get("q"))  # no timeout at all
    wait_blocked(mq, "q", getters=2)
    wait_blocked(mq, "r", getters=1)
    wait_blocked(mq, "full", putters=1)
    mq.close()
    for t in (t1, t2, t3, t4):
        join(t)
    for results in (r1, r2, r3, r4):
        assert results[0][0] == "raised"
        assert isinstance(results[0][1], ShutDown)


def test_every_call_after_close_raises_shutdown(clock: Any) -> None:
    mq = MessageQueue(clock=clock)
    mq.add("q", 1)
    mq.add("q", 2)
    r = mq.reserve("q")
    mq.close()
    mq.close()  # idempotent
    assert mq.closed
    calls = [
        lambda: mq.add("q", 3),
        lambda: mq.add("q", 3, delay=1),
        lambda: mq.add("new", 3),
        lambda: mq.declare("q"),
        lambda: mq.oldest("q"),
        lambda: mq.oldest("q", remove=False),
        lambda: mq.oldest("q", default=None),
        lambda: mq.newest("q"),
        lambda: mq.newest("q", remove=False),
        lambda: mq.get("q"),
        lambda: mq.get("q", timeout=0),
        lambda: mq.reserve("q"),
        lambda: mq.reserve("q", timeout=0),
        lambda: mq.ack(r),
        lambda: mq.nack(r),
        lambda: mq.count("q"),
        lambda: mq.count("nope"),
        lambda: mq.exists("q"),
        lambda: mq.all("q"),
        lambda: mq.messages("q"),
        lambda: mq.queues(),
        lambda: mq.stats("q"),
        lambda: mq.clear("q"),
        lambda: mq.drop("q"),
        lambda: mq.subscribe("q", print),
        lambda: mq.view("q"),
        lambda: mq.compact(),
    ]
    for call in calls:
        with pytest.raises(ShutDown):
            call()


def test_context_manager_closes() -> None:
    with MessageQueue() as mq:
        mq.add("q", 1)
    assert mq.closed
    with pytest.raises(ShutDown):
        mq.count("q")


# -- bad arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "exc", "name"),
    [
        ({"overflow": "nope"}, ValueError, "overflow"),
        ({"maxlen": 0}, ValueError, "maxlen"),
        ({"maxlen": -1}, ValueError, "maxlen"),
        ({"maxlen": 1.5}, TypeError, "maxlen"),
        ({"maxlen": True}, TypeError, "maxlen"),
        ({"max_age": -1}, ValueError, "max_age"),
        ({"max_age": 0}, ValueError, "max_age"),
        ({"max_age": "1"}, TypeError, "max_age"),
        pytest.param({"durable": True}, ValueError, "durable",
                     marks=memory_only("declare(durable=...) is accepted and ignored (the server's AOF)")),
        ({"durable": "yes"}, TypeError, "durable"),
    ],
)
def test_bad_declare_names_the_argument_and_changes_nothing(
    mq: MessageQueue, kwargs: dict, exc: type, name: str
) -> None:
    mq.declare("q", maxlen=2, overflow="reject")
    mq.add("q", 1)
    with pytest.raises(exc, match=name):
        mq.declare("q", **kwargs)
    with pytest.raises(exc, match=name):
        mq.declare("fresh", **kwargs)
    assert not mq.exists("fresh")
    assert mq.queues() == ["q"]
    mq.add("q", 2)
    with pytest.raises(Full):
        mq.add("q", 3)  # maxlen and overflow unchanged
    assert mq.all("q") == [1, 2]


def test_bad_add_get_reserve_nack_arguments(mq: MessageQueue) -> None:
    mq.add("q", 1)
    last = mq.add("q", 2)
    cases = [
        (lambda: mq.add("q", 3, delay=-1), ValueError, "delay"),
        (lambda: mq.add("q", 3, delay="1"), TypeError, "delay"),
        (lambda: mq.add("q", 3, timeout=-1), ValueError, "timeout"),
        (lambda: mq.add("new", 3, delay=-1), ValueError, "delay"),
        (lambda: mq.get("q", timeout=-1), ValueError, "timeout"),
        (lambda: mq.reserve("q", timeout=-1), ValueError, "timeout"),
        (lambda: mq.reserve("q", lease=-1), ValueError, "lease"),
        (lambda: mq.add(1, 3), TypeError, "queue"),
    ]
    for call, exc, name in cases:
        with pytest.raises(exc, match=name):
            call()
    assert mq.all("q") == [1, 2]
    assert mq.queues() == ["q"]
    assert mq.stats("q").reserved == 0
    r = mq.reserve("q")
    with pytest.raises(ValueError, match="delay"):
        mq.nack(r, delay=-1)
    assert mq.stats("q").reserved == 1
    mq.ack(r)
    assert mq.add("q", 3) == last + 1  # no id was used by the failed calls


@memory_only("stats().durable reports the server's AOF; declare(durable=...) is ignored")
def test_durability_of_in_memory_queue(mq: MessageQueue) -> None:
    mq.declare("q", durable=False)
    mq.declare("q", durable=None)
    assert mq.stats("q").durable is False


def test_constructor_arguments() -> None:
    with pytest.raises(TypeError, match="store"):
        MessageQueue(store=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="clock"):
        MessageQueue(clock=1.0)  # type: ignore[arg-type]


def test_an_add_while_a_getter_waits_on_an_unknown_queue_makes_it_exist() -> None:
    """A waiting getter's placeholder is no queue; the add that wakes it creates the queue."""
    with MessageQueue() as mq:
        t, results = in_thread(lambda: mq.get("new", timeout=60))
        wait_blocked(mq, "new", getters=1)
        assert not mq.exists("new") and mq.queues() == []
        mq.add("new", "x")
        join(t)
        assert results == [("ok", "x")]
        assert mq.exists("new") and mq.queues() == ["new"] and mq.stats("new").added == 1


@pytest.mark.parametrize("overflow", ["reject", "block"])
def test_reject_or_block_without_a_maxlen_is_refused(mq: MessageQueue, overflow: str) -> None:
    with pytest.raises(ValueError, match="maxlen"):  # a new queue
        mq.declare("new", overflow=overflow)
    assert not mq.exists("new")
    mq.add("q", 1)
    with pytest.raises(ValueError, match="maxlen"):  # an existing unbounded queue
        mq.declare("q", overflow=overflow)
    mq.declare("q", maxlen=2, overflow=overflow)  # with one: accepted
    with pytest.raises(ValueError, match="maxlen"):  # and its maxlen cannot be taken away
        mq.declare("q", maxlen=None)
    assert mq.stats("q").ready == 1 and mq.all("q") == [1]
