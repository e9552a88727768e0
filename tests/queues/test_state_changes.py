"""Queue state through MessageQueue: changing max_age, expiry in mid-queue, and what a
restart keeps of max_age, delayed and reserved messages (DESIGN.md sections 3 and 8)."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import pytest
from conftest import ManualClock

from unidist_queue import FileStore, MessageQueue, QueueStats


def counts(s: QueueStats) -> Tuple[int, int, int, int]:
    return s.ready, s.delayed, s.reserved, s.expired


def reopen(path: Path, clock: ManualClock) -> MessageQueue:
    return MessageQueue(store=FileStore(path, fsync="never"), clock=clock)


def test_changing_max_age_applies_the_new_age_to_waiting_messages(
    cmq: MessageQueue, clock: ManualClock
) -> None:
    cmq.declare("q", max_age=10)
    cmq.add("q", "a")
    cmq.declare("q", max_age=100)  # longer: "a" lives on
    clock.advance(50)
    assert cmq.all("q") == ["a"]
    cmq.declare("q", max_age=20)  # shorter than its age: expired at once
    assert cmq.all("q") == []
    assert cmq.stats("q").expired == 1
    cmq.declare("q", max_age=None)
    cmq.add("q", "b")
    clock.advance(10_000)
    assert cmq.all("q") == ["b"]


def test_a_delayed_message_expires_by_its_add_time_from_the_middle_of_the_queue(
    cmq: MessageQueue, clock: ManualClock
) -> None:
    cmq.declare("q", max_age=100)
    cmq.add("q", "late", delay=10)  # enqueued at 0, joins the back at 10
    clock.advance(5)
    cmq.add("q", "b")  # enqueued at 5
    clock.advance(6)
    cmq.add("q", "c")  # enqueued at 11, after "late" joined
    assert cmq.all("q") == ["b", "late", "c"]
    clock.advance(89.5)  # 100.5: only "late" is older than 100 s
    assert cmq.all("q") == ["b", "c"]
    assert cmq.stats("q").expired == 1
    assert [cmq.oldest("q"), cmq.oldest("q")] == ["b", "c"]


def test_a_delayed_message_that_expired_stays_gone_after_a_restart(
    tmp_path: Path, clock: ManualClock
) -> None:
    with reopen(tmp_path, clock) as mq:
        mq.declare("q", max_age=5)
        mq.add("q", "never", delay=10)
        mq.add("q", "also never", delay=20)
        clock.advance(11)  # the first falls due already expired; the second still waits
        assert counts(mq.stats("q")) == (0, 1, 0, 1)
    with reopen(tmp_path, clock) as mq:
        assert counts(mq.stats("q")) == (0, 1, 0, 0)  # nothing expires again in this run
        clock.advance(10)
        assert counts(mq.stats("q")) == (0, 0, 0, 1)


@pytest.mark.parametrize("compact", [False, True], ids=["records", "snapshot"])
def test_max_age_still_applies_after_a_restart_to_returned_reservations(
    tmp_path: Path, clock: ManualClock, compact: bool
) -> None:
    with reopen(tmp_path, clock) as mq:
        mq.declare("q", max_age=100)
        mq.add("q", "reserved")  # enqueued at 0
        clock.advance(10)
        mq.add("q", "ready")  # enqueued at 10
        assert mq.reserve("q").body == "reserved"
        if compact:
            mq.compact()
    clock.advance(40)
    with reopen(tmp_path, clock) as mq:
        assert mq.all("q") == ["reserved", "ready"]  # the reservation is back at the front
        clock.advance(55)  # 105: the first is older than 100 s, the second is not
        assert mq.all("q") == ["ready"]
        assert counts(mq.stats("q")) == (1, 0, 0, 1)
        clock.advance(10)
        assert mq.all("q") == []
