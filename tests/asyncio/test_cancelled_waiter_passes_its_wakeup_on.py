"""A getter cancelled while its cross-thread wake-up is in flight passes it on (issue 14).

SCALEOUT section 4's trap, as a deterministic test: three getters park on one loop; a
thread puts two items while the loop is held (so both wake-ups are queued on the loop
and neither has run); the first getter is cancelled; then the loop runs. Both items must
reach the two other getters: the cancelled getter was woken (its entry left the waiting
room), so it passes the wake-up on, and it takes nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine, Dict, List

import pytest
from async_helpers import bounded, run, settle, thread_calls

from unidist_queue import MessageQueue, QueueAPI


@pytest.fixture
def mq(either_mq: QueueAPI) -> QueueAPI:
    """The contract runs on both backends (DESIGN 12): see ``either_mq`` in conftest.py."""
    return either_mq

Getter = Callable[[MessageQueue], Coroutine[Any, Any, Any]]


async def _reserve_body(mq: MessageQueue) -> Any:
    m = await mq.areserve("q")
    mq.ack(m)
    return m.body


async def _reserve_many_body(mq: MessageQueue) -> Any:
    ms = await mq.areserve_many("q", 1)
    mq.ack_many(ms)
    return ms[0].body


GETTERS: Dict[str, Getter] = {
    "aview.get": lambda mq: mq.aview("q").get(),
    "aget": lambda mq: mq.aget("q"),
    "areserve": _reserve_body,
    "areserve_many": _reserve_many_body,
}


@pytest.mark.parametrize("getter", list(GETTERS))
@pytest.mark.parametrize("put", ["aview.put_nowait", "add"])
def test_cancelled_getter_whose_wakeup_is_in_flight_passes_it_on(
    mq: MessageQueue, getter: str, put: str
) -> None:
    get = GETTERS[getter]
    aq = mq.aview("q")
    put_one = aq.put_nowait if put == "aview.put_nowait" else (lambda x: mq.add("q", x))

    async def main() -> List[Any]:
        tasks = [asyncio.create_task(get(mq)) for _ in range(3)]
        await settle()  # all three parked, in order
        assert not any(t.done() for t in tasks)
        # the loop is held: the thread's two wake-ups wait in the loop's queue
        thread_calls(lambda: put_one("a"), lambda: put_one("b"))
        tasks[0].cancel()  # before its wake-up runs
        await asyncio.wait(tasks, timeout=30)
        assert tasks[0].cancelled()
        return [await bounded(t) for t in tasks[1:]]

    assert sorted(run(main)) == ["a", "b"]
    assert mq.count("q") == 0 and mq.stats("q").reserved == 0


@pytest.mark.parametrize("getter", list(GETTERS))
def test_cancelled_getter_with_a_wakeup_in_flight_takes_nothing(mq: MessageQueue, getter: str) -> None:
    get = GETTERS[getter]

    async def main() -> None:
        task = asyncio.create_task(get(mq))
        await settle()
        thread_calls(lambda: mq.add("q", "x"))
        task.cancel()
        await asyncio.wait([task], timeout=30)
        assert task.cancelled()

    run(main)
    assert mq.all("q") == ["x"]
    m = mq.reserve("q", timeout=0)
    assert m.attempts == 1  # a cancelled areserve left attempts unchanged


def test_cancelled_getters_in_the_middle_of_the_line_pass_their_wakeups_on(mq: MessageQueue) -> None:
    aq = mq.aview("q")

    async def main() -> List[Any]:
        tasks = [asyncio.create_task(aq.get()) for _ in range(6)]
        await settle()
        thread_calls(*[lambda i=i: aq.put_nowait(i) for i in range(3)])  # type: ignore[misc]
        for t in tasks[:3]:  # every woken getter is cancelled
            t.cancel()
        await asyncio.wait(tasks, timeout=30)
        assert all(t.cancelled() for t in tasks[:3])
        return [await bounded(t) for t in tasks[3:]]

    assert sorted(run(main)) == [0, 1, 2]


def test_a_getter_cancelled_after_a_same_loop_wakeup_passes_it_on(mq: MessageQueue) -> None:
    aq = mq.aview("q")

    async def main() -> List[Any]:
        tasks = [asyncio.create_task(aq.get()) for _ in range(3)]
        await settle()
        aq.put_nowait("a")  # wakes the first getter synchronously (this loop's)
        aq.put_nowait("b")
        tasks[0].cancel()
        await asyncio.wait(tasks, timeout=30)
        assert tasks[0].cancelled()
        return [await bounded(t) for t in tasks[1:]]

    assert sorted(run(main)) == ["a", "b"]
