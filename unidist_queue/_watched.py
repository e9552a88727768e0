"""Watched: the messages of one queue put through a view and not yet delivered (internal).

For each such message the core keeps the callback of the view that put it (``left``), to
call if the message leaves the queue undelivered (see ``QueueCore.view_put``). A
:class:`Watched` maps message id to callback as a ``dict`` would, but keeps the common
case, one view putting and consumers taking in order, without an entry per message: a
run of consecutive ids ``lo .. hi`` that share one callback, plus a ``dict`` of the
rest. A view's put extends the run at its top, a take in order shrinks it from its
bottom. With a ``dict`` per message, a thread-to-coroutine hand-off through an
``AsyncQueueView`` ran about 12% slower (``bench_async.py``: 1.06x janus, 1.19x
without any watch, in one A/B run).

Every method is called with the owning core's mutex held. The fast paths of
``_atake.py`` read and move :attr:`lo`/:attr:`hi` directly (the owner's contract:
``lo .. hi``, when ``lo <= hi``, are exactly the ids in the run).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional

__all__ = ["Watched"]

Left = Callable[[], None]


class Watched:
    """Message id -> the putting view's callback; a run of consecutive ids plus a dict.

    The run holds exactly the ids ``lo .. hi`` (empty when ``lo > hi``), all with the
    callback :attr:`left`; :attr:`rest` holds every other entry. Cost: O(1) per entry
    added or removed, except removing an id inside the run, not at either end: O(run).
    """

    __slots__ = ("hi", "left", "lo", "rest")

    def __init__(self) -> None:
        self.lo = 1
        self.hi = 0
        self.left: Optional[Left] = None
        self.rest: Dict[int, Left] = {}

    def __setitem__(self, msg_id: int, left: Left) -> None:
        """Watch ``msg_id`` (not watched yet) with ``left``: at the run's top if it follows
        it with the same callback, as a new run if the run is empty, else in :attr:`rest`."""
        if msg_id == self.hi + 1 and left == self.left:  # == : bound methods made apart
            self.hi = msg_id
        elif self.lo > self.hi:
            self.lo = self.hi = msg_id
            self.left = left
        else:
            self.rest[msg_id] = left

    def get(self, msg_id: int) -> Optional[Left]:
        """The callback of ``msg_id``, or ``None`` if it is not watched."""
        if self.lo <= msg_id <= self.hi:
            return self.left
        return self.rest.get(msg_id)

    def pop(self, msg_id: int, default: None = None) -> Optional[Left]:
        """Stop watching ``msg_id``; its callback, or ``None`` if it was not watched."""
        lo, hi = self.lo, self.hi
        if not lo <= msg_id <= hi:
            return self.rest.pop(msg_id, default)
        if msg_id == lo:
            self.lo = lo + 1
        elif msg_id == hi:
            self.hi = hi - 1
        else:  # split the run: the ids above msg_id go to rest
            left = self.left
            assert left is not None
            self.rest.update(dict.fromkeys(range(msg_id + 1, hi + 1), left))
            self.hi = msg_id - 1
        return self.left

    def values(self) -> List[Left]:
        """The callback of every watched message (one per message). O(n)."""
        run = self.hi - self.lo + 1
        lefts: List[Left] = [self.left] * run if run > 0 and self.left is not None else []
        lefts.extend(self.rest.values())
        return lefts

    def __len__(self) -> int:
        return max(0, self.hi - self.lo + 1) + len(self.rest)
