"""Value objects: :class:`Message` envelopes and :class:`QueueStats` snapshots.

Both are frozen, slotted attrs classes: cheap, hashable, picklable, and safe to share
between threads. Queues keep plain tuples internally; envelopes are built on demand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic

import attrs

__all__ = ["MISSING", "Message", "QueueStats"]

# T: the body type of a Message or a QueueView. Its default (PEP 696) is Any, so that a
# bare ``Message`` or ``QueueView`` means ``Message[Any]`` (code annotated before they were
# generic stays valid under mypy --strict). typing_extensions is only read by the type
# checker (its stubs ship with it); at run time the default matters to nobody.
if TYPE_CHECKING:
    from typing_extensions import TypeVar

    T = TypeVar("T", default=Any)
else:
    from typing import TypeVar

    T = TypeVar("T")


class _Missing:
    """Sentinel type for "no default given" (distinct from ``None``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""Sentinel meaning "argument not given"; ``None`` is a valid message body."""


@attrs.frozen(slots=True)
class Message(Generic[T]):
    """One queued message with its metadata, as returned by ``reserve`` and ``messages``.

    Frozen and slotted: safe to pass between threads and to pickle. Building one costs
    O(1); queues store bare tuples and create envelopes only when asked.

    For type checkers it is generic in the body's type: ``Message[Order]`` has a ``body``
    of type ``Order``; a bare ``Message`` is ``Message[Any]``. At run time nothing is
    checked (a queue holds bodies of any type).
    """

    id: int
    """Unique, increasing id; never reused, also across restarts of a durable store."""
    queue: str
    """Name of the queue the message belongs to."""
    body: T
    """The message itself, exactly as added."""
    enqueued_at: float
    """Time of the ``add``, on the queue's clock (``time.time`` by default)."""
    attempts: int = 0
    """How many times the message has been reserved."""


@attrs.frozen(slots=True)
class QueueStats:
    """A snapshot of one queue's counters, as returned by ``MessageQueue.stats``.

    Counters (``added`` ... ``dead``) count since the ``MessageQueue`` was opened.
    """

    ready: int
    """Messages that can be taken now (neither delayed nor reserved)."""
    delayed: int
    """Messages waiting for their ``delay`` (or a ``nack`` delay) to pass."""
    reserved: int
    """Messages reserved and not yet acked or nacked."""
    added: int
    """Messages added."""
    removed: int
    """Messages taken for good by ``oldest``/``newest``/``get``/``ack``."""
    expired: int
    """Messages removed because they outlived ``max_age``."""
    dropped: int
    """Messages removed by overflow (``drop_oldest``, smaller ``maxlen``) or ``clear``."""
    dead: int
    """Messages whose reservation ended unacked past ``max_attempts``: moved to the
    ``dead_letter`` queue or dropped (counted in the queue they left)."""
    durable: bool
    """Whether the queue's changes are recorded in a persistent store."""
