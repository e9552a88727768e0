"""Settling reservations: ack, nack, ack_many, nack_many and extend (internal).

Part of :class:`~unidist_queue._core.QueueCore` (see :mod:`._corebase`). The queue's due
changes are applied first, so a reservation whose lease ran out is no longer current,
whatever looked at the queue since (DESIGN 3); settling many is all or none.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple

from ._state import QueueState
from ._timed import TimedMixin
from ._util import check_seconds
from .message import Message

__all__ = ["SettleMixin"]


class SettleMixin(TimedMixin):
    """ack, nack, ack_many, nack_many, extend (see the module)."""


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
        looked: Dict[str, Optional[QueueState]] = {}  # each queue looked up and refreshed once
        seq = 0
        for m in messages:
            if m.__class__ is not Message and not isinstance(m, Message):
                raise TypeError(f"message must be a Message from reserve(), not {type(m).__name__}")
            name = m.queue
            if name in looked:
                q = looked[name]
            else:
                q = looked[name] = self._queue(name, create=False)
                if q is not None and q.timed:
                    seq = self._refresh(q) or seq
            key = (name, m.id)
            if q is None or key in seen or m.id not in q.reserved or q.attempts.get(m.id) != m.attempts:
                return pairs, seq, m
            seen.add(key)
            pairs.append((q, m))
        return pairs, seq, None

    def _due_in_dead_letter(self, q: QueueState) -> int:
        """With the mutex held: apply the timed changes due now in ``q``'s dead-letter queue
        (a delayed message that fell due joins it before a message a nack moves there
        now, as if it had joined when due); return a seq to commit."""
        d = None if q.dead_letter is None else self._queues.get(q.dead_letter)
        return self._refresh(d) if d is not None and d.exists and d.timed else 0

    @staticmethod
    def _not_reserved(message: Message) -> ValueError:
        return ValueError(
            f"message: id {message.id} of queue {message.queue!r} is not reserved "
            "(already settled, lease expired, unknown, removed by clear/drop, or given twice)"
        )

    def _settle(self, messages: Any, delay: Optional[float], ack: bool) -> None:
        """Ack (or nack with ``delay``) every message as one recorded change; all or none.

        A nack of a message past its queue's ``max_attempts`` moves it instead (see
        :mod:`._dead`): the returns are one recorded batch, then each move is one (a
        crash between them ends the unrecorded reservations at the next open, where
        past ``max_attempts`` they move just the same; a failing store leaves them
        reserved and raises).
        """
        with self.mutex:
            pairs, seq, bad = self._settling(messages)
            if bad is None and pairs:
                now = self._clock()
                dead = []
                if not ack:
                    dead = [(q, m) for q, m in pairs if self._dies(q, m.id, now)]
                    if dead:
                        moving = {(q.name, m.id) for q, m in dead}
                        pairs = [(q, m) for q, m in pairs if (q.name, m.id) not in moving]
                records = [
                    ("remove", q.name, m.id) if ack else self._return_record(q, m.id, delay, now)
                    for q, m in pairs
                ]
                durable = [(r, None) for (q, _), r in zip(pairs, records, strict=True) if q.durable]
                if durable and self._writable:
                    seq = self._store.append_batch(durable) or seq
                if ack:
                    self._ack_all(pairs)
                else:
                    for (q, _), record in zip(pairs, records, strict=True):
                        self._apply_settle(q, record, False)
                for q, m in dead:
                    seq = self._due_in_dead_letter(q) or seq  # its due changes come first
                    seq = self._move_dead(q, m.id, now) or seq
        self._commit(seq)
        if bad is not None:
            raise self._not_reserved(bad)

    @staticmethod
    def _ack_all(pairs: List[Tuple[QueueState, Message]]) -> None:
        """Apply acks (recorded already), one bulk step per queue."""
        by_queue: Dict[QueueState, List[int]] = {}
        for q, m in pairs:
            by_queue.setdefault(q, []).append(m.id)
        for q, ids in by_queue.items():
            q.ack_ids(ids)
            if q.watch is not None:
                for msg_id in ids:
                    SettleMixin._delivered(q, msg_id)

    def ack(self, message: Message) -> None:
        """See :meth:`MessageQueue.ack`."""
        self._settle((message,), None, True)

    def nack(self, message: Message, *, delay: Optional[float] = None) -> None:
        """See :meth:`MessageQueue.nack`."""
        if delay is not None:
            delay = check_seconds("delay", delay)
        self._settle((message,), delay, False)

    def ack_many(self, messages: Iterable[Message]) -> None:
        """See :meth:`MessageQueue.ack_many`."""
        self._settle(list(messages), None, True)

    def nack_many(self, messages: Iterable[Message], *, delay: Optional[float] = None) -> None:
        """See :meth:`MessageQueue.nack_many`."""
        if delay is not None:
            delay = check_seconds("delay", delay)
        self._settle(list(messages), delay, False)

    def extend(self, message: Message, lease: float) -> None:
        """See :meth:`MessageQueue.extend`."""
        lease = check_seconds("lease", lease)
        with self.mutex:
            pairs, seq, bad = self._settling((message,))
            if bad is None:
                q = pairs[0][0]
                due = self._clock() + lease
                seq = self._rec(q, ("extend", q.name, message.id, due)) or seq
                q.set_lease(message.id, due)
                self._new_lease(q)
        self._commit(seq)
        if bad is not None:
            raise self._not_reserved(bad)
