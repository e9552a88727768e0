"""A timed change made by one client wakes the blocked callers of another to re-time
their wait (issue 15): a delayed add, a delayed nack, a lease on a queue that feeds a
dead-letter queue. Remote subscribers hear only of messages that became ready."""

from __future__ import annotations

import threading
from typing import Any, List

from doorbell_helpers import WAIT, eventually
from queue_core import wait_blocked
from rq_helpers import SHORT

from unidist_queue import RedisMessageQueue


def blocked(rmq: RedisMessageQueue, queue: str, got: List[Any]) -> threading.Thread:
    """A thread blocked in ``get(queue)`` far longer than the test (returns once it waits)."""
    t = threading.Thread(target=lambda: got.append(rmq.get(queue, timeout=30 * WAIT)))
    t.start()
    wait_blocked(rmq, queue, getters=1)
    return t


def test_a_delayed_add_by_another_client_wakes_a_blocked_get(
        rmq: RedisMessageQueue, other: RedisMessageQueue) -> None:
    got: List[Any] = []
    t = blocked(rmq, "q", got)
    other.add("q", "soon", delay=SHORT)
    t.join(WAIT)
    assert got == ["soon"]


def test_a_delayed_nack_by_another_client_wakes_a_blocked_get(
        rmq: RedisMessageQueue, other: RedisMessageQueue) -> None:
    other.add("q", "again")
    m = other.reserve("q", timeout=0, lease=60)
    got: List[Any] = []
    t = blocked(rmq, "q", got)
    other.nack(m, delay=SHORT)
    t.join(WAIT)
    assert got == ["again"]


def test_a_lease_on_a_feeder_times_the_dead_letter_getter(
        rmq: RedisMessageQueue, other: RedisMessageQueue) -> None:
    rmq.declare("q", max_attempts=1, dead_letter="dlq")
    rmq.add("q", "poison")
    got: List[Any] = []
    t = blocked(rmq, "dlq", got)
    other.reserve("q", timeout=0, lease=SHORT)  # nobody touches q again
    t.join(WAIT)
    assert got == ["poison"]


def test_remote_subscribers_hear_only_of_ready_messages(
        rmq: RedisMessageQueue, other: RedisMessageQueue) -> None:
    heard: List[str] = []
    rmq.subscribe("q", heard.append)
    rmq.subscribe("marker", heard.append)
    other.add("q", 1)
    other.add("q", 2, delay=60)
    other.get("q", timeout=0)
    other.add("marker", 1)  # notifications of one client arrive in order
    eventually(lambda: "marker" in heard)
    assert heard == ["q", "marker"]
