"""Regression tests for the durability defects of issue 11 that live in MessageQueue.

2: a failed add must not evict; 5: ids are never reused after a torn tail; 6 and 7:
timed changes take effect at their due time, whatever ran in between (DESIGN 3).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import List

import pytest
from conftest import ManualClock

from unidist_queue import FileStore, Message, MessageQueue, StoreError
from unidist_queue.store import archive


def _fail_adds(fd: int, data: bytes) -> int:
    """An archive write that fails, as a full disk would, when it holds an add record."""
    off = 0
    while off < len(data):
        if data[off + 16 : off + 17] == b"A":  # frame: len u32, crc u32, seq u64, then the op byte
            raise OSError(28, "No space left on device")
        off += 16 + int.from_bytes(data[off : off + 4], "little")
    return os.write(fd, data)


def _archive(path: Path) -> Path:
    (found,) = sorted(path.glob("archive.*"))
    return found


# -- 2: a failed add still evicts --------------------------------------------------------


@pytest.mark.parametrize("fsync", ["never", "always"])
def test_a_failed_add_evicts_nothing_live_or_after_reopen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: str
) -> None:
    with MessageQueue(FileStore(tmp_path, fsync=fsync)) as mq:
        mq.declare("q", maxlen=3)
        for i in range(3):
            mq.add("q", i)
        with monkeypatch.context() as m:
            m.setattr(archive, "write", _fail_adds)
            with pytest.raises(StoreError):
                mq.add("q", 3)
        assert mq.all("q") == [0, 1, 2]
        assert mq.stats("q").dropped == 0
    with MessageQueue(FileStore(tmp_path)) as mq:
        assert mq.all("q") == [0, 1, 2]


def test_a_failed_add_after_due_changes_keeps_those_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: ManualClock
) -> None:
    """Timed changes that were due before the add happened whether or not it succeeds."""
    with MessageQueue(FileStore(tmp_path, fsync="never"), clock=clock) as mq:
        mq.declare("q", maxlen=2)
        mq.add("q", "a")
        mq.add("q", "late", delay=1)
        clock.advance(2)
        with monkeypatch.context() as m:
            m.setattr(archive, "write", _fail_adds)
            with pytest.raises(StoreError):
                mq.add("q", "b")
        assert mq.all("q") == ["a", "late"]
    with MessageQueue(FileStore(tmp_path), clock=clock) as mq:
        assert mq.all("q") == ["a", "late"]


# -- 5: an id is reused after a torn tail -------------------------------------------------


def _crash_image(src: Path, dst: Path) -> Path:
    """A copy of a store's files as a process killed now would leave them."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("LOCK"))
    return dst


@pytest.mark.parametrize("cut", [3, "record"])
def test_ids_are_not_reused_after_a_torn_or_lost_tail(tmp_path: Path, cut: object) -> None:
    """Five adds return ids 1-5; the last one's record is torn (or lost whole) by a crash."""
    with MessageQueue(FileStore(tmp_path / "live", fsync="never")) as mq:
        mq.add("q", 0)
        size = os.path.getsize(_archive(tmp_path / "live"))
        ids = [1] + [mq.add("q", i) for i in range(1, 5)]
        image = _crash_image(tmp_path / "live", tmp_path / "image")
    assert ids == [1, 2, 3, 4, 5]
    path = _archive(image)
    data = path.read_bytes()
    path.write_bytes(data[:-3] if cut == 3 else data[:size])
    with MessageQueue(FileStore(image)) as mq:
        assert mq.all("q") == ([0, 1, 2, 3] if cut == 3 else [0])
        new = mq.add("q", "new")
    assert new > 5
    with MessageQueue(FileStore(image)) as mq:
        assert [m.id for m in mq.messages("q")][-1] == new
        assert mq.add("q", "newer") == new + 1  # after a clean close, no gap


def test_ids_go_on_without_a_gap_after_a_clean_close(tmp_path: Path) -> None:
    for expected in ([1, 2], [3, 4], [5, 6]):
        with MessageQueue(FileStore(tmp_path)) as mq:
            assert [mq.add("q", "x"), mq.add("q", "y")] == expected


# -- 6 and 7: timed changes take effect at their due time -------------------------------


def _a_lease_that_ran_out(mq: MessageQueue, clock: ManualClock) -> Message:
    """"x" added and reserved with a 1 s lease; then the clock moves 5 s on."""
    mq.add("q", "x")
    m = mq.reserve("q", lease=1)
    clock.advance(5)
    return m


@pytest.mark.parametrize("look", [False, True])
def test_an_ack_after_the_lease_ran_out_is_refused_whatever_ran_before(
    cmq: MessageQueue, clock: ManualClock, look: bool
) -> None:
    m = _a_lease_that_ran_out(cmq, clock)
    if look:
        assert cmq.count("q") == 1
    with pytest.raises(ValueError, match="message"):
        cmq.ack(m)
    assert cmq.all("q") == ["x"]
    again = cmq.reserve("q")
    assert again.attempts == 2


@pytest.mark.parametrize("look", [False, True])
def test_nack_extend_and_other_settles_see_due_changes_first(
    cmq: MessageQueue, clock: ManualClock, look: bool
) -> None:
    m = _a_lease_that_ran_out(cmq, clock)
    if look:
        cmq.stats("q")
    with pytest.raises(ValueError):
        cmq.nack(m)
    assert cmq.all("q") == ["x"]


@pytest.mark.parametrize("look", [False, True])
def test_a_read_never_decides_whether_a_nacked_message_is_dropped(
    cmq: MessageQueue, clock: ManualClock, look: bool
) -> None:
    cmq.declare("q", maxlen=2)
    cmq.add("q", "x")
    cmq.add("q", "y")
    x = cmq.reserve("q")
    cmq.add("q", "z", delay=1)
    clock.advance(5)
    if look:
        assert cmq.count("q") == 2
    cmq.nack(x)
    assert cmq.all("q") == ["x", "y", "z"]


def _five_seconds_looking(mq: MessageQueue, clock: ManualClock, looks: List[float]) -> None:
    """Move the clock 5 s on, looking at queue "q" after each step of ``looks`` on the way."""
    for step in looks:
        clock.advance(step)
        mq.count("q")
    clock.advance(5 - sum(looks))


@pytest.mark.parametrize("looks", [[], [1.5], [0.5, 1.0, 1.0]])
def test_timed_changes_apply_in_due_order(cmq: MessageQueue, clock: ManualClock, looks: List[float]) -> None:
    """x leased until t+1, z delayed until t+2, maxlen 2: in due order x returns, then z evicts it."""
    cmq.declare("q", maxlen=2)
    cmq.add("q", "x")
    cmq.add("q", "y")
    cmq.reserve("q", lease=1)
    cmq.add("q", "z", delay=2)
    _five_seconds_looking(cmq, clock, looks)
    assert cmq.all("q") == ["y", "z"]


@pytest.mark.parametrize("looks", [[], [2.5]])
def test_a_delayed_message_that_expires_after_it_fell_due_was_promoted_first(
    cmq: MessageQueue, clock: ManualClock, looks: List[float]
) -> None:
    """Due at t+2, expiring at t+3: at t+2 it joined and evicted the oldest, whatever looked."""
    cmq.declare("q", maxlen=1)
    cmq.add("q", "old", delay=0.5)  # enqueued at t, expires at t+3 too, but was promoted at t+0.5
    cmq.declare("q", max_age=3)
    cmq.add("q", "late", delay=2)
    _five_seconds_looking(cmq, clock, looks)
    st = cmq.stats("q")
    assert (cmq.all("q"), st.dropped, st.expired) == ([], 1, 1)


def test_reopening_applies_due_changes_before_releasing_reservations(
    tmp_path: Path, clock: ManualClock
) -> None:
    with MessageQueue(FileStore(tmp_path, fsync="never"), clock=clock) as mq:
        mq.declare("q", maxlen=2)
        mq.add("q", "x")
        mq.add("q", "y")
        mq.reserve("q")
        mq.add("q", "z", delay=1)
    clock.advance(5)
    with MessageQueue(FileStore(tmp_path), clock=clock) as mq:
        assert mq.all("q") == ["x", "y", "z"]
    with MessageQueue(FileStore(tmp_path), clock=clock) as mq:
        assert mq.all("q") == ["x", "y", "z"]
