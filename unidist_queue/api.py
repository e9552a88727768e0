"""QueueAPI: the queue API as one protocol, whatever keeps the state (DESIGN 1 and 3).

:class:`QueueAPI` is a :class:`typing.Protocol`: any object with these methods, behaving
as DESIGN section 3 says, is a queue backend. :class:`~unidist_queue.MessageQueue` (state
in this process) is one; ``RedisMessageQueue`` (state in a Redis server) is planned as
the other. ``TaskHandler``, ``QueueView`` and ``Pusher`` need nothing more of a queue
object than this, so they work over any backend that passes the contract tests.

It is ``runtime_checkable``: ``isinstance(obj, QueueAPI)`` checks that the methods
exist (not their signatures or behaviour).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, List, Optional, Protocol, runtime_checkable

from .aview import AsyncQueueView
from .message import Message, QueueStats
from .view import QueueView

__all__ = ["QueueAPI"]


@runtime_checkable
class QueueAPI(Protocol):
    """Named queues: add, take, reserve and settle, look, remove (see DESIGN section 3).

    Every method may be called from any thread and is atomic. Ids are unique and
    increasing; ``Empty``, ``Full``, ``ShutDown``, ``StoreError`` and
    ``SerializationError`` are raised as section 3 says. A queue name that is not a
    ``str`` is a ``TypeError`` naming the argument in every method (``subscribe``'s
    ``None`` aside).
    """

    # -- adding ----------------------------------------------------------------------------

    def add(self, queue: str, message: Any, *, delay: Optional[float] = None,
            timeout: Optional[float] = None) -> int:
        """Append ``message``; return its id."""

    def add_many(self, queue: str, messages: Iterable[Any], *, delay: Optional[float] = None,
                 timeout: Optional[float] = None) -> List[int]:
        """Append every message as one atomic step; return their ids."""

    def declare(self, queue: str, *, maxlen: Optional[int] = ..., max_age: Optional[float] = ...,
                overflow: str = ..., durable: Optional[bool] = None, max_attempts: Optional[int] = ...,
                dead_letter: Optional[str] = ...) -> None:
        """Create ``queue`` or change its options."""

    def subscribe(self, queue: Optional[str], callback: Callable[[str], Any]) -> Callable[[], None]:
        """Call ``callback(name)`` whenever messages become ready; return an unsubscriber."""

    # -- taking ----------------------------------------------------------------------------

    def oldest(self, queue: str, *, remove: bool = True, default: Any = ...) -> Any:
        """The oldest ready body (removed unless ``remove=False``)."""

    def newest(self, queue: str, *, remove: bool = True, default: Any = ...) -> Any:
        """The newest ready body (removed unless ``remove=False``)."""

    def get(self, queue: str, *, timeout: Optional[float] = None) -> Any:
        """Wait for the oldest ready message, remove it and return its body."""

    def reserve(self, queue: str, *, timeout: Optional[float] = None,
                lease: Optional[float] = None) -> Message:
        """Take the oldest ready message without deleting it (at-least-once)."""

    def reserve_many(self, queue: str, n: int, *, timeout: Optional[float] = None,
                     lease: Optional[float] = None) -> List[Message]:
        """Wait as ``reserve`` does, then reserve up to ``n`` of the oldest at once."""

    async def aget(self, queue: str, *, timeout: Optional[float] = None) -> Any:
        """``get`` for coroutines (DESIGN 11); cancelling it takes nothing."""

    async def areserve(self, queue: str, *, timeout: Optional[float] = None,
                       lease: Optional[float] = None) -> Message:
        """``reserve`` for coroutines; cancelling it reserves nothing."""

    async def areserve_many(self, queue: str, n: int, *, timeout: Optional[float] = None,
                            lease: Optional[float] = None) -> List[Message]:
        """``reserve_many`` for coroutines; cancelling it reserves nothing."""

    def ack(self, message: Message) -> None:
        """Settle a reservation for good."""

    def nack(self, message: Message, *, delay: Optional[float] = None) -> None:
        """Return a reservation to the front of its queue (after ``delay``)."""

    def ack_many(self, messages: Iterable[Message]) -> None:
        """Ack several reservations in one step; all or none."""

    def nack_many(self, messages: Iterable[Message], *, delay: Optional[float] = None) -> None:
        """Nack several reservations in one step; all or none."""

    def extend(self, message: Message, lease: float) -> None:
        """The reservation now ends ``lease`` seconds from now."""

    def next_due(self, queue: str) -> Optional[float]:
        """Clock time of the queue's next timed change, or ``None``."""

    # -- looking and removing --------------------------------------------------------------

    def count(self, queue: str) -> int:
        """Ready messages (0 for an unknown queue)."""

    def exists(self, queue: str) -> bool:
        """Declared or added to, and not dropped."""

    def all(self, queue: str) -> List[Any]:
        """A copy of the ready bodies, oldest first."""

    def messages(self, queue: str) -> List[Message]:
        """The ready messages as envelopes, oldest first."""

    def queues(self) -> List[str]:
        """Names of the existing queues, sorted."""

    def stats(self, queue: str) -> QueueStats:
        """A frozen snapshot of the queue's counters."""

    def clear(self, queue: str) -> int:
        """Remove every message; return how many."""

    def drop(self, queue: str) -> bool:
        """Remove the queue itself; ``False`` if it did not exist."""

    # -- the rest --------------------------------------------------------------------------

    def view(self, queue: str, maxsize: int = 0) -> QueueView[Any]:
        """A ``queue.Queue``-compatible view of ``queue``."""

    def aview(self, queue: str, maxsize: int = 0) -> AsyncQueueView[Any]:
        """An ``asyncio.Queue``-compatible view of ``queue`` (DESIGN 11)."""

    def compact(self) -> None:
        """Write a snapshot now (a no-op where there is nothing to compact)."""

    def close(self) -> None:
        """Release everything; blocked callers get ``ShutDown``. Idempotent."""

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
