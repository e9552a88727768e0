"""Timed changes of a queue: delays falling due, leases ending, ages expiring (internal).

Part of :class:`~unidist_queue._core.QueueCore` (see :mod:`._corebase`). Every method is
called with the mutex held. :meth:`TimedMixin._refresh` is the one place where timed
changes happen: each as of its own due time, in due order (DESIGN 3).
"""

from __future__ import annotations

from typing import Optional, Tuple

from ._dead import DeadLetterMixin
from ._state import DELAYED, EXPIRY, LEASE, QueueState
from .store.base import Record

__all__ = ["TimedMixin"]


class TimedMixin(DeadLetterMixin):
    """Timed changes, and returning or settling a reservation (see the module)."""


    def _refresh(self, q: QueueState) -> int:
        """Apply every timed change of ``q`` due now, in due order; return a seq to commit.

        The one place where timed changes (a delayed message falling due, a lease
        ending, a message expiring) happen. Each is applied as of its own due time, so
        the queue ends up as if every change had happened exactly when due, whether or
        not another call looked at the queue in between (DESIGN 3). O(k log n) for k
        changes.
        """
        if q.fed or (q.max_attempts is not None and q.dead_letter is not None):
            return self._refresh_linked(q)
        now = self._clock()
        seq = 0
        while True:
            when, kind = q.next_change()
            if when > now or (kind == EXPIRY and when == now):  # NONE has when == inf
                break
            seq = self._change(q, when, kind) or seq
        q.retime()
        return seq

    def _existing(self, name: str) -> Tuple[Optional[QueueState], int]:
        """With the mutex held: the queue ``name`` if it exists once the dead-letter moves
        due into it happened, and a seq to commit (``q`` itself is not refreshed).

        A queue that does not exist yet may be created by a move due now from a queue
        that names it its ``dead_letter`` (a lapsed lease there): those queues are
        refreshed first, so a call sees the move whether or not anything looked at them
        since (DESIGN 3). O(1) for an existing queue or a name no queue moves into.

        :raises TypeError: ``name`` is not a ``str``.
        """
        q = self._queue(name, create=False)
        if q is not None or name not in self._feeders:
            return q, 0
        seq = 0
        for feeder in sorted(self._feeders.get(name, ())):
            f = self._queues.get(feeder)
            if f is not None and f.exists and f.timed:
                seq = self._refresh(f) or seq
        return self._queue(name, create=False), seq

    def _refresh_linked(self, q: QueueState) -> int:
        """:meth:`_refresh` for a queue linked to others by dead-letter moves: every change
        due in its component (see :mod:`._dead`), in due order across the queues (at equal
        times: leases, then delays, then expiries, then by queue name). O(k (c + log n))
        for k changes in c queues.
        """
        group = self._component(q)
        now = self._clock()
        seq = 0
        while True:
            best: Optional[Tuple[float, int, QueueState]] = None
            for g in group:
                when, kind = g.next_change()
                if when > now or (kind == EXPIRY and when == now):
                    continue
                if best is None or (when, kind) < best[:2]:
                    best = (when, kind, g)
            if best is None:
                break
            seq = self._change(best[2], best[0], best[1]) or seq
        for g in group:
            g.retime()
        return seq

    def _change(self, q: QueueState, when: float, kind: int) -> int:
        """Apply the timed change of ``q`` due at ``when``, of ``kind``; return its seq."""
        if kind == LEASE:
            return self._return(q, q.first_lease(), None, when)
        if kind == DELAYED:
            return self._promote(q, when)
        return self._expire(q, q.first_aged())

    def _promote(self, q: QueueState, when: float) -> int:
        """The first delayed message falls due at ``when``: it joins (evicting under drop_oldest)."""
        entry = q.pop_delayed()
        if q.is_expired(entry[2], when):
            seq = self._rec(q, ("remove", q.name, entry[1]))
            q.attempts.pop(entry[1], None)
            q.expired += 1
            self._gone(q, entry[1])
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
        self._gone(q, msg_id)
        if q.putters:
            q.wake_putters()
        return seq

    def _return(self, q: QueueState, msg_id: int, delay: Optional[float], now: float) -> int:
        """Settle reservation ``msg_id`` back into the queue (nack, lease end, restart) at ``now``:
        past ``max_attempts`` (and not expired) it moves out instead (:meth:`_move_dead`)."""
        if q.max_attempts is not None and self._dies(q, msg_id, now):
            return self._move_dead(q, msg_id, now)
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
                self._gone(q, msg_id)
            return
        q.enqueue(item, record[3], True)
        if record[3] is None:
            self._heard(q)

    def _evict_oldest(self, q: QueueState) -> int:
        """Drop the oldest ready message for overflow; return the record's seq."""
        seq = self._rec(q, ("remove", q.name, q.ready[0]))
        self._drop_oldest(q)
        return seq
