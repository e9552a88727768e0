"""What the asyncio behaviour tests share: bounded runs, an event loop in a thread, and a
way to let coroutines park.

Every wait is bounded by :data:`WAIT`: a hang fails the test, speed never does. No test
measures time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Awaitable, Callable, Coroutine, Iterator, List, Optional, TypeVar

T = TypeVar("T")

WAIT = 30.0  # generous upper bound for every wait

# Turns of the loop that let a task just created run until it parks on its future: a
# get/aget on an empty queue parks in its first step; a few more turns cost nothing.
TURNS = 10


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(main())``, bounded by :data:`WAIT`."""

    async def bounded() -> T:
        return await asyncio.wait_for(main(), WAIT)

    return asyncio.run(bounded())


async def settle(turns: int = TURNS) -> None:
    """Let every task of the running loop run until it waits on something."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def bounded(aw: Awaitable[T]) -> T:
    """``await aw`` bounded by :data:`WAIT`."""
    return await asyncio.wait_for(aw, WAIT)


def in_thread(fn: Callable[[], Any]) -> threading.Thread:
    """Start ``fn`` in a daemon thread; the caller joins it with :func:`join`."""
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


def join(*threads: threading.Thread) -> None:
    """Join every thread, each with a timeout, and check it ended."""
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive(), f"{t.name} did not end"


def thread_calls(*calls: Callable[[], Any]) -> None:
    """Make the calls in order in another thread and wait (bounded) until they returned.

    Called from a coroutine it blocks the event loop meanwhile, so the wake-ups the calls
    send to this loop through ``call_soon_threadsafe`` are queued and none has run yet
    when it returns.
    """
    errors: List[BaseException] = []

    def go() -> None:
        try:
            for call in calls:
                call()
        except BaseException as exc:
            errors.append(exc)

    join(in_thread(go))
    assert not errors, errors


class LoopThread:
    """An event loop running in a thread of its own, for tests with several loops.

    ``call(coro)`` runs a coroutine on it and waits (bounded) for its result;
    ``submit(coro)`` returns a ``concurrent.futures.Future``. ``close()`` (or the ``with``
    block's end) stops the loop, joins the thread and closes the loop.
    """

    def __init__(self, name: str = "loop") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.submit(coro).result(WAIT)

    def close(self) -> None:
        if self.loop.is_closed():
            return

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.call(cancel_all())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            join(self.thread)
            self.loop.close()

    def __enter__(self) -> LoopThread:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def loops(n: int) -> Iterator[LoopThread]:
    """``n`` loop threads (the caller closes them)."""
    return (LoopThread(f"loop-{i}") for i in range(n))


def exception_of(call: Callable[[], Awaitable[Any]]) -> Optional[BaseException]:
    """Await ``call()`` on a fresh loop; return the exception raised, by the call or by
    awaiting its result (None if it returned)."""

    async def main() -> Optional[BaseException]:
        try:
            await call()
        except BaseException as exc:
            return exc
        return None

    return run(main)
