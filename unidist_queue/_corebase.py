"""The state owner of a MessageQueue, part 1: its fields, records, commits and news (internal).

:class:`~unidist_queue._core.QueueCore` is the one object that holds a MessageQueue's
state: one mutex, the queues (:class:`~unidist_queue._state.QueueState`), the ids, the
store and the subscribers. It is the only code that records, changes, counts and wakes
waiters and subscribers; ``MessageQueue`` and ``QueueView`` are facades over it. Its
class is assembled from mixins, one module per concern, each building on this base:

* :mod:`._timed`: timed changes (delays, leases, expiry) and settling back;
* :mod:`._adding`: add, add_many, declare and overflow;
* :mod:`._taking`: oldest/newest, get, reserve and reserve_many, and the waits;
* :mod:`._atake`: aget, areserve and areserve_many, and the async view's waits;
* :mod:`._settling`: ack, nack (one or many) and extend;
* :mod:`._core`: loading, looking, removing, subscribing, and the view's operations.

Locking: one mutex per core; each queue's two Conditions are on it (see
:mod:`._state`: who notifies each). Every method named with a leading underscore is
called with the mutex held unless its docstring says otherwise. User code (subscribers)
and logging never run under the mutex; the only disk I/O under it is the store's
``append``/``append_batch`` that orders a change; fsync, snapshots and subscribers run
in :meth:`CoreBase._commit`, after it is released.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from ._replay import export
from ._state import QueueState
from .errors import ShutDown, StoreError
from .store.base import Record, State, Store

__all__ = ["ID_BLOCK", "CoreBase", "Subscriber", "not_a_name", "notify_subscribers"]

logger = logging.getLogger("unidist_queue.queues")

ID_BLOCK = 4096  # ids per "ids" record: recorded before the first of them is handed out
Subscriber = Callable[[str], Any]


def not_a_name(name: object) -> TypeError:
    """The error for a queue name that is not a ``str`` (it names the argument).

    Queue names are checked only where a lookup misses (a dict key is always a ``str``),
    so the hot paths pay nothing for it: :meth:`CoreBase._queue`, :meth:`CoreBase._waiting_room`
    and the fast paths that fall back on them.
    """
    return TypeError(f"queue must be a str, not {type(name).__name__}")


def notify_subscribers(subs: Dict[Optional[str], Tuple[Subscriber, ...]], name: str) -> None:
    """Run the callbacks of ``name`` and of every queue (key ``None``) in ``subs``, outside
    every lock; one that raises is logged at ERROR with its traceback. O(s) for s callbacks.

    Shared by both backends' subscribers (MessageQueue and RedisMessageQueue).
    """
    for callback in subs.get(name, ()) + subs.get(None, ()):
        try:
            callback(name)
        except Exception:
            logger.exception("subscriber %r raised for queue %r", callback, name)


class CoreBase:
    """Fields and shared machinery of :class:`~unidist_queue._core.QueueCore` (see the module)."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self._store = store
        self._persistent = bool(store.persistent)
        self._read_only = bool(store.read_only)
        self._writable = self._persistent and not self._read_only  # adds may be recorded
        self._clock = clock
        self.mutex = threading.Lock()  # public: a QueueView makes its Conditions on it
        self._compacting = threading.Lock()  # one snapshot at a time
        self._queues: Dict[str, QueueState] = {}
        self._subscribers: Dict[Optional[str], Tuple[Subscriber, ...]] = {}
        self._news: List[str] = []  # queues where messages became ready, told of in _commit
        # Dead messages (DESIGN 3, max_attempts): log lines (level, format, args) and, at
        # level 0, moves whose body must be encoded first; done in _commit (_settle_deaths).
        self._deaths: List[Tuple[int, str, Tuple[Any, ...]]] = []
        self._feeders: Dict[str, Set[str]] = {}  # dead-letter queue -> queues moving messages there
        self._closed = False
        self._last_id = 0
        self._id_mark = 1 if self._writable else sys.maxsize  # ids below this are known to the store

    @property
    def persistent(self) -> bool:
        """Whether the store keeps records across restarts (queues are durable by default)."""
        return self._persistent

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def store(self) -> Store:
        """The store (for the command line's inspection and the TaskHandler's encoding)."""
        return self._store


    def _check_open(self) -> None:
        if self._closed:
            raise ShutDown("the MessageQueue is closed")

    def _check_writable(self) -> None:
        if self._closed:
            raise ShutDown("the MessageQueue is closed")
        if self._read_only:
            raise StoreError("the store is read-only: the queue cannot change")

    def _queue(self, name: str, create: bool) -> Optional[QueueState]:
        """The existing queue ``name``; a new one if ``create`` (a placeholder becomes real).

        :raises TypeError: ``name`` is not a ``str`` (looked at only when it is not found).
        """
        try:
            q = self._queues.get(name)
        except TypeError:  # unhashable: not a str
            raise not_a_name(name) from None
        if q is not None and q.exists:
            return q
        if not isinstance(name, str):  # a miss: only now is the name's type looked at
            raise not_a_name(name)
        if not create:
            return None
        if q is None:
            q = self._queues[name] = QueueState(name, self.mutex, self._persistent)
        q.exists = True
        q.durable = self._persistent
        q.fed = name in self._feeders
        q.retime()
        return q

    def _waiting_room(self, name: str) -> QueueState:
        """The queue ``name``, or a placeholder a getter can wait on (not an existing queue).

        :raises TypeError: ``name`` is not a ``str`` (looked at only when it is not found).
        """
        try:
            q = self._queues.get(name)
        except TypeError:  # unhashable: not a str
            raise not_a_name(name) from None
        if q is None:
            if not isinstance(name, str):
                raise not_a_name(name)
            q = self._queues[name] = QueueState(name, self.mutex, False)
            q.exists = False
            q.fed = name in self._feeders
            q.retime()
        return q

    def _left_room(self, q: QueueState) -> None:
        """Forget a placeholder nobody waits on any more."""
        if not q.exists and not q.getters and not q.putters and self._queues.get(q.name) is q:
            del self._queues[q.name]

    def _rec(self, q: QueueState, record: Record, body: Optional[bytes] = None) -> int:
        """Append ``record`` for a durable queue; return its sequence number (0: none)."""
        if not q.durable or self._read_only:
            return 0
        return self._store.append(record, body)

    def _commit(self, seq: int) -> None:
        """Outside the mutex, after every change: make ``seq`` durable, compact if it is
        time, then tell subscribers of the queues where messages became ready.

        Every call that may have changed a queue ends here, so no news is left behind:
        the thread that made a change tells of it (or a thread that came just after).
        ``AddMixin._add_durable`` skips the call when none of its four conditions holds
        (``needs_commit``, ``compaction_due``, ``_news``, ``_deaths``), and
        ``await_take`` when ``seq`` is 0 and neither of the last two holds: keep them in step.
        """
        if seq:
            store = self._store
            if store.needs_commit:
                store.commit(seq)
            if store.compaction_due:
                self._auto_compact()
        if self._deaths:
            self._settle_deaths()
        if self._news:
            with self.mutex:
                news, self._news = self._news, []
            for name in news:
                self._notify_subscribers(name)

    def _settle_deaths(self) -> None:
        """Outside the mutex: log the dead messages collected, and deliver the moves that
        wait for their body to be encoded (:meth:`_deliver_later`)."""
        with self.mutex:
            deaths, self._deaths = self._deaths, []
        for level, text, args in deaths:
            if level:
                logger.log(level, text, *args)
            else:
                self._deliver_later(text, *args)

    def _deliver_later(self, why: str, name: str, body: Any) -> None:
        """Outside the mutex: encode ``body`` and add it to the durable dead-letter queue
        ``name`` (see :mod:`._dead`; implemented by the core)."""
        raise NotImplementedError  # pragma: no cover - QueueCore implements it

    def _auto_compact(self) -> None:
        """Outside the mutex: compact now, unless another thread already is (then it's done)."""
        if self._compacting.acquire(blocking=False):
            try:
                self._compact()
            except ShutDown:
                pass  # closed meanwhile: close() made everything durable
            except Exception:
                logger.exception("automatic compaction failed; the archive keeps growing")
            finally:
                self._compacting.release()

    def _heard(self, q: QueueState) -> None:
        """With the mutex held: messages became ready in ``q``; its subscribers hear of it in
        :meth:`_commit`, after the mutex is released."""
        if self._subscribers and q.name not in self._news:
            self._news.append(q.name)

    # -- items put through a QueueView (DESIGN 3, view: join) --------------------------------

    @staticmethod
    def _gone(q: QueueState, msg_id: int) -> None:
        """Message ``msg_id`` left ``q`` without being delivered (evicted, expired, cleared,
        dropped, moved as dead): if a view put it, that view counts it as done. O(1)."""
        watch = q.watch
        if watch is not None:
            left = watch.pop(msg_id, None)
            if left is not None:
                if not watch:
                    q.watch = None
                    q.retime()
                left()

    @staticmethod
    def _delivered(q: QueueState, msg_id: int) -> None:
        """Message ``msg_id`` was taken for good: a view that put it waits for its
        ``task_done`` (its count stays) and stops watching it. O(1)."""
        watch = q.watch
        if watch is not None and watch.pop(msg_id, None) is not None and not watch:
            q.watch = None
            q.retime()

    @staticmethod
    def _all_gone(q: QueueState) -> None:
        """Every message of ``q`` left it undelivered (clear, drop). O(w) for w watched."""
        watch = q.watch
        if watch is not None:
            q.watch = None
            q.retime()
            for left in watch.values():
                left()

    def _notify_subscribers(self, name: str) -> None:
        """Outside the mutex: run the subscribers of ``name`` and of every queue."""
        notify_subscribers(self._subscribers, name)

    def compact(self) -> None:
        """See :meth:`MessageQueue.compact`."""
        with self._compacting:
            self._compact()

    def _compact(self) -> None:
        """With ``_compacting`` held: snapshot the durable queues."""
        with self.mutex:
            self._check_writable()
        if not self._persistent:
            return
        self._store.prepare_snapshot()
        with self.mutex:
            self._check_writable()
            state: State = {
                "version": 1,
                "last_id": max(self._last_id, self._id_mark - 1),
                "queues": {n: export(q) for n, q in self._queues.items() if q.exists and q.durable},
            }
            token = self._store.begin_snapshot()
        self._store.write_snapshot(state, token)

    def close(self) -> None:
        """See :meth:`MessageQueue.close`."""
        if self._deaths:  # moves a failed call left behind (see _dead) happen before closing
            self._settle_deaths()
        error: Optional[StoreError] = None
        with self.mutex:
            if self._closed:
                return
            self._closed = True
            if self._writable and self._id_mark > self._last_id + 1:
                try:  # the exact high-water mark: after a clean close, ids go on without a gap
                    self._store.append(("last_id", self._last_id))
                except StoreError as exc:
                    error = exc
            for q in self._queues.values():
                q.bare = q.lean = q.simple = False  # the fast paths check no _closed: they see these
                q.wake_all()
        if error is not None:
            logger.warning("could not record the last id at close (%s); the next ids skip a block", error)
        with self._compacting:
            self._store.close()
