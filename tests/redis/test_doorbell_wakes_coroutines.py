"""Coroutines wait for a queue's change without a task or thread per wake-up (issue 15).

``await_change`` parks a future of the caller's loop: a PUBLISH (read by the notifier
thread) wakes coroutines of any loop through ``call_soon_threadsafe``; ``ring`` in the
loop's own thread wakes synchronously; a waiter whose loop was closed is skipped; a
cancelled ``await_change`` leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, List

import pytest
import redis
from doorbell_helpers import WAIT, LoopThread, in_thread, notify

from unidist_queue.redisq._doorbell import Doorbell


def test_a_publish_wakes_a_coroutine_of_a_loop_in_another_thread(bell: Doorbell, pub: redis.Redis) -> None:
    bell.watch("q")
    g = bell.generation("q")
    with LoopThread() as lt:
        woken = lt.submit(bell.await_change("q", g, WAIT))
        lt.submit(asyncio.sleep(0)).result(WAIT)  # the waiter parked
        notify(pub, "q")
        assert woken.result(WAIT) is True


def test_coroutines_of_two_loops_and_a_thread_wake_together(bell: Doorbell, pub: redis.Redis) -> None:
    bell.watch("q")
    g = bell.generation("q")
    with LoopThread() as one, LoopThread() as two:
        woken = [one.submit(bell.await_change("q", g, WAIT)), two.submit(bell.await_change("q", g, WAIT)),
                 in_thread(lambda: bell.wait("q", g, WAIT))]
        one.submit(asyncio.sleep(0)).result(WAIT)
        two.submit(asyncio.sleep(0)).result(WAIT)
        notify(pub, "q")
        assert [w.result(WAIT) for w in woken] == [True, True, True]


def test_ring_on_the_waiters_loop_wakes_it_synchronously(bell: Doorbell) -> None:
    async def main() -> List[Any]:
        g = bell.generation("q")
        task = asyncio.ensure_future(bell.await_change("q", g, WAIT))
        await asyncio.sleep(0)
        bell.ring("q")
        await asyncio.sleep(0)  # one turn: the woken call returns (as asyncio.Queue)
        return [task.done(), task.done() and task.result()]

    assert asyncio.run(main()) == [True, True]


def test_ring_from_another_thread_wakes_a_coroutine(bell: Doorbell) -> None:
    async def main() -> bool:
        g = bell.generation("q")
        task = asyncio.ensure_future(bell.await_change("q", g, WAIT))
        await asyncio.sleep(0)
        in_thread(lambda: bell.ring("q")).result(WAIT)
        return await asyncio.wait_for(task, WAIT)

    assert asyncio.run(main()) is True


def test_await_change_times_out_with_false(bell: Doorbell) -> None:
    async def main() -> List[bool]:
        g = bell.generation("q")
        return [await bell.await_change("q", g, 0), await bell.await_change("q", g, 0.05),
                await bell.await_change("q", g - 1, None)]

    assert asyncio.run(main()) == [False, False, True]


def test_a_bad_timeout_is_refused(bell: Doorbell) -> None:
    with pytest.raises(ValueError, match="timeout"):
        asyncio.run(bell.await_change("q", 0, -1))


class CountingLoop(asyncio.SelectorEventLoop):
    """A loop that counts the wake-ups sent to it from other threads."""

    sent = 0

    def call_soon_threadsafe(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.sent += 1
        return super().call_soon_threadsafe(*args, **kwargs)


def test_a_cancelled_await_change_leaves_no_waiter_behind(bell: Doorbell) -> None:
    loop = CountingLoop()
    with LoopThread(loop) as lt:
        g = bell.generation("q")

        async def cancelled() -> bool:
            task = asyncio.ensure_future(bell.await_change("q", g, WAIT))
            await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return task.cancelled()

        assert lt.submit(cancelled()).result(WAIT) is True
        before = loop.sent
        bell.ring("q")  # from this thread: a waiter left parked would be sent a wake-up
        assert loop.sent == before
        assert bell.generation("q") == g + 1


@pytest.mark.parametrize("change", ["a notification", "a ring"])
def test_a_waiter_whose_loop_was_closed_is_skipped(bell: Doorbell, pub: redis.Redis, change: str) -> None:
    bell.watch("q")
    g = bell.generation("q")
    dead = asyncio.new_event_loop()
    dead.set_exception_handler(lambda loop, context: None)  # its task is left pending on purpose
    task = dead.create_task(bell.await_change("q", g, None))
    dead.run_until_complete(asyncio.sleep(0))  # parked
    dead.close()  # the task never finishes
    try:
        with LoopThread() as live:
            woken = live.submit(bell.await_change("q", g, WAIT))
            live.submit(asyncio.sleep(0)).result(WAIT)
            if change == "a ring":
                bell.ring("q")  # skips the dead loop's waiter without error
            else:
                notify(pub, "q")  # the notifier skips it without error
            assert woken.result(WAIT) is True
    finally:
        task.get_coro().close()


def test_wakeups_create_no_task_and_no_thread(bell: Doorbell, pub: redis.Redis) -> None:
    bell.watch("q")
    created: List[int] = [0]

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        created[0] += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    async def main() -> int:
        asyncio.get_running_loop().set_task_factory(factory)
        threads = set(threading.enumerate())
        woken = 0
        for _ in range(20):  # each wake-up comes from the notifier thread
            g = bell.generation("q")
            asyncio.get_running_loop().call_soon(notify, pub, "q")  # once parked
            woken += await bell.await_change("q", g, WAIT)
        assert set(threading.enumerate()) == threads
        asyncio.get_running_loop().set_task_factory(None)
        return woken

    assert asyncio.run(main()) == 20
    assert created == [0]
