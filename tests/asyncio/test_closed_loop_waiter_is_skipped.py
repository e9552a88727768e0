"""A waiter whose event loop was closed is skipped (issue 14, DESIGN 11).

A coroutine parked in ``aget``/the view's ``get`` on a loop that is then closed (its task
never finishes) must not make a producer raise, and the item goes to the next waiter:
a coroutine of a live loop or a blocked thread.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine, Dict, Iterator, Tuple

import pytest
from async_helpers import WAIT, bounded, in_thread, join, run, settle
from queue_core import wait_blocked

from unidist_queue import MessageQueue

GETS: Dict[str, Callable[[MessageQueue], Coroutine[Any, Any, Any]]] = {
    "aview.get": lambda mq: mq.aview("q").get(),
    "aget": lambda mq: mq.aget("q"),
    "areserve": lambda mq: mq.areserve("q"),
}


def _ignore_destroyed_pending_task(loop: asyncio.AbstractEventLoop, context: Dict[str, Any]) -> None:
    """The task left parked on the closed loop is destroyed pending, on purpose."""
    if "destroyed but it is pending" not in str(context.get("message", "")):
        loop.default_exception_handler(context)


@pytest.fixture
def parked_on_a_closed_loop(mq: MessageQueue) -> Iterator[Callable[[str], None]]:
    """Park one getter (by name in GETS) on a loop in a thread, then close that loop."""
    left: list[Tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = []

    def park(get: str) -> None:
        def in_its_thread() -> None:
            loop = asyncio.new_event_loop()
            loop.set_exception_handler(_ignore_destroyed_pending_task)
            task = loop.create_task(GETS[get](mq))
            loop.run_until_complete(settle())
            assert not task.done()
            loop.close()  # the getter stays parked in the waiting room
            left.append((loop, task))

        join(in_thread(in_its_thread))
        assert len(left) == 1

    yield park
    for _, task in left:
        task.get_coro().close()  # type: ignore[union-attr]  # let it leave the waiting room


@pytest.mark.parametrize("get", list(GETS))
@pytest.mark.parametrize("put_from", ["the live loop", "a thread"])
def test_the_item_goes_to_the_waiter_of_a_live_loop(
    mq: MessageQueue, parked_on_a_closed_loop: Callable[[str], None], get: str, put_from: str
) -> None:
    parked_on_a_closed_loop(get)
    aq = mq.aview("q")

    async def main() -> Any:
        task = asyncio.create_task(GETS[get](mq))
        await settle()
        assert not task.done()
        if put_from == "the live loop":
            aq.put_nowait("x")  # does not raise
        else:
            join(in_thread(lambda: aq.put_nowait("x")))
        return await bounded(task)

    got = run(main)
    assert getattr(got, "body", got) == "x"


def test_the_item_goes_to_a_blocked_thread(
    mq: MessageQueue, parked_on_a_closed_loop: Callable[[str], None]
) -> None:
    parked_on_a_closed_loop("aget")
    got: list[Any] = []
    t = in_thread(lambda: got.append(mq.get("q", timeout=WAIT)))
    wait_blocked(mq, "q", getters=2)  # the thread waits behind the closed loop's getter
    mq.add("q", "x")
    join(t)
    assert got == ["x"]


def test_a_producer_with_only_closed_loop_waiters_keeps_the_item(
    mq: MessageQueue, parked_on_a_closed_loop: Callable[[str], None]
) -> None:
    parked_on_a_closed_loop("aview.get")
    mq.aview("q").put_nowait("x")  # does not raise
    mq.add("q", "y")
    assert mq.all("q") == ["x", "y"]
    assert run(lambda: mq.aget("q", timeout=0)) == "x"
