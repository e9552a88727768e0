"""Producers in other threads feed a coroutine consumer (issue 14, DESIGN 11).

The consumer awaits the view's ``get``, ``mq.aget``, ``mq.areserve`` or
``mq.areserve_many`` while threads put with the view's ``put_nowait``, a ``QueueView``'s
``put`` or ``mq.add``; every item arrives once, in order for one producer. The other waits
of the view are woken from threads too: ``put`` waiting for room, ``join`` waiting for
``task_done``; and the other way round, a coroutine's get wakes a thread waiting for room.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, List

import pytest
from async_helpers import bounded, in_thread, join, run, settle
from queue_core import wait_blocked

from unidist_queue import MessageQueue, QueueAPI


@pytest.fixture
def mq(either_mq: QueueAPI) -> QueueAPI:
    """The contract runs on both backends (DESIGN 12): see ``either_mq`` in conftest.py."""
    return either_mq

N = 200


def producers(mq: MessageQueue, how: str, n_threads: int = 3) -> Callable[[], List[threading.Thread]]:
    """Threads that each put ``N`` items ``(thread, i)`` into "q" the way ``how`` names."""

    def start() -> List[threading.Thread]:
        aq, view = mq.aview("q"), mq.view("q")
        put = {"aview": aq.put_nowait, "view": view.put, "add": lambda x: mq.add("q", x)}[how]

        def produce(k: int) -> None:
            for i in range(N):
                put((k, i))

        return [in_thread(lambda k=k: produce(k)) for k in range(n_threads)]  # type: ignore[misc]

    return start


def assert_each_once_in_order(received: List[Any], n_threads: int = 3) -> None:
    assert sorted(received) == [(k, i) for k in range(n_threads) for i in range(N)]
    for k in range(n_threads):
        assert [i for kk, i in received if kk == k] == list(range(N))  # one producer's order


@pytest.mark.parametrize("how", ["aview", "view", "add"])
def test_threads_feed_a_coroutine_awaiting_the_views_get(mq: MessageQueue, how: str) -> None:
    aq = mq.aview("q")

    async def main() -> List[Any]:
        threads = producers(mq, how)()
        received = [await aq.get() for _ in range(3 * N)]
        join(*threads)
        return received

    assert_each_once_in_order(run(main))
    assert aq.empty() and mq.count("q") == 0


@pytest.mark.parametrize("how", ["aview", "view", "add"])
def test_threads_feed_a_coroutine_awaiting_aget(mq: MessageQueue, how: str) -> None:
    async def main() -> List[Any]:
        threads = producers(mq, how)()
        received = [await mq.aget("q") for _ in range(3 * N)]
        join(*threads)
        return received

    assert_each_once_in_order(run(main))


def test_threads_feed_coroutines_reserving_and_acking(mq: MessageQueue) -> None:
    async def main() -> List[Any]:
        threads = producers(mq, "add")()
        received: List[Any] = []
        while len(received) < 3 * N:
            if len(received) % 2:
                batch = await mq.areserve_many("q", 7)
                assert 1 <= len(batch) <= 7
            else:
                batch = [await mq.areserve("q")]
            for m in batch:
                assert m.attempts == 1
                received.append(m.body)
                mq.ack(m)
        join(*threads)
        return received

    assert_each_once_in_order(run(main))
    assert mq.stats("q").reserved == 0


def test_a_parked_coroutine_is_woken_by_one_put_from_a_thread(mq: MessageQueue) -> None:
    aq = mq.aview("q")

    async def main() -> Any:
        getter = asyncio.create_task(aq.get())
        await settle()  # parked: the queue is empty
        assert not getter.done()
        join(in_thread(lambda: aq.put_nowait("x")))
        return await bounded(getter)

    assert run(main) == "x"


def test_many_coroutines_parked_on_one_loop_are_fed_by_threads(mq: MessageQueue) -> None:
    aq = mq.aview("q")

    async def main() -> List[Any]:
        getters = [asyncio.create_task(aq.get()) for _ in range(50)]
        agetters = [asyncio.create_task(mq.aget("q")) for _ in range(50)]
        await settle()
        threads = [in_thread(lambda k=k: [aq.put_nowait((k, i)) for i in range(25)]) for k in range(4)]
        received = await bounded(asyncio.gather(*getters, *agetters))
        join(*threads)
        return list(received)

    assert sorted(run(main)) == [(k, i) for k in range(4) for i in range(25)]


def test_a_put_waiting_for_room_is_woken_by_a_get_in_a_thread(mq: MessageQueue) -> None:
    aq = mq.aview("q", maxsize=2)
    taken: List[Any] = []

    async def main() -> None:
        await aq.put(1)
        await aq.put(2)
        assert aq.full()
        putter = asyncio.create_task(aq.put(3))
        await settle()
        assert not putter.done()  # waits for room
        join(in_thread(lambda: taken.append(mq.get("q", timeout=0))))
        await bounded(putter)

    run(main)
    assert taken == [1] and mq.all("q") == [2, 3]


def test_join_is_woken_by_task_done_in_a_thread(mq: MessageQueue) -> None:
    aq = mq.aview("q")
    done = threading.Event()

    async def main() -> None:
        for i in range(5):
            aq.put_nowait(i)
        joiner = asyncio.create_task(aq.join())
        await settle()
        assert not joiner.done()

        def consume() -> None:
            for _ in range(5):
                aq.get_nowait()
                aq.task_done()
            done.set()

        join(in_thread(consume))
        await bounded(joiner)

    run(main)
    assert done.is_set() and mq.count("q") == 0


@pytest.mark.parametrize("how", ["aget", "aview.get"])
def test_a_thread_waiting_for_room_is_woken_by_a_coroutines_get(mq: MessageQueue, how: str) -> None:
    view = mq.view("q", maxsize=1)
    view.put("first")
    t = in_thread(lambda: view.put("second", timeout=30))
    wait_blocked(mq, "q", putters=1)

    async def main() -> Any:
        return await (mq.aget("q") if how == "aget" else mq.aview("q").get())

    assert run(main) == "first"
    join(t)
    assert mq.all("q") == ["second"]
