"""Adding to a queue: add, add_many, declare, and the overflow policies (internal).

Part of :class:`~unidist_queue._core.QueueCore` (see :mod:`._corebase`). An add records
everything it changes (an id block, evictions, the add) as one all-or-nothing batch
before memory changes.
"""

from __future__ import annotations

from pickle import dumps as _pickle_dumps
from typing import Any, Iterable, List, Optional, Tuple

from ._convoy import acquire_contended
from ._corebase import ID_BLOCK, not_a_name
from ._state import INF, QueueState
from ._timed import TimedMixin
from ._util import check_seconds, deadline_of, remaining
from .errors import Full
from .message import MISSING
from .store.base import Record

__all__ = ["OVERFLOWS", "AddMixin", "check_options", "check_retries"]

OVERFLOWS = ("drop_oldest", "reject", "block")


class AddMixin(TimedMixin):
    """add, add_many, declare (see the module)."""


    def add(
        self, queue: str, message: Any, *, delay: Optional[float] = None, timeout: Optional[float] = None
    ) -> int:
        """See :meth:`MessageQueue.add`.

        Two fast paths, for an existing queue with nothing timed (nothing to promote,
        expire or evict) and no ``delay``/``timeout``: in memory (a plain queue: a
        deque append under the mutex) and durable (:meth:`_add_durable`); anything else
        goes to :meth:`_add_many`.
        """
        if delay is None and timeout is None:
            if not self._persistent:
                mutex = self.mutex
                if not mutex.acquire(False):  # see _convoy: no lock convoy between threads
                    acquire_contended(mutex)
                try:
                    try:
                        q = self._queues.get(queue)
                    except TypeError:  # unhashable: not a str (the try is free otherwise)
                        raise not_a_name(queue) from None
                    if q is not None and q.bare:  # not bare once closed
                        self._last_id = msg_id = self._last_id + 1
                        q.ready.append(msg_id)
                        q.ready_at.append(self._clock())
                        q.ready_bodies.append(message)
                        q.added += 1
                        if q.getters:
                            q.wake()
                        if not self._subscribers:
                            return msg_id
                        self._news.append(queue)
                    else:
                        msg_id = 0
                finally:
                    mutex.release()
                if msg_id:
                    self._commit(0)  # tells the subscribers
                    return msg_id
            else:
                try:
                    q = self._queues.get(queue)
                except TypeError:  # unhashable: not a str (the try is free otherwise)
                    raise not_a_name(queue) from None
                if q is not None and q.lean and self._writable:
                    return self._add_durable(q, queue, message)
        return self._add_many(queue, [message], delay, timeout, None)[0]

    def _add_durable(self, q: QueueState, queue: str, message: Any) -> int:
        """The durable fast path (outside the mutex): encode, then under the mutex one
        record and one deque append; commit (fsync per policy) after it.

        With a group-commit store the append is bracketed by ``enter``/``leave`` (see
        ``Store.enter``). If the queue changed meanwhile, :meth:`_add_many` takes over
        with the body already encoded. Benchmarked in ``bench_store.py`` (a durable add
        against a raw pickle+frame+write loop).
        """
        store = self._store
        proto = store.pickle_protocol
        if proto is None:
            data = store.encode(message)  # SerializationError: nothing changed
        else:
            try:
                data = _pickle_dumps(message, proto)
            except Exception:
                data = store.encode(message)  # raises SerializationError (see pickle_protocol)
        gather = store.group_commit
        if gather:
            store.enter()  # a commit round about to start waits for this append
        mutex = self.mutex
        try:
            mutex.acquire()  # not "with": ~3% of a durable add ('add, fsync="never"' in bench_store.py)
            try:
                msg_id = self._last_id + 1
                if q.lean and not q.timed and msg_id < self._id_mark:  # not lean once closed
                    clock = self._clock  # a call through a local: LOAD_METHOD does not specialize here
                    now = clock()
                    seq = store.append_add(queue, msg_id, now, data)
                    self._last_id = msg_id
                    q.ready.append(msg_id)
                    q.ready_at.append(now)
                    q.ready_bodies.append(message)
                    q.added += 1
                    if q.getters:
                        q.wake()
                    if self._subscribers:
                        self._news.append(queue)
                else:
                    msg_id = 0
            finally:
                mutex.release()
        finally:
            if gather:
                store.leave()
        if not msg_id:
            return self._add_many(queue, [message], None, None, [data])[0]
        # _commit, called only when it has something to do: a call fewer is ~4% of a
        # durable add ('add, fsync="never"' in bench_store.py, 0.50x -> 0.52x its floor)
        if store.needs_commit or store.compaction_due or self._news or self._deaths:
            self._commit(seq)
        return msg_id

    def add_many(
        self, queue: str, messages: Iterable[Any], *, delay: Optional[float] = None,
        timeout: Optional[float] = None,
    ) -> List[int]:
        """See :meth:`MessageQueue.add_many`."""
        batch = list(messages)
        if not batch:
            if not isinstance(queue, str):
                raise not_a_name(queue)
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
            with self.mutex:
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

    def _encode_for(self, name: str, messages: List[Any]) -> Optional[List[bytes]]:
        """Outside the mutex: the encoded bodies if ``name`` is (or will be) durable."""
        if not self._persistent or self._read_only:
            return None
        try:
            q = self._queues.get(name)
        except TypeError:  # unhashable: not a str
            raise not_a_name(name) from None
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
        ids = list(range(first, first + k))  # one int object per id, shared with the queue
        if due is None:
            q.push_back_many(ids, now, batch)
        else:
            for msg_id, message in zip(ids, batch, strict=True):
                q.enqueue((msg_id, now, message), due, False)
        for _ in range(over - old):  # the first of a batch longer than maxlen
            self._drop_oldest(q)
        q.added += k
        return ids, seq

    def _add_records(
        self, q: QueueState, first: int, k: int, now: float, due: Optional[float],
        datas: Optional[List[bytes]], over: int,
    ) -> List[Tuple[Record, Optional[bytes]]]:
        """The records of adding ids ``first .. first+k-1`` that evict ``over`` messages."""
        records: List[Tuple[Record, Optional[bytes]]] = []
        if not self._writable:
            return records
        if first + k - 1 >= self._id_mark:
            records.append((("ids", first + k - 1 + ID_BLOCK), None))
        if q.durable:
            old = min(over, len(q.ready))
            records.extend((("remove", q.name, q.ready[i]), None) for i in range(old))
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
            self.mutex.release()
            try:
                self._store.commit(seq)
            finally:
                self.mutex.acquire()
        return error

    def declare(
        self,
        queue: str,
        *,
        maxlen: Optional[int] = MISSING,
        max_age: Optional[float] = MISSING,
        overflow: str = MISSING,
        durable: Optional[bool] = None,
        max_attempts: Optional[int] = MISSING,
        dead_letter: Optional[str] = MISSING,
    ) -> None:
        """See :meth:`MessageQueue.declare`."""
        check_options(maxlen, max_age, overflow, durable, self._persistent)
        check_retries(queue, max_attempts, dead_letter)
        seq = 0
        with self.mutex:
            self._check_writable()
            known = self._queue(queue, create=False)  # TypeError: not a str
            existed = known is not None
            if maxlen is not MISSING or overflow is not MISSING:
                check_bound(queue, maxlen, overflow, known)
            q = self._queue(queue, create=True)
            assert q is not None
            if durable is not None and durable != q.durable:
                if existed:
                    raise ValueError(f"durable: queue {queue!r} is durable={q.durable}; that cannot change")
                q.durable = durable
            if q.timed:  # the new options apply from now on: what was due happened first
                seq = self._refresh(q)
            seq = self._configure(q, maxlen, max_age, overflow, max_attempts, dead_letter) or seq
            q.wake_all(getters=False)
        self._commit(seq)

    def _configure(
        self, q: QueueState, maxlen: Any, max_age: Any, overflow: Any, max_attempts: Any, dead_letter: Any,
    ) -> int:
        """With the mutex held: record and apply a declare's options (``MISSING``: kept)."""
        new_maxlen = q.maxlen if maxlen is MISSING else maxlen
        new_age = q.max_age if max_age is MISSING else max_age
        new_over = q.overflow if overflow is MISSING else overflow
        new_tries = q.max_attempts if max_attempts is MISSING else max_attempts
        new_dead = q.dead_letter if dead_letter is MISSING else dead_letter
        record: Record = ("declare", q.name, new_maxlen, new_age, new_over)
        if new_tries is not None or new_dead is not None:
            record += (new_tries, new_dead)
        seq = self._rec(q, record)
        q.configure(new_maxlen, new_age, new_over)
        relink = (new_tries, new_dead) != (q.max_attempts, q.dead_letter)
        q.max_attempts, q.dead_letter = new_tries, new_dead
        if relink:
            self._relink()
        if new_maxlen is not None and new_over == "drop_oldest":
            while len(q.ready) > new_maxlen:
                seq = self._evict_oldest(q) or seq
        return seq


def check_options(maxlen: Any, max_age: Any, overflow: Any, durable: Any, persistent: bool) -> None:
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
    if overflow is not MISSING and overflow not in OVERFLOWS:
        raise ValueError(f"overflow must be one of {', '.join(map(repr, OVERFLOWS))}, not {overflow!r}")
    if durable is not None and not isinstance(durable, bool):
        raise TypeError(f"durable must be True, False or None, not {type(durable).__name__}")
    if durable is True and not persistent:
        raise ValueError("durable=True needs a persistent store (e.g. FileStore(path))")


def check_bound(queue: str, maxlen: Any, overflow: Any, q: Optional[QueueState]) -> None:
    """``"reject"`` and ``"block"`` need a ``maxlen``: check the options a declare leaves
    (``q``: the existing queue, whose options not passed stay).

    :raises ValueError: the queue would have ``overflow="reject"``/``"block"`` and no ``maxlen``.
    """
    new_maxlen = maxlen if maxlen is not MISSING else (None if q is None else q.maxlen)
    new_over = overflow if overflow is not MISSING else ("drop_oldest" if q is None else q.overflow)
    if new_maxlen is None and new_over != "drop_oldest":
        why = "maxlen=None was passed" if maxlen is None else f"queue {queue!r} has no maxlen"
        raise ValueError(f"overflow={new_over!r} needs a maxlen ({why})")


def check_retries(queue: Any, max_attempts: Any, dead_letter: Any) -> None:
    """Validate ``max_attempts`` and ``dead_letter`` (``MISSING``: not passed)."""
    if max_attempts is not MISSING and max_attempts is not None:
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
            raise TypeError(f"max_attempts must be an int or None, not {type(max_attempts).__name__}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1 (or None), not {max_attempts}")
    if dead_letter is not MISSING and dead_letter is not None:
        if not isinstance(dead_letter, str):
            raise TypeError(f"dead_letter must be a str or None, not {type(dead_letter).__name__}")
        if dead_letter == queue:
            raise ValueError(f"dead_letter: queue {queue!r} cannot be its own dead-letter queue")
