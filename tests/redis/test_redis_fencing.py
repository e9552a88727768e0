"""ack/nack/extend are fenced by attempts and the lease; batches are all or none (DESIGN 3)."""

from __future__ import annotations

import pytest
from doorbell_helpers import eventually
from rq_helpers import SHORT

from unidist_queue import RedisMessageQueue


def test_a_stale_ack_after_a_re_reservation_is_refused(rmq: RedisMessageQueue,
                                                       other: RedisMessageQueue) -> None:
    rmq.add("q", "x")
    stale = rmq.reserve("q", lease=SHORT)
    eventually(lambda: rmq.count("q") == 1)
    fresh = other.reserve("q", lease=60)
    assert fresh.id == stale.id and fresh.attempts == stale.attempts + 1
    with pytest.raises(ValueError, match="not reserved"):
        rmq.ack(stale)
    with pytest.raises(ValueError):
        rmq.nack(stale)
    other.ack(fresh)
    assert rmq.stats("q").removed == 1


def test_settling_twice_is_refused(rmq: RedisMessageQueue) -> None:
    rmq.add_many("q", [1, 2])
    m = rmq.reserve("q", lease=60)
    rmq.ack(m)
    with pytest.raises(ValueError):
        rmq.ack(m)
    n = rmq.reserve("q", lease=60)
    rmq.nack(n)
    with pytest.raises(ValueError):
        rmq.nack(n)


def test_batches_are_all_or_none(rmq: RedisMessageQueue) -> None:
    rmq.add_many("a", [1, 2])
    rmq.add("b", 3)
    ms = [*rmq.reserve_many("a", 5, lease=60), rmq.reserve("b", lease=60)]
    assert [m.body for m in ms] == [1, 2, 3]
    with pytest.raises(ValueError):
        rmq.ack_many([ms[0], ms[0]])
    with pytest.raises(ValueError):
        rmq.nack_many([ms[1], ms[0], ms[1]])
    rmq.ack(ms[2])
    with pytest.raises(ValueError):
        rmq.ack_many(ms)  # the last is settled already: none of the others is
    assert rmq.stats("a").reserved == 2
    rmq.nack_many(ms[:1], delay=60)  # 1 returns in a minute
    rmq.nack_many(ms[1:2])
    with pytest.raises(ValueError, match="delay"):
        rmq.nack_many([], delay=-1)
    assert rmq.all("a") == [2] and rmq.stats("a").delayed == 1
    assert [m.attempts for m in rmq.messages("a")] == [1]
    again = rmq.reserve_many("a", 2, lease=60)
    assert [m.attempts for m in again] == [2]
    rmq.ack_many(again)
    rmq.ack_many([])
    assert rmq.stats("a").removed == 1 and rmq.stats("b").removed == 1


def test_settling_a_cleared_or_dropped_message_is_refused(rmq: RedisMessageQueue) -> None:
    rmq.add_many("q", [1, 2])
    a, b = rmq.reserve_many("q", 2, lease=60)
    rmq.clear("q")
    with pytest.raises(ValueError):
        rmq.ack(a)
    rmq.drop("q")
    with pytest.raises(ValueError):
        rmq.nack(b)
