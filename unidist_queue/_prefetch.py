"""A handler's prefetch: reserved task messages held in hand for its own workers.

Internal. Over a backend that is not an in-process :class:`~unidist_queue.MessageQueue`
(each queue call a round trip), :class:`Prefetch` is how
:class:`~unidist_queue._queuetasks.QueueTasks` reserves task messages:

* A take of ``n`` tasks of series ``S`` is served first from the messages held for
  ``S`` (oldest first), and only the rest from the queue. A reserve that reaches the
  queue asks for ``n + spare`` messages, ``spare`` being the slots of this handler's
  workers qualified for ``S``; the surplus is held for the next takes of any worker of
  this handler (so routing by priority among its workers still holds). So a handler
  holds at most one extra task per slot in hand: the handler's prefetch, as Celery's
  with a prefetch multiplier of 1. Held messages are reserved with the same lease as
  any take (the session's lease: those of a killed process come back after
  ``session_lease``, nothing is lost); while held they count as waiting
  (``status()``), are taken by ``cancel_futures`` and given back (nacked to the front,
  in id order) when the handler shuts down.
* The ``count`` asked before a reserve (a reserve that finds nothing costs far more)
  is skipped when the previous reserve of that series came back full: a backlog is
  likely.

Limit: a held message that is given back has been reserved once more (its
``attempts`` count goes up), as any message nacked.

Thread-safety: none of its own; every method is called with the pool's lock held (the
task queue's ``take``, ``take_all``, ``waiting``, ``forget``, ``requeue``, ``close`` and
``stranded`` all are).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, List, Optional

from .errors import Empty

if TYPE_CHECKING:
    from ._routing import Series
    from .api import QueueAPI
    from .message import Message

__all__ = ["Prefetch"]

_MOST = 1 << 30  # a take of more (take_all) prefetches nothing


class Prefetch:
    """The held messages of each series and its reserves (see the module).

    ``spare(s)``: how many messages a reserve of ``s`` may fetch beyond the take (the
    slots of the workers qualified for it).
    """

    def __init__(self, mq: QueueAPI, spare: Callable[[Series[Any]], int]) -> None:
        self.mq = mq
        self._spare = spare
        self._held: Dict[str, Deque[Message]] = {}  # queue -> held messages, oldest first
        self._full: Dict[str, bool] = {}  # queue -> whether its last reserve came back full
        self._on = True  # off once the handler shuts down: a take reserves what it takes

    def take(self, s: Series[Any], n: int) -> List[Message]:
        """Up to ``n`` messages of ``s``, reserved: held ones first, then from the queue.

        :raises: what ``count`` or ``reserve_many`` raise (``Empty`` aside), unless held
            messages were taken: they are returned, and the error comes at the next take.
        """
        taken: List[Message] = []
        held = self._held.get(s.queue)
        while held and len(taken) < n:
            taken.append(held.popleft())
        if len(taken) < n:
            try:
                taken += self._reserve(s, n - len(taken))
            except Exception:
                if not taken:
                    raise
        return taken

    def _reserve(self, s: Series[Any], n: int) -> List[Message]:
        queue, mq = s.queue, self.mq
        if not self._full.get(queue) and not mq.count(queue):
            return []
        ask = n + (self._spare(s) if self._on and n < _MOST else 0)
        try:
            got = mq.reserve_many(queue, ask, timeout=0)
        except Empty:
            got = []
        self._full[queue] = len(got) >= ask
        if len(got) > n:
            self._held.setdefault(queue, deque()).extend(got[n:])
            del got[n:]
        return got

    def held(self, s: Series[Any]) -> int:
        """How many messages of ``s`` are held. O(1)."""
        held = self._held.get(s.queue)
        return len(held) if held else 0

    def messages(self, s: Series[Any]) -> List[Message]:
        """The held messages of ``s``, oldest first (they stay held)."""
        return list(self._held.get(s.queue, ()))

    def pop(self, s: Series[Any], msg_id: int) -> Optional[Message]:
        """The held message ``msg_id`` of ``s``, no longer held; ``None``: not held. O(held)."""
        held = self._held.get(s.queue)
        for message in held or ():
            if message.id == msg_id:
                held.remove(message)  # type: ignore[union-attr]
                return message
        return None

    def give_back(self, s: Optional[Series[Any]] = None) -> List[Message]:
        """The held messages of ``s`` (of every series if ``None``), no longer held, in id
        order (for the caller to nack)."""
        queues = list(self._held) if s is None else [s.queue]
        out: List[Message] = []
        for queue in queues:
            out += self._held.pop(queue, ())
        return sorted(out, key=_message_id)

    def stop(self) -> List[Message]:
        """The handler shuts down: hold nothing from now on; the held messages (see
        :meth:`give_back`)."""
        self._on = False
        return self.give_back()


def _message_id(message: Message) -> int:
    return message.id
