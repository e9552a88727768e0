"""Waiting costs no task, no helper thread and nothing to close (issue 14, DESIGN 11).

A coroutine fed by a thread through ``aview``/``aget`` is woken without the library
creating a task (a counting task factory sees only the test's own tasks) or starting a
thread; a view is never closed, and dropping it warns of nothing (warnings are errors
here). ``TaskHandler`` futures are awaited as any executor's: ``asyncio.wrap_future``,
``loop.run_in_executor``.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any, Coroutine, List, Optional

from async_helpers import bounded, in_thread, join, run, settle

from unidist_queue import MessageQueue, TaskHandler


def count_tasks(loop: asyncio.AbstractEventLoop, counter: List[int]) -> None:
    """Count every task created on ``loop`` from now on."""

    def factory(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any],
                **kwargs: Any) -> asyncio.Task[Any]:
        counter[0] += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)  # type: ignore[arg-type]


def test_wakeups_from_a_thread_create_no_task_and_no_thread(mq: MessageQueue) -> None:
    aq = mq.aview("q")
    created = [0]
    threads_seen: List[Optional[set[threading.Thread]]] = [None]

    async def main() -> List[Any]:
        count_tasks(asyncio.get_running_loop(), created)
        before = set(threading.enumerate())
        getters = [asyncio.create_task(aq.get()), asyncio.create_task(mq.aget("q"))]
        await settle()
        threads_seen[0] = set(threading.enumerate()) - before  # parked: no helper thread
        got = []
        for i in range(100):  # each item wakes a parked coroutine from a thread
            join(in_thread(lambda i=i: aq.put_nowait(i)))  # type: ignore[misc]
            if i >= 2:
                got.append(await aq.get())  # (bounded by run)
        got += await bounded(asyncio.gather(*getters))
        asyncio.get_running_loop().set_task_factory(None)  # (asyncio.run's own tasks follow)
        return got

    assert sorted(run(main)) == list(range(100))
    assert created == [2]  # the test's own two tasks
    assert threads_seen == [set()]


def test_a_view_needs_no_closing(mq: MessageQueue) -> None:
    async def main() -> None:
        aq = mq.aview("q")
        task = asyncio.create_task(aq.get())
        await settle()
        aq.put_nowait("x")
        assert await bounded(task) == "x"

    run(main)
    gc.collect()  # a view or waiter left to the collector warns of nothing
    assert mq.count("q") == 0


def test_taskhandler_futures_are_awaitable() -> None:
    with TaskHandler(2) as th:

        async def main() -> List[int]:
            loop = asyncio.get_running_loop()
            wrapped = await bounded(asyncio.wrap_future(th.submit(pow, 2, 5)))
            in_executor = await bounded(loop.run_in_executor(th, pow, 3, 2))
            return [wrapped, in_executor]

        assert run(main) == [32, 9]
