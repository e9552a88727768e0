"""Delays, leases, nack delays and next_due on the server's clock (DESIGN 3, 12).

Real short times; every wait has a deadline, no assertion depends on how fast it went.
"""

from __future__ import annotations

import time

import pytest
from doorbell_helpers import WAIT, eventually
from rq_helpers import SHORT

from unidist_queue import Empty, RedisMessageQueue


def test_a_delayed_message_joins_the_back_when_due(rmq: RedisMessageQueue) -> None:
    before = time.time()
    rmq.add("q", "later", delay=SHORT)
    rmq.add("q", "now")
    assert rmq.all("q") == ["now"] and rmq.stats("q").delayed == 1
    due = rmq.next_due("q")
    assert due is not None and due > before
    assert rmq.oldest("q") == "now"
    assert rmq.get("q", timeout=WAIT) == "later"  # a blocked get wakes when it falls due
    assert rmq.next_due("q") is None


def test_a_lapsed_lease_returns_to_the_front_in_id_order(rmq: RedisMessageQueue) -> None:
    rmq.add_many("q", [1, 2, 3])
    first, second = rmq.reserve_many("q", 2, lease=SHORT)
    assert rmq.all("q") == [3] and rmq.stats("q").reserved == 2
    again = rmq.reserve("q", timeout=WAIT, lease=60)  # 3 is ready
    assert again.body == 3
    m = rmq.reserve("q", timeout=WAIT, lease=60)  # wakes when the leases lapse
    assert (m.body, m.attempts) == (1, 2)
    assert rmq.all("q") == [2]
    with pytest.raises(ValueError):
        rmq.ack(first)  # its lease ran out
    with pytest.raises(ValueError):
        rmq.ack(second)


def test_a_nack_with_delay_returns_to_the_front_when_due(rmq: RedisMessageQueue) -> None:
    rmq.add_many("q", ["a", "b"])
    m = rmq.reserve("q", lease=60)
    rmq.nack(m, delay=SHORT)
    assert rmq.all("q") == ["b"] and rmq.stats("q").delayed == 1
    rmq.add("q", "c")
    eventually(lambda: rmq.count("q") == 3)
    assert rmq.all("q") == ["a", "b", "c"]
    assert rmq.messages("q")[0].attempts == 1


def test_extend_keeps_a_long_task_single(rmq: RedisMessageQueue, other: RedisMessageQueue) -> None:
    rmq.add("q", "task")
    m = rmq.reserve("q", lease=SHORT)
    for _ in range(4):
        rmq.extend(m, 60)
        time.sleep(SHORT / 2)
    with pytest.raises(Empty):
        other.reserve("q", timeout=SHORT)  # still held: nobody else gets it
    rmq.ack(m)
    assert rmq.stats("q").removed == 1


def test_extend_of_a_lapsed_lease_is_refused(rmq: RedisMessageQueue) -> None:
    rmq.add("q", 1)
    m = rmq.reserve("q", lease=SHORT)
    eventually(lambda: rmq.count("q") == 1)
    with pytest.raises(ValueError):
        rmq.extend(m, 60)
    with pytest.raises(ValueError, match="lease"):
        rmq.extend(m, -1)


def test_a_delay_much_longer_than_a_lease_delivers_once(rmq: RedisMessageQueue,
                                                        other: RedisMessageQueue) -> None:
    rmq.add("q", "once", delay=4 * SHORT)
    got = []
    deadline = time.monotonic() + WAIT
    while not got and time.monotonic() < deadline:
        for client in (rmq, other):
            try:
                m = client.reserve("q", timeout=SHORT / 3, lease=SHORT / 3)
            except Empty:
                continue
            client.ack(m)
            got.append(m.body)
    assert got == ["once"]
    assert rmq.count("q") == 0 and rmq.stats("q").delayed == 0


def test_a_backlog_beyond_the_promotion_bound_is_counted_and_kept_in_order(rmq: RedisMessageQueue) -> None:
    from unidist_queue.redisq._scripts import LIMIT

    n = 2 * LIMIT + 50
    rmq.add_many("q", range(n), delay=SHORT)
    assert rmq.count("q") == 0 and rmq.stats("q").delayed == n
    eventually(lambda: rmq.count("q") == n)
    s = rmq.stats("q")
    assert (s.ready, s.delayed) == (n, 0)
    assert rmq.oldest("q") == 0  # a bounded promotion joined the oldest due first
    assert rmq.all("q") == list(range(1, n))  # all() applies every due change
    assert rmq.next_due("q") is None
