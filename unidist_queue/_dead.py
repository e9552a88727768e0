"""Retries and dead letters: a message past its queue's ``max_attempts`` leaves it (internal).

Part of :class:`~unidist_queue._core.QueueCore` (see :mod:`._corebase`). Every method is
called with the mutex held. A reservation that ends without an ack (a nack, a lease
lapse, a restart) after the message was reserved ``max_attempts`` times does not return
to its queue: :meth:`DeadLetterMixin._move_dead` moves it to the queue's ``dead_letter``
queue (same body, a new id, as an add there) or drops it, counts it in ``stats().dead``
and collects a log line, emitted in ``_commit`` outside the mutex (DESIGN 3).

The move is one recorded change: with a durable source, one ``append_batch`` of an
``("ids", ...)`` record if a new id block starts, the evictions of the dead-letter
queue's oldest messages (``drop_oldest`` when full: down to ``maxlen``, as an add) and
the ``("dead", queue, id, to, new_id, when)`` record itself (``to``/``new_id`` are
``None`` when the message is dropped, or lands in a queue that is not durable). From a
queue that is not durable into a durable one the body must first be serialized, which
never happens under the mutex: the message leaves its queue at once and joins the
dead-letter queue when the thread that moved it commits
(:meth:`~unidist_queue._core.QueueCore._deliver_later`), as an ordinary add.

A queue that messages may move into lazily (a lease of a queue feeding it lapses) is
``fed``: it is then always ``timed``, and refreshing it refreshes every queue linked to
it by dead-letter moves (its *component*) in due order, so that a look at the
dead-letter queue sees the moves due by then, whatever looked before (DESIGN 3).
"""

from __future__ import annotations

import logging
from typing import Dict, List, Optional, Set, Tuple

from ._corebase import ID_BLOCK, CoreBase
from ._state import QueueState
from .store.base import Record

__all__ = ["DeadLetterMixin"]


class DeadLetterMixin(CoreBase):
    """Moving messages past ``max_attempts``, and the links between queues (see the module)."""


    @staticmethod
    def _dead_bound(q: QueueState, msg_id: int) -> bool:
        """Whether the reservation ``msg_id`` of ``q``, ending unacked, is past ``max_attempts``."""
        return q.max_attempts is not None and q.attempts.get(msg_id, 0) >= q.max_attempts

    @staticmethod
    def _dies(q: QueueState, msg_id: int, now: float) -> bool:
        """Whether the reservation ``msg_id`` of ``q``, ending unacked at ``now``, moves out
        (past ``max_attempts``; an expired message expires instead). O(1)."""
        return (q.max_attempts is not None and q.attempts.get(msg_id, 0) >= q.max_attempts
                and not q.is_expired(q.reserved[msg_id][1], now))

    def _move_dead(self, q: QueueState, msg_id: int, when: float) -> int:
        """Move the reservation ``msg_id`` of ``q`` past ``max_attempts`` out of it, at ``when``.

        To ``q.dead_letter`` (created with defaults if unknown; its overflow applies:
        ``reject`` when full drops the message, ``drop_oldest`` evicts its oldest (down
        to ``maxlen``, as an add does), ``block`` lets it join all the same: nobody
        could wait) or nowhere. Records the move (one batch) before memory changes;
        returns the seq to commit. O(1) (O(log n) with leases or ``max_age``).

        :raises StoreError: the record cannot be written; nothing changed.
        """
        body = q.reserved[msg_id][2]
        why = self._why(q, msg_id)
        name = q.dead_letter
        if name is not None and not q.durable and self._writable:
            known = self._queues.get(name)
            if known.durable if known is not None and known.exists else self._persistent:
                self._leave(q, msg_id)  # the body must be encoded first, outside the mutex
                self._deaths.append((0, why, (name, body)))
                return 0
        d = None if name is None else self._queue(name, create=True)
        evict = -1 if d is None else self._room_for_one(d)
        new_id = self._last_id + 1 if evict >= 0 else 0
        seq = self._record_move(q, msg_id, d, evict, new_id, when)
        self._leave(q, msg_id)
        if d is None:
            self._deaths.append((logging.WARNING, "%s: dropped (no dead_letter)", (why,)))
        elif evict < 0:
            text = "%s: dropped, dead-letter queue %r is full (overflow='reject', maxlen=%d)"
            self._deaths.append((logging.ERROR, text, (why, d.name, d.maxlen)))
        else:
            self._last_id = new_id
            self._land(d, (new_id, when, body), evict)
            text = "%s: moved to queue %r as message %d"
            self._deaths.append((logging.WARNING, text, (why, d.name, new_id)))
        return seq

    @staticmethod
    def _room_for_one(d: QueueState) -> int:
        """How many messages adding one to ``d`` evicts (``drop_oldest``), or -1: refused
        (``reject`` and full). ``block`` evicts nothing and refuses nothing."""
        if d.maxlen is None or len(d.ready) < d.maxlen or d.overflow == "block":
            return 0
        return -1 if d.overflow == "reject" else len(d.ready) + 1 - d.maxlen

    def _record_move(
        self, q: QueueState, msg_id: int, d: Optional[QueueState], evict: int, new_id: int, when: float,
    ) -> int:
        """Append the records of a move (see the module) as one batch; return its seq."""
        records: List[Tuple[Record, None]] = []
        if not self._writable:
            return 0
        if new_id and new_id >= self._id_mark:
            records.append((("ids", new_id + ID_BLOCK), None))
        if q.durable:
            to = d if d is not None and evict >= 0 and d.durable else None
            if to is not None:
                records.extend((("remove", to.name, to.ready[i]), None) for i in range(evict))
            where = (None, None) if to is None else (to.name, new_id)
            records.append((("dead", q.name, msg_id, *where, when), None))
        if not records:
            return 0
        seq = self._store.append_batch(records)
        if records[0][0][0] == "ids":
            self._id_mark = new_id + ID_BLOCK
        return seq

    @staticmethod
    def _why(q: QueueState, msg_id: int) -> str:
        """The start of the log line of a move (plain values only: no user code runs)."""
        return (f"message {msg_id} of queue {q.name!r} was reserved {q.attempts.get(msg_id, 0)} times "
                f"(max_attempts={q.max_attempts}) without an ack")

    def _leave(self, q: QueueState, msg_id: int) -> None:
        """The reservation ``msg_id`` leaves ``q`` for good, as a dead message (recorded)."""
        q.unreserve(msg_id)
        q.attempts.pop(msg_id, None)
        q.dead += 1
        self._gone(q, msg_id)

    def _land(self, d: QueueState, item: Tuple[int, float, object], evict: int) -> None:
        """A moved message joins the back of ``d`` as an add (recorded), after ``evict``
        evictions."""
        for _ in range(evict):
            self._drop_oldest(d)
        d.enqueue(item, None, False)
        d.added += 1
        self._heard(d)

    def _drop_oldest(self, q: QueueState) -> None:
        """Drop the oldest ready message for overflow, in memory (its record is written)."""
        item = q.pop_front()
        q.attempts.pop(item[0], None)
        q.dropped += 1
        self._gone(q, item[0])

    # -- links between queues ------------------------------------------------------------------

    def _relink(self) -> None:
        """Recompute which queues messages may move into (after declare, drop, load). O(q)."""
        feeders: Dict[str, Set[str]] = {}
        for name, q in self._queues.items():
            if q.exists and q.max_attempts is not None and q.dead_letter is not None:
                feeders.setdefault(q.dead_letter, set()).add(name)
        self._feeders = feeders
        for name, q in self._queues.items():
            fed = name in feeders
            if fed != q.fed:
                q.fed = fed
                q.retime()

    def _component(self, q: QueueState) -> List[QueueState]:
        """``q`` and every existing queue linked to it by dead-letter moves, by name. O(k)."""
        seen = {q.name: q}
        todo = [q]
        while todo:
            x = todo.pop()
            names = list(self._feeders.get(x.name, ()))
            if x.max_attempts is not None and x.dead_letter is not None:
                names.append(x.dead_letter)
            for name in names:
                y = self._queues.get(name)
                if name not in seen and y is not None and y.exists:
                    seen[name] = y
                    todo.append(y)
        return [seen[name] for name in sorted(seen)]

    def _next_due(self, q: QueueState) -> float:
        """Clock time of ``q``'s next timed change, or ``inf``; for a ``fed`` queue, also of
        the queues linked to it (a lease ending there may move a message here). O(c)."""
        if not q.fed:
            return q.next_due()
        return min(g.next_due() for g in self._component(q))

    def _new_lease(self, q: QueueState) -> None:
        """A reservation of ``q`` got a lease (reserve, extend): a getter waiting on its
        dead-letter queue may sleep past the lease's end (a move), so it wakes to look
        again. O(1) (O(g) for g getters there)."""
        if q.max_attempts is not None and q.dead_letter is not None:
            d = self._queues.get(q.dead_letter)
            if d is not None and d.getters:
                d.wake(d.getters)
