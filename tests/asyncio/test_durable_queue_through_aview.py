"""A durable queue read through ``aview`` after a restart (issue 14, DESIGN 11).

Items put through an ``AsyncQueueView`` of a queue in a ``FileStore`` survive closing and
reopening the store: a new MessageQueue's ``aview``/``aget``/``areserve`` read them in
order, and a message reserved through ``areserve`` but never acked is ready again after
the restart with its attempt counted.
"""

from __future__ import annotations

import asyncio
from typing import Any, List

from async_helpers import bounded, in_thread, join, run, settle

from unidist_queue import FileStore, MessageQueue


def durable(path: str) -> MessageQueue:
    return MessageQueue(store=FileStore(path, fsync="never"))


def test_items_put_through_aview_are_read_through_aview_after_a_restart(path: str) -> None:
    with durable(path) as mq:
        aq = mq.aview("q")

        async def put() -> None:
            for i in range(10):
                await aq.put({"n": i})
            assert await aq.get() == {"n": 0}

        run(put)

    with durable(path) as mq:
        aq = mq.aview("q")
        assert aq.qsize() == 9

        async def read() -> List[Any]:
            got = [await aq.get() for _ in range(5)]
            got += [await mq.aget("q") for _ in range(4)]
            assert aq.empty()
            return got

        assert run(read) == [{"n": i} for i in range(1, 10)]

    with durable(path) as mq:
        assert mq.count("q") == 0  # the gets were recorded


def test_a_coroutine_parked_on_a_reopened_durable_queue_is_fed_by_a_thread(path: str) -> None:
    with durable(path) as mq:
        mq.add("q", "before")
    with durable(path) as mq:
        aq = mq.aview("q")

        async def main() -> List[Any]:
            first = await aq.get()
            task = asyncio.create_task(aq.get())
            await settle()
            assert not task.done()
            join(in_thread(lambda: mq.add("q", "after")))
            return [first, await bounded(task)]

        assert run(main) == ["before", "after"]


def test_an_unacked_areserve_is_ready_again_after_a_restart(path: str) -> None:
    with durable(path) as mq:
        mq.add("q", "x")
        mq.add("q", "y")

        async def reserve() -> None:
            m = await mq.areserve("q")
            assert (m.body, m.attempts) == ("x", 1)
            mq.ack(await mq.areserve("q"))  # "y" is done

        run(reserve)

    with durable(path) as mq:

        async def again() -> Any:
            return await mq.areserve("q", timeout=0)

        m = run(again)
        assert (m.body, m.attempts) == ("x", 2)
        mq.ack(m)
    with durable(path) as mq:
        assert mq.count("q") == 0
