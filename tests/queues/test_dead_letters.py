"""Retries and dead letters: ``declare(max_attempts=, dead_letter=)`` (issue 13, DESIGN 3).

A message whose reservation ends without an ack (nack, lease lapse, restart) after it
was reserved ``max_attempts`` times leaves its queue: to the ``dead_letter`` queue (same
body, a new id, as an add there) or nowhere; counted in ``stats().dead`` and logged.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, List

import pytest
from conftest import ManualClock
from helpers import WAIT, in_thread, join
from queue_core import wait_blocked

from unidist_queue import FileStore, Message, MessageQueue, QueueAPI, SerializationError


@pytest.fixture
def mq(either_mq: QueueAPI) -> QueueAPI:
    """The contract runs on both backends (DESIGN 12): see ``either_mq`` in conftest.py."""
    return either_mq

LOGGER = "unidist_queue.queues"


def fail(mq: MessageQueue, queue: str, times: int, **nack: Any) -> Message:
    """Reserve and nack the oldest message of ``queue`` ``times`` times; the last reservation."""
    for _ in range(times):
        m = mq.reserve(queue, timeout=0)
        mq.nack(m, **nack)
    return m


# -- the nack path ---------------------------------------------------------------------------


def test_a_nack_past_max_attempts_moves_the_message(
    mq: MessageQueue, caplog: pytest.LogCaptureFixture
) -> None:
    mq.declare("jobs", max_attempts=2, dead_letter="dlq")
    first = mq.add("jobs", {"n": 1})
    mq.add("jobs", "next")
    with caplog.at_level(logging.WARNING, LOGGER):
        m = fail(mq, "jobs", 1)
        assert (m.id, m.attempts) == (first, 1) and mq.all("jobs") == [{"n": 1}, "next"]
        assert not caplog.records
        last = fail(mq, "jobs", 1, delay=60)  # a nack's delay does not apply to a dead message
    assert last.attempts == 2
    assert mq.all("jobs") == ["next"] and mq.stats("jobs").delayed == 0
    moved = mq.messages("dlq")
    assert [(m.body, m.attempts) for m in moved] == [({"n": 1}, 0)]
    assert moved[0].id > first  # a new id, as an add
    assert (mq.stats("jobs").dead, mq.stats("dlq").added, mq.stats("dlq").dead) == (1, 1, 0)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert f"message {first} of queue 'jobs'" in record.getMessage()
    assert f"moved to queue 'dlq' as message {moved[0].id}" in record.getMessage()


def test_without_dead_letter_the_message_is_dropped(
    mq: MessageQueue, caplog: pytest.LogCaptureFixture
) -> None:
    mq.declare("q", max_attempts=1)
    mq.add("q", "poison")
    with caplog.at_level(logging.WARNING, LOGGER):
        fail(mq, "q", 1)
    assert mq.all("q") == [] and mq.queues() == ["q"]
    assert mq.stats("q").dead == 1
    assert "dropped (no dead_letter)" in caplog.text


def test_ack_and_nacks_below_max_attempts_change_nothing(mq: MessageQueue) -> None:
    mq.declare("q", max_attempts=3, dead_letter="dlq")
    mq.add("q", "a")
    fail(mq, "q", 2)
    m = mq.reserve("q", timeout=0)
    mq.ack(m)
    assert (mq.stats("q").dead, mq.exists("dlq")) == (0, False)


def test_nack_many_moves_some_and_returns_the_others(mq: MessageQueue) -> None:
    mq.declare("q", max_attempts=2, dead_letter="dlq")
    mq.add_many("q", ["a", "b", "c"])
    m = mq.reserve("q", timeout=0)  # "a": attempt 1
    mq.nack(m)
    batch = mq.reserve_many("q", 3, timeout=0)  # "a": attempt 2, "b" and "c": 1
    mq.nack_many(batch)
    assert mq.all("q") == ["b", "c"] and mq.all("dlq") == ["a"]
    assert mq.stats("q").dead == 1


def test_max_attempts_none_turns_retries_off(mq: MessageQueue) -> None:
    mq.declare("q", max_attempts=1, dead_letter="dlq")
    mq.declare("q", max_attempts=None)
    mq.add("q", "a")
    fail(mq, "q", 3)
    assert mq.all("q") == ["a"] and not mq.exists("dlq")


def test_an_expired_message_expires_rather_than_moving(cmq: MessageQueue, clock: ManualClock) -> None:
    cmq.declare("q", max_attempts=1, dead_letter="dlq", max_age=5)
    cmq.add("q", "old")
    m = cmq.reserve("q", timeout=0)
    clock.advance(10)
    cmq.nack(m)
    s = cmq.stats("q")
    assert (s.expired, s.dead, cmq.exists("dlq")) == (1, 0, False)


# -- the dead-letter queue ----------------------------------------------------------------------


def test_the_dead_letter_queue_keeps_its_options_and_rejects_when_full(
    mq: MessageQueue, caplog: pytest.LogCaptureFixture
) -> None:
    mq.declare("dlq", maxlen=1, overflow="reject")
    mq.add("dlq", "already there")
    mq.declare("q", max_attempts=1, dead_letter="dlq")
    mq.add("q", "poison")
    with caplog.at_level(logging.WARNING, LOGGER):
        fail(mq, "q", 1)
    assert mq.all("dlq") == ["already there"] and mq.all("q") == []
    assert (mq.stats("q").dead, mq.stats("dlq").added) == (1, 1)
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and "is full" in record.getMessage()


def test_a_full_drop_oldest_dead_letter_queue_evicts(mq: MessageQueue) -> None:
    mq.declare("dlq", maxlen=2)
    mq.add_many("dlq", ["x", "y"])
    mq.declare("q", max_attempts=1, dead_letter="dlq")
    mq.add("q", "poison")
    fail(mq, "q", 1)
    assert mq.all("dlq") == ["y", "poison"] and mq.stats("dlq").dropped == 1


def test_a_full_block_dead_letter_queue_takes_it_all_the_same(mq: MessageQueue) -> None:
    mq.declare("dlq", maxlen=1, overflow="block")
    mq.add("dlq", "x")
    mq.declare("q", max_attempts=1, dead_letter="dlq")
    mq.add("q", "poison")
    fail(mq, "q", 1)  # nobody could wait for room: it joins, the excess stays until consumed
    assert mq.all("dlq") == ["x", "poison"]


def test_subscribers_of_the_dead_letter_queue_hear_of_a_move(mq: MessageQueue) -> None:
    heard: List[str] = []
    mq.declare("q", max_attempts=1, dead_letter="dlq")
    mq.add("q", "poison")
    mq.subscribe("dlq", heard.append)
    fail(mq, "q", 1)
    assert heard == ["dlq"]


def test_a_getter_blocked_on_the_dead_letter_queue_wakes(mq: MessageQueue) -> None:
    mq.declare("q", max_attempts=1, dead_letter="dlq")
    mq.add("q", "poison")
    m = mq.reserve("q", timeout=0)
    t, results = in_thread(lambda: mq.get("dlq", timeout=WAIT))
    wait_blocked(mq, "dlq", getters=1)
    mq.nack(m)
    join(t)
    assert results == [("ok", "poison")]


def test_a_getter_blocked_on_the_dead_letter_queue_wakes_when_a_lease_lapses(mq: MessageQueue) -> None:
    """Nobody touches ``q``: the getter's own timer (the next due change of the queues that
    feed ``dlq``) finds the lapsed lease and the move."""
    mq.declare("q", max_attempts=1, dead_letter="dlq")
    mq.add("q", "poison")
    t, results = in_thread(lambda: mq.get("dlq", timeout=6 * WAIT))  # join() gives up long before
    wait_blocked(mq, "dlq", getters=1)
    mq.reserve("q", timeout=0, lease=0.05)
    join(t)
    assert results == [("ok", "poison")]


def test_logging_happens_outside_the_lock(mq: MessageQueue) -> None:
    """A log handler that calls the MessageQueue would deadlock if the line were logged
    under the queue's lock."""
    seen: List[int] = []

    class Looking(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(mq.count("dlq"))

    handler = Looking(logging.WARNING)
    logging.getLogger("unidist_queue").addHandler(handler)  # either backend's logger
    try:
        mq.declare("q", max_attempts=1, dead_letter="dlq")
        mq.add("q", "poison")
        t, results = in_thread(lambda: fail(mq, "q", 1))
        join(t)
    finally:
        logging.getLogger("unidist_queue").removeHandler(handler)
    assert results[0][0] == "ok" and seen == [1]


# -- the lease path ------------------------------------------------------------------------------


def test_a_lease_lapse_past_max_attempts_moves_it_when_due(cmq: MessageQueue, clock: ManualClock) -> None:
    cmq.declare("q", max_attempts=2, dead_letter="dlq")
    cmq.declare("dlq")
    cmq.add("q", "slow")
    cmq.reserve("q", timeout=0, lease=1)
    clock.advance(2)  # lapsed: back in "q", attempt 1 of 2
    m = cmq.reserve("q", timeout=0, lease=1)
    assert m.attempts == 2
    assert cmq.next_due("dlq") == clock() + 1  # the lease of the queue that feeds it
    clock.advance(2)
    assert cmq.count("dlq") == 1  # looking at the dead-letter queue alone sees the move
    moved = cmq.messages("dlq")[0]
    assert (moved.body, moved.enqueued_at) == ("slow", clock() - 1)  # moved when the lease ended
    assert cmq.stats("q").dead == 1 and cmq.count("q") == 0
    with pytest.raises(ValueError, match="message"):
        cmq.ack(m)


@pytest.mark.parametrize(
    ("look", "expected"),
    [
        (lambda mq: mq.count("dead"), 1),
        (lambda mq: mq.exists("dead"), True),
        (lambda mq: mq.all("dead"), ["job"]),
        (lambda mq: mq.stats("dead").ready, 1),
        (lambda mq: mq.oldest("dead", remove=False, default=None), "job"),
        (lambda mq: mq.clear("dead"), 1),
        (lambda mq: mq.drop("dead"), True),
    ],
    ids=["count", "exists", "all", "stats", "oldest", "clear", "drop"],
)
def test_a_due_move_into_a_queue_not_made_yet_is_seen_by_every_call(
    cmq: MessageQueue, clock: ManualClock, look: Any, expected: Any
) -> None:
    # the dead-letter queue does not exist until the move makes it: a call that names it
    # sees the move due before it, whether or not anything looked at "q" since
    cmq.declare("q", max_attempts=1, dead_letter="dead")
    cmq.add("q", "job")
    cmq.reserve("q", lease=0.5)
    clock.advance(0.5)
    assert look(cmq) == expected
    assert cmq.stats("q").dead == 1


def test_dropping_the_source_unlinks_the_dead_letter_queue(cmq: MessageQueue, clock: ManualClock) -> None:
    cmq.declare("q", max_attempts=1, dead_letter="dlq")
    cmq.declare("dlq")
    cmq.add("q", "a")
    cmq.reserve("q", timeout=0, lease=1)
    assert cmq.next_due("dlq") is not None
    cmq.drop("q")
    assert cmq.next_due("dlq") is None
    clock.advance(2)
    assert cmq.count("dlq") == 0


# -- bad arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"dead_letter": "q"}, ValueError, "dead_letter"),
        ({"max_attempts": 0}, ValueError, "max_attempts"),
        ({"max_attempts": -1}, ValueError, "max_attempts"),
        ({"max_attempts": True}, TypeError, "max_attempts"),
        ({"max_attempts": 1.5}, TypeError, "max_attempts"),
        ({"max_attempts": "2"}, TypeError, "max_attempts"),
        ({"dead_letter": 5}, TypeError, "dead_letter"),
    ],
)
def test_bad_retry_options_are_refused(mq: MessageQueue, kwargs: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        mq.declare("q", **kwargs)
    assert not mq.exists("q")


# -- durability -----------------------------------------------------------------------------------


def opened(path: str, clock: Any = None) -> MessageQueue:
    if clock is None:
        return MessageQueue(FileStore(path, fsync="never"))
    return MessageQueue(FileStore(path, fsync="never"), clock=clock)


def test_options_and_moves_survive_a_restart_exactly_once(path: str) -> None:
    with opened(path) as mq:
        mq.declare("q", max_attempts=2, dead_letter="dlq")
        mq.add("q", "a")
        fail(mq, "q", 1)
    with opened(path) as mq:  # the options were recorded: the second failure moves it
        m = fail(mq, "q", 1)
        assert m.attempts == 2
        assert mq.all("dlq") == ["a"] and mq.stats("q").dead == 1
        new_id = mq.messages("dlq")[0].id
    for _ in range(2):  # replayed once: no duplicate, and not counted again
        with opened(path) as mq:
            assert [(m.id, m.body) for m in mq.messages("dlq")] == [(new_id, "a")]
            assert mq.all("q") == [] and mq.stats("q").dead == 0 and mq.stats("q").reserved == 0
            assert mq.add("other", 0) > new_id


def test_a_move_survives_compaction(path: str) -> None:
    with opened(path) as mq:
        mq.declare("q", max_attempts=1, dead_letter="dlq")
        mq.add("q", "a")
        fail(mq, "q", 1)
        mq.compact()
    with opened(path) as mq:
        assert mq.all("dlq") == ["a"] and mq.all("q") == []
        mq.add("q", "b")
        fail(mq, "q", 1)  # the options came back from the snapshot
        assert mq.all("dlq") == ["a", "b"]


def test_a_restart_ends_a_reservation_past_max_attempts(path: str, caplog: pytest.LogCaptureFixture) -> None:
    with opened(path) as mq:
        mq.declare("q", max_attempts=2, dead_letter="dlq")
        mq.add_many("q", ["a", "b"])
        fail(mq, "q", 1)
        m = mq.reserve("q", timeout=0)  # "a", attempt 2: still reserved at close
        assert m.attempts == 2
        mq.reserve("q", timeout=0)  # "b", attempt 1: back to the front at the restart
    with caplog.at_level(logging.WARNING, LOGGER), opened(path) as mq:
        assert mq.all("q") == ["b"] and mq.all("dlq") == ["a"]
        assert mq.stats("q").dead == 1  # the move happened at this open, and counts here
    assert "moved to queue 'dlq'" in caplog.text
    with opened(path) as mq:
        assert mq.all("q") == ["b"] and mq.all("dlq") == ["a"] and mq.stats("q").dead == 0


def test_a_lease_that_lapsed_while_closed_moves_at_open(path: str, clock: ManualClock) -> None:
    with opened(path, clock) as mq:
        mq.declare("q", max_attempts=1)
        mq.add("q", "a")
        mq.reserve("q", timeout=0, lease=1)
    clock.advance(5)
    with opened(path, clock) as mq:
        assert mq.all("q") == [] and mq.stats("q").dead == 1
    with opened(path, clock) as mq:
        assert mq.all("q") == [] and mq.stats("q").dead == 0


def test_a_durable_queue_into_a_memory_dead_letter_queue(path: str) -> None:
    with opened(path) as mq:
        mq.declare("dlq", durable=False)
        mq.declare("q", max_attempts=1, dead_letter="dlq")
        mq.add("q", "a")
        fail(mq, "q", 1)
        assert mq.all("dlq") == ["a"]
    with opened(path) as mq:  # the message left the durable queue; the other was memory only
        assert mq.all("q") == [] and not mq.exists("dlq")


def test_a_memory_queue_into_a_durable_dead_letter_queue(path: str) -> None:
    """The body is encoded outside the lock, just after the move, then added as an add."""
    with opened(path) as mq:
        mq.declare("q", durable=False, max_attempts=1, dead_letter="dlq")
        mq.add("q", "a")
        fail(mq, "q", 1)
        assert mq.all("dlq") == ["a"] and mq.stats("dlq").durable and mq.stats("q").dead == 1
    with opened(path) as mq:
        assert mq.all("dlq") == ["a"] and not mq.exists("q")


def test_a_body_the_dead_letter_queue_cannot_store_is_dropped(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with opened(path) as mq:
        mq.declare("q", durable=False, max_attempts=1, dead_letter="dlq")
        mq.add("q", threading.Lock())  # cannot be pickled
        with caplog.at_level(logging.WARNING, LOGGER):
            fail(mq, "q", 1)
        assert mq.all("dlq") == [] and mq.stats("q").dead == 1
    assert "cannot be stored" in caplog.text
    assert SerializationError.__name__ in caplog.text or "pickle" in caplog.text.lower()


def test_memory_queues_on_a_persistent_store_record_nothing(path: str) -> None:
    with opened(path) as mq:
        mq.declare("dlq", durable=False)
        mq.declare("q", durable=False, max_attempts=1, dead_letter="dlq")
        mq.add("q", "a")
        fail(mq, "q", 1)
        assert mq.all("dlq") == ["a"] and mq.stats("q").dead == 1
    with opened(path) as mq:
        assert mq.queues() == []


def test_a_memory_queue_into_a_full_durable_dead_letter_queue(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with opened(path) as mq:
        mq.declare("dlq", maxlen=1, overflow="reject")
        mq.add("dlq", "x")
        mq.declare("q", durable=False, max_attempts=1, dead_letter="dlq")
        mq.add("q", "a")
        with caplog.at_level(logging.WARNING, LOGGER):
            fail(mq, "q", 1)
        assert mq.all("dlq") == ["x"] and mq.stats("q").dead == 1
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and "is full" in record.getMessage()


def test_a_move_a_failed_call_left_behind_happens_at_close(path: str, clock: ManualClock) -> None:
    """The lease lapses inside a nack_many that then refuses its argument: the move into
    the durable dead-letter queue (its body still to encode) is made by close()."""
    with opened(path, clock) as mq:
        mq.declare("q", durable=False, max_attempts=1, dead_letter="dlq")
        mq.add_many("q", ["a", "b"])
        mq.reserve("q", timeout=0, lease=1)
        current = mq.reserve("q", timeout=0)
        clock.advance(2)
        with pytest.raises(TypeError, match="message"):
            mq.nack_many([current, "not a message"])  # type: ignore[list-item]
    with opened(path, clock) as mq:
        assert mq.all("dlq") == ["a"]


def test_a_nack_moves_the_message_behind_what_fell_due_in_the_dead_letter_queue(
    cmq: MessageQueue, clock: ManualClock
) -> None:
    """A delayed message of the dead-letter queue that fell due before the nack joined it
    then, so the moved message lands behind it (found by the timed-changes state machine)."""
    cmq.declare("q", max_attempts=1, dead_letter="dlq")
    early = cmq.add("dlq", "delayed", delay=0.5)
    clock.advance(0.5)
    cmq.add("q", "poison")
    cmq.nack(cmq.reserve("q", timeout=0))
    assert cmq.all("dlq") == ["delayed", "poison"]
    assert cmq.reserve("dlq", timeout=0).id == early
