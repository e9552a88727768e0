"""Awaitable takes (aget, areserve, areserve_many) and the async view's waits (internal).

Part of :class:`~unidist_queue._core.QueueCore` (see :mod:`._corebase`). A coroutine
that finds nothing ready parks a :class:`~unidist_queue._awaiting.Waiter` in its queue's
waiting room, under the same mutex hold that found nothing (so no wake-up is lost),
and looks again when woken, when its timeout passes or when the queue's next timed
change is due (see :mod:`._awaiting`). The methods without a leading underscore are
for :class:`~unidist_queue.AsyncQueueView` (another object) and are called without the
mutex; they are coroutines and must run in an event loop's thread.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, List, Optional, Tuple

from ._awaiting import WOKEN, Waiter, sleep_on, unpark
from ._convoy import acquire_contended
from ._corebase import not_a_name
from ._state import INF, Item, QueueState
from ._taking import TakeMixin
from ._util import check_count, check_seconds, deadline_of
from ._viewcore import Tally
from ._watched import Watched
from .errors import Full
from .message import MISSING, Message

__all__ = ["AwaitMixin"]

Taken = List[Tuple[Item, int]]


class AwaitMixin(TakeMixin):
    """aget, areserve, areserve_many, and the async view's put, get and join (see the module)."""

    if TYPE_CHECKING:  # defined by QueueCore (_core.py)

        def view_put(
            self, name: str, item: Any, block: bool, deadline: Optional[float], room: Callable[[], int],
            stopped: Callable[[], bool], counted: Callable[[], None], left: Callable[[], None],
        ) -> None: ...

    async def aget(self, queue: str, *, timeout: Optional[float] = None) -> Any:
        """See :meth:`MessageQueue.aget`."""
        if timeout is None or (timeout.__class__ in (int, float) and timeout >= 0):
            mutex = self.mutex
            if not mutex.acquire(False):  # see _convoy: no lock convoy between threads
                acquire_contended(mutex)
            try:
                try:
                    q = self._queues.get(queue)
                except TypeError:  # unhashable: not a str (the try is free otherwise)
                    raise not_a_name(queue) from None
                if q is not None and q.bare and q.ready:  # not bare once closed
                    q.ready.popleft()
                    q.ready_at.popleft()
                    q.removed += 1
                    if q.putters:
                        q.wake_putters()
                    return q.ready_bodies.popleft()
            finally:
                mutex.release()
        return (await self.await_take(queue, timeout, None, 0, None))[0][0][2]

    async def areserve(
        self, queue: str, *, timeout: Optional[float] = None, lease: Optional[float] = None
    ) -> Message:
        """See :meth:`MessageQueue.areserve`."""
        if lease is not None:
            lease = check_seconds("lease", lease)
        item, attempts = (await self.await_take(queue, timeout, lease, 1, None))[0]
        return Message(item[0], queue, item[2], item[1], attempts)

    async def areserve_many(
        self, queue: str, n: int, *, timeout: Optional[float] = None, lease: Optional[float] = None
    ) -> List[Message]:
        """See :meth:`MessageQueue.areserve_many`."""
        n = check_count("n", n)
        if lease is not None:
            lease = check_seconds("lease", lease)
        taken = await self.await_take(queue, timeout, lease, n, None)
        return [Message(item[0], queue, item[2], item[1], attempts) for item, attempts in taken]

    async def await_take(
        self, queue: str, timeout: Optional[float], lease: Optional[float], n: int,
        stop: Optional[Callable[[], bool]],
    ) -> Taken:
        """Wait for a ready message, then take it (``n`` = 0) or reserve up to ``n``:
        ``[(item, attempts), ...]``. Nothing is taken for a call cancelled while it waits;
        a cancelled waiter that was woken passes the wake-up on. Run in a loop's thread.

        :raises Empty: ``timeout`` passed. :raises ValueError: ``timeout`` is negative.
        :raises ShutDown: closed, or ``stop()`` (a view shut down) with nothing ready.
        """
        deadline = deadline_of(timeout)
        waiter: Optional[Waiter] = None
        q: Optional[QueueState] = None
        mutex = self.mutex
        while True:
            seq = 0
            try:
                mutex.acquire()  # not "with", and _commit only if due: the wake-up's latency
                try:
                    if waiter is not None and q is not None:
                        if not n and q.simple and q.ready and waiter.state == WOKEN:
                            # woken: the short way back (the wake-up's latency, bench_async.py);
                            # _unpark inlined: the waker removed the entry, the queue exists
                            q.getters -= 1
                            q.aget_n -= 1
                            return [((0, 0.0, self._pop_simple(q)), 0)]
                        self._unpark(q, waiter, False)
                    q, seq, wait = self._ready_or_wait(queue, deadline, True, stop)
                    if q.ready:
                        taken, seq = self._take_now(q, n, lease, seq)
                        return taken
                    waiter = self._park(q, False)
                finally:
                    mutex.release()
            finally:
                if seq or self._news or self._deaths:  # as _commit's own tests
                    self._commit(seq)
            try:
                await sleep_on(waiter, wait)
            except BaseException as exc:
                self._give_up(q, waiter, False, exc)
                raise

    def _take_now(self, q: QueueState, n: int, lease: Optional[float], seq: int) -> Tuple[Taken, int]:
        """Take the oldest ready message (``n`` = 0) or reserve up to ``n`` of them."""
        if n > 1:
            taken, seq2 = self._reserve_front(q, min(n, len(q.ready)), lease)
            return taken, seq2 or seq
        item, attempts, seq2 = self._pop_for(q, lease, n == 1)
        return [(item, attempts)], seq2 or seq

    def _park(self, q: QueueState, putter: bool) -> Waiter:
        """Park a waiter of the running loop in ``q``'s room (counted as a getter or putter)."""
        waiter = Waiter(asyncio.get_running_loop())
        if putter:
            q.aputters = waiter.park(q.aputters)
            q.putters += 1
            q.aput_n += 1
        else:
            q.agetters = waiter.park(q.agetters)
            q.getters += 1
            q.aget_n += 1
        return waiter

    def _unpark(self, q: QueueState, waiter: Waiter, putter: bool) -> bool:
        """Leave ``q``'s room; whether a producer had woken this waiter."""
        if putter:
            q.putters -= 1
            q.aput_n -= 1
            woken = unpark(q.aputters, waiter)
        else:
            q.getters -= 1
            q.aget_n -= 1
            woken = unpark(q.agetters, waiter)
        self._left_room(q)
        return woken

    def _give_up(self, q: QueueState, waiter: Waiter, putter: bool, exc: BaseException) -> None:
        """A wait on ``waiter`` ended by ``exc`` (cancelled, say): leave the room, passing
        on a wake-up received; the caller re-raises. (Not a coroutine around the await: a
        frame fewer to resume at every wake-up, ``bench_async.py``'s latency.)"""
        if not self._hold(exc):
            return
        try:
            if self._unpark(q, waiter, putter):
                if putter and q.putters:
                    q.wake_putters()
                elif not putter and q.getters and q.ready:
                    q.wake()
        finally:
            self.mutex.release()

    def _hold(self, exc: BaseException) -> bool:
        """Take the mutex to clean up after ``exc`` interrupted a wait; whether it did.

        A ``GeneratorExit`` means the coroutine is being closed, perhaps by the garbage
        collector in a thread that holds the mutex (an abandoned task of a closed loop):
        then it is taken only if free (otherwise the waiter's entry and count stay, as
        for any waiter of a closed loop, and wakes skip it).
        """
        return self.mutex.acquire(blocking=not isinstance(exc, GeneratorExit))

    # -- for an AsyncQueueView (another object: public names) ---------------------------------

    def view_put_fast(self, name: str, item: Any, limit: int, tally: Tally, left: Callable[[], None]) -> bool:
        """The in-memory fast path of :meth:`view_put` (not blocking): add ``item`` to the
        existing queue ``name`` if it is plain (in memory, no ``maxlen``/``max_age``),
        nothing is timed, it has room (fewer than ``limit`` ready, 0: no bound) and the
        view (``tally.shut_down``) and the MessageQueue are open, counting it in
        ``tally.unfinished``; whether it did (if not, nothing changed and :meth:`view_put`
        decides). O(1). Thread-safe (takes the mutex).
        """
        mutex = self.mutex
        if not mutex.acquire(False):  # see _convoy: no lock convoy with a producer thread
            acquire_contended(mutex)
        try:
            q = self._queues.get(name)
            if (q is None or not q.simple or self._persistent or 0 < limit <= len(q.ready)
                    or tally.shut_down):  # not simple once closed
                return False
            self._last_id = msg_id = self._last_id + 1
            q.ready.append(msg_id)
            clock = self._clock  # a call through a local: LOAD_METHOD does not specialize here
            q.ready_at.append(clock())
            q.ready_bodies.append(item)
            q.added += 1
            tally.unfinished += 1
            watch = q.watch
            if watch is None:
                watch = q.watch = Watched()
            q.bare = False  # something is watched
            if watch.hi == msg_id - 1 and watch.left is left:  # the run grows (Watched.__setitem__)
                watch.hi = msg_id
            elif watch.lo > watch.hi:  # the run is empty: it starts here (Watched.__setitem__)
                watch.lo = watch.hi = msg_id
                watch.left = left
            else:
                watch[msg_id] = left
            if q.getters:
                q.wake()
            if not self._subscribers:
                return True
            self._heard(q)
        finally:
            mutex.release()
        self._commit(0)  # tells the subscribers
        return True

    def view_get_fast(self, name: str) -> Any:
        """The in-memory fast path of a view's get: the oldest ready body of ``name``, taken
        for good (what :meth:`_pop_for` does, with nothing to record), if the queue is
        plain and nothing is timed; else :data:`MISSING` (nothing changed). O(1).
        Thread-safe (takes the mutex).
        """
        mutex = self.mutex
        if not mutex.acquire(False):  # see _convoy: no lock convoy with a producer thread
            acquire_contended(mutex)
        try:
            q = self._queues.get(name)
            if q is None or not q.simple or not q.ready:  # not simple once closed
                return MISSING
            return self._pop_simple(q)
        finally:
            mutex.release()

    @staticmethod
    def _pop_simple(q: QueueState) -> Any:
        """With the mutex held: take the oldest ready message of a ``simple`` queue for good
        (what :meth:`_pop_for` does, with nothing to record); return its body. O(1)."""
        msg_id = q.ready.popleft()
        q.ready_at.popleft()
        q.removed += 1
        if q.attempts:
            q.attempts.pop(msg_id, None)
        watch = q.watch
        if watch is not None:
            if msg_id == watch.lo <= watch.hi:  # the run's first: Watched.pop, inlined
                watch.lo = msg_id + 1
            else:
                watch.pop(msg_id)
            if watch.lo > watch.hi and not watch.rest:  # nothing watched any more
                # bare again, the empty Watched kept (see QueueState.retime) but not its
                # callback (no view kept alive): the next put through a view restarts
                # the run instead of making a Watched (a paced put's wake-up latency)
                q.bare = True
                watch.left = None
        if q.putters:
            q.wake_putters()
        return q.ready_bodies.popleft()

    async def view_aput(
        self, name: str, item: Any, room: Callable[[], int], stopped: Callable[[], bool],
        counted: Callable[[], None], left: Callable[[], None],
    ) -> None:
        """Add ``item`` for an async view as :meth:`view_put` does, awaiting room (fewer
        than ``room()`` ready, 0: no bound) as a parked putter. A cancelled call puts
        nothing (a wake-up it received goes to the next putter). Run in a loop's thread.

        :raises ShutDown: the view was shut down, or the MessageQueue closed.
        """
        try:
            self.view_put(name, item, False, None, room, stopped, counted, left)
            return
        except Full:
            pass
        while True:
            with self.mutex:
                q = self._waiting_room(name)
                waiter = self._park(q, True)
            try:  # parked first, then tried again: room made in between wakes the waiter
                self.view_put(name, item, False, None, room, stopped, counted, left)
            except Full:
                pass
            except BaseException:
                with self.mutex:
                    self._unpark(q, waiter, True)
                raise
            else:
                with self.mutex:
                    self._unpark(q, waiter, True)
                return
            try:
                await sleep_on(waiter, None)
            except BaseException as exc:
                self._give_up(q, waiter, True, exc)
                raise
            with self.mutex:
                self._unpark(q, waiter, True)

    async def view_ajoin(self, name: str, unfinished: Callable[[], int], room: Deque[Waiter]) -> None:
        """Wait until ``unfinished()`` is 0, as an async view's ``join``: parked in ``room``
        (the view wakes it), bounded by the queue's next timed change, which is then
        applied (an expiry may be what it waits for). Run in a loop's thread.
        """
        while True:
            seq = 0
            waiter: Optional[Waiter] = None
            with self.mutex:
                q = self._queues.get(name)
                if q is not None and q.timed and not self._closed and not self._read_only:
                    seq = self._refresh(q)
                if unfinished() and not seq:
                    due = INF if q is None or self._closed else self._next_due(q)
                    wait = None if due == INF else max(0.0, due - self._clock())
                    waiter = Waiter(asyncio.get_running_loop())
                    waiter.park(room)
            self._commit(seq)
            if waiter is None:
                if seq:
                    continue
                return
            try:
                await sleep_on(waiter, wait)
            except BaseException as exc:
                if self._hold(exc):
                    unpark(room, waiter)
                    self.mutex.release()
                raise
            with self.mutex:
                unpark(room, waiter)


def joiners() -> Deque[Waiter]:
    """An empty room for an async view's ``join`` waiters."""
    return deque()
