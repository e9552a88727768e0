"""Rebuild queue state from a store's snapshot and records (internal).

Replay runs the same :class:`~unidist_queue._state.QueueState` operations as the calls
that wrote the records, in record order, so a reopened queue holds exactly what was
acknowledged. Every replayed queue is durable: only durable queues are recorded.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Iterable, Optional

from ._state import QueueState
from .errors import StoreError
from .store.base import Record, State

__all__ = ["replay"]

Queues = Dict[str, QueueState]


def replay(queues: Queues, mutex: threading.Lock, state: Optional[State], records: Iterable[Record]) -> int:
    """Fill ``queues`` from ``state`` and ``records``; return the highest id handed out.

    Cost: O(n) for n messages and records (O(log n) each for delayed ones).

    :raises StoreError: a record that names an unknown operation.
    """
    last_id = 0
    if state is not None:
        last_id = int(state["last_id"])
        for name, data in state["queues"].items():
            q = queues[name] = QueueState(name, mutex, True)
            q.restore(data)
    for record in records:
        op = record[0]
        handler = _HANDLERS.get(op)
        if handler is None:
            raise StoreError(f"unknown record operation {op!r}")
        if op == "ids":
            last_id = max(last_id, int(record[1]) - 1)
            continue
        if op == "add":
            last_id = max(last_id, record[2])
        handler(_queue(queues, mutex, record[1]), record)
        if op == "drop":
            del queues[record[1]]
    return last_id


def _queue(queues: Queues, mutex: threading.Lock, name: str) -> QueueState:
    q = queues.get(name)
    if q is None:
        q = queues[name] = QueueState(name, mutex, True)
    return q


def _declare(q: QueueState, r: Record) -> None:
    q.configure(r[2], r[3], r[4])


def _add(q: QueueState, r: Record) -> None:
    _, _, msg_id, enqueued_at, due, body = r
    item = (msg_id, enqueued_at, body)
    if due is None:
        q.push_back(item)
    else:
        q.delay(due, item, False)
    q.added += 1


def _remove(q: QueueState, r: Record) -> None:
    q.forget(r[2])


def _reserve(q: QueueState, r: Record) -> None:
    item = q.pop_ready_id(r[2])
    if item is not None:
        q.reserve(item, None)


def _nack(q: QueueState, r: Record) -> None:
    item = q.unreserve(r[2])
    if item is None:
        return
    if r[3] is None:
        q.push_front(item)
    else:
        q.delay(r[3], item, True)


def _promote(q: QueueState, r: Record) -> None:
    q.promote_id(r[2])


def _clear(q: QueueState, r: Record) -> None:
    q.clear()


def _nothing(q: QueueState, r: Record) -> None:
    """``drop`` and ``ids`` are handled by :func:`replay` itself."""


_HANDLERS: Dict[str, Callable[[QueueState, Any], None]] = {
    "declare": _declare,
    "add": _add,
    "remove": _remove,
    "reserve": _reserve,
    "nack": _nack,
    "promote": _promote,
    "clear": _clear,
    "drop": _nothing,
    "ids": _nothing,
}
