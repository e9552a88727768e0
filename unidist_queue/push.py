"""Pusher: batched event streaming that keeps events while the receiver is down.

A Pusher is a queue of a :class:`~unidist_queue.MessageQueue`, a :class:`~unidist_queue.Loop`
and a user ``send`` callable. Events wait in the queue; the loop's thread reserves a batch,
calls ``send(batch)`` and acks the batch only once ``send`` returned, so a batch in flight
when the process dies is sent again after a restart (ids let the receiver drop duplicates).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any, Callable, List, Optional

import attrs

from ._util import check_seconds, deadline_of, remaining
from .errors import Empty, ShutDown
from .loop import Loop
from .message import Message
from .queues import MessageQueue

__all__ = ["PushStats", "Pusher"]

logger = logging.getLogger(__name__)

Sender = Callable[[List[Message]], Any]


@attrs.frozen(slots=True)
class PushStats:
    """A snapshot of a :class:`Pusher`'s counters (since it was made)."""

    sent: int
    """Events delivered (``send`` returned for their batch)."""
    batches: int
    """Batches delivered."""
    failed: int
    """Attempts whose ``send`` raised."""
    pending: int
    """Events in the queue now, in flight included."""
    last_error: Optional[str]
    """``repr`` of the exception of the last failed attempt (``None``: none yet)."""
    last_success: Optional[float]
    """``time.time()`` of the last delivered batch (``None``: none yet)."""


class Pusher:
    """Send events to ``send`` in batches, from a queue that keeps them while it is down.

    ``push(event)`` queues an event and returns at once. The first batch goes
    ``buffer_delay`` seconds after the first push; after a success the next batch goes
    ``buffer_delay`` later; either goes at once when ``batch_size`` events wait
    (``buffer_delay=0``: as soon as possible). ``send(batch)`` gets a list of
    :class:`Message` (oldest first). After a failure (``send`` raised) the pusher backs
    off from ``retry_delay``, doubling up to ``max_retry_delay``, and probes with a batch
    of one until the receiver answers, then sends full batches again.

    With a durable queue (``mq`` on a ``FileStore``), events not yet delivered when the
    process stops are delivered by a Pusher made on the reopened queue. One Pusher per
    queue at a time.

    Thread-safety: every method may be called from any thread; ``send`` runs in the
    Pusher's own loop thread, one batch at a time, never while a lock is held.

    :raises TypeError: ``send`` is not callable, or ``mq`` is not a MessageQueue.
    :raises ValueError: ``batch_size`` < 1, a negative delay, or
        ``max_retry_delay`` < ``retry_delay``.
    """

    def __init__(
        self,
        send: Sender,
        *,
        mq: Optional[MessageQueue] = None,
        queue: str = "push",
        batch_size: int = 100,
        buffer_delay: float = 1.0,
        retry_delay: float = 5.0,
        max_retry_delay: float = 300.0,
    ) -> None:
        if not callable(send):
            raise TypeError("send must be callable")
        if mq is not None and not isinstance(mq, MessageQueue):
            raise TypeError(f"mq must be a MessageQueue, not {type(mq).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
        self._buffer_delay = check_seconds("buffer_delay", buffer_delay)
        self._retry_delay = check_seconds("retry_delay", retry_delay)
        self._max_retry_delay = check_seconds("max_retry_delay", max_retry_delay)
        if self._retry_delay <= 0:
            raise ValueError("retry_delay must be positive")
        if self._max_retry_delay < self._retry_delay:
            raise ValueError("max_retry_delay must be at least retry_delay")
        self._send = send
        self._own_mq = mq is None
        self._mq = MessageQueue() if mq is None else mq
        self._queue = queue
        self._batch_size = batch_size
        self._mutex = threading.Lock()
        # progress: notified by the loop thread after every attempt; waited on by flush/close.
        self._progress = threading.Condition(self._mutex)
        self._closed = False
        self._urgent = False  # flush/close: ignore buffer_delay, stop at the first failure
        self._armed = False  # a batch is scheduled (a timer or a ring is pending)
        self._due = 0.0  # monotonic time the next batch may go
        self._failures = 0  # consecutive failed attempts
        self._sent = self._batches = self._failed = 0
        self._last_error: Optional[str] = None
        self._last_success: Optional[float] = None
        self._loop = Loop(self._process, min_delay=0.0, clock=time.monotonic, name=f"Pusher-{queue}")
        self._loop.start()
        if self._mq.count(queue):
            self._schedule(time.monotonic() + self._buffer_delay)

    # -- pushing -----------------------------------------------------------------------------

    def push(self, event: Any) -> int:
        """Queue ``event`` for sending; return its message id. Returns at once.

        Cost: O(1). Thread-safe.

        :raises ShutDown: the Pusher was closed.
        :raises SerializationError: the queue is durable and ``event`` cannot be serialized.
        """
        if self._closed:
            raise ShutDown("the Pusher is closed")
        msg_id = self._mq.add(self._queue, event)
        now = time.monotonic()
        # The processor counts and disarms under the same mutex, and this check comes
        # after the add: either it saw the event, or this push sees it disarmed and rings.
        with self._mutex:
            idle = not self._armed
            if idle:
                self._armed = True
                self._due = now + self._buffer_delay
            waiting = not idle and self._failures == 0 and self._due > now
        if idle or (waiting and self._mq.count(self._queue) >= self._batch_size):
            self._loop.trigger()
        return msg_id

    def _schedule(self, due: float) -> None:
        with self._mutex:
            self._armed = True
            self._due = due
        self._loop.trigger()

    # -- the loop's processor (runs in the loop thread) ---------------------------------------

    def _process(self) -> Optional[float]:
        """Send one batch if it is time; return when to be called again (monotonic)."""
        now = time.monotonic()
        with self._mutex:
            pending = self._mq.count(self._queue)
            if not pending:
                self._armed = False
                self._progress.notify_all()
                return None
            urgent, failures, due = self._urgent, self._failures, self._due
        if now < due and (failures or not (urgent or pending >= self._batch_size)):
            return due
        batch = self._reserve(1 if failures else self._batch_size)
        if batch:
            self._attempt(batch)
        with self._mutex:
            self._progress.notify_all()
            if self._failures == 0 and (self._urgent or self._mq.count(self._queue) >= self._batch_size):
                return time.monotonic()
            return self._due

    def _reserve(self, n: int) -> List[Message]:
        batch: List[Message] = []
        try:
            while len(batch) < n:
                batch.append(self._mq.reserve(self._queue, timeout=0))
        except (Empty, ShutDown):
            pass
        return batch

    def _attempt(self, batch: List[Message]) -> None:
        """Send ``batch``: ack it on success, return it to the front on failure."""
        try:
            self._send(list(batch))
        except Exception as exc:
            self._settle(batch, self._mq.nack)
            with self._mutex:
                self._failures += 1
                self._failed += 1
                self._last_error = repr(exc)
                backoff = min(self._retry_delay * 2 ** (self._failures - 1), self._max_retry_delay)
                if self._urgent:
                    backoff = min(backoff, self._retry_delay)
                self._due = time.monotonic() + backoff
                self._armed = True
            logger.warning("send failed (%d in a row); retrying in %.3g s: %r",
                           self._failures, backoff, exc, exc_info=exc)
            return
        self._settle(batch, self._mq.ack)
        with self._mutex:
            self._failures = 0
            self._sent += len(batch)
            self._batches += 1
            self._last_success = time.time()
            self._due = time.monotonic() + self._buffer_delay
            self._armed = True

    def _settle(self, batch: List[Message], settle: Callable[[Message], None]) -> None:
        for message in batch:
            with contextlib.suppress(ValueError, ShutDown):  # cleared meanwhile, or closed
                settle(message)

    # -- flushing and closing -------------------------------------------------------------

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Send everything now, retrying until the queue is empty (``True``) or ``timeout``
        passes (``False``). Failed attempts are retried every ``retry_delay`` seconds.

        :raises ValueError: ``timeout`` is negative.
        """
        return self._drain(timeout, stop_on_failure=False)

    def _drain(self, timeout: Optional[float], stop_on_failure: bool) -> bool:
        deadline = deadline_of(timeout)
        with self._mutex:
            self._urgent = True
            self._armed = True
            self._due = min(self._due, time.monotonic() + self._retry_delay)
            failed_before = self._failed
        self._loop.trigger()
        try:
            with self._mutex:
                while True:
                    if self._mq.closed:
                        return False
                    if self._pending_now() == 0:
                        return True
                    if stop_on_failure and self._failed > failed_before:
                        return False
                    wait = remaining(deadline)
                    if wait is not None and wait <= 0:
                        return False
                    self._progress.wait(wait)
        finally:
            with self._mutex:
                self._urgent = False

    def _pending_now(self) -> int:
        stats = self._mq.stats(self._queue)
        return stats.ready + stats.reserved

    def close(self, timeout: Optional[float] = None) -> None:
        """Flush within ``timeout`` unless the receiver is known to be down, then stop.

        The last attempt stops at the first failure. Unsent events stay in the queue (a
        durable queue delivers them after a restart). ``push`` afterwards raises
        ``ShutDown``. A MessageQueue passed in is left open; a private one is closed.
        Idempotent.
        """
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            down = self._failures > 0
        if not down and not self._mq.closed:
            self._drain(timeout, stop_on_failure=True)
        self._loop.stop(timeout)
        if self._own_mq:
            self._mq.close()

    def stats(self) -> PushStats:
        """A :class:`PushStats` snapshot. O(1). Thread-safe."""
        pending = 0 if self._mq.closed else self._pending_now()
        with self._mutex:
            return PushStats(self._sent, self._batches, self._failed, pending,
                             self._last_error, self._last_success)

    def __enter__(self) -> Pusher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
