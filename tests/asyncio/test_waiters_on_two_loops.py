"""Waiters on two event loops in two threads share one queue (issue 14, DESIGN 11).

A view is not bound to a loop: coroutines of two loops (each in its own thread) and a
blocked thread wait on one queue, and every item put (by threads, or by coroutines of
either loop) is delivered exactly once.
"""

from __future__ import annotations

import asyncio
from typing import Any, List

import pytest
from async_helpers import LoopThread, bounded, in_thread, join, settle

from unidist_queue import MessageQueue, QueueAPI


@pytest.fixture
def mq(either_mq: QueueAPI) -> QueueAPI:
    """The contract runs on both backends (DESIGN 12): see ``either_mq`` in conftest.py."""
    return either_mq

STOP = "stop"


async def consume(get: Any, n_tasks: int) -> List[Any]:
    """``n_tasks`` tasks of the running loop take items with ``get()`` until each takes
    a ``STOP``; return every other item taken."""

    async def one() -> List[Any]:
        got = []
        while (x := await get()) != STOP:
            got.append(x)
        return got

    results = await asyncio.gather(*(one() for _ in range(n_tasks)))
    return [x for r in results for x in r]


@pytest.mark.parametrize("how", ["aview", "aget"])
def test_coroutines_of_two_loops_and_a_thread_take_each_item_once(mq: MessageQueue, how: str) -> None:
    aq = mq.aview("q")

    def get() -> Any:
        return aq.get() if how == "aview" else mq.aget("q")

    thread_got: List[Any] = []

    def thread_consumer() -> None:
        while (x := mq.get("q", timeout=30)) != STOP:
            thread_got.append(x)

    with LoopThread("a") as a, LoopThread("b") as b:
        fa = a.submit(consume(get, 5))
        fb = b.submit(consume(get, 5))
        consumer = in_thread(thread_consumer)
        producers = [in_thread(lambda k=k: [aq.put_nowait((k, i)) for i in range(300)]) for k in range(3)]
        join(*producers)
        for _ in range(11):  # one per consumer
            aq.put_nowait(STOP)
        got = fa.result(30) + fb.result(30)
        join(consumer)
    received = got + thread_got
    assert sorted(received) == [(k, i) for k in range(3) for i in range(300)]
    assert mq.count("q") == 0


def test_coroutines_of_one_loop_feed_coroutines_of_another(mq: MessageQueue) -> None:
    aq = mq.aview("q", maxsize=4)  # the producers wait for room too

    async def produce(k: int) -> None:
        for i in range(200):
            await aq.put((k, i))

    async def producers() -> None:
        await asyncio.gather(*(produce(k) for k in range(3)))
        for _ in range(4):
            await aq.put(STOP)

    with LoopThread("consumers") as c, LoopThread("producers") as p:
        consumed = c.submit(consume(aq.get, 4))
        p.call(producers())
        received = consumed.result(30)
    assert sorted(received) == [(k, i) for k in range(3) for i in range(200)]


def test_parked_waiters_of_two_loops_are_woken_by_one_thread(mq: MessageQueue) -> None:
    aq = mq.aview("q")

    async def park(n: int) -> List[asyncio.Task[Any]]:
        tasks = [asyncio.create_task(mq.aget("q")) for _ in range(n)]
        await settle()
        assert not any(t.done() for t in tasks)
        return tasks

    async def results(tasks: List[asyncio.Task[Any]]) -> List[Any]:
        return list(await bounded(asyncio.gather(*tasks)))

    with LoopThread("a") as a, LoopThread("b") as b:
        ta = a.call(park(3))
        tb = b.call(park(3))
        join(in_thread(lambda: [aq.put_nowait(i) for i in range(6)]))
        got = a.call(results(ta)) + b.call(results(tb))
    assert sorted(got) == list(range(6))
