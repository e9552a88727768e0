"""The :class:`Store` interface: what a :class:`~unidist_queue.MessageQueue` asks of a backend.

A store only persists and restores; it never decides queue semantics. The queue speaks
to it in *records*: small tuples of plain values (str, int, float, None), with the
message body of an ``add`` passed separately as bytes the store itself encoded.

Records (the whole vocabulary; the first element names the operation):

* ``("declare", q, maxlen, max_age, overflow[, max_attempts, dead_letter])``: queue ``q``
  created or reconfigured (the last two only when one of them is set);
* ``("add", q, id, enqueued_at, due)`` with the body: a message (``due``: None or a clock time);
* ``("remove", q, id)``: taken, acked, expired, or dropped by overflow;
* ``("reserve", q, id, lease_due)``: reserved (its ``attempts`` grows by one) until
  ``lease_due`` (a clock time) or, with ``None``, until settled or the process ends
  (files of 0.1.0 have no ``lease_due``); a restart records the reservations it ends
  as ``nack`` records;
* ``("nack", q, id, due)``: back to the front (``due`` None) or delayed until ``due``;
* ``("extend", q, id, lease_due)``: the reservation now ends at ``lease_due``;
* ``("dead", q, id, to, new_id, when)``: the reservation ``id`` ended unacked past
  ``max_attempts``: the message left ``q`` for the back of queue ``to`` as ``new_id``,
  enqueued at ``when`` (``to`` and ``new_id`` None: dropped, or gone to a queue that is
  not durable); written in one batch with the ``ids`` and eviction records it needs;
* ``("promote", q, id)``: a delayed message fell due and joined the ready ones;
* ``("clear", q)``: every message of ``q`` removed;
* ``("drop", q)``: the queue itself removed;
* ``("ids", upto)``: ids below ``upto`` may have been handed out (written before the
  first id of each block is, so that no id is reused after a lost or torn tail);
* ``("last_id", n)``: written by a clean close: exactly the ids up to ``n`` were handed out.

The state passed to :meth:`Store.write_snapshot` and returned by :meth:`Store.load` is
a dict of plain values (lists, dicts, str, int, float, None and message bodies); its
layout belongs to the queue and the store treats it as opaque.

Calling protocol, per change to a durable queue::

    body = store.encode(message)          # outside the queue lock; SerializationError
    store.enter()                         # only for an add, if store.group_commit
    with queue_lock:
        seq = store.append(record, body)  # the one disk write under the lock; StoreError
        ...apply the change in memory...
    store.leave()                         # after enter(), even when something raised
    store.commit(seq)                     # outside the lock: fsync per policy

and per snapshot (one at a time)::

    store.prepare_snapshot()              # outside the lock: may do I/O
    with queue_lock:
        state = copy of the state         # O(n) memory copy
        token = store.begin_snapshot()    # no I/O: later appends go to a new archive
    store.write_snapshot(state, token)    # outside the lock
"""

from __future__ import annotations

import abc
from typing import Any, Dict, Iterable, Iterator, Optional, Sequence, Tuple

__all__ = ["MemoryStore", "Record", "State", "Store"]

Record = Tuple[Any, ...]
"""One change, as a tuple of plain values; see the module docstring."""

State = Dict[str, Any]
"""The whole durable state, as a dict of plain values; opaque to the store."""


class Store(abc.ABC):
    """A persistence backend for :class:`~unidist_queue.MessageQueue`.

    Subclass it and implement every abstract method to add a backend; the queue code
    does not change. A store instance serves one ``MessageQueue`` at a time.

    Thread-safety: :meth:`append` and :meth:`begin_snapshot` are called with the
    queue's lock held (so never concurrently with each other); every other method may
    be called from any thread at any time and must protect itself.
    """

    #: Whether records survive the process. ``False`` makes every queue non-durable.
    persistent: bool = False

    #: Whether the store only reads (inspection while another process writes): the
    #: queue then refuses every change with ``StoreError`` and records nothing.
    read_only: bool = False

    #: ``False`` when :meth:`commit` does nothing (every record is as durable as the
    #: policy promises once appended): the queue may then skip calling it.
    needs_commit: bool = True

    #: Whether the queue should bracket an add with :meth:`enter` and :meth:`leave`
    #: (a store that batches commits of concurrent writers uses it; see :meth:`enter`).
    group_commit: bool = False

    #: Not ``None`` when :meth:`encode` is exactly ``pickle.dumps(body, pickle_protocol)``
    #: but for the exception it raises: the durable add then calls ``pickle.dumps``
    #: itself, and :meth:`encode` only when that raised, for the error to raise (a call
    #: fewer per add: ~2%, 'add, fsync="never"' in ``benchmarks/bench_store.py``).
    pickle_protocol: Optional[int] = None

    def enter(self) -> None:  # noqa: B027 (an optional hook: a no-op unless overridden)
        """A thread is about to append: called once the body is encoded, before the queue lock.

        Only called when :attr:`group_commit` is true, and always followed by
        :meth:`leave` in the same thread once the append is done (or failed). A store
        with group commit may hold a commit round back while threads are between the
        two, so their records join it. Must be O(1), non-blocking and thread-safe. The
        default does nothing.
        """

    def leave(self) -> None:  # noqa: B027 (an optional hook: a no-op unless overridden)
        """The thread that called :meth:`enter` appended, or gave up (outside the queue lock).

        A group-commit store may make the last thread to leave lead a commit round
        here (an fsync for the waiting committers); it must not raise for it (their
        :meth:`commit` does). The default does nothing.
        """

    @abc.abstractmethod
    def load(self) -> Tuple[Optional[State], Iterable[Record]]:
        """Return the stored state: the last snapshot (or ``None``) and the records after it.

        ``add`` records come back with the decoded body appended as a last element.
        Called once, by the queue's constructor, before any other method.

        :raises StoreError: the files cannot be read, or are damaged (``CorruptArchive``).
        """

    @abc.abstractmethod
    def encode(self, body: Any) -> bytes:
        """Serialize a message body, outside the queue lock.

        :raises SerializationError: the body cannot be represented; nothing was stored.
        """

    @abc.abstractmethod
    def append(self, record: Record, body: Optional[bytes] = None) -> int:
        """Write one record (and the encoded body of an ``add``); return its sequence number.

        Called with the queue lock held: the write orders the record, so it must be a
        single write with no fsync. When it raises, nothing of the record may remain.

        :raises StoreError: the write failed (disk full, I/O error) or the store is failed.
        """

    def append_add(self, queue: str, msg_id: int, enqueued_at: float, body: bytes) -> int:
        """``append(("add", queue, msg_id, enqueued_at, None), body)``: the durable add's
        fast path, which a store may override with a faster equivalent. Called with the
        queue lock held.

        :raises StoreError: as :meth:`append`.
        """
        return self.append(("add", queue, msg_id, enqueued_at, None), body)

    def append_batch(self, records: Sequence[Tuple[Record, Optional[bytes]]]) -> int:
        """Write several records (each with an ``add``'s encoded body, or ``None``) as one change.

        Called with the queue lock held, for a change that takes several records (an
        add that evicts, a batch of adds): returns the seq of the last record. A store
        should make the batch all or nothing (:class:`~unidist_queue.FileStore` writes
        it with one ``os.write`` and cuts a failed write back). This default calls
        :meth:`append` once per record, which is all or nothing only for a batch of
        one: override it in a store that can do better. Cost: that of the appends.

        :raises StoreError: as :meth:`append`.
        """
        seq = 0
        for record, body in records:
            seq = self.append(record, body)
        return seq

    @abc.abstractmethod
    def commit(self, seq: int) -> None:
        """Make the record ``seq`` as durable as the store's policy promises.

        Called outside the lock after :meth:`append`. With ``fsync="always"`` this waits
        for an fsync covering ``seq`` (concurrent callers share one: group commit).

        :raises StoreError: the fsync failed; the store then refuses writes until reopened.
        """

    @property
    @abc.abstractmethod
    def compaction_due(self) -> bool:
        """Whether enough records were appended since the last snapshot to compact now."""

    @abc.abstractmethod
    def prepare_snapshot(self) -> None:
        """Get ready for :meth:`begin_snapshot` (outside the lock; may do I/O)."""

    @abc.abstractmethod
    def begin_snapshot(self) -> Any:
        """Start a snapshot of the state just copied; return a token for :meth:`write_snapshot`.

        Called with the queue lock held, right after the state was copied: records
        appended from now on must not be lost when the older files are deleted. No disk
        I/O here (do it in :meth:`prepare_snapshot`).
        """

    @abc.abstractmethod
    def write_snapshot(self, state: State, token: Any) -> None:
        """Write ``state`` durably as the new snapshot, then delete what it replaces.

        :raises StoreError: the snapshot could not be written (the older files remain).
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Flush, fsync and release the store (its lock, its files, its threads). Idempotent."""


class MemoryStore(Store):
    """The in-memory store: persists nothing, restores nothing (the default).

    ``MessageQueue(store=None)`` and ``MessageQueue(store=MemoryStore())`` behave the
    same: no queue is durable, and ``declare(..., durable=True)`` is a ``ValueError``.
    Every method is O(1) and thread-safe.
    """

    persistent = False

    def load(self) -> Tuple[Optional[State], Iterator[Record]]:
        """Return ``(None, iter(()))``: nothing was ever stored."""
        return None, iter(())

    def encode(self, body: Any) -> bytes:
        """Not used: no queue of a memory store is durable."""
        raise NotImplementedError("MemoryStore does not serialize")

    def append(self, record: Record, body: Optional[bytes] = None) -> int:
        """Not used: no queue of a memory store is durable."""
        raise NotImplementedError("MemoryStore does not record")

    def commit(self, seq: int) -> None:
        """Nothing to make durable."""

    @property
    def compaction_due(self) -> bool:
        """Always ``False``."""
        return False

    def prepare_snapshot(self) -> None:
        """Nothing to prepare."""

    def begin_snapshot(self) -> Any:
        """Nothing to begin; returns ``None``."""
        return None

    def write_snapshot(self, state: State, token: Any) -> None:
        """Nothing to write."""

    def close(self) -> None:
        """Nothing to release."""
