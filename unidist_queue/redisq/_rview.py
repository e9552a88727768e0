"""The view core of a RedisMessageQueue: what its QueueView and AsyncQueueView call (internal).

:class:`RedisViewCore` implements :class:`~unidist_queue._viewcore.ViewCore` over the
public methods of one :class:`~unidist_queue.RedisMessageQueue` and the waits it offers
to the package (``changes``, ``wait_change``, ``await_change``, ``ring``,
``take_waiting``, ``atake_waiting``). The views' own state (unfinished items, the shut
down flag) stays in the views, under :attr:`RedisViewCore.mutex`, a lock of this
client: nothing of it is in Redis.

Differences from the in-memory core, written in the views' docs too:

* ``maxsize`` is checked by this client before it adds (``count`` then ``add``): puts
  made at the same moment by other clients may pass it by as many items as they are.
* ``join`` counts ``task_done`` calls (and the items ``shutdown(immediate=True)``
  removes): an item put here that leaves the queue undelivered in Redis (evicted,
  expired, cleared by another client) must be marked done by whoever removes it.
* No fast paths: every put and get is one script call (one round trip).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable, Deque, List, Optional, Protocol, Tuple

from .._awaiting import Waiter, sleep_on, unpark
from ..errors import Full, ShutDown
from ..message import MISSING

__all__ = ["RedisViewCore"]

_NOTHING = object()  # oldest()'s default here: nothing ready (MISSING would mean "raise Empty")

Stop = Optional[Callable[[], bool]]


class ViewedQueue(Protocol):
    """What the view core uses of its RedisMessageQueue (public and package methods)."""

    def add(self, queue: str, message: Any, *, delay: Optional[float] = None,
            timeout: Optional[float] = None) -> int: ...
    def count(self, queue: str) -> int: ...
    def oldest(self, queue: str, *, remove: bool = True, default: Any = ...) -> Any: ...
    def changes(self, queue: str) -> int: ...
    def wait_change(self, queue: str, generation: int, timeout: Optional[float]) -> bool: ...
    async def await_change(self, queue: str, generation: int, timeout: Optional[float]) -> bool: ...
    def ring(self, queue: str) -> None: ...
    def take_waiting(self, queue: str, timeout: Optional[float], stop: Stop) -> object: ...
    async def atake_waiting(self, queue: str, timeout: Optional[float], stop: Stop) -> object: ...


class RedisViewCore:
    """The views' core over one RedisMessageQueue (see the module). Thread-safe."""

    def __init__(self, mq: ViewedQueue) -> None:
        self._mq = mq
        # Guards the views' counters. Conditions on it: each QueueView's all_tasks_done
        # (notified by its task_done, by its _left/_removed through this core, and by
        # its shutdown); async joiners park Waiters under it (woken by task_done).
        self._mutex = threading.RLock()

    @property
    def mutex(self) -> Any:
        """The lock of the views' counters (a lock of this client, not of Redis)."""
        return self._mutex

    def count(self, queue: str) -> int:
        """Ready messages of ``queue`` (one round trip)."""
        return self._mq.count(queue)

    # -- putting -----------------------------------------------------------------------------

    def _room_now(self, name: str, room: Callable[[], int], stopped: Callable[[], bool]) -> bool:
        """Whether a put may add now; ``ShutDown`` if the view is shut down."""
        with self._mutex:
            if stopped():
                raise ShutDown("the view is shut down")
            limit = room()
        return limit <= 0 or self._mq.count(name) < limit

    def _add(self, name: str, item: Any, counted: Callable[[], None], left: Callable[[], None]) -> None:
        """Add ``item``, counted for ``join`` first (a fast taker may mark it done at once)."""
        with self._mutex:
            counted()
        try:
            self._mq.add(name, item)
        except BaseException:
            with self._mutex:
                left()  # not added after all
            raise

    def view_put(
        self, name: str, item: Any, block: bool, deadline: Optional[float], room: Callable[[], int],
        stopped: Callable[[], bool], counted: Callable[[], None], left: Callable[[], None],
    ) -> None:
        """Add ``item`` once fewer than ``room()`` are ready (0: no bound), waiting for a
        change of the queue (a take anywhere wakes it) unless not ``block``.

        :raises Full: no room and not ``block``, or ``deadline`` passed.
        :raises ShutDown: the view was shut down, or the RedisMessageQueue closed.
        """
        while True:
            generation = self._mq.changes(name)
            if self._room_now(name, room, stopped):
                self._add(name, item, counted, left)
                return
            remaining = None if deadline is None else deadline - time.monotonic()
            if not block or (remaining is not None and remaining <= 0):
                raise Full(f"queue {name!r} is full for this view")
            self._mq.wait_change(name, generation, remaining)

    def view_put_fast(
        self, name: str, item: Any, limit: int, stopped: Callable[[], bool], counted: Callable[[], None],
        left: Callable[[], None],
    ) -> bool:
        """No fast path over Redis: always ``False`` (the caller takes the general path)."""
        return False

    async def view_aput(
        self, name: str, item: Any, room: Callable[[], int], stopped: Callable[[], bool],
        counted: Callable[[], None], left: Callable[[], None],
    ) -> None:
        """:meth:`view_put` for coroutines, awaiting room; a cancelled call puts nothing."""
        while True:
            generation = self._mq.changes(name)
            if self._room_now(name, room, stopped):
                self._add(name, item, counted, left)
                return
            await self._mq.await_change(name, generation, None)

    # -- getting -----------------------------------------------------------------------------

    def view_get(self, name: str, timeout: Optional[float], block: bool, stopped: Callable[[], bool]) -> Any:
        """Take the oldest ready body, waiting (bounded by ``timeout``) unless not ``block``.

        :raises Empty: nothing ready and not ``block``, or ``timeout`` passed.
        :raises ShutDown: ``stopped()`` with nothing ready, or the RedisMessageQueue closed.
        """
        return self._mq.take_waiting(name, timeout if block else 0, stopped)

    def view_get_fast(self, name: str) -> Any:
        """No fast path over Redis: always :data:`~unidist_queue.message.MISSING`."""
        return MISSING

    async def await_take(
        self, queue: str, timeout: Optional[float], lease: Optional[float], n: int,
        stop: Optional[Callable[[], bool]],
    ) -> List[Tuple[Any, int]]:
        """Await the oldest ready body and take it (``n`` = 0, all a view asks for):
        ``[((0, 0.0, body), 0)]``. A cancelled call takes nothing."""
        body = await self._mq.atake_waiting(queue, timeout, stop)
        return [((0, 0.0, body), 0)]

    # -- joining and shutting down ---------------------------------------------------------------

    def view_join(self, name: str, unfinished: Callable[[], int], done: threading.Condition) -> None:
        """Wait on ``done`` until ``unfinished()`` is 0 (woken by ``task_done``)."""
        with done:
            while unfinished():
                done.wait()

    async def view_ajoin(self, name: str, unfinished: Callable[[], int], room: Deque[Waiter]) -> None:
        """:meth:`view_join` for coroutines, parked in ``room`` (the view wakes it)."""
        while True:
            with self._mutex:
                if not unfinished():
                    return
                waiter = Waiter(asyncio.get_running_loop())
                waiter.park(room)
            try:
                await sleep_on(waiter, None)
            finally:
                with self._mutex:
                    unpark(room, waiter)

    def view_shutdown(self, name: str, immediate: bool, removed: Callable[[], None]) -> None:
        """Wake this client's waiters on ``name``; with ``immediate`` first take every
        ready message (each one ``removed()`` for the view's count)."""
        while immediate:
            try:
                body = self._mq.oldest(name, default=_NOTHING)
            except ShutDown:
                break
            if body is _NOTHING:
                break
            with self._mutex:
                removed()
        self._mq.ring(name)
