"""The batch methods, extend and next_due (DESIGN 3), and every way a message becomes ready.

add_many, reserve_many, ack_many, nack_many: atomic, all or nothing, one archive write
for a durable queue. Subscribers and blocked callers hear of every way a message becomes
ready: add, add_many, nack, a nack's delay coming due, a lease lapsing, a delayed add
coming due.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, List

import pytest
from conftest import ManualClock
from helpers import in_thread, join

from unidist_queue import Empty, FileStore, Full, Message, MessageQueue, QueueAPI, StoreError
from unidist_queue.store import archive


@pytest.fixture
def mq(either_mq: QueueAPI) -> QueueAPI:
    """The contract runs on both backends (DESIGN 12): see ``either_mq`` in conftest.py."""
    return either_mq


class CountWrites:
    """Counts the archive's writes (each is one ``os.write`` of one or more records)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writes = 0
        monkeypatch.setattr(archive, "write", self)

    def __call__(self, fd: int, data: bytes) -> int:
        self.writes += 1
        return os.write(fd, data)


# -- add_many -------------------------------------------------------------------------------


def test_add_many_appends_in_order_and_returns_increasing_ids(cmq: MessageQueue) -> None:
    first = cmq.add("q", "before")
    ids = cmq.add_many("q", iter(["a", "b", "c"]))
    assert ids == [first + 1, first + 2, first + 3]
    assert cmq.all("q") == ["before", "a", "b", "c"]
    assert cmq.stats("q").added == 4


def test_add_many_of_nothing_changes_nothing(cmq: MessageQueue) -> None:
    assert cmq.add_many("q", []) == []
    assert not cmq.exists("q")


def test_add_many_drop_oldest_keeps_the_last_maxlen(cmq: MessageQueue) -> None:
    cmq.declare("q", maxlen=3)
    cmq.add_many("q", [1, 2])
    cmq.add_many("q", [3, 4])
    assert cmq.all("q") == [2, 3, 4]
    cmq.add_many("q", [5, 6, 7, 8, 9])
    assert cmq.all("q") == [7, 8, 9]
    assert cmq.stats("q").dropped == 6


def test_add_many_reject_adds_none_unless_all_fit(cmq: MessageQueue) -> None:
    cmq.declare("q", maxlen=3, overflow="reject")
    cmq.add_many("q", [1, 2])
    with pytest.raises(Full):
        cmq.add_many("q", [3, 4])
    assert cmq.all("q") == [1, 2]
    cmq.add_many("q", [3])
    assert cmq.all("q") == [1, 2, 3]


def test_add_many_block_waits_for_room_for_the_whole_batch(cmq: MessageQueue) -> None:
    cmq.declare("q", maxlen=3, overflow="block")
    cmq.add_many("q", [1, 2])
    with pytest.raises(ValueError, match="messages"):
        cmq.add_many("q", [1, 2, 3, 4])
    with pytest.raises(Full):
        cmq.add_many("q", [3, 4], timeout=0)
    t, results = in_thread(lambda: cmq.add_many("q", [3, 4], timeout=60))
    cmq.oldest("q")
    join(t)
    assert results and cmq.all("q") == [2, 3, 4]


def test_add_many_with_a_delay_delays_every_message(cmq: MessageQueue, clock: ManualClock) -> None:
    cmq.add_many("q", [1, 2], delay=5)
    assert cmq.count("q") == 0 and cmq.stats("q").delayed == 2
    clock.advance(5)
    assert cmq.all("q") == [1, 2]


def test_add_many_is_one_archive_write_and_survives_a_reopen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with MessageQueue(FileStore(tmp_path, fsync="never")) as mq:
        mq.add("q", 0)
        writes = CountWrites(monkeypatch)
        ids = mq.add_many("q", range(1, 101))
        assert writes.writes == 1
    with MessageQueue(FileStore(tmp_path)) as mq:
        assert mq.all("q") == list(range(101))
        assert [m.id for m in mq.messages("q")][1:] == ids


def test_a_failed_add_many_adds_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with MessageQueue(FileStore(tmp_path, fsync="never")) as mq:
        mq.declare("q", maxlen=3)
        mq.add_many("q", [0, 1, 2])
        with monkeypatch.context() as m:
            m.setattr(archive, "write", lambda fd, data: os.write(fd, data[: len(data) // 2]))
            with pytest.raises(StoreError):
                mq.add_many("q", [3, 4])
        assert mq.all("q") == [0, 1, 2]
    with MessageQueue(FileStore(tmp_path)) as mq:
        assert mq.all("q") == [0, 1, 2]


# -- reserve_many, ack_many, nack_many --------------------------------------------------------


def test_reserve_many_takes_up_to_n_of_the_oldest(cmq: MessageQueue) -> None:
    cmq.add_many("q", "abcde")
    got = cmq.reserve_many("q", 3)
    assert [m.body for m in got] == ["a", "b", "c"] and all(m.attempts == 1 for m in got)
    assert [m.body for m in cmq.reserve_many("q", 10)] == ["d", "e"]
    with pytest.raises(Empty):
        cmq.reserve_many("q", 1, timeout=0)


@pytest.mark.parametrize(
    ("n", "error"), [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_reserve_many_refuses_a_bad_n(cmq: MessageQueue, n: Any, error: type) -> None:
    with pytest.raises(error, match="n"):
        cmq.reserve_many("q", n)


def test_reserve_many_waits_for_a_message(cmq: MessageQueue) -> None:
    t, results = in_thread(lambda: cmq.reserve_many("q", 5, timeout=60))
    cmq.add("q", "x")
    join(t)
    assert [(kind, [m.body for m in got]) for kind, got in results] == [("ok", ["x"])]


def test_ack_many_settles_reservations_of_several_queues(cmq: MessageQueue) -> None:
    cmq.add_many("a", [1, 2])
    cmq.add("b", 3)
    held = [*cmq.reserve_many("a", 2), cmq.reserve("b")]
    cmq.ack_many(held)
    assert cmq.stats("a").removed == 2 and cmq.stats("b").removed == 1
    assert cmq.stats("a").reserved == 0


@pytest.mark.parametrize("how", ["ack_many", "nack_many"])
def test_settling_many_is_all_or_nothing(cmq: MessageQueue, how: str) -> None:
    cmq.add_many("q", [1, 2, 3])
    held = cmq.reserve_many("q", 3)
    cmq.ack(held[1])
    settle: Callable[[List[Message]], None] = getattr(cmq, how)
    with pytest.raises(ValueError, match="message"):
        settle(held)  # held[1] is settled already
    with pytest.raises(ValueError, match="message"):
        settle([held[0], held[0]])  # twice
    assert cmq.stats("q").reserved == 2
    settle([held[0], held[2]])
    assert cmq.stats("q").reserved == 0


def test_nack_many_returns_them_to_the_front_in_id_order(cmq: MessageQueue, clock: ManualClock) -> None:
    cmq.add_many("q", [1, 2, 3, 4])
    held = cmq.reserve_many("q", 3)
    cmq.nack_many(reversed(held))
    assert cmq.all("q") == [1, 2, 3, 4]
    held = cmq.reserve_many("q", 2)
    cmq.nack_many(held, delay=5)
    assert cmq.all("q") == [3, 4]
    clock.advance(5)
    assert cmq.all("q") == [1, 2, 3, 4]
    assert [m.attempts for m in cmq.messages("q")] == [2, 2, 1, 0]


def test_batches_are_one_archive_write_and_replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with MessageQueue(FileStore(tmp_path, fsync="never")) as mq:
        mq.add_many("q", range(10))
        writes = CountWrites(monkeypatch)
        held = mq.reserve_many("q", 6)
        mq.ack_many(held[:3])
        mq.nack_many(held[3:])
        assert writes.writes == 3
        live = [(m.id, m.body, m.attempts) for m in mq.messages("q")]
    with MessageQueue(FileStore(tmp_path)) as mq:
        assert [(m.id, m.body, m.attempts) for m in mq.messages("q")] == live


# -- extend and next_due --------------------------------------------------------------------


def test_extend_keeps_a_long_task_reserved(cmq: MessageQueue, clock: ManualClock) -> None:
    cmq.add("q", "long")
    m = cmq.reserve("q", lease=10)
    clock.advance(8)
    cmq.extend(m, 10)
    clock.advance(8)
    assert cmq.count("q") == 0
    cmq.ack(m)


def test_extend_gives_a_reservation_without_a_lease_an_end(cmq: MessageQueue, clock: ManualClock) -> None:
    cmq.add("q", "x")
    m = cmq.reserve("q")
    cmq.extend(m, 5)
    clock.advance(6)
    assert cmq.all("q") == ["x"]
    with pytest.raises(ValueError, match="message"):
        cmq.extend(m, 5)  # its lease ran out: no longer current


def test_extend_after_the_lease_ran_out_is_refused(cmq: MessageQueue, clock: ManualClock) -> None:
    cmq.add("q", "x")
    m = cmq.reserve("q", lease=1)
    clock.advance(2)
    with pytest.raises(ValueError, match="message"):
        cmq.extend(m, 10)
    with pytest.raises(ValueError, match="lease"):
        cmq.extend(cmq.reserve("q"), -1)


def test_extend_is_recorded(tmp_path: Path, clock: ManualClock) -> None:
    with MessageQueue(FileStore(tmp_path / "a", fsync="never"), clock=clock) as mq:
        mq.add("q", "x")
        mq.add("q", "y", delay=5)
        mq.declare("q", maxlen=1)
        m = mq.reserve("q", lease=1)
        mq.extend(m, 10)
        clock.advance(7)  # y fell due while x was still reserved: y stays, x returns after
        reader = MessageQueue(FileStore(tmp_path / "a", read_only=True), clock=clock)
        assert reader.all("q") == ["x", "y"]
        reader.close()


def test_next_due_tells_the_next_timed_change(cmq: MessageQueue, clock: ManualClock) -> None:
    start = clock()
    assert cmq.next_due("nosuch") is None
    cmq.add("q", "now")
    assert cmq.next_due("q") is None
    cmq.add("q", "later", delay=10)
    assert cmq.next_due("q") == start + 10
    cmq.reserve("q", lease=3)
    assert cmq.next_due("q") == start + 3
    cmq.declare("q", max_age=2)
    assert cmq.next_due("q") == start + 3  # nothing ready to expire
    clock.advance(3)
    assert cmq.next_due("q") == start + 10  # the lease ended at 3: "now" returned expired (at 2)
    assert cmq.stats("q").expired == 1


# -- every way a message becomes ready ---------------------------------------------------------

WAYS = ["add", "add_many", "nack", "nack with a delay", "lease lapse", "delayed add"]


def make_ready(
    mq: MessageQueue, way: str, advance: Callable[[float], None], before: Callable[[], None]
) -> None:
    """Make one message ready in queue "q" by ``way``; ``before()`` runs just before the change
    that makes it ready (for the nack and lease ways, once the message is reserved)."""
    if way in ("add", "add_many", "delayed add"):
        before()
        if way == "add":
            mq.add("q", way)
        elif way == "add_many":
            mq.add_many("q", [way])
        else:
            mq.add("q", way, delay=0.05)
            advance(0.05)
        return
    mq.add("q", way)
    held = mq.reserve("q", lease=0.05 if way == "lease lapse" else None)
    before()
    if way == "nack":
        mq.nack(held)
    elif way == "nack with a delay":
        mq.nack(held, delay=0.05)
        advance(0.05)
    else:
        advance(0.05)


@pytest.mark.parametrize("way", WAYS)
def test_subscribers_hear_of_every_way_a_message_becomes_ready(
    cmq: MessageQueue, clock: ManualClock, way: str
) -> None:
    cmq.declare("q")
    seen: List[str] = []
    cmq.subscribe("q", seen.append)
    make_ready(cmq, way, clock.advance, seen.clear)
    cmq.count("q")  # promotion is lazy: the next call that touches the queue makes it
    assert cmq.all("q") == [way]
    assert seen[-1:] == ["q"]


@pytest.mark.parametrize("taker", ["get", "reserve", "reserve_many"])
@pytest.mark.parametrize("way", WAYS)
def test_a_blocked_taker_wakes_for_every_way_a_message_becomes_ready(way: str, taker: str) -> None:
    """The taker parks on the empty queue (no timed change due) before the change is made."""
    with MessageQueue() as mq:
        mq.declare("q")
        calls = {
            "get": lambda: mq.get("q", timeout=60),
            "reserve": lambda: mq.reserve("q", timeout=60).body,
            "reserve_many": lambda: mq.reserve_many("q", 5, timeout=60)[0].body,
        }
        threads: List[Any] = []

        def park() -> None:
            threads.append(in_thread(calls[taker]))

        make_ready(mq, way, lambda seconds: None, park)
        t, results = threads[0]
        join(t)
        assert results == [("ok", way)]
