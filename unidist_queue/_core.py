"""QueueCore: the one object that owns a MessageQueue's state (internal).

Assembled from the mixins of :mod:`._corebase`, :mod:`._timed`, :mod:`._adding`,
:mod:`._taking`, :mod:`._atake` and :mod:`._settling`; adds loading, looking, removing, subscribing,
and the operations a :class:`~unidist_queue.QueueView` needs (public names: the view is
another object). ``MessageQueue`` is a facade over it.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, List, Optional, Tuple

from ._adding import AddMixin
from ._atake import AwaitMixin
from ._corebase import Subscriber, logger, not_a_name
from ._settling import SettleMixin
from ._state import INF, QueueState
from ._util import remaining
from ._watched import Watched
from .errors import Full, SerializationError, ShutDown
from .message import Message, QueueStats
from .store.base import Store

__all__ = ["QueueCore"]


class QueueCore(AddMixin, AwaitMixin, SettleMixin):
    """The state of every queue of one MessageQueue, and every change to it (see the module).

    Thread-safe: one mutex (:attr:`mutex`) guards everything.
    """

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        super().__init__(store, clock)
        if self._persistent:
            self._load()


    def _load(self) -> None:
        from ._replay import gc_paused, replay

        with gc_paused():  # millions of objects are made here: see gc_paused
            state, records = self._store.load()
            self._last_id = replay(self._queues, self.mutex, state, records)
            del state, records
        if self._writable:
            self._id_mark = self._last_id + 1
        self._relink()
        seq = 0
        for q in list(self._queues.values()):
            if q.timed:  # due while the store was closed (leases included): happened first
                seq = self._refresh(q) or seq
        seq = self._end_reservations() or seq
        self._commit(seq)

    def _end_reservations(self) -> int:
        """Opening: the restart ends every reservation left, recorded as nacks in id order;
        one past its queue's ``max_attempts`` moves out instead (DESIGN 3). Returns a seq.

        Without such a move, one bulk step per queue (O(k log k)); with one, every
        reservation of every queue ends in id order, one at a time, as live nacks would.
        """
        seq = 0
        ending = [q for q in self._queues.values() if q.reserved]
        if any(self._dead_bound(q, msg_id) for q in ending for msg_id in q.reserved):
            now = self._clock()
            for msg_id, name in sorted((msg_id, q.name) for q in ending for msg_id in q.reserved):
                seq = self._return(self._queues[name], msg_id, None, now) or seq
            return seq
        for q in ending:
            released = [(("nack", q.name, msg_id, None), None) for msg_id in sorted(q.reserved)]
            seq = self._store.append_batch(released) if self._writable and q.durable else seq
            q.release_reserved()
        return seq

    def _look(self, queue: str) -> Tuple[Optional[QueueState], int]:
        """With the mutex held: the existing queue, refreshed, and a seq to commit."""
        self._check_open()
        q, seq = self._existing(queue)
        if q is None or not q.timed:
            return q, seq
        return q, self._refresh(q) or seq

    def count(self, queue: str) -> int:
        """See :meth:`MessageQueue.count`."""
        with self.mutex:
            try:
                q = self._queues.get(queue)
            except TypeError:  # unhashable: not a str (the try is free otherwise)
                raise not_a_name(queue) from None
            if q is not None and not q.timed and not self._closed:
                return len(q.ready)
            q, seq = self._look(queue)
            n = 0 if q is None else len(q.ready)
        self._commit(seq)
        return n

    def exists(self, queue: str) -> bool:
        """See :meth:`MessageQueue.exists`."""
        with self.mutex:
            self._check_open()
            q, seq = self._existing(queue)
        self._commit(seq)
        return q is not None

    def all(self, queue: str) -> List[Any]:
        """See :meth:`MessageQueue.all`."""
        with self.mutex:
            q, seq = self._look(queue)
            bodies = [] if q is None else list(q.ready_bodies)
        self._commit(seq)
        return bodies

    def messages(self, queue: str) -> List[Message]:
        """See :meth:`MessageQueue.messages`."""
        with self.mutex:
            q, seq = self._look(queue)
            items = [] if q is None else q.items()
            attempts = {} if q is None else dict(q.attempts)
        self._commit(seq)
        return [Message(i, queue, body, t, attempts.get(i, 0)) for i, t, body in items]

    def queues(self) -> List[str]:
        """See :meth:`MessageQueue.queues`."""
        with self.mutex:
            self._check_open()
            return sorted(name for name, q in self._queues.items() if q.exists)

    def stats(self, queue: str) -> QueueStats:
        """See :meth:`MessageQueue.stats`."""
        with self.mutex:
            q, seq = self._look(queue)
            if q is None:
                result = QueueStats(0, 0, 0, 0, 0, 0, 0, 0, self._persistent)
            else:
                result = QueueStats(
                    len(q.ready), len(q.delayed), len(q.reserved), q.added, q.removed,
                    q.expired, q.dropped, q.dead, q.durable,
                )
        self._commit(seq)
        return result

    def next_due(self, queue: str) -> Optional[float]:
        """See :meth:`MessageQueue.next_due`."""
        with self.mutex:
            q, seq = self._look(queue)
            due = INF if q is None else self._next_due(q)
        self._commit(seq)
        return None if due == INF else due

    def clear(self, queue: str) -> int:
        """See :meth:`MessageQueue.clear`."""
        with self.mutex:
            self._check_writable()
            q, seq = self._existing(queue)
            if q is None:
                return 0
            seq = (self._refresh(q) if q.timed else 0) or seq  # what expired before counts as expired
            seq = self._rec(q, ("clear", queue)) or seq
            n = q.clear()
            q.dropped += n
            self._all_gone(q)
            q.wake_all(getters=False)
        self._commit(seq)
        return n

    def drop(self, queue: str) -> bool:
        """See :meth:`MessageQueue.drop`."""
        with self.mutex:
            self._check_writable()
            q, seq = self._existing(queue)
            if q is None:
                return False
            seq = self._rec(q, ("drop", queue)) or seq
            del self._queues[queue]
            q.exists = False
            self._all_gone(q)
            if q.max_attempts is not None and q.dead_letter is not None:
                self._relink()
            q.retime()
            q.wake_all()
        self._commit(seq)
        return True

    def subscribe(self, queue: Optional[str], callback: Subscriber) -> Callable[[], None]:
        """See :meth:`MessageQueue.subscribe`."""
        if queue is not None and not isinstance(queue, str):
            raise TypeError(f"queue must be a str or None, not {type(queue).__name__}")
        if not callable(callback):
            raise TypeError("callback must be callable")
        with self.mutex:
            self._check_open()
            self._subscribers[queue] = (*self._subscribers.get(queue, ()), callback)

        def unsubscribe() -> None:
            with self.mutex:
                subs = list(self._subscribers.get(queue, ()))
                for i, cb in enumerate(subs):
                    if cb is callback:
                        del subs[i]
                        break
                if subs:
                    self._subscribers[queue] = tuple(subs)
                else:
                    self._subscribers.pop(queue, None)

        return unsubscribe

    # -- for a QueueView (another object: public names) --------------------------------------

    def check_open(self) -> None:
        """Raise :class:`~unidist_queue.ShutDown` if closed. O(1). Thread-safe."""
        with self.mutex:
            self._check_open()

    def describe(self) -> str:
        """A short description for ``repr``: closed, or how many queues, and the store."""
        state = "closed" if self._closed else f"{len(self._queues)} queues"
        return f"{state}, store={type(self._store).__name__}"

    def view_put(
        self, name: str, item: Any, block: bool, deadline: Optional[float], room: Callable[[], int],
        stopped: Callable[[], bool], counted: Callable[[], None], left: Callable[[], None],
    ) -> None:
        """Add ``item`` for a view: wait (unless not ``block``) until fewer than ``room()``
        messages are ready (0: no bound), then add it as :meth:`add` would and call
        ``counted()`` under the mutex. ``stopped()`` (a shut down view) raises ``ShutDown``.

        The core then watches the message until it is delivered (taken for good, acked):
        if it leaves undelivered instead (evicted, expired, cleared, dropped, moved as
        dead), it calls ``left()`` under the mutex, so that the view's ``join`` need not
        wait for it. A queue with watched messages leaves the in-memory fast paths.

        :raises Full: no room and not ``block``, or ``deadline`` passed.
        :raises ShutDown: the view was shut down, or the MessageQueue closed.
        """
        datas = self._encode_for(name, [item])
        while True:
            with self.mutex:
                if stopped():
                    raise ShutDown("the queue view is shut down")
                self._check_writable()
                self._wait_for_view_room(name, block, deadline, room, stopped)
                q = self._queue(name, create=True)
                assert q is not None
                if datas is not None or not q.durable:
                    q, seq = self._make_room(q, None, block=False)
                    data = None if datas is None else datas[0]
                    msg_id, seq2 = self._insert(q, item, data, None, evict=True)
                    self._heard(q)
                    counted()
                    if q.watch is None:
                        q.watch = Watched()
                    q.watch[msg_id] = left
                    q.bare = False  # something is watched
                    break
            # Durable now (dropped and made again since the body was looked at, perhaps
            # while this put waited for room): encode it, outside the mutex, and retry.
            datas = self._encode_for(name, [item])
        self._commit(seq2 or seq)

    def _wait_for_view_room(
        self, name: str, block: bool, deadline: Optional[float], room: Callable[[], int],
        stopped: Callable[[], bool],
    ) -> None:
        """Wait until fewer than ``room()`` items are ready (0: no bound)."""
        while True:
            limit = room()
            if limit <= 0:
                return
            q = self._waiting_room(name)
            if len(q.ready) < limit:
                return
            wait = remaining(deadline)
            if not block or (wait is not None and wait <= 0):
                raise Full(f"queue view {name!r} is full ({limit} items)")
            try:
                q.wait_for_room(wait)
            finally:
                self._left_room(q)
            if stopped():
                raise ShutDown("the queue view is shut down")
            self._check_writable()

    def view_join(self, name: str, unfinished: Callable[[], int], done: threading.Condition) -> None:
        """Wait (on ``done``, a Condition on the mutex) until ``unfinished()`` is 0, as a
        view's ``join``. Waits are bounded by the queue's next timed change, which is
        then applied (an expiry may be what ``join`` waits for: see :meth:`view_put`).
        Closed, it only waits (``task_done`` still counts). Thread-safe.
        """
        while True:
            seq = 0
            with self.mutex:
                q = self._queues.get(name)
                if q is not None and q.timed and not self._closed and not self._read_only:
                    seq = self._refresh(q)
                if not unfinished():
                    break
                if not seq:
                    due = INF if q is None or self._closed else self._next_due(q)
                    done.wait(None if due == INF else max(0.0, due - self._clock()))
            self._commit(seq)
        self._commit(seq)

    def view_get(self, name: str, timeout: Optional[float], block: bool, stopped: Callable[[], bool]) -> Any:
        """Take the oldest ready message's body for a view, waiting as :meth:`get` does.

        :raises Empty: nothing ready and not ``block``, or ``timeout`` passed.
        :raises ShutDown: ``stopped()`` with nothing ready, or the MessageQueue closed.
        """
        return self._wait_take(name, timeout, None, False, block=block, stop=stopped)[2]

    def view_shutdown(self, name: str, immediate: bool, removed: Callable[[], None]) -> None:
        """Wake every caller waiting on ``name``; with ``immediate``, first remove every ready
        message, calling (under the mutex) the callback of the view that put it, if one
        did (see :meth:`view_put`), else ``removed()``."""
        seq = 0
        with self.mutex:
            q = self._waiting_room(name)
            if immediate:
                while q.ready and not self._closed and not self._read_only:
                    left = None if q.watch is None else q.watch.get(q.ready[0])
                    seq = self._pop_for(q, None, False)[2] or seq
                    (removed if left is None else left)()  # the putting view's count, if a view put it
            q.wake_all()
            self._left_room(q)
        self._commit(seq)

    # -- dead letters whose body must be encoded first (see _dead) ---------------------------

    def _deliver_later(self, why: str, name: str, body: Any) -> None:
        """Outside the mutex: a message of a queue that is not durable, past its
        ``max_attempts``, joins the durable dead-letter queue ``name``: encoded here, then
        added as :meth:`add` would (created with defaults if unknown; under
        ``overflow="reject"`` when full it is dropped, with an ERROR log). Logs the move.
        """
        try:
            data = self._store.encode(body)
        except SerializationError as exc:
            logger.error("%s: dropped, its body cannot be stored in queue %r (%s)", why, name, exc)
            return
        with self.mutex:
            new_id, seq = (-1, 0) if self._closed else self._add_dead(name, body, data)
        if new_id < 0:  # pragma: no cover - a close() racing the commit (close delivers first)
            logger.error("%s: dropped, the MessageQueue closed before it reached %r", why, name)
        elif new_id:
            logger.warning("%s: moved to queue %r as message %d", why, name, new_id)
        else:
            logger.error("%s: dropped, dead-letter queue %r is full (overflow='reject')", why, name)
        self._commit(seq)

    def _add_dead(self, name: str, body: Any, data: bytes) -> Tuple[int, int]:
        """Add a dead message to ``name`` as an add would: ``(id, seq)``; id 0: refused
        (``reject`` and full)."""
        d = self._queue(name, create=True)
        assert d is not None
        seq = self._refresh(d) if d.timed else 0
        if d.maxlen is not None and d.overflow == "reject" and len(d.ready) >= d.maxlen:
            return 0, seq
        new_id, seq2 = self._insert(d, body, data if d.durable else None, None, evict=True)
        self._heard(d)
        return new_id, seq2 or seq
