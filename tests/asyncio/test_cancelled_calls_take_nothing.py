"""A cancelled call takes or puts nothing (issue 14, DESIGN 11).

``aget``, ``areserve``, ``areserve_many`` and the view's ``get`` cancelled while they wait
leave the queue as it was: a message added afterwards stays ready, and a cancelled
``areserve`` leaves its ``attempts`` unchanged. A cancelled ``put`` waiting for room puts
nothing. (A cancel racing a wake-up: test_cancelled_waiter_passes_its_wakeup_on.py.)
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine, Dict

import pytest
from async_helpers import bounded, in_thread, join, run, settle, thread_calls

from unidist_queue import MessageQueue, QueueAPI


@pytest.fixture
def mq(either_mq: QueueAPI) -> QueueAPI:
    """The contract runs on both backends (DESIGN 12): see ``either_mq`` in conftest.py."""
    return either_mq

WAITS: Dict[str, Callable[[MessageQueue], Coroutine[Any, Any, Any]]] = {
    "aview.get": lambda mq: mq.aview("q").get(),
    "aget": lambda mq: mq.aget("q"),
    "aget with a timeout": lambda mq: mq.aget("q", timeout=30),
    "areserve": lambda mq: mq.areserve("q"),
    "areserve with a lease": lambda mq: mq.areserve("q", timeout=30, lease=60),
    "areserve_many": lambda mq: mq.areserve_many("q", 3),
}


@pytest.mark.parametrize("wait", list(WAITS))
def test_a_parked_call_cancelled_takes_nothing(mq: MessageQueue, wait: str) -> None:
    async def main() -> None:
        task = asyncio.create_task(WAITS[wait](mq))
        await settle()
        task.cancel()
        await asyncio.wait([task], timeout=30)
        assert task.cancelled()
        mq.add("q", "after")  # nobody waits any more
        await settle()

    run(main)
    assert mq.all("q") == ["after"]
    assert mq.stats("q").reserved == 0


@pytest.mark.parametrize("wait", list(WAITS))
def test_a_call_cancelled_by_wait_for_takes_nothing(mq: MessageQueue, wait: str) -> None:
    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(WAITS[wait](mq), 0.01)
        join(in_thread(lambda: mq.add("q", "after")))
        await settle()

    run(main)
    assert mq.all("q") == ["after"]


def test_areserve_cancelled_leaves_the_message_ready_with_attempts_unchanged(mq: MessageQueue) -> None:
    mq.add("q", "x")
    first = mq.reserve("q", timeout=0)
    assert first.attempts == 1

    async def main() -> None:
        task = asyncio.create_task(mq.areserve("q", lease=60))
        await settle()
        thread_calls(lambda: mq.nack(first))  # its wake-up is queued on this loop
        task.cancel()
        await asyncio.wait([task], timeout=30)
        assert task.cancelled()

    run(main)
    s = mq.stats("q")
    assert (s.ready, s.reserved) == (1, 0)
    assert mq.reserve("q", timeout=0).attempts == 2  # one reservation since the first


def test_areserve_many_cancelled_reserves_none_of_the_messages(mq: MessageQueue) -> None:
    async def main() -> None:
        task = asyncio.create_task(mq.areserve_many("q", 5))
        await settle()
        thread_calls(lambda: mq.add_many("q", [1, 2, 3]))
        task.cancel()
        await asyncio.wait([task], timeout=30)
        assert task.cancelled()

    run(main)
    assert mq.all("q") == [1, 2, 3]
    assert [m.attempts for m in mq.reserve_many("q", 5, timeout=0)] == [1, 1, 1]


def test_a_put_cancelled_while_waiting_for_room_puts_nothing(mq: MessageQueue) -> None:
    aq = mq.aview("q", maxsize=1)

    async def main() -> None:
        aq.put_nowait("first")
        putter = asyncio.create_task(aq.put("second"))
        await settle()
        thread_calls(lambda: mq.get("q", timeout=0))  # room: the put's wake-up is queued
        putter.cancel()
        await asyncio.wait([putter], timeout=30)
        assert putter.cancelled()

    run(main)
    assert mq.all("q") == []


def test_a_put_cancelled_passes_the_room_on_to_the_next_putter(mq: MessageQueue) -> None:
    aq = mq.aview("q", maxsize=1)

    async def main() -> None:
        aq.put_nowait("first")
        putters = [asyncio.create_task(aq.put(x)) for x in ("second", "third")]
        await settle()
        thread_calls(lambda: mq.get("q", timeout=0))
        putters[0].cancel()
        await asyncio.wait(putters, timeout=30)
        assert putters[0].cancelled()
        await bounded(putters[1])

    run(main)
    assert mq.all("q") == ["third"]
