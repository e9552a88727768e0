"""Blocked threads wake when their queue's generation changes (issue 15, REDIS.md).

A PUBLISH from another connection on a watched queue's channel, or a local ``ring``,
changes the generation and wakes the threads waiting on that queue; a wait times out
with ``False``; ``watch`` returns only once the server confirmed the subscription, so a
notification published right after it is never missed.
"""

from __future__ import annotations

import threading

import pytest
import redis
from doorbell_helpers import WAIT, in_thread, notify, subscribers

from unidist_queue.redisq._doorbell import Doorbell


def test_a_publish_from_another_connection_wakes_a_blocked_thread(bell: Doorbell, pub: redis.Redis) -> None:
    bell.watch("q")
    g = bell.generation("q")
    started = threading.Event()

    def blocked() -> bool:
        started.set()
        return bell.wait("q", g, WAIT)

    woken = in_thread(blocked)
    assert started.wait(WAIT)
    notify(pub, "q")
    assert woken.result(WAIT) is True
    assert bell.generation("q") != g


def test_watch_returns_once_the_server_confirmed(bell: Doorbell, pub: redis.Redis) -> None:
    for i in range(20):  # a notification right after watch returns is never missed
        g = bell.generation(f"q{i}")
        bell.watch(f"q{i}")
        assert subscribers(pub, f"q{i}") == 1
        notify(pub, f"q{i}")
        assert bell.wait(f"q{i}", g, WAIT) is True


def test_a_notification_wakes_only_its_queue(bell: Doorbell, pub: redis.Redis) -> None:
    bell.watch("a")
    bell.watch("b")
    ga, gb = bell.generation("a"), bell.generation("b")
    notify(pub, "a")
    assert bell.wait("a", ga, WAIT) is True
    assert bell.generation("b") == gb
    assert bell.wait("b", gb, 0) is False


def test_ring_wakes_local_waiters_without_the_server(bell: Doorbell) -> None:
    g = bell.generation("q")  # never watched: no connection needed
    barrier = threading.Barrier(3)

    def blocked() -> bool:
        barrier.wait(WAIT)
        return bell.wait("q", g, WAIT)

    woken = [in_thread(blocked), in_thread(blocked)]
    barrier.wait(WAIT)
    bell.ring("q")
    assert [w.result(WAIT) for w in woken] == [True, True]
    assert bell.generation("q") == g + 1
    assert not [t for t in threading.enumerate() if t.name == "unidist_queue-doorbell"]


def test_a_wait_times_out_with_false(bell: Doorbell) -> None:
    bell.watch("q")
    g = bell.generation("q")
    assert bell.wait("q", g, 0) is False
    assert bell.wait("q", g, 0.05) is False
    assert bell.wait("q", g - 1, 0) is True  # already changed: no wait at all


def test_a_bad_timeout_is_refused(bell: Doorbell) -> None:
    with pytest.raises(ValueError, match="timeout"):
        bell.wait("q", 0, -1)
    with pytest.raises(TypeError, match="timeout"):
        bell.wait("q", 0, "1")  # type: ignore[arg-type]


def test_bad_arguments_are_refused(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    with pytest.raises(ValueError, match="channel_of"):
        Doorbell(client.pubsub, lambda q: q + ":n", b"x")
    with pytest.raises(TypeError, match="origin"):
        Doorbell(client.pubsub, "p:".__add__, "x")  # type: ignore[arg-type]
    client.close()
