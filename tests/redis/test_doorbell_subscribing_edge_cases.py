"""Subscribing in the less common situations (issue 15).

A listener (in the notifier thread) may watch another queue; a watch waiting for the
server's confirmation raises ShutDown when the doorbell is closed; a factory or a
SUBSCRIBE that fails is reported or repaired; redis-py's health-check PONGs are
ignored.
"""

from __future__ import annotations

import queue as stdlib_queue
import threading
import time
from typing import Any, List

import pytest
import redis
from doorbell_helpers import WAIT, channel_of, in_thread, notify
from redis.backoff import NoBackoff
from redis.client import PubSub
from redis.retry import Retry

from unidist_queue.errors import ShutDown, StoreError
from unidist_queue.redisq._doorbell import Doorbell


def test_a_listener_may_watch_another_queue(bell: Doorbell, pub: redis.Redis) -> None:
    watched = threading.Event()

    def watch_b(queue: str) -> None:
        bell.watch("b")  # in the notifier thread: sent, not waited for
        watched.set()

    bell.listen("a", watch_b)
    notify(pub, "a")
    assert watched.wait(WAIT)
    bell.watch("b")  # confirmed by now, or soon
    g = bell.generation("b")
    notify(pub, "b")
    assert bell.wait("b", g, WAIT) is True


def test_close_ends_a_watch_waiting_for_its_confirmation(bell: Doorbell, pub: redis.Redis) -> None:
    bell.watch("a")
    pub.client_pause(1000, all=True)  # the server answers nothing meanwhile
    started = threading.Event()

    def watch_b() -> None:
        started.set()
        bell.watch("b")

    waiting = in_thread(watch_b)
    assert started.wait(WAIT)
    bell.close()
    with pytest.raises(ShutDown):
        waiting.result(WAIT)


def test_a_failing_factory_fails_watch_with_its_error(redis_url: str) -> None:
    def factory() -> PubSub:
        raise redis.ConnectionError("no connection today")

    bell = Doorbell(factory, channel_of, b"me")
    try:
        with pytest.raises(StoreError, match="no connection today") as caught:
            bell.watch("q")
        assert isinstance(caught.value.__cause__, redis.ConnectionError)
    finally:
        bell.close()


def test_a_failed_subscribe_is_repaired_on_a_new_connection(redis_url: str, pub: redis.Redis) -> None:
    client = redis.Redis.from_url(redis_url, retry=Retry(NoBackoff(), 0))
    fail: List[bool] = [False]
    made: List[int] = []

    class Dropping(PubSub):
        """A PubSub whose SUBSCRIBE fails once when told, as a dropped connection would."""

        def subscribe(self, *args: Any, **kwargs: Any) -> None:
            if fail[0]:
                fail[0] = False
                raise redis.ConnectionError("dropped while sending")
            super().subscribe(*args, **kwargs)

    def factory() -> PubSub:
        made.append(1)
        return Dropping(client.connection_pool)

    bell = Doorbell(factory, channel_of, b"me")
    try:
        bell.watch("a")
        g = bell.generation("a")
        fail[0] = True
        bell.watch("b")  # its SUBSCRIBE fails: a new connection subscribes to both
        assert len(made) == 2
        assert bell.generation("a") != g  # notifications may have been missed
        for q in ("a", "b"):
            g = bell.generation(q)
            notify(pub, q)
            assert bell.wait(q, g, WAIT) is True
    finally:
        bell.close()
        client.close()


def test_health_check_pongs_are_ignored(redis_url: str, pub: redis.Redis) -> None:
    client = redis.Redis.from_url(redis_url, health_check_interval=0.001)
    calls: stdlib_queue.Queue[str] = stdlib_queue.Queue()
    bell = Doorbell(client.pubsub, channel_of, b"me")
    try:
        bell.listen("q", calls.put)
        for _ in range(5):  # each read may send a PING (due): its PONG is no notification
            time.sleep(0.002)
            notify(pub, "q")
            assert calls.get(timeout=WAIT) == "q"
        assert int(pub.info("commandstats")["cmdstat_ping"]["calls"]) >= 1
        notify(pub, "q")
        assert calls.get(timeout=WAIT) == "q"
        assert calls.empty()
    finally:
        bell.close()
        client.close()
