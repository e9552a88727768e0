"""Coroutines in the waiting room: parked futures, their wake-ups, and the async takes (internal).

A blocked thread waits on its queue's ``not_empty`` (or ``not_full``) Condition; a
waiting coroutine parks a :class:`Waiter` (a future of its own event loop) in the same
queue's ``agetters`` (or ``aputters``) deque, counted in the same ``getters`` (or
``putters``), so the producers' hot-path check stays ``if q.getters:``. The producer,
holding the mutex, wakes through :meth:`QueueState.wake`, which notifies the Condition
and calls :func:`wake_first` here: it *removes* the first live waiters' entries and
resolves each future: ``set_result`` at once if the producer runs in that loop's thread
(the scheduling of ``asyncio.Queue``), else through ``loop.call_soon_threadsafe``. A
waiter whose loop is closed is skipped (the wake goes to the next one), and so is one
whose future is already done (its task was cancelled).

Wake-and-retry: a woken coroutine takes the mutex again and takes the message itself;
nothing is ever handed to a waiter, so a cancelled call takes nothing. Whether a waiter
was woken is decided by its entry's :attr:`Waiter.state`, set by the producer under the
mutex, never by ``fut.done()`` (a cross-thread wake may still be queued on the loop when
the task is cancelled): a cancelled waiter that was woken passes the wake-up on.

A coroutine's wait is bounded by its timeout and by the queue's next timed change
(``loop.call_later`` resolves its future), after which it looks again: the core's
``_refresh`` applies what fell due. No polling loop, no helper thread, no task per
wake-up, nothing to close.
"""

from __future__ import annotations

import asyncio
from collections import deque
from threading import get_ident
from typing import Any, Awaitable, Deque, List, Optional, Tuple

__all__ = [
    "DROPPED", "WAITING", "WOKEN", "Waiter", "resolve", "ring_every", "sleep_on", "unpark", "wake_every",
    "wake_first",
]

WAITING, WOKEN, DROPPED = 0, 1, 2
"""A :class:`Waiter`'s state: parked; removed and woken by a producer; removed unwoken."""


def resolve(fut: asyncio.Future[None]) -> None:
    """Resolve a waiter's future unless it is done already (in its loop's thread)."""
    if not fut.done():
        fut.set_result(None)


class Waiter:
    """One parked coroutine: its future, its loop, its loop's thread and its state.

    Made, parked and unparked with the core's mutex held; :attr:`state` changes only
    under it.
    """

    __slots__ = ("fut", "loop", "state", "tid")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.fut: asyncio.Future[None] = loop.create_future()
        self.tid = get_ident()  # the thread running ``loop`` (the coroutine runs there)
        self.state = WAITING

    def park(self, room: Optional[Deque[Waiter]]) -> Deque[Waiter]:
        """Append to ``room`` (made if ``None``); return the room."""
        if room is None:
            room = deque()
        room.append(self)
        return room

    def wake(self, me: int) -> bool:
        """Resolve the future from the thread ``me`` (holding the mutex); whether it will run.

        ``False`` for a waiter whose future is done (cancelled) or whose loop is closed.
        """
        fut = self.fut
        if fut.done():
            self.state = DROPPED
            return False
        try:
            if self.tid == me:
                fut.set_result(None)
            else:
                self.loop.call_soon_threadsafe(resolve, fut)
        except RuntimeError:  # the loop is closed: nobody will run this waiter
            self.state = DROPPED
            return False
        self.state = WOKEN
        return True


def wake_first(room: Deque[Waiter], k: int) -> None:
    """Wake the first ``k`` live waiters of ``room``, removing each entry looked at.

    O(k + d) for d dead waiters skipped. Called with the mutex held.
    """
    me = get_ident()
    popleft = room.popleft
    while k and room:
        if popleft().wake(me):
            k -= 1


def wake_every(room: Optional[Deque[Waiter]]) -> None:
    """Wake every waiter of ``room`` (close, drop, a view shut down). O(w)."""
    if room:
        wake_first(room, len(room))


def ring_every(room: Optional[Deque[Waiter]]) -> None:
    """Wake every waiter of ``room`` and leave each parked (it unparks itself): a broadcast.

    A waiter of the calling thread's loop is resolved at once; one of another loop is
    sent ``call_soon_threadsafe`` once (its state becomes :data:`WOKEN`). A waiter that
    was sent a wake-up from another thread and is still pending is resolved at once by a
    broadcast from its own loop's thread, so a change made in that loop wakes it in the
    same step, as ``asyncio.Queue`` would, however its earlier wake-up travels. Waiters
    whose loop is closed are skipped. O(w). Called with the owner's mutex held.
    """
    if not room:
        return
    me = get_ident()
    for waiter in room:
        fut = waiter.fut
        if fut.done():
            continue
        if waiter.tid != me and waiter.state != WAITING:
            continue  # sent already
        try:
            if waiter.tid == me:
                fut.set_result(None)
            else:
                waiter.loop.call_soon_threadsafe(resolve, fut)
        except RuntimeError:  # the loop is closed: nobody will run this waiter
            waiter.state = DROPPED
            continue
        waiter.state = WOKEN


def unpark(room: Optional[Deque[Waiter]], waiter: Waiter) -> bool:
    """Take ``waiter``'s entry out of ``room`` if no producer did; whether it was woken.

    O(w) for w parked waiters (O(1) when woken). Called with the mutex held.
    """
    if waiter.state == WAITING:
        assert room is not None
        room.remove(waiter)
        waiter.state = DROPPED
        return False
    return waiter.state == WOKEN


def sleep_on(waiter: Waiter, wait: Optional[float]) -> Awaitable[None]:
    """Wait until ``waiter`` is woken or ``wait`` seconds passed (``None``: no bound).

    Returns what to await: with no bound, the future itself (no coroutine frame between
    the waker and the woken: a wake-up's latency, ``bench_async.py``); else a coroutine
    whose bound is a ``loop.call_later`` that resolves the future (no task, no wait_for).
    :raises asyncio.CancelledError: the calling task was cancelled (the caller unparks).
    """
    if wait is None:
        return waiter.fut
    return _sleep_bounded(waiter, wait)


async def _sleep_bounded(waiter: Waiter, wait: float) -> None:
    timer = waiter.loop.call_later(wait, resolve, waiter.fut)
    try:
        await waiter.fut
    finally:
        timer.cancel()


Taken = Tuple[List[Tuple[Any, int]], int]
"""What an async take returns under the mutex: ``([(item, attempts), ...], seq)``."""
