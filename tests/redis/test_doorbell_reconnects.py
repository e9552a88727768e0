"""A lost pub/sub connection is made again, and every generation changes (issue 15).

``CLIENT KILL TYPE pubsub`` from another client drops the doorbell's connection: the
notifier connects again, subscribes again to every queue and pattern, and changes every
generation (notifications may have been missed), so blocked waiters look again;
notifications then flow as before. A server that cannot be reached makes ``watch`` fail
with ``StoreError`` (redis-py's error as the cause), and close still ends the notifier.
"""

from __future__ import annotations

import asyncio
import queue as stdlib_queue
import threading
from typing import Iterator

import pytest
import redis
from doorbell_helpers import WAIT, LoopThread, channel_of, doorbell, eventually, in_thread, notify
from redisserver import free_port

from unidist_queue.errors import StoreError
from unidist_queue.redisq._doorbell import Doorbell


@pytest.fixture(params=["no retries", "redis-py retries"])
def bell(redis_url: str, request: pytest.FixtureRequest) -> Iterator[Doorbell]:
    """A doorbell on a client without retries (as the queue's) or with redis-py's."""
    with doorbell(redis_url, retries=request.param == "redis-py retries") as b:
        yield b


def kill_pubsub(client: redis.Redis) -> None:
    assert client.client_kill_filter(_type="pubsub") >= 1


def test_a_killed_connection_wakes_every_waiter(bell: Doorbell, pub: redis.Redis) -> None:
    bell.watch("a")
    ga, gb = bell.generation("a"), bell.generation("b")  # "b" is not even watched
    barrier = threading.Barrier(2)

    def blocked() -> bool:
        barrier.wait(WAIT)
        return bell.wait("a", ga, WAIT)

    with LoopThread() as lt:
        coroutine = lt.submit(bell.await_change("b", gb, WAIT))
        lt.submit(asyncio.sleep(0)).result(WAIT)
        thread = in_thread(blocked)
        barrier.wait(WAIT)
        kill_pubsub(pub)
        assert thread.result(WAIT) is True
        assert coroutine.result(WAIT) is True


def test_notifications_flow_again_after_a_reconnection(bell: Doorbell, pub: redis.Redis) -> None:
    calls: stdlib_queue.Queue[str] = stdlib_queue.Queue()
    bell.listen(None, calls.put)
    bell.watch("q")
    for _ in range(2):  # twice: the second connection is replaced as the first was
        g = bell.generation("q")
        kill_pubsub(pub)
        assert bell.wait("q", g, WAIT) is True  # lost: every generation changed
        eventually(lambda: pub.pubsub_numpat() == 1
                   and dict(pub.pubsub_numsub(channel_of("q")))[channel_of("q").encode()] == 1)
        bell.watch("q")  # subscribed again: returns at once
        g = bell.generation("q")
        notify(pub, "q")
        assert bell.wait("q", g, WAIT) is True
        assert calls.get(timeout=WAIT) == "q"


def test_watch_during_a_reconnection_waits_for_the_new_connection(bell: Doorbell, pub: redis.Redis) -> None:
    bell.watch("a")
    kill_pubsub(pub)
    bell.watch("b")  # whether sent on the old connection or the new one, it is confirmed
    bell.watch("a")
    g = bell.generation("b")
    notify(pub, "b")
    assert bell.wait("b", g, WAIT) is True


def test_an_unreachable_server_fails_watch_with_storeerror() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with doorbell(url) as bell:
        with pytest.raises(StoreError) as caught:
            bell.watch("q")
        assert isinstance(caught.value.__cause__, redis.ConnectionError)
        with pytest.raises(StoreError):
            bell.listen(None, print)  # the notifier keeps trying; each call reports
