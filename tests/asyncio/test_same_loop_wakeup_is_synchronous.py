"""A waiter of the running loop is woken synchronously (issue 14, DESIGN 11).

As with ``asyncio.Queue``: once a coroutine of the same loop has made the change that
ends a wait (a ``put_nowait``, an ``add``, a ``get_nowait`` making room), one
``await asyncio.sleep(0)`` lets the woken call return. This holds for every async wait,
not only the view's (CPython's suite checks the view): ``aget``, ``areserve``,
``areserve_many``, and the view's ``put`` waiting for room.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine, Dict

import pytest
from async_helpers import run, settle

from unidist_queue import MessageQueue

WAITS: Dict[str, Callable[[MessageQueue], Coroutine[Any, Any, Any]]] = {
    "aview.get": lambda mq: mq.aview("q").get(),
    "aget": lambda mq: mq.aget("q"),
    "aget with a timeout": lambda mq: mq.aget("q", timeout=30),
    "areserve": lambda mq: mq.areserve("q"),
    "areserve_many": lambda mq: mq.areserve_many("q", 2),
}


@pytest.mark.parametrize("wait", list(WAITS))
@pytest.mark.parametrize("change", ["aview.put_nowait", "add", "add_many"])
def test_one_sleep_zero_after_the_change_lets_the_getter_return(
    mq: MessageQueue, wait: str, change: str
) -> None:
    aq = mq.aview("q")
    make = {"aview.put_nowait": lambda: aq.put_nowait("x"), "add": lambda: mq.add("q", "x"),
            "add_many": lambda: mq.add_many("q", ["x"])}[change]

    async def main() -> None:
        task = asyncio.create_task(WAITS[wait](mq))
        await settle()
        assert not task.done()
        make()
        await asyncio.sleep(0)
        assert task.done()
        result = task.result()
        result = result[0] if isinstance(result, list) else result
        assert getattr(result, "body", result) == "x"

    run(main)


def test_one_sleep_zero_after_a_get_lets_a_waiting_put_return(mq: MessageQueue) -> None:
    aq = mq.aview("q", maxsize=1)

    async def main() -> None:
        aq.put_nowait("a")
        putter = asyncio.create_task(aq.put("b"))
        await settle()
        assert not putter.done()
        assert aq.get_nowait() == "a"
        await asyncio.sleep(0)
        assert putter.done()
        assert aq.get_nowait() == "b"

    run(main)


def test_getters_of_one_loop_are_woken_in_the_order_they_parked(mq: MessageQueue) -> None:
    aq = mq.aview("q")

    async def main() -> None:
        tasks = [asyncio.create_task(aq.get()) for _ in range(4)]
        await settle()
        for i in range(4):
            aq.put_nowait(i)
        assert [await t for t in tasks] == [0, 1, 2, 3]

    run(main)
