"""RedisMessageQueue.declare: maxlen with each overflow policy, max_age, and checking (DESIGN 3)."""

from __future__ import annotations

import time

import pytest
from doorbell_helpers import WAIT, eventually, in_thread
from rq_helpers import SHORT

from unidist_queue import Full, RedisMessageQueue


def test_drop_oldest_keeps_the_newest(rmq: RedisMessageQueue) -> None:
    rmq.declare("q", maxlen=3)
    rmq.add_many("q", range(5))
    assert rmq.all("q") == [2, 3, 4]
    rmq.add_many("q", range(10, 15))  # a batch longer than maxlen: its last ones stay
    assert rmq.all("q") == [12, 13, 14] and rmq.stats("q").dropped == 7
    rmq.declare("q", maxlen=1)  # a smaller maxlen evicts at once
    assert rmq.all("q") == [14]


def test_reject_refuses_what_does_not_fit(rmq: RedisMessageQueue) -> None:
    rmq.declare("q", maxlen=2, overflow="reject")
    rmq.add("q", 1)
    with pytest.raises(Full):
        rmq.add_many("q", [2, 3])
    assert rmq.all("q") == [1]
    rmq.add("q", 2)
    with pytest.raises(Full):
        rmq.add("q", 3)
    rmq.add("q", 3, delay=60)  # a delayed add is not ready: no overflow at the add
    assert rmq.all("q") == [1, 2]


def test_block_waits_for_room(rmq: RedisMessageQueue, other: RedisMessageQueue) -> None:
    rmq.declare("q", maxlen=1, overflow="block")
    rmq.add("q", 1)
    with pytest.raises(Full):
        rmq.add("q", 2, timeout=0)
    with pytest.raises(Full):
        rmq.add("q", 2, timeout=SHORT)
    with pytest.raises(ValueError, match="never fits"):
        rmq.add_many("q", [1, 2])
    fut = in_thread(lambda: rmq.add("q", 2, timeout=WAIT))
    time.sleep(SHORT)  # not a threshold: the add may or may not be waiting yet
    assert other.get("q", timeout=WAIT) == 1  # another client makes room
    fut.result(WAIT)
    assert rmq.all("q") == [2]


def test_overflow_needs_a_maxlen(rmq: RedisMessageQueue) -> None:
    with pytest.raises(ValueError, match="needs a maxlen"):
        rmq.declare("q", overflow="reject")
    assert not rmq.exists("q")
    rmq.declare("q", maxlen=2, overflow="block")
    with pytest.raises(ValueError, match="maxlen=None"):
        rmq.declare("q", maxlen=None)
    rmq.declare("q", overflow="drop_oldest", maxlen=None, durable=True)  # durable: accepted, ignored
    rmq.add_many("q", range(4))
    assert rmq.count("q") == 4


def test_max_age_expires_ready_delayed_and_returned(rmq: RedisMessageQueue) -> None:
    rmq.add("old", "before max_age was set")
    rmq.declare("old", max_age=SHORT)
    rmq.declare("q", max_age=SHORT)
    rmq.add("q", "ready")
    rmq.add("q", "delayed", delay=2 * SHORT)
    rmq.add("q", "reserved")
    m = rmq.reserve("q", lease=60)
    assert m.body == "ready"
    eventually(lambda: rmq.count("old") == 0 and rmq.count("q") == 0)
    eventually(lambda: rmq.stats("q").delayed == 0)
    rmq.nack(m)  # returns past max_age: expired
    s = rmq.stats("q")
    assert (s.ready, s.delayed, s.reserved, s.expired) == (0, 0, 0, 3)
    rmq.declare("q", max_age=None)
    rmq.add("q", "kept")
    assert rmq.all("q") == ["kept"]


def test_options_are_shared_by_clients(rmq: RedisMessageQueue, other: RedisMessageQueue) -> None:
    rmq.declare("q", maxlen=1, overflow="reject")
    other.add("q", 1)
    with pytest.raises(Full):
        other.add("q", 2)
    other.declare("q", maxlen=5)  # only the options passed change
    rmq.add("q", 2)
    assert rmq.all("q") == [1, 2]
