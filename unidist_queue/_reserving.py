"""The at-least-once half of :class:`~unidist_queue.MessageQueue`'s facade.

Internal: :class:`ReservingFacade` documents ``reserve``, ``reserve_many``, ``ack``,
``nack``, ``ack_many``, ``nack_many`` and ``extend`` and carries each out on the
queue's state owner (:class:`~unidist_queue._core.QueueCore`), exactly as
:mod:`unidist_queue.queues` does for the other methods. A mixin of ``MessageQueue``
only, kept apart so that each facade module stays short.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, List, Optional

if TYPE_CHECKING:
    from ._core import QueueCore
    from .message import Message

__all__ = ["ReservingFacade"]


class ReservingFacade:
    """Reservations and their settling (see the module); ``_core`` is set by ``MessageQueue``."""

    __slots__ = ()
    _core: QueueCore

    def reserve(
        self, queue: str, *, timeout: Optional[float] = None, lease: Optional[float] = None
    ) -> Message:
        """Take the oldest ready message without deleting it (at-least-once delivery).

        The message stays invisible until :meth:`ack` deletes it or :meth:`nack` returns
        it. With ``lease`` (seconds), an unsettled message returns to the front by
        itself once the lease runs out. After a restart, the unsettled reservations of a
        durable queue are ready again at the front, in id order, exactly as if each had
        been nacked: merged in id order with the returned messages already at the front
        (nacked, or returned by a lease or an earlier restart), ahead of every message
        never reserved, which keeps its place; their ``attempts`` count is kept, and a
        ``Message`` reserved before the restart can no longer be settled
        (``ValueError``). Waits like :meth:`get`.

        Cost: O(1), O(log n) with a lease. Thread-safe.

        :raises Empty: ``timeout`` passed with nothing ready.
        :raises ValueError: ``timeout`` or ``lease`` is negative.
        :raises ShutDown: the MessageQueue was closed (also while waiting).
        """
        return self._core.reserve(queue, timeout=timeout, lease=lease)

    def reserve_many(
        self, queue: str, n: int, *, timeout: Optional[float] = None, lease: Optional[float] = None
    ) -> List[Message]:
        """Wait as :meth:`reserve` does until a message is ready, then reserve up to ``n``.

        The oldest ready messages (at most ``n``) are reserved in one atomic step (one
        archive write for a durable queue), each with the same ``lease``; no other call
        sees part of the batch. Cost: O(k) for k messages (O(k log n) with a lease).
        Thread-safe.

        :raises Empty: ``timeout`` passed with nothing ready.
        :raises ValueError: ``n`` < 1, or ``timeout`` or ``lease`` is negative.
        :raises TypeError: ``n`` is not an int.
        :raises ShutDown: the MessageQueue was closed (also while waiting).
        """
        return self._core.reserve_many(queue, n, timeout=timeout, lease=lease)

    async def areserve(
        self, queue: str, *, timeout: Optional[float] = None, lease: Optional[float] = None
    ) -> Message:
        """:meth:`reserve` for coroutines: await the oldest ready message and reserve it.

        Waits as :meth:`aget` does. A cancelled call reserves nothing (the message stays
        ready, its ``attempts`` unchanged). Cost: as :meth:`reserve`. Thread-safe.

        :raises Empty: ``timeout`` passed with nothing ready.
        :raises ValueError: ``timeout`` or ``lease`` is negative.
        :raises ShutDown: the MessageQueue was closed (also while waiting).
        """
        return await self._core.areserve(queue, timeout=timeout, lease=lease)

    async def areserve_many(
        self, queue: str, n: int, *, timeout: Optional[float] = None, lease: Optional[float] = None
    ) -> List[Message]:
        """:meth:`reserve_many` for coroutines: await a ready message, then reserve up to ``n``.

        Waits as :meth:`aget` does; a cancelled call reserves nothing. Cost: as
        :meth:`reserve_many`. Thread-safe.

        :raises Empty: ``timeout`` passed with nothing ready.
        :raises ValueError: ``n`` < 1, or ``timeout`` or ``lease`` is negative.
        :raises TypeError: ``n`` is not an int.
        :raises ShutDown: the MessageQueue was closed (also while waiting).
        """
        return await self._core.areserve_many(queue, n, timeout=timeout, lease=lease)

    def ack(self, message: Message) -> None:
        """Settle a reservation for good: delete the message. O(1) (O(log n) with a lease).

        Thread-safe.

        :raises ValueError: ``message`` is not (or no longer) reserved: settled twice,
            its lease ran out (whether or not anything looked at the queue since),
            unknown, or removed by ``clear``/``drop``.
        :raises TypeError: ``message`` is not a :class:`Message`.
        """
        return self._core.ack(message)

    def nack(self, message: Message, *, delay: Optional[float] = None) -> None:
        """Settle a reservation by returning the message to its queue.

        Without ``delay`` it goes back to the front, in id order among returned
        messages; with ``delay`` (seconds) it returns there once the delay has passed.
        A message that outlived ``max_age`` is expired instead. Its ``attempts`` count
        is kept. The queue's due changes happen first (a delayed message that fell due
        before this call joined before this message returns). O(1) at the front
        (O(log n) delayed). Thread-safe.

        :raises ValueError: ``message`` is not (or no longer) reserved, or ``delay`` < 0.
        :raises TypeError: ``message`` is not a :class:`Message`.
        """
        return self._core.nack(message, delay=delay)

    def ack_many(self, messages: Iterable[Message]) -> None:
        """Ack several reservations (of any queues) as one step: one archive write.

        All or none: if one is not a current reservation, or one appears twice, nothing
        is settled. Cost: O(k) for k messages. Thread-safe.

        :raises ValueError: a message is not (or no longer) reserved, or appears twice.
        :raises TypeError: a message is not a :class:`Message`.
        """
        return self._core.ack_many(messages)

    def nack_many(self, messages: Iterable[Message], *, delay: Optional[float] = None) -> None:
        """Nack several reservations (of any queues) as one step, as :meth:`nack` each.

        All or none, as :meth:`ack_many`. Cost: O(k) for k messages. Thread-safe.

        :raises ValueError: a message is not (or no longer) reserved, appears twice, or
            ``delay`` < 0.
        :raises TypeError: a message is not a :class:`Message`.
        """
        return self._core.nack_many(messages, delay=delay)

    def extend(self, message: Message, lease: float) -> None:
        """The reservation ``message`` now ends ``lease`` seconds from now (a long task keeps it).

        Works on a reservation with or without a lease. The queue's due changes happen
        first: a delivery whose lease already ran out is no longer current. O(log n).
        Thread-safe.

        :raises ValueError: ``message`` is not a current reservation, or ``lease`` < 0.
        :raises TypeError: ``message`` is not a :class:`Message`.
        """
        return self._core.extend(message, lease)
