"""Timed changes wake waiting coroutines (issue 14, DESIGN 11).

A message whose ``delay`` falls due, a ``nack`` delay ending and a lease lapsing make a
message ready with nobody calling the queue: a waiting ``aget``/``areserve``/
``areserve_many``/view ``get`` must wake for it (as a blocked ``get`` does), whether the
change was scheduled before or while it waited. So must the view's ``join`` when an
item put through it expires (or a thread evicts it). Each wait's own timeout is far
longer than the delay (bounded, never measured).
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine, Dict

import pytest
from async_helpers import LoopThread, bounded, in_thread, join, run, settle

from unidist_queue import MessageQueue, QueueAPI


@pytest.fixture
def mq(either_mq: QueueAPI) -> QueueAPI:
    """The contract runs on both backends (DESIGN 12): see ``either_mq`` in conftest.py."""
    return either_mq

SHORT = 0.05  # the delays and leases; the waits' timeouts are 600 times longer

TAKES: Dict[str, Callable[[MessageQueue], Coroutine[Any, Any, Any]]] = {
    "aview.get": lambda mq: mq.aview("q").get(),
    "aget": lambda mq: mq.aget("q", timeout=30),
    "areserve": lambda mq: mq.areserve("q", timeout=30),
    "areserve_many": lambda mq: mq.areserve_many("q", 5, timeout=30),
}


def body_of(taken: Any) -> Any:
    if isinstance(taken, list):
        assert len(taken) == 1
        taken = taken[0]
    return getattr(taken, "body", taken)


@pytest.mark.parametrize("take", list(TAKES))
def test_a_delayed_add_made_while_waiting_wakes_the_coroutine(mq: MessageQueue, take: str) -> None:
    async def main() -> Any:
        task = asyncio.create_task(TAKES[take](mq))
        await settle()
        assert not task.done()
        join(in_thread(lambda: mq.add("q", "later", delay=SHORT)))
        return await bounded(task)

    assert body_of(run(main)) == "later"


@pytest.mark.parametrize("take", list(TAKES))
def test_a_delay_scheduled_before_the_wait_wakes_it(mq: MessageQueue, take: str) -> None:
    mq.add("q", "later", delay=SHORT)
    assert body_of(run(lambda: TAKES[take](mq))) == "later"


@pytest.mark.parametrize("take", ["aget", "areserve"])
def test_a_lapsed_lease_wakes_the_coroutine(mq: MessageQueue, take: str) -> None:
    mq.add("q", "x")
    assert mq.reserve("q", lease=SHORT).attempts == 1

    taken = run(lambda: TAKES[take](mq))
    assert body_of(taken) == "x"
    if take == "areserve":
        assert taken.attempts == 2


def test_a_delayed_nack_made_while_waiting_wakes_the_coroutine(mq: MessageQueue) -> None:
    mq.add("q", "x")

    async def main() -> Any:
        first = await mq.areserve("q", timeout=0)
        task = asyncio.create_task(mq.areserve("q", timeout=30))
        await settle()
        assert not task.done()
        join(in_thread(lambda: mq.nack(first, delay=SHORT)))
        return await bounded(task)

    m = run(main)
    assert (m.body, m.attempts) == ("x", 2)


def test_a_delayed_add_wakes_a_coroutine_of_another_loop(mq: MessageQueue) -> None:
    async def waiting() -> asyncio.Task[Any]:
        task = asyncio.create_task(mq.aget("q"))
        await settle()
        return task

    async def result(task: asyncio.Task[Any]) -> Any:
        return await bounded(task)

    with LoopThread("waiter") as w:
        task = w.call(waiting())
        mq.add("q", "later", delay=SHORT)  # from this thread, no loop here
        assert w.call(result(task)) == "later"


def test_coroutines_waiting_on_several_delays_each_wake(mq: MessageQueue) -> None:
    async def main() -> Any:
        tasks = [asyncio.create_task(mq.aget("q", timeout=30)) for _ in range(3)]
        await settle()
        for i in range(3):
            mq.add("q", i, delay=SHORT * (3 - i))
        return await bounded(asyncio.gather(*tasks))

    assert sorted(run(main)) == [0, 1, 2]


def test_join_is_woken_when_the_items_put_expire(mq: MessageQueue) -> None:
    mq.declare("q", max_age=SHORT)
    aq = mq.aview("q")

    async def main() -> None:
        aq.put_nowait("x")  # never taken: it expires, undelivered
        await bounded(aq.join())

    run(main)
    assert mq.count("q") == 0 and mq.stats("q").expired == 1


def test_join_is_woken_when_a_thread_evicts_the_items_put(mq: MessageQueue) -> None:
    mq.declare("q", maxlen=1)
    aq = mq.aview("q")

    async def main() -> None:
        aq.put_nowait("x")
        joiner = asyncio.create_task(aq.join())
        await settle()
        assert not joiner.done()
        join(in_thread(lambda: mq.add("q", "y")))  # evicts "x": it left undelivered
        await bounded(joiner)

    run(main)
    assert mq.all("q") == ["y"]
