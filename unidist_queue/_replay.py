"""Rebuild queue state from a store's snapshot and records (internal).

Replay runs the same :class:`~unidist_queue._state.QueueState` operations as the calls
that wrote the records, in record order, so a reopened queue holds exactly what was
acknowledged. Every replayed queue is durable: only durable queues are recorded.

Loading builds one Python object (or more) per stored message; :func:`gc_paused` keeps
the cyclic garbage collector from scanning the growing heap over and over meanwhile.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from operator import itemgetter
from typing import Any, Callable, Dict, Iterable, Iterator, Optional

from ._state import QueueState
from .errors import StoreError
from .store.base import Record, State

__all__ = ["export", "gc_paused", "replay", "restore"]

Queues = Dict[str, QueueState]

_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_was_enabled = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a store loads; resume it afterwards.

    Unpickling a million messages creates millions of container objects; with the
    collector on, its collections scan that growing heap again and again (most of the
    loading time). Paused, the objects made meanwhile are examined once, by one young
    collection when the last pauser leaves (still inside the loading call, so its cost
    is part of opening). Reference counting frees memory as usual meanwhile; only
    reference cycles made by any thread during the load wait for that collection.
    Nested and concurrent uses (several queues loading in several threads) are counted:
    the collector resumes when the last one leaves, and only if it was enabled when the
    first one entered. Thread-safe.
    """
    global _gc_pausers, _gc_was_enabled
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            resume = _gc_pausers == 0 and _gc_was_enabled
            if resume:
                gc.enable()
        if resume:
            gc.collect(0)


def replay(queues: Queues, mutex: threading.Lock, state: Optional[State], records: Iterable[Record]) -> int:
    """Fill ``queues`` from ``state`` and ``records``; return the highest id handed out.

    Cost: O(n) for n messages and records (O(log n) each for delayed ones); a ready
    ``add`` is replayed inline (no handler call), the most common record by far.

    :raises StoreError: a record that names an unknown operation.
    """
    last_id = 0 if state is None else _restore_all(queues, mutex, state)
    current: Optional[QueueState] = None  # the queue of the previous add record
    for record in records:
        op = record[0]
        if op == "add":
            if current is None or record[1] != current.name:
                current = _queue(queues, mutex, record[1])
            msg_id = record[2]
            if msg_id > last_id:
                last_id = msg_id
            if record[4] is None and current.ages is None:
                current.ready.append(msg_id)
                current.ready_at.append(record[3])
                current.ready_bodies.append(record[5])
                current.added += 1
            else:
                _add(current, record)
            continue
        current = None  # any other record may change or drop queues: look them up again
        if op == "dead":
            last_id = max(last_id, _dead(queues, mutex, record))
            continue
        handler = _HANDLERS.get(op)
        if handler is None:
            raise StoreError(f"unknown record operation {op!r}")
        if op == "ids":
            last_id = max(last_id, int(record[1]) - 1)
            continue
        if op == "last_id":  # a clean close: exactly these ids were handed out
            last_id = int(record[1])
            continue
        handler(_queue(queues, mutex, record[1]), record)
        if op == "drop":
            del queues[record[1]]
    return last_id


def _restore_all(queues: Queues, mutex: threading.Lock, state: State) -> int:
    """Fill ``queues`` from a snapshot's ``state``; return its last id."""
    for name, data in state["queues"].items():
        restored = queues[name] = QueueState(name, mutex, True)
        restore(restored, data)
    return int(state["last_id"])


def _queue(queues: Queues, mutex: threading.Lock, name: str) -> QueueState:
    q = queues.get(name)
    if q is None:
        q = queues[name] = QueueState(name, mutex, True)
    return q


def _declare(q: QueueState, r: Record) -> None:
    """``("declare", q, maxlen, max_age, overflow[, max_attempts, dead_letter])``."""
    q.configure(r[2], r[3], r[4])
    q.max_attempts, q.dead_letter = (r[5], r[6]) if len(r) > 6 else (None, None)


def _dead(queues: Queues, mutex: threading.Lock, r: Record) -> int:
    """``("dead", q, id, to, new_id, when)``: the reservation ``id`` of ``q`` past
    ``max_attempts`` left it, to the back of queue ``to`` as ``new_id`` (``to`` None:
    dropped, or moved to a queue that is not durable). Returns ``new_id`` (or 0).

    ``stats().dead`` counts moves since the queue was opened: a replayed one is not
    counted again; its add to ``to`` counts in ``added`` as a replayed add does.
    """
    src = _queue(queues, mutex, r[1])
    item = src.unreserve(r[2])
    src.attempts.pop(r[2], None)
    if item is None or r[3] is None:
        return 0
    to = _queue(queues, mutex, r[3])
    to.push_back((r[4], r[5], item[2]))
    to.added += 1
    return int(r[4])


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
    """``("reserve", q, id, lease_due)`` (files of 0.1.0 have no ``lease_due``)."""
    item = q.pop_ready_id(r[2])
    if item is None:  # files of 0.1.0: a restart released it, recording nothing
        item = q.unreserve(r[2])
    if item is not None:
        q.reserve(item, r[3] if len(r) > 3 else None)


def _extend(q: QueueState, r: Record) -> None:
    if r[2] in q.reserved:
        q.set_lease(r[2], r[3])


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
    """``drop``, ``dead``, ``ids`` and ``last_id`` are handled by :func:`replay` itself."""


_HANDLERS: Dict[str, Callable[[QueueState, Any], None]] = {
    "declare": _declare,
    "add": _add,
    "remove": _remove,
    "reserve": _reserve,
    "nack": _nack,
    "extend": _extend,
    "promote": _promote,
    "clear": _clear,
    "dead": _nothing,
    "drop": _nothing,
    "ids": _nothing,
    "last_id": _nothing,
}


def export(q: QueueState) -> Dict[str, Any]:
    """A copy of the durable part of ``q``, as plain values, for a snapshot. O(n)."""
    reserved = sorted(entry[:3] for entry in q.reserved.values())
    return {
        "maxlen": q.maxlen,
        "max_age": q.max_age,
        "overflow": q.overflow,
        "max_attempts": q.max_attempts,
        "dead_letter": q.dead_letter,
        "ready": q.items(),
        "delayed": list(q.delayed),
        "reserved": reserved,
        "leases": list(q.leases),
        "attempts": list(q.attempts.items()),
    }


def restore(q: QueueState, data: Dict[str, Any]) -> None:
    """Load into ``q`` what :func:`export` produced (lists may come back for tuples).

    Cost: O(n), in bulk: the ready items (tuples as pickle gives them back, or lists)
    join the three ready deques without per-item Python code.
    """
    q.configure(data["maxlen"], data["max_age"], data["overflow"])
    q.max_attempts, q.dead_letter = data.get("max_attempts"), data.get("dead_letter")  # not in 0.1.0's
    ready = data["ready"]
    q.ready.extend(map(itemgetter(0), ready))
    q.ready_at.extend(map(itemgetter(1), ready))
    q.ready_bodies.extend(map(itemgetter(2), ready))
    if q.ages is not None:
        q.ages.update(zip(q.ready_at, q.ready, strict=True))
    q.delayed.update(tuple(entry) for entry in data["delayed"])
    for item in data["reserved"]:
        q.reserved[item[0]] = (item[0], item[1], item[2], None)
    for due, msg_id in data.get("leases", ()):  # snapshots of 0.1.0 have none
        q.reserved[msg_id] = (*q.reserved[msg_id][:3], due)
        q.leases.add((due, msg_id))
    q.attempts.update((int(k), int(v)) for k, v in data["attempts"])
    q.retime()
