"""``close`` wakes every waiter with ShutDown and stops the notifier (issue 15).

Blocked threads and parked coroutines (of any loop) raise ``ShutDown``; the notifier
thread ends (within about a second; the autouse fixture also checks no thread is left);
the pub/sub connection goes away; close is idempotent; a closed doorbell refuses new
waits and subscriptions.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
import redis
from doorbell_helpers import WAIT, LoopThread, eventually, in_thread, subscribers

from unidist_queue.errors import ShutDown
from unidist_queue.redisq._doorbell import Doorbell


def notifiers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "unidist_queue-doorbell"]


def test_close_wakes_threads_and_coroutines_with_shutdown(bell: Doorbell, pub: redis.Redis) -> None:
    bell.watch("q")
    g = bell.generation("q")
    barrier = threading.Barrier(2)

    def blocked() -> bool:
        barrier.wait(WAIT)
        return bell.wait("q", g, None)

    with LoopThread() as lt:
        coroutine = lt.submit(bell.await_change("q", g, None))
        lt.submit(asyncio.sleep(0)).result(WAIT)
        thread = in_thread(blocked)
        barrier.wait(WAIT)
        assert len(notifiers()) == 1
        bell.close()
        assert not notifiers()  # close waited for the notifier to end
        with pytest.raises(ShutDown):
            coroutine.result(WAIT)
        with pytest.raises(ShutDown):
            thread.result(WAIT)
    eventually(lambda: subscribers(pub, "q") == 0)


def test_close_is_idempotent_and_refuses_what_follows(bell: Doorbell) -> None:
    bell.watch("q")
    bell.close()
    bell.close()
    assert bell.closed
    with pytest.raises(ShutDown):
        bell.watch("q")
    with pytest.raises(ShutDown):
        bell.listen(None, print)
    with pytest.raises(ShutDown):
        bell.wait("q", bell.generation("q"), 0)
    with pytest.raises(ShutDown):
        asyncio.run(bell.await_change("q", bell.generation("q"), 0))
    bell.ring("q")  # only changes the generation


def test_closing_an_unused_doorbell_starts_nothing(bell: Doorbell) -> None:
    bell.close()
    assert not notifiers()


def test_close_from_concurrent_threads(bell: Doorbell) -> None:
    bell.watch("q")
    closers = [in_thread(bell.close) for _ in range(4)]
    for c in closers:
        c.result(WAIT)
    assert not notifiers()


def test_a_listener_may_close_the_doorbell(bell: Doorbell, pub: redis.Redis) -> None:
    heard = threading.Event()

    def close_it(queue: str) -> None:
        bell.close()  # from the notifier thread: does not wait for itself
        heard.set()

    bell.listen("q", close_it)
    pub.publish("uq:{t}:n:q", b"another-client:1")
    assert heard.wait(WAIT)
    eventually(lambda: not notifiers())
