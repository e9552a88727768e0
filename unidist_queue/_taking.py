"""Taking from a queue: oldest/newest, get, reserve, reserve_many, and their waits (internal).

Part of :class:`~unidist_queue._core.QueueCore` (see :mod:`._corebase`). A blocked
taker waits on its queue's ``not_empty`` Condition, bounded by the queue's next timed
change, so it wakes for every way a message becomes ready without polling. A waiting
coroutine (:mod:`._atake`) uses the same room and the same :meth:`TakeMixin._ready_or_wait`.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

from ._convoy import acquire_contended
from ._corebase import not_a_name
from ._state import INF, Item, QueueState
from ._timed import TimedMixin
from ._util import check_count, check_seconds, deadline_of, remaining
from .errors import Empty, ShutDown
from .message import MISSING, Message

__all__ = ["TakeMixin"]


class TakeMixin(TimedMixin):
    """oldest, newest, get, reserve, reserve_many (see the module)."""


    def oldest(self, queue: str, *, remove: bool = True, default: Any = MISSING) -> Any:
        """See :meth:`MessageQueue.oldest`."""
        mutex = self.mutex
        if not mutex.acquire(False):  # see _convoy: no lock convoy between threads
            acquire_contended(mutex)
        try:
            try:
                q = self._queues.get(queue)
            except TypeError:  # unhashable: not a str (the try is free otherwise)
                raise not_a_name(queue) from None
            if q is not None and q.bare and q.ready:  # not bare once closed
                if not remove:
                    return q.ready_bodies[0]
                q.ready.popleft()
                q.ready_at.popleft()
                q.removed += 1
                if q.putters:
                    q.wake_putters()
                return q.ready_bodies.popleft()
        finally:
            mutex.release()
        return self._take(queue, remove, default, True)

    def newest(self, queue: str, *, remove: bool = True, default: Any = MISSING) -> Any:
        """See :meth:`MessageQueue.newest`."""
        return self._take(queue, remove, default, False)

    def _take(self, queue: str, remove: bool, default: Any, front: bool) -> Any:
        seq = 0
        item: Optional[Item] = None
        try:
            with self.mutex:
                self._check_writable() if remove else self._check_open()
                q, seq = self._existing(queue)
                if q is not None:
                    if q.timed:
                        seq = self._refresh(q) or seq
                    if q.ready:
                        item = q.item(0 if front else -1)
                        if remove:
                            seq = self._rec(q, ("remove", queue, item[0])) or seq
                            q.pop_front() if front else q.pop_back()
                            q.attempts.pop(item[0], None)
                            q.removed += 1
                            if q.watch is not None:
                                self._delivered(q, item[0])
                            if q.putters:
                                q.wake_putters()
        finally:
            self._commit(seq)
        if item is None:
            if default is MISSING:
                raise Empty(f"queue {queue!r} has no ready message")
            return default
        return item[2]

    def get(self, queue: str, *, timeout: Optional[float] = None) -> Any:
        """See :meth:`MessageQueue.get`."""
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
        return self._wait_take(queue, timeout, None, False)[2]

    def reserve(
        self, queue: str, *, timeout: Optional[float] = None, lease: Optional[float] = None
    ) -> Message:
        """See :meth:`MessageQueue.reserve`."""
        if lease is not None:
            lease = check_seconds("lease", lease)
        item, attempts = self._wait_take(queue, timeout, lease, True)[:2]
        return Message(item[0], queue, item[2], item[1], attempts)

    def _wait_take(
        self, queue: str, timeout: Optional[float], lease: Optional[float], reserve: bool,
        block: bool = True, stop: Optional[Callable[[], bool]] = None,
    ) -> Tuple[Item, int, Any]:
        """Wait for a ready message and take (or reserve) it: ``(item, attempts, body)``."""
        deadline = deadline_of(timeout)
        seq = 0
        try:
            with self.mutex:
                q, seq = self._until_ready(queue, deadline, block, stop)
                item, attempts, seq2 = self._pop_for(q, lease, reserve)
                seq = seq2 or seq
                return item, attempts, item[2]
        finally:
            self._commit(seq)

    def _until_ready(
        self, queue: str, deadline: Optional[float], block: bool, stop: Optional[Callable[[], bool]]
    ) -> Tuple[QueueState, int]:
        """With the mutex held: wait until ``queue`` has a ready message; return it and a seq.

        Wakes for every way a message becomes ready: an add, a nack, and (bounded by
        the queue's next timed change) a delay falling due or a lease ending.

        :raises Empty: ``deadline`` passed, or nothing ready and not ``block``.
        :raises ShutDown: closed, or ``stop()`` became true (a view shut down).
        """
        seq = 0
        while True:
            q, seq, wait = self._ready_or_wait(queue, deadline, block, stop, seq)
            if q.ready:
                return q, seq
            q.getters += 1
            try:
                q.not_empty.wait(wait)
            finally:
                q.getters -= 1
                self._left_room(q)

    def _ready_or_wait(
        self, queue: str, deadline: Optional[float], block: bool, stop: Optional[Callable[[], bool]],
        seq: int = 0,
    ) -> Tuple[QueueState, int, Optional[float]]:
        """With the mutex held: ``(q, seq, wait)``: ``q`` has a ready message, or the caller
        may wait ``wait`` seconds for one (``None``: no bound), the least of what is left
        of ``deadline`` and the time until the queue's next timed change.

        :raises Empty: ``deadline`` passed, or nothing ready and not ``block``.
        :raises ShutDown: closed, or ``stop()`` is true (a view shut down).
        """
        self._check_writable()
        q = self._waiting_room(queue)
        if q.timed:
            seq = self._refresh(q) or seq
        if q.ready:
            return q, seq, None
        if stop is not None and stop():
            self._left_room(q)  # no placeholder left for an unknown name
            raise ShutDown("the queue view is shut down")
        wait = remaining(deadline)
        if not block or (wait is not None and wait <= 0):
            self._left_room(q)
            raise Empty(f"queue {queue!r} has no ready message")
        if q.timed:
            due = self._next_due(q)
            if due != INF:
                until_due = max(0.0, due - self._clock())
                wait = until_due if wait is None else min(wait, until_due)
        return q, seq, wait

    def reserve_many(
        self, queue: str, n: int, *, timeout: Optional[float] = None, lease: Optional[float] = None
    ) -> List[Message]:
        """See :meth:`MessageQueue.reserve_many`."""
        n = check_count("n", n)
        if lease is not None:
            lease = check_seconds("lease", lease)
        deadline = deadline_of(timeout)
        seq = 0
        try:
            with self.mutex:
                q, seq = self._until_ready(queue, deadline, True, None)
                taken, seq2 = self._reserve_front(q, min(n, len(q.ready)), lease)
                seq = seq2 or seq
        finally:
            self._commit(seq)
        return [Message(item[0], queue, item[2], item[1], attempts) for item, attempts in taken]

    def _reserve_front(
        self, q: QueueState, k: int, lease: Optional[float]
    ) -> Tuple[List[Tuple[Item, int]], int]:
        """With the mutex held: reserve the ``k`` oldest ready messages as one recorded change."""
        lease_due = None if lease is None else self._clock() + lease
        seq = 0
        if q.durable and self._writable:
            ready = q.ready
            records = [(("reserve", q.name, ready[i], lease_due), None) for i in range(k)]
            seq = self._store.append_batch(records)
        taken = q.reserve_first(k, lease_due)
        if lease_due is not None:
            self._new_lease(q)
        if q.putters:
            q.wake_putters(k)
        return taken, seq

    def _pop_for(self, q: QueueState, lease: Optional[float], reserve: bool) -> Tuple[Item, int, int]:
        item = q.item(0)
        if reserve:
            lease_due = None if lease is None else self._clock() + lease
            seq = self._rec(q, ("reserve", q.name, item[0], lease_due))
            q.pop_front()
            attempts = q.reserve(item, lease_due)
            if lease_due is not None:
                self._new_lease(q)
        else:
            seq = self._rec(q, ("remove", q.name, item[0]))
            q.pop_front()
            q.attempts.pop(item[0], None)
            q.removed += 1
            attempts = 0
            if q.watch is not None:
                self._delivered(q, item[0])
        if q.putters:
            q.wake_putters()
        return item, attempts, seq
