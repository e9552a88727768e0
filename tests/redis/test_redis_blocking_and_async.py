"""Blocking takes and the async ones wait on the doorbell; close wakes them (DESIGN 3, 11, 12)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Coroutine

import pytest
from doorbell_helpers import WAIT, LoopThread, eventually, in_thread
from rq_helpers import SHORT

from unidist_queue import Empty, RedisMessageQueue, ShutDown


def test_a_blocked_get_is_woken_by_another_client(rmq: RedisMessageQueue, other: RedisMessageQueue) -> None:
    fut = in_thread(lambda: rmq.get("q", timeout=WAIT))
    other.add("q", "hello")
    assert fut.result(WAIT) == "hello"


def test_reserve_many_waits_then_takes_up_to_n(rmq: RedisMessageQueue, other: RedisMessageQueue) -> None:
    fut = in_thread(lambda: rmq.reserve_many("q", 3, timeout=WAIT, lease=60))
    other.add_many("q", [1, 2, 3, 4])
    msgs = fut.result(WAIT)
    assert 1 <= len(msgs) <= 3 and msgs[0].body == 1
    with pytest.raises(Empty):
        rmq.reserve_many("none", 2, timeout=SHORT)


def test_timeouts(rmq: RedisMessageQueue) -> None:
    for call in (lambda: rmq.get("q", timeout=SHORT), lambda: rmq.reserve("q", timeout=SHORT)):
        with pytest.raises(Empty):
            call()


def test_close_wakes_blocked_callers_with_shutdown(redis_url: str) -> None:
    mq = RedisMessageQueue(redis_url)
    started = threading.Barrier(2, timeout=WAIT)

    def blocked() -> object:
        started.wait()
        return mq.get("q", timeout=WAIT)

    fut = in_thread(blocked)
    started.wait()
    eventually(lambda: mq.stats("q").ready == 0)  # (a look; the getter may or may not be parked yet)
    mq.close()
    with pytest.raises(ShutDown):
        fut.result(WAIT)


def test_aget_areserve_areserve_many(rmq: RedisMessageQueue, other: RedisMessageQueue) -> None:
    async def main() -> tuple:  # type: ignore[type-arg]
        loop = asyncio.get_running_loop()
        loop.call_soon(lambda: other.add_many("q", [1, 2, 3, 4]))
        body = await rmq.aget("q", timeout=WAIT)
        m = await rmq.areserve("q", timeout=WAIT, lease=60)
        ms = await rmq.areserve_many("q", 5, timeout=WAIT, lease=60)
        with pytest.raises(Empty):
            await rmq.aget("none", timeout=SHORT)
        with pytest.raises(ValueError):
            await rmq.aget("q", timeout=-1)
        return body, m, ms

    body, m, ms = asyncio.run(main())
    assert body == 1 and m.body == 2 and [x.body for x in ms] == [3, 4]


def test_cancelling_takes_nothing(rmq: RedisMessageQueue, other: RedisMessageQueue) -> None:
    ended = []

    async def tracked(coro: Coroutine[Any, Any, Any]) -> None:
        try:
            await coro
        finally:
            ended.append(True)  # the task itself is over (its future's cancel comes earlier)

    with LoopThread() as lt:
        calls = [rmq.aget("q"), rmq.areserve("q"), rmq.areserve_many("q", 2)]
        waiting = [lt.submit(tracked(c)) for c in calls]
        time.sleep(SHORT)  # most likely parked by now (either way nothing may be taken)
        for f in waiting:
            lt.loop.call_soon_threadsafe(f.cancel)
        eventually(lambda: len(ended) == 3)
        other.add("q", "kept")
        assert rmq.messages("q")[0].attempts == 0 and rmq.all("q") == ["kept"]


def test_close_wakes_coroutines_with_shutdown(redis_url: str) -> None:
    mq = RedisMessageQueue(redis_url)
    with LoopThread() as lt:
        fut = lt.submit(mq.aget("q", timeout=WAIT))
        eventually(lambda: not fut.done())
        mq.close()
        with pytest.raises(ShutDown):
            fut.result(WAIT)
