"""MessageQueue: named message queues in memory, durable when given a persistent store.

One mutex guards all queues of a ``MessageQueue``; each queue has two Conditions on it
(``not_empty``, ``not_full``, see :mod:`unidist_queue._state`). User code (subscribers)
and logging never run under the mutex; the only disk I/O under it is the store's one
``append`` that orders a record, and fsync happens after the mutex is released.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from ._state import DELAYED, EXPIRY, INF, LEASE, Item, QueueState
from ._util import check_count, check_seconds, deadline_of, remaining
from .errors import Empty, Full, ShutDown, StoreError
from .message import MISSING, Message, QueueStats
from .store.base import MemoryStore, Record, State, Store

__all__ = ["MessageQueue"]

logger = logging.getLogger(__name__)

_OVERFLOWS = ("drop_oldest", "reject", "block")
_ID_BLOCK = 4096  # ids per "ids" record: recorded before the first of them is handed out
Subscriber = Callable[[str], Any]


class MessageQueue:
    """Named FIFO message queues with limits, delays, reservations and optional durability.

    ``MessageQueue(store=None, *, clock=time.time)``: ``store=None`` keeps everything in
    memory; a persistent store (``FileStore(path)``) makes every queue durable unless
    declared ``durable=False``, and its state is loaded here. ``clock`` stamps messages
    and drives ``max_age``, ``delay`` and ``lease``; blocking waits always measure their
    timeouts with :func:`time.monotonic`.

    Methods by purpose:

    * adding: :meth:`add`, :meth:`declare`, :meth:`subscribe`
    * taking: :meth:`oldest`, :meth:`newest`, :meth:`get`, :meth:`reserve`, :meth:`ack`,
      :meth:`nack`
    * looking: :meth:`count`, :meth:`exists`, :meth:`all`, :meth:`messages`,
      :meth:`queues`, :meth:`stats`
    * removing: :meth:`clear`, :meth:`drop`
    * the rest: :meth:`view`, :meth:`compact`, :meth:`close` (also a context manager)

    Thread-safety: every method may be called from any thread and is atomic; no two
    consumers ever receive the same message. After :meth:`close` every method but
    ``close`` raises :class:`ShutDown`. Costs: ``add``, ``oldest``, ``newest``, ``count``
    and ``exists`` are O(1) for queues without ``max_age`` (O(log n) with it); delayed
    messages and leases cost O(log n) and are promoted lazily, by the calls that read
    the queue: a ``MessageQueue`` starts no thread.

    :raises TypeError: ``store`` is not a :class:`Store` or ``clock`` is not callable.
    :raises StoreError: the store cannot be read.
    """

    def __init__(self, store: Optional[Store] = None, *, clock: Callable[[], float] = time.time) -> None:
        if store is None:
            store = MemoryStore()
        if not isinstance(store, Store):
            raise TypeError(f"store must be a unidist_queue.Store, not {type(store).__name__}")
        if not callable(clock):
            raise TypeError("clock must be callable")
        self._store = store
        self._persistent = bool(store.persistent)
        self._read_only = bool(store.read_only)
        self._writable = self._persistent and not self._read_only  # adds may be recorded
        self._clock = clock
        self._mutex = threading.Lock()
        self._compacting = threading.Lock()  # one snapshot at a time
        self._queues: Dict[str, QueueState] = {}
        self._subscribers: Dict[Optional[str], Tuple[Subscriber, ...]] = {}
        self._news: List[str] = []  # queues where messages became ready, told of in _commit
        self._closed = False
        self._last_id = 0
        self._id_mark = 1  # ids below this are known to the store
        if self._persistent:
            self._load()

    # -- loading ---------------------------------------------------------------------------

    def _load(self) -> None:
        from ._replay import gc_paused, replay

        with gc_paused():  # millions of objects are made here: see gc_paused
            state, records = self._store.load()
            self._last_id = replay(self._queues, self._mutex, state, records)
            del state, records
        self._id_mark = self._last_id + 1
        seq = 0
        for q in self._queues.values():
            if q.timed:  # due while the store was closed (leases included): happened first
                seq = self._refresh(q) or seq
            if q.reserved:  # then the restart ends every reservation left, as nacks in id order
                released = [(("nack", q.name, msg_id, None), None) for msg_id in sorted(q.reserved)]
                seq = self._store.append_batch(released) if self._writable and q.durable else seq
                q.release_reserved()
        self._commit(seq)

    # -- internal helpers (called with the mutex held unless said otherwise) ----------------

    def _check_open(self) -> None:
        if self._closed:
            raise ShutDown("the MessageQueue is closed")

    def _check_writable(self) -> None:
        if self._closed:
            raise ShutDown("the MessageQueue is closed")
        if self._read_only:
            raise StoreError("the store is read-only: the queue cannot change")

    def _queue(self, name: str, create: bool) -> Optional[QueueState]:
        """The existing queue ``name``; a new one if ``create`` (a placeholder becomes real)."""
        q = self._queues.get(name)
        if q is not None and q.exists:
            return q
        if not create:
            return None
        if not isinstance(name, str):
            raise TypeError(f"queue must be a str, not {type(name).__name__}")
        if q is None:
            q = self._queues[name] = QueueState(name, self._mutex, self._persistent)
        q.exists = True
        q.durable = self._persistent
        q.retime()
        return q

    def _waiting_room(self, name: str) -> QueueState:
        """The queue ``name``, or a placeholder a getter can wait on (not an existing queue)."""
        q = self._queues.get(name)
        if q is None:
            if not isinstance(name, str):
                raise TypeError(f"queue must be a str, not {type(name).__name__}")
            q = self._queues[name] = QueueState(name, self._mutex, False)
            q.exists = False
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
        """
        if seq:
            self._store.commit(seq)
            if self._store.compaction_due:
                self._auto_compact()
        if self._news:
            with self._mutex:
                news, self._news = self._news, []
            for name in news:
                self._notify_subscribers(name)

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

    def _refresh(self, q: QueueState) -> int:
        """Apply every timed change of ``q`` due now, in due order; return a seq to commit.

        The one place where timed changes (a delayed message falling due, a lease
        ending, a message expiring) happen. Each is applied as of its own due time, so
        the queue ends up as if every change had happened exactly when due, whether or
        not another call looked at the queue in between (DESIGN 3). O(k log n) for k
        changes.
        """
        now = self._clock()
        seq = 0
        while True:
            when, kind = q.next_change()
            if when > now or (kind == EXPIRY and when == now):  # NONE has when == inf
                break
            if kind == LEASE:
                seq = self._return(q, q.first_lease(), None, when) or seq
            elif kind == DELAYED:
                seq = self._promote(q, when) or seq
            else:
                seq = self._expire(q, q.first_aged()) or seq
        q.retime()
        return seq

    def _promote(self, q: QueueState, when: float) -> int:
        """The first delayed message falls due at ``when``: it joins (evicting under drop_oldest)."""
        entry = q.pop_delayed()
        if q.is_expired(entry[2], when):
            seq = self._rec(q, ("remove", q.name, entry[1]))
            q.attempts.pop(entry[1], None)
            q.expired += 1
            return seq
        seq = self._rec(q, ("promote", q.name, entry[1]))
        q.rejoin(entry)
        self._heard(q)
        if not entry[4] and q.maxlen is not None and q.overflow == "drop_oldest":
            while len(q.ready) > q.maxlen:  # a delayed add joined the back
                seq = self._evict_oldest(q) or seq
        return seq

    def _expire(self, q: QueueState, msg_id: int) -> int:
        """The ready message ``msg_id`` outlived ``max_age``: remove it."""
        seq = self._rec(q, ("remove", q.name, msg_id))
        q.pop_ready_id(msg_id)
        q.attempts.pop(msg_id, None)
        q.expired += 1
        if q.putters:
            q.not_full.notify()
        return seq

    def _return(self, q: QueueState, msg_id: int, delay: Optional[float], now: float) -> int:
        """Settle reservation ``msg_id`` back into the queue (nack or lease end) at ``now``."""
        record = self._return_record(q, msg_id, delay, now)
        seq = self._rec(q, record)
        self._apply_settle(q, record, False)
        return seq

    @staticmethod
    def _return_record(q: QueueState, msg_id: int, delay: Optional[float], now: float) -> Record:
        """The record of returning reservation ``msg_id`` at ``now``: a nack, or an expiry."""
        if q.is_expired(q.reserved[msg_id][1], now):
            return ("remove", q.name, msg_id)
        return ("nack", q.name, msg_id, None if delay is None else now + delay)

    def _apply_settle(self, q: QueueState, record: Record, acked: bool) -> None:
        """Apply a settle ``record`` (written already): ack, return, or expiry of a reservation."""
        msg_id = record[2]
        item = q.unreserve(msg_id)
        assert item is not None
        if record[0] == "remove":  # an ack, or a returned message past max_age
            q.attempts.pop(msg_id, None)
            if acked:
                q.removed += 1
            else:
                q.expired += 1
            return
        q.enqueue(item, record[3], True)
        if record[3] is None:
            self._heard(q)

    def _heard(self, q: QueueState) -> None:
        """With the mutex held: messages became ready in ``q``; its subscribers hear of it in
        :meth:`_commit`, after the mutex is released."""
        if self._subscribers and q.name not in self._news:
            self._news.append(q.name)

    def _encode_for(self, name: str, messages: List[Any]) -> Optional[List[bytes]]:
        """Outside the mutex: the encoded bodies if ``name`` is (or will be) durable."""
        if not self._persistent or self._read_only:
            return None
        q = self._queues.get(name)
        if q is not None and q.exists and not q.durable:
            return None
        return [self._store.encode(message) for message in messages]

    def _insert(
        self, q: QueueState, message: Any, data: Optional[bytes], delay: Optional[float],
        evict: bool = False,
    ) -> Tuple[int, int]:
        """Add one message to ``q``: :meth:`_insert_many` of one. Returns ``(id, seq)``."""
        ids, seq = self._insert_many(q, [message], None if data is None else [data], delay, evict)
        return ids[0], seq

    def _insert_many(
        self, q: QueueState, batch: List[Any], datas: Optional[List[bytes]], delay: Optional[float],
        evict: bool = False,
    ) -> Tuple[List[int], int]:
        """With the mutex held: add ``batch`` to ``q`` (room already made); return ``(ids, seq)``.

        With ``evict``, a ready batch for a full ``drop_oldest`` queue evicts the oldest
        messages in the same step (of a batch longer than ``maxlen``, its first ones).
        Everything the batch records (an id block, the adds, the evictions) goes to the
        store as one all-or-nothing :meth:`~unidist_queue.Store.append_batch` before
        memory changes: when the store fails, nothing changed (timed changes applied
        before by :meth:`_refresh` stand: they were due).
        """
        first, k = self._last_id + 1, len(batch)
        now = self._clock()
        due = None if delay is None else now + delay
        over = 0
        if evict and due is None and q.maxlen is not None and q.overflow == "drop_oldest":
            over = max(0, len(q.ready) + k - q.maxlen)
        records = self._add_records(q, first, k, now, due, datas, over)
        seq = 0
        if len(records) == 1:
            seq = self._store.append(*records[0])
        elif records:
            seq = self._store.append_batch(records)
        self._last_id = first + k - 1
        if records and records[0][0][0] == "ids":
            self._id_mark = records[0][0][1]
        old = min(over, len(q.ready))
        for _ in range(old):
            self._drop_oldest(q)
        for i, message in enumerate(batch):
            q.enqueue((first + i, now, message), due, False)
        for _ in range(over - old):  # the first of a batch longer than maxlen
            self._drop_oldest(q)
        q.added += k
        return list(range(first, first + k)), seq

    def _add_records(
        self, q: QueueState, first: int, k: int, now: float, due: Optional[float],
        datas: Optional[List[bytes]], over: int,
    ) -> List[Tuple[Record, Optional[bytes]]]:
        """The records of adding ids ``first .. first+k-1`` that evict ``over`` messages."""
        records: List[Tuple[Record, Optional[bytes]]] = []
        if not self._writable:
            return records
        if first + k - 1 >= self._id_mark:
            records.append((("ids", first + k - 1 + _ID_BLOCK), None))
        if q.durable:
            old = min(over, len(q.ready))
            records.extend((("remove", q.name, q.ready[i][0]), None) for i in range(old))
            assert datas is not None
            records.extend((("add", q.name, first + i, now, due), datas[i]) for i in range(k))
            records.extend((("remove", q.name, first + i), None) for i in range(over - old))
        return records

    def _make_room(
        self, q: QueueState, deadline: Optional[float], block: bool = True, n: int = 1
    ) -> Tuple[QueueState, int]:
        """Apply ``q``'s overflow policy before adding ``n`` messages; may wait.

        Returns the queue and a seq. ``"drop_oldest"`` evicts nothing here: the add
        evicts as part of its own recorded change (see :meth:`_insert_many`).

        :raises Full: ``"reject"`` (or not ``block``) and no room; the deadline passed.
        :raises ValueError: ``"block"`` and ``n`` is more than ``maxlen``.
        """
        seq = 0
        if q.timed:  # due messages join (before this add), expired ones make room
            seq = self._refresh(q)
        if q.overflow == "block" and q.maxlen is not None and n > q.maxlen and block:
            raise ValueError(f"messages: a batch of {n} never fits queue {q.name!r} (maxlen={q.maxlen})")
        while q.maxlen is not None and len(q.ready) + n > q.maxlen and q.overflow != "drop_oldest":
            if q.overflow == "reject" or not block:
                raise self._full(q, seq, "is full")
            wait = remaining(deadline)
            if wait is not None and wait <= 0:
                raise self._full(q, seq, "stayed full")
            if q.timed:  # wake when the oldest may expire
                due = q.next_due()
                if due != INF:
                    until_due = max(0.0, due - self._clock())
                    wait = until_due if wait is None else min(wait, until_due)
            q.wait_for_room(wait)
            self._check_writable()
            q = self._queue(q.name, create=True)  # type: ignore[assignment]
            if q.timed:
                seq = self._refresh(q) or seq
        return q, seq

    def _full(self, q: QueueState, seq: int, why: str) -> Full:
        """The ``Full`` for a refused add, once ``seq`` (records of the refresh) is committed.

        Called with the mutex held; it is released during the commit (an fsync).
        """
        error = Full(f"queue {q.name!r} {why} (maxlen={q.maxlen})")
        if seq:
            self._mutex.release()
            try:
                self._store.commit(seq)
            finally:
                self._mutex.acquire()
        return error

    def _evict_oldest(self, q: QueueState) -> int:
        """Drop the oldest ready message for overflow; return the record's seq."""
        seq = self._rec(q, ("remove", q.name, q.ready[0][0]))
        self._drop_oldest(q)
        return seq

    @staticmethod
    def _drop_oldest(q: QueueState) -> None:
        """Drop the oldest ready message for overflow, in memory (its record is written)."""
        item = q.pop_front()
        q.attempts.pop(item[0], None)
        q.dropped += 1

    def _notify_subscribers(self, name: str) -> None:
        """Outside the mutex: run the subscribers of ``name`` and of every queue."""
        subs = self._subscribers
        for callback in subs.get(name, ()) + subs.get(None, ()):
            try:
                callback(name)
            except Exception:
                logger.exception("subscriber %r raised for queue %r", callback, name)

    # -- adding ---------------------------------------------------------------------------

    def add(
        self, queue: str, message: Any, *, delay: Optional[float] = None, timeout: Optional[float] = None
    ) -> int:
        """Append ``message`` to ``queue`` (created with default options if unknown).

        Returns the message id: unique, increasing, never reused (also across restarts
        of a durable store). With ``delay`` (seconds) the message stays invisible until
        due, then joins the back of the queue. A delayed message is not ready, so it
        does not count toward ``maxlen`` and the overflow policy does not apply at the
        add (no eviction, no ``Full``, no wait); it applies when the message falls due:
        under ``"drop_oldest"`` the oldest ready messages are evicted to keep at most
        ``maxlen``; under ``"reject"`` and ``"block"`` it joins all the same (there is no
        caller left to refuse or hold) and the excess stays until consumed.
        ``timeout`` bounds the wait for room
        under ``overflow="block"`` (``None``: wait as long as it takes). For a durable
        queue the message is in the archive before ``add`` returns. Subscribers run in
        this thread, after the message is visible and before ``add`` returns (for a
        delayed message: at the add).

        Cost: O(1) (O(log n) with ``delay`` or ``max_age``). Thread-safe.

        :raises Full: the queue is full and its overflow is ``"reject"``, or ``"block"``
            and ``timeout`` passed.
        :raises SerializationError: the queue is durable and ``message`` cannot be
            serialized; nothing was stored.
        :raises StoreError: the store could not record it; nothing changed.
        :raises ValueError: ``delay`` or ``timeout`` is negative.
        :raises ShutDown: the MessageQueue is closed (also while waiting for room).
        """
        if delay is not None or timeout is not None:
            pass
        elif not self._persistent:
            with self._mutex:
                q = self._queues.get(queue)
                if q is not None and q.plain and not q.timed and q.exists and not self._closed:
                    self._last_id = msg_id = self._last_id + 1
                    q.ready.append((msg_id, self._clock(), message))
                    q.added += 1
                    if q.getters:
                        q.not_empty.notify()
                    if not self._subscribers:
                        return msg_id
                    fast = True
                else:
                    fast = False
            if fast:
                self._notify_subscribers(queue)
                return msg_id
        elif self._writable:
            # The durable fast path: an existing durable queue with no maxlen and nothing
            # timed (no max_age, no delayed message, no lease) has nothing to promote,
            # expire or evict. Encode outside the mutex, then under it one append and one
            # deque append; commit (fsync per policy) outside it. With a group-commit
            # store the append is bracketed by enter/leave (see Store.enter). Anything
            # else goes to _add, with the body already encoded if it was.
            q = self._queues.get(queue)
            if q is None or not (q.durable and q.maxlen is None and not q.timed and q.exists):
                return self._add(queue, message, None, None)
            store = self._store
            data = store.encode(message)  # SerializationError: nothing changed
            gather = store.group_commit
            if gather:
                store.enter()  # a commit round about to start waits for this append
            try:
                with self._mutex:
                    msg_id = self._last_id + 1
                    if (
                        q.durable and q.maxlen is None and not q.timed and q.exists and not self._closed
                        and msg_id < self._id_mark  # else an id block is recorded first: _insert
                    ):
                        self._last_id = msg_id
                        now = self._clock()
                        seq = store.append(("add", queue, msg_id, now, None), data)
                        q.ready.append((msg_id, now, message))
                        q.added += 1
                        if q.getters:
                            q.not_empty.notify()
                        fast = True
                    else:
                        fast = False
            finally:
                if gather:
                    store.leave()
            if not fast:
                return self._add(queue, message, None, None, data)
            if store.needs_commit:
                store.commit(seq)  # _commit, inlined
            if store.compaction_due:
                self._auto_compact()
            if self._subscribers:
                self._notify_subscribers(queue)
            return msg_id
        return self._add(queue, message, delay, timeout)

    def _add(
        self, queue: str, message: Any, delay: Optional[float], timeout: Optional[float],
        data: Optional[bytes] = None,
    ) -> int:
        return self._add_many(queue, [message], delay, timeout, None if data is None else [data])[0]

    def add_many(
        self, queue: str, messages: Iterable[Any], *, delay: Optional[float] = None,
        timeout: Optional[float] = None,
    ) -> List[int]:
        """Append every message of ``messages``, in order, as one atomic step; return their ids.

        No other call sees part of the batch; a durable queue records it with one
        archive write. Overflow applies to the batch: ``"drop_oldest"`` evicts what it
        must (of a batch longer than ``maxlen`` the last ``maxlen`` stay), ``"reject"``
        raises :class:`Full` and adds none unless all fit, ``"block"`` waits for room
        for all. With ``delay`` every message is delayed (overflow applies when they
        fall due, as for :meth:`add`). Subscribers hear of the batch once. An empty
        batch changes nothing and returns ``[]``.

        Cost: O(k) for k messages, plus their serialization for a durable queue.
        Thread-safe.

        :raises Full: ``"reject"`` and the batch does not fit, or ``"block"`` and
            ``timeout`` passed.
        :raises ValueError: ``"block"`` and a batch longer than ``maxlen``, or a
            negative ``delay`` or ``timeout``.
        :raises SerializationError: a message cannot be serialized; nothing was stored.
        :raises StoreError: the store could not record it; nothing changed.
        :raises ShutDown: the MessageQueue is closed (also while waiting for room).
        """
        batch = list(messages)
        if not batch:
            return []
        return self._add_many(queue, batch, delay, timeout, None)

    def _add_many(
        self, queue: str, batch: List[Any], delay: Optional[float], timeout: Optional[float],
        datas: Optional[List[bytes]],
    ) -> List[int]:
        """The body of :meth:`add` and :meth:`add_many`: ``datas`` are the encoded bodies, if known."""
        if delay is not None:
            delay = check_seconds("delay", delay)
        deadline = deadline_of(timeout)
        if datas is None:
            datas = self._encode_for(queue, batch)
        while True:
            with self._mutex:
                self._check_writable()
                q = self._queue(queue, create=True)
                assert q is not None
                if delay is None:
                    q, seq = self._make_room(q, deadline, n=len(batch))  # may wait, the mutex released
                else:  # not ready until due: overflow applies then (see _refresh)
                    seq = self._refresh(q) if q.timed else 0
                if datas is not None or not q.durable:
                    ids, seq2 = self._insert_many(q, batch, datas, delay, evict=True)
                    if delay is None:
                        self._heard(q)
                    break
            # Durable now (made durable, or dropped and made again, since the bodies were
            # looked at, perhaps while this add waited for room): encode, outside the
            # mutex, and try again.
            datas = [self._store.encode(message) for message in batch]
        self._commit(seq2 or seq)
        return ids

    def declare(
        self,
        queue: str,
        *,
        maxlen: Optional[int] = MISSING,
        max_age: Optional[float] = MISSING,
        overflow: str = MISSING,
        durable: Optional[bool] = None,
    ) -> None:
        """Create ``queue`` or change its options; options not passed keep their value.

        A new queue starts with ``maxlen=None`` (unbounded), ``max_age=None``,
        ``overflow="drop_oldest"``. ``maxlen``: at most that many *ready* messages; when
        full, ``overflow`` decides: ``"drop_oldest"`` evicts the oldest, ``"reject"``
        makes ``add`` raise :class:`Full`, ``"block"`` makes ``add`` wait for room.
        A smaller ``maxlen`` evicts at once under ``"drop_oldest"``; otherwise the excess
        stays until consumed (messages returning by ``nack`` or a lease, delayed or not,
        never overflow either; for a delayed add, see :meth:`add`). ``max_age``
        (seconds): older messages are expired, never returned. ``durable=None`` follows
        the store; the durability of an existing queue cannot change.

        Cost: O(1), plus O(k) for k evictions. Thread-safe.

        :raises ValueError: ``maxlen`` < 1, ``max_age`` <= 0, an unknown ``overflow``,
            ``durable=True`` without a persistent store, or a durability change.
        :raises TypeError: an argument of the wrong type.
        """
        _check_options(maxlen, max_age, overflow, durable, self._persistent)
        seq = 0
        with self._mutex:
            self._check_writable()
            existed = queue in self._queues and self._queues[queue].exists
            q = self._queue(queue, create=True)
            assert q is not None
            if durable is not None and durable != q.durable:
                if existed:
                    raise ValueError(f"durable: queue {queue!r} is durable={q.durable}; that cannot change")
                q.durable = durable
            if q.timed:  # the new options apply from now on: what was due happened first
                seq = self._refresh(q)
            new_maxlen = q.maxlen if maxlen is MISSING else maxlen
            new_age = q.max_age if max_age is MISSING else max_age
            new_over = q.overflow if overflow is MISSING else overflow
            seq = self._rec(q, ("declare", queue, new_maxlen, new_age, new_over)) or seq
            q.configure(new_maxlen, new_age, new_over)
            if new_maxlen is not None and new_over == "drop_oldest":
                while len(q.ready) > new_maxlen:
                    seq = self._evict_oldest(q) or seq
            q.not_full.notify_all()
        self._commit(seq)

    def subscribe(self, queue: Optional[str], callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(queue_name)`` after every add to ``queue`` (``None``: any queue).

        The callback runs synchronously in the adding thread, outside every lock, once
        the message is visible and before ``add`` returns. A raising callback is logged
        at ERROR with its traceback; it never breaks ``add``. Returns a function that
        unsubscribes (calling it twice does nothing). Cost: O(s) for s subscribers.
        Thread-safe.

        :raises TypeError: ``callback`` is not callable.
        """
        if not callable(callback):
            raise TypeError("callback must be callable")
        with self._mutex:
            self._check_open()
            self._subscribers[queue] = (*self._subscribers.get(queue, ()), callback)

        def unsubscribe() -> None:
            with self._mutex:
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

    # -- taking ---------------------------------------------------------------------------

    def oldest(self, queue: str, *, remove: bool = True, default: Any = MISSING) -> Any:
        """The oldest ready message's body, removed unless ``remove=False``.

        Cost: O(1) (O(log n) with ``max_age``, delays or leases pending). Thread-safe.

        :raises Empty: nothing ready (or the queue is unknown) and no ``default`` given.
        :raises ShutDown: the MessageQueue is closed.
        """
        with self._mutex:
            q = self._queues.get(queue)
            if q is not None and q.plain and not q.timed and q.ready and not self._closed:
                if not remove:
                    return q.ready[0][2]
                item = q.ready.popleft()
                q.removed += 1
                if q.putters:
                    q.not_full.notify()
                return item[2]
        return self._take(queue, remove, default, True)

    def newest(self, queue: str, *, remove: bool = True, default: Any = MISSING) -> Any:
        """The newest ready message's body, removed unless ``remove=False``.

        Cost: O(1) (O(log n) with ``max_age``, delays or leases pending). Thread-safe.

        :raises Empty: nothing ready (or the queue is unknown) and no ``default`` given.
        :raises ShutDown: the MessageQueue is closed.
        """
        return self._take(queue, remove, default, False)

    def _take(self, queue: str, remove: bool, default: Any, front: bool) -> Any:
        seq = 0
        item: Optional[Item] = None
        try:
            with self._mutex:
                self._check_writable() if remove else self._check_open()
                q = self._queue(queue, create=False)
                if q is not None:
                    if q.timed:
                        seq = self._refresh(q)
                    if q.ready:
                        item = q.ready[0] if front else q.ready[-1]
                        if remove:
                            seq = self._rec(q, ("remove", queue, item[0])) or seq
                            q.pop_front() if front else q.pop_back()
                            q.attempts.pop(item[0], None)
                            q.removed += 1
                            if q.putters:
                                q.not_full.notify()
        finally:
            self._commit(seq)
        if item is None:
            if default is MISSING:
                raise Empty(f"queue {queue!r} has no ready message")
            return default
        return item[2]

    def get(self, queue: str, *, timeout: Optional[float] = None) -> Any:
        """Wait for the oldest ready message of ``queue``, remove it and return its body.

        Waits while the queue is empty or unknown; wakes when a message is added, or a
        delayed one falls due. ``timeout=None`` waits as long as it takes.

        Cost: O(1) per message. Thread-safe.

        :raises Empty: ``timeout`` passed with nothing ready.
        :raises ValueError: ``timeout`` is negative.
        :raises ShutDown: the MessageQueue was closed (also while waiting).
        """
        if timeout is None or (timeout.__class__ in (int, float) and timeout >= 0):
            with self._mutex:
                q = self._queues.get(queue)
                if q is not None and q.plain and not q.timed and q.ready and not self._closed:
                    item = q.ready.popleft()
                    q.removed += 1
                    if q.putters:
                        q.not_full.notify()
                    return item[2]
        return self._wait_take(queue, timeout, None, False)[2]

    def reserve(
        self, queue: str, *, timeout: Optional[float] = None, lease: Optional[float] = None
    ) -> Message:
        """Take the oldest ready message without deleting it (at-least-once delivery).

        The message stays invisible until :meth:`ack` deletes it or :meth:`nack` returns
        it. With ``lease`` (seconds), an unsettled message returns to the front by
        itself once the lease runs out. After a restart, the unsettled reservations of a
        durable queue are ready again at the front, in id order, exactly as if each had
        been nacked: merged in id order with the returned messages already at the front
        (nacked, or returned by a lease or an earlier restart), ahead of every message
        never reserved, which keeps its place; their ``attempts`` count is kept, and a
        ``Message`` reserved before the restart can no longer be settled
        (``ValueError``). Waits like :meth:`get`.

        Cost: O(1), O(log n) with a lease. Thread-safe.

        :raises Empty: ``timeout`` passed with nothing ready.
        :raises ValueError: ``timeout`` or ``lease`` is negative.
        :raises ShutDown: the MessageQueue was closed (also while waiting).
        """
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
            with self._mutex:
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
            self._check_writable()
            q = self._waiting_room(queue)
            if q.timed:
                seq = self._refresh(q) or seq
            if q.ready:
                return q, seq
            if stop is not None and stop():
                self._left_room(q)  # no placeholder left for an unknown name
                raise ShutDown("the queue view is shut down")
            wait = remaining(deadline)
            if not block or (wait is not None and wait <= 0):
                self._left_room(q)
                raise Empty(f"queue {queue!r} has no ready message")
            if q.timed:
                due = q.next_due()
                if due != INF:
                    until_due = max(0.0, due - self._clock())
                    wait = until_due if wait is None else min(wait, until_due)
            q.getters += 1
            try:
                q.not_empty.wait(wait)
            finally:
                q.getters -= 1
                self._left_room(q)

    def reserve_many(
        self, queue: str, n: int, *, timeout: Optional[float] = None, lease: Optional[float] = None
    ) -> List[Message]:
        """Wait as :meth:`reserve` does until a message is ready, then reserve up to ``n``.

        The oldest ready messages (at most ``n``) are reserved in one atomic step (one
        archive write for a durable queue), each with the same ``lease``; no other call
        sees part of the batch. Cost: O(k) for k messages (O(k log n) with a lease).
        Thread-safe.

        :raises Empty: ``timeout`` passed with nothing ready.
        :raises ValueError: ``n`` < 1, or ``timeout`` or ``lease`` is negative.
        :raises TypeError: ``n`` is not an int.
        :raises ShutDown: the MessageQueue was closed (also while waiting).
        """
        n = check_count("n", n)
        if lease is not None:
            lease = check_seconds("lease", lease)
        deadline = deadline_of(timeout)
        seq = 0
        try:
            with self._mutex:
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
        items = [q.ready[i] for i in range(k)]
        seq = 0
        if q.durable and self._writable:
            records = [(("reserve", q.name, item[0], lease_due), None) for item in items]
            seq = self._store.append_batch(records)
        taken = []
        for item in items:
            q.pop_front()
            taken.append((item, q.reserve(item, lease_due)))
        if q.putters:
            q.not_full.notify(k)
        return taken, seq

    def _pop_for(self, q: QueueState, lease: Optional[float], reserve: bool) -> Tuple[Item, int, int]:
        item = q.ready[0]
        if reserve:
            lease_due = None if lease is None else self._clock() + lease
            seq = self._rec(q, ("reserve", q.name, item[0], lease_due))
            q.pop_front()
            attempts = q.reserve(item, lease_due)
        else:
            seq = self._rec(q, ("remove", q.name, item[0]))
            q.pop_front()
            q.attempts.pop(item[0], None)
            q.removed += 1
            attempts = 0
        if q.putters:
            q.not_full.notify()
        return item, attempts, seq

    # -- settling reservations ---------------------------------------------------------------

    def _settling(self, messages: Any) -> Tuple[List[Tuple[QueueState, Message]], int, Optional[Message]]:
        """With the mutex held: the queue of each message, its due changes applied first.

        Returns ``(pairs, seq, bad)``: ``bad`` is the first message that is not a current
        reservation (a lease that ran out ended it, whether or not anything looked at the
        queue since: DESIGN 3), or that appears twice; then nothing may be settled.

        :raises TypeError: a message is not a :class:`Message`.
        :raises ShutDown, StoreError: closed, or the store is read-only.
        """
        self._check_writable()
        pairs: List[Tuple[QueueState, Message]] = []
        seen = set()
        seq = 0
        for m in messages:
            if not isinstance(m, Message):
                raise TypeError(f"message must be a Message from reserve(), not {type(m).__name__}")
            q = self._queue(m.queue, create=False)
            if q is not None and q.timed:
                seq = self._refresh(q) or seq
            key = (m.queue, m.id)
            if q is None or key in seen or m.id not in q.reserved or q.attempts.get(m.id) != m.attempts:
                return pairs, seq, m
            seen.add(key)
            pairs.append((q, m))
        return pairs, seq, None

    @staticmethod
    def _not_reserved(message: Message) -> ValueError:
        return ValueError(
            f"message: id {message.id} of queue {message.queue!r} is not reserved "
            "(already settled, lease expired, unknown, removed by clear/drop, or given twice)"
        )

    def _settle(self, messages: Any, delay: Optional[float], ack: bool) -> None:
        """Ack (or nack with ``delay``) every message as one recorded change; all or none."""
        with self._mutex:
            pairs, seq, bad = self._settling(messages)
            if bad is None and pairs:
                now = self._clock()
                records = [
                    ("remove", q.name, m.id) if ack else self._return_record(q, m.id, delay, now)
                    for q, m in pairs
                ]
                durable = [(r, None) for (q, _), r in zip(pairs, records) if q.durable]
                if durable and self._writable:
                    seq = self._store.append_batch(durable) or seq
                for (q, _), record in zip(pairs, records):
                    self._apply_settle(q, record, ack)
        self._commit(seq)
        if bad is not None:
            raise self._not_reserved(bad)

    def ack(self, message: Message) -> None:
        """Settle a reservation for good: delete the message. O(1) (O(log n) with a lease).

        Thread-safe.

        :raises ValueError: ``message`` is not (or no longer) reserved: settled twice,
            its lease ran out (whether or not anything looked at the queue since),
            unknown, or removed by ``clear``/``drop``.
        :raises TypeError: ``message`` is not a :class:`Message`.
        """
        self._settle((message,), None, True)

    def nack(self, message: Message, *, delay: Optional[float] = None) -> None:
        """Settle a reservation by returning the message to its queue.

        Without ``delay`` it goes back to the front, in id order among returned
        messages; with ``delay`` (seconds) it returns there once the delay has passed.
        A message that outlived ``max_age`` is expired instead. Its ``attempts`` count
        is kept. The queue's due changes happen first (a delayed message that fell due
        before this call joined before this message returns). O(1) at the front
        (O(log n) delayed). Thread-safe.

        :raises ValueError: ``message`` is not (or no longer) reserved, or ``delay`` < 0.
        :raises TypeError: ``message`` is not a :class:`Message`.
        """
        if delay is not None:
            delay = check_seconds("delay", delay)
        self._settle((message,), delay, False)

    def ack_many(self, messages: Iterable[Message]) -> None:
        """Ack several reservations (of any queues) as one step: one archive write.

        All or none: if one is not a current reservation, or one appears twice, nothing
        is settled. Cost: O(k) for k messages. Thread-safe.

        :raises ValueError: a message is not (or no longer) reserved, or appears twice.
        :raises TypeError: a message is not a :class:`Message`.
        """
        self._settle(list(messages), None, True)

    def nack_many(self, messages: Iterable[Message], *, delay: Optional[float] = None) -> None:
        """Nack several reservations (of any queues) as one step, as :meth:`nack` each.

        All or none, as :meth:`ack_many`. Cost: O(k) for k messages. Thread-safe.

        :raises ValueError: a message is not (or no longer) reserved, appears twice, or
            ``delay`` < 0.
        :raises TypeError: a message is not a :class:`Message`.
        """
        if delay is not None:
            delay = check_seconds("delay", delay)
        self._settle(list(messages), delay, False)

    def extend(self, message: Message, lease: float) -> None:
        """The reservation ``message`` now ends ``lease`` seconds from now (a long task keeps it).

        Works on a reservation with or without a lease. The queue's due changes happen
        first: a delivery whose lease already ran out is no longer current. O(log n).
        Thread-safe.

        :raises ValueError: ``message`` is not a current reservation, or ``lease`` < 0.
        :raises TypeError: ``message`` is not a :class:`Message`.
        """
        lease = check_seconds("lease", lease)
        with self._mutex:
            pairs, seq, bad = self._settling((message,))
            if bad is None:
                q = pairs[0][0]
                due = self._clock() + lease
                seq = self._rec(q, ("extend", q.name, message.id, due)) or seq
                q.set_lease(message.id, due)
        self._commit(seq)
        if bad is not None:
            raise self._not_reserved(bad)

    def next_due(self, queue: str) -> Optional[float]:
        """Clock time of ``queue``'s next timed change (a delayed message due, a lease
        ending, an expiry), or ``None`` (none, or an unknown queue).

        Due changes are applied first, so the answer is in the future (or ``None``).
        A subscriber uses it to know when to look again. O(1). Thread-safe.
        """
        with self._mutex:
            q, seq = self._look(queue)
            due = INF if q is None else q.next_due()
        self._commit(seq)
        return None if due == INF else due

    # -- looking -------------------------------------------------------------------------

    def _look(self, queue: str) -> Tuple[Optional[QueueState], int]:
        """With the mutex held: the existing queue, refreshed, and a seq to commit."""
        self._check_open()
        q = self._queue(queue, create=False)
        if q is None or not q.timed:
            return q, 0
        return q, self._refresh(q)

    def count(self, queue: str) -> int:
        """Ready messages in ``queue`` (not delayed, not reserved); 0 for an unknown queue.

        A snapshot: may be stale as soon as it returns. O(1). Thread-safe.
        """
        with self._mutex:
            q = self._queues.get(queue)
            if q is not None and not q.timed and not self._closed:
                return len(q.ready)
            q, seq = self._look(queue)
            n = 0 if q is None else len(q.ready)
        self._commit(seq)
        return n

    def exists(self, queue: str) -> bool:
        """Whether ``queue`` was declared or added to, and not dropped. O(1). Thread-safe."""
        with self._mutex:
            self._check_open()
            return self._queue(queue, create=False) is not None

    def all(self, queue: str) -> List[Any]:
        """A copy of the ready bodies, oldest first; ``[]`` for an unknown queue. O(n)."""
        with self._mutex:
            q, seq = self._look(queue)
            bodies = [] if q is None else [item[2] for item in q.ready]
        self._commit(seq)
        return bodies

    def messages(self, queue: str) -> List[Message]:
        """The ready messages as :class:`Message` envelopes, oldest first. O(n)."""
        with self._mutex:
            q, seq = self._look(queue)
            items = [] if q is None else list(q.ready)
            attempts = {} if q is None else dict(q.attempts)
        self._commit(seq)
        return [Message(i, queue, body, t, attempts.get(i, 0)) for i, t, body in items]

    def queues(self) -> List[str]:
        """Names of the existing queues, sorted. O(q log q) for q queues. Thread-safe."""
        with self._mutex:
            self._check_open()
            return sorted(name for name, q in self._queues.items() if q.exists)

    def stats(self, queue: str) -> QueueStats:
        """A :class:`QueueStats` snapshot of ``queue`` (all zero for an unknown queue). O(1)."""
        with self._mutex:
            q, seq = self._look(queue)
            if q is None:
                result = QueueStats(0, 0, 0, 0, 0, 0, 0, self._persistent)
            else:
                result = QueueStats(
                    len(q.ready), len(q.delayed), len(q.reserved), q.added, q.removed,
                    q.expired, q.dropped, q.durable,
                )
        self._commit(seq)
        return result

    # -- removing --------------------------------------------------------------------------

    def clear(self, queue: str) -> int:
        """Remove every message of ``queue`` (ready, delayed, reserved); return how many.

        Outstanding reservations become unknown: acking them raises ``ValueError``.
        O(n). Thread-safe.
        """
        with self._mutex:
            self._check_writable()
            q = self._queue(queue, create=False)
            if q is None:
                return 0
            seq = self._refresh(q) if q.timed else 0  # what expired before counts as expired
            seq = self._rec(q, ("clear", queue)) or seq
            n = q.clear()
            q.dropped += n
            q.not_full.notify_all()
        self._commit(seq)
        return n

    def drop(self, queue: str) -> bool:
        """Remove ``queue`` itself with its messages; ``False`` if it did not exist. O(1).

        Threads waiting on the queue keep waiting, on a queue of that name created
        afresh by the next add. Thread-safe.
        """
        with self._mutex:
            self._check_writable()
            q = self._queue(queue, create=False)
            if q is None:
                return False
            seq = self._rec(q, ("drop", queue))
            del self._queues[queue]
            q.exists = False
            q.not_empty.notify_all()
            q.not_full.notify_all()
        self._commit(seq)
        return True

    # -- the rest --------------------------------------------------------------------------

    def view(self, queue: str, maxsize: int = 0) -> QueueView:
        """A :class:`QueueView` with :class:`queue.Queue`'s interface over ``queue``.

        ``maxsize`` bounds the view's ``put`` as in ``queue.Queue`` (0: unbounded),
        apart from :meth:`declare`'s options. O(1). Thread-safe.
        """
        with self._mutex:
            self._check_open()
        return QueueView(self, queue, maxsize)

    def compact(self) -> None:
        """Write a snapshot now and shorten the archive (a no-op in memory).

        Other threads are held up only while the state is copied in memory (O(n));
        serializing and writing happen outside the lock. Thread-safe; concurrent calls
        run one after the other.

        :raises StoreError: the snapshot could not be written (nothing is lost).
        :raises ShutDown: the MessageQueue is closed.
        """
        with self._compacting:
            self._compact()

    def _compact(self) -> None:
        """With ``_compacting`` held: snapshot the durable queues."""
        with self._mutex:
            self._check_writable()
        if not self._persistent:
            return
        self._store.prepare_snapshot()
        with self._mutex:
            self._check_writable()
            state: State = {
                "version": 1,
                "last_id": max(self._last_id, self._id_mark - 1),
                "queues": {n: q.export() for n, q in self._queues.items() if q.exists and q.durable},
            }
            token = self._store.begin_snapshot()
        self._store.write_snapshot(state, token)

    def close(self) -> None:
        """Flush and release the store; wake blocked callers with ``ShutDown``. Idempotent.

        Thread-safe. Waits for a snapshot in progress to finish.
        """
        error: Optional[StoreError] = None
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            if self._writable and self._id_mark > self._last_id + 1:
                try:  # the exact high-water mark: after a clean close, ids go on without a gap
                    self._store.append(("last_id", self._last_id))
                except StoreError as exc:
                    error = exc
            for q in self._queues.values():
                q.not_empty.notify_all()
                q.not_full.notify_all()
        if error is not None:
            logger.warning("could not record the last id at close (%s); the next ids skip a block", error)
        with self._compacting:
            self._store.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> MessageQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._queues)} queues"
        return f"<MessageQueue {state}, store={type(self._store).__name__}>"


def _check_options(maxlen: Any, max_age: Any, overflow: Any, durable: Any, persistent: bool) -> None:
    """Validate :meth:`MessageQueue.declare`'s arguments (``MISSING``: not passed)."""
    if maxlen is not MISSING and maxlen is not None:
        if isinstance(maxlen, bool) or not isinstance(maxlen, int):
            raise TypeError(f"maxlen must be an int or None, not {type(maxlen).__name__}")
        if maxlen < 1:
            raise ValueError(f"maxlen must be at least 1 (or None), not {maxlen}")
    if max_age is not MISSING and max_age is not None:
        check_seconds("max_age", max_age)
        if max_age <= 0:
            raise ValueError(f"max_age must be positive (or None), not {max_age}")
    if overflow is not MISSING and overflow not in _OVERFLOWS:
        raise ValueError(f"overflow must be one of {', '.join(map(repr, _OVERFLOWS))}, not {overflow!r}")
    if durable is not None and not isinstance(durable, bool):
        raise TypeError(f"durable must be True, False or None, not {type(durable).__name__}")
    if durable is True and not persistent:
        raise ValueError("durable=True needs a persistent store (e.g. FileStore(path))")


from .view import QueueView  # noqa: E402  (the view builds on MessageQueue)
