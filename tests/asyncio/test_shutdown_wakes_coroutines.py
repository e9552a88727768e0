"""``shutdown`` and ``close`` made from a thread wake waiting coroutines (issue 14).

The view's ``shutdown()`` (3.13's semantics on every version) wakes the coroutines
waiting in its ``get`` with ``ShutDown`` (on 3.13 also ``asyncio.QueueShutDown``), on
this loop and on another loop; ``mq.close()`` wakes every async wait with ``ShutDown``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Callable, Coroutine, Dict, List

import pytest
from async_helpers import LoopThread, bounded, in_thread, join, run, settle

from unidist_queue import MessageQueue, QueueAPI, ShutDown


@pytest.fixture
def mq(either_mq: QueueAPI) -> QueueAPI:
    """The contract runs on both backends (DESIGN 12): see ``either_mq`` in conftest.py."""
    return either_mq


def assert_shutdown(exc: BaseException) -> None:
    assert isinstance(exc, ShutDown), repr(exc)
    if sys.version_info >= (3, 13):
        assert isinstance(exc, asyncio.QueueShutDown)  # type: ignore[attr-defined]


async def outcomes(tasks: List[asyncio.Task[Any]]) -> List[Any]:
    return list(await bounded(asyncio.gather(*tasks, return_exceptions=True)))


def test_view_shutdown_from_a_thread_wakes_getters_of_two_loops(mq: MessageQueue) -> None:
    aq = mq.aview("q")

    async def park(n: int) -> List[asyncio.Task[Any]]:
        tasks = [asyncio.create_task(aq.get()) for _ in range(n)]
        await settle()
        assert not any(t.done() for t in tasks)
        return tasks

    with LoopThread("a") as a:

        async def main() -> List[Any]:
            ours = await park(3)
            theirs = a.call(park(2))
            join(in_thread(aq.shutdown))
            return await outcomes(ours) + a.call(outcomes(theirs))

        for exc in run(main):
            assert_shutdown(exc)
    with pytest.raises(ShutDown):
        aq.put_nowait("late")


def test_after_shutdown_the_getters_take_what_is_left_then_are_told(mq: MessageQueue) -> None:
    aq = mq.aview("q")

    async def main() -> None:
        for i in range(2):
            aq.put_nowait(i)
        join(in_thread(aq.shutdown))
        assert [await aq.get(), await aq.get()] == [0, 1]
        with pytest.raises(ShutDown) as info:
            await aq.get()
        assert_shutdown(info.value)
        with pytest.raises(ShutDown):
            await aq.put("late")

    run(main)


def test_immediate_shutdown_from_a_thread_wakes_a_joiner_and_a_putter(mq: MessageQueue) -> None:
    aq = mq.aview("q", maxsize=1)

    async def main() -> List[Any]:
        aq.put_nowait("a")
        putter = asyncio.create_task(aq.put("b"))
        joiner = asyncio.create_task(aq.join())
        await settle()
        assert not putter.done() and not joiner.done()
        join(in_thread(lambda: aq.shutdown(immediate=True)))
        return await outcomes([putter, joiner])

    put_outcome, join_outcome = run(main)
    assert_shutdown(put_outcome)
    assert join_outcome is None  # join returns: the items left were dropped


WAITS: Dict[str, Callable[[MessageQueue], Coroutine[Any, Any, Any]]] = {
    "aview.get": lambda mq: mq.aview("q").get(),
    "aview.put": lambda mq: mq.aview("full", maxsize=1).put("y"),
    "aget": lambda mq: mq.aget("q"),
    "areserve": lambda mq: mq.areserve("q", lease=5),
    "areserve_many": lambda mq: mq.areserve_many("q", 2, timeout=60),
}


@pytest.mark.parametrize("wait", list(WAITS))
def test_closing_the_queue_from_a_thread_wakes_async_waits_with_shutdown(mq: MessageQueue, wait: str) -> None:
    mq.add("full", "x")

    async def main() -> Any:
        tasks = [asyncio.create_task(WAITS[wait](mq)) for _ in range(2)]
        await settle()
        assert not any(t.done() for t in tasks)
        join(in_thread(mq.close))
        return await outcomes(tasks)

    for exc in run(main):
        assert isinstance(exc, ShutDown), repr(exc)


def test_async_calls_on_a_closed_queue_raise_shutdown(mq: MessageQueue) -> None:
    mq.close()

    async def main() -> None:
        for call in (lambda: mq.aget("q", timeout=0), lambda: mq.areserve("q"),
                     lambda: mq.areserve_many("q", 1)):
            with pytest.raises(ShutDown):
                await call()

    run(main)
