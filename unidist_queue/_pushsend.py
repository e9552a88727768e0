"""How a Pusher sends: the loop's processor, batches, backoff and settling (internal).

:class:`Sending` is the base class of :class:`~unidist_queue.Pusher` holding what runs
in the Pusher's :class:`~unidist_queue.Loop` thread: one pass looks at the queue, waits
out ``buffer_delay`` or the backoff, reserves a batch (``reserve_many``: a batch is
reserved by one Pusher, even when several share the queue), calls ``send`` and acks the
batch, or nacks it and backs off (doubling from ``retry_delay`` up to
``max_retry_delay``; probes are batches of one). Finding nothing ready, it waits for a
push, or for the queue's next timed change (``next_due``: a lapsing lease of a batch
whose sender died, a delayed add) if that comes first. It also holds the state the loop's
thread shares with ``push``, ``flush`` and ``close``, under the Pusher's mutex.

The loop's thread never calls the queue, ``send`` or the logger while it holds the
mutex.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, List, Optional, Tuple

from ._util import DueOnce
from .api import QueueAPI
from .errors import Empty, ShutDown
from .message import Message

__all__ = ["ARMED", "BACKOFF", "IDLE", "WAITING", "Sender", "Sending"]

logger = logging.getLogger("unidist_queue.push")  # the name of its messages before the split

Sender = Callable[[List[Message]], Any]
_Settle = Callable[[Message], None]

# What the loop's thread is doing, as seen by push() (read and written under the mutex).
IDLE = 0  # nothing queued as far as the loop knows; push must ring (a timer only for next_due)
ARMED = 1  # a pass is rung or running: it will look at the queue
WAITING = 2  # healthy, a timer waits out buffer_delay: a full batch must ring
BACKOFF = 3  # the last attempt failed, a timer waits out the backoff: never ring


class Sending:
    """The loop's side of a :class:`~unidist_queue.Pusher` (see the module)."""

    # Set by Pusher.__init__ (checked there): the queue, send, the clock and the options.
    _mq: QueueAPI
    _queue: str
    _send: Sender
    _clock: Callable[[], float]
    _batch_size: int
    _buffer_delay: float
    _retry_delay: float
    _max_retry_delay: float

    def _init_state(self, waiting: int, durable: bool) -> None:
        """The state shared by ``push``, the loop's thread, ``flush`` and ``close``."""
        self._mutex = threading.Lock()
        # progress: notified by the loop's thread after every pass; flush/close wait on it.
        self._progress = threading.Condition(self._mutex)
        self._steps = 0  # passes of the processor so far (flush waits for the next)
        self._state = IDLE
        self._due = 0.0  # clock time the next batch may go
        self._rung = False  # push rang for a full batch; the next pass clears it
        self._pushes = 0  # pushes so far
        self._base = 0  # _pushes - _base estimates the events waiting (never too low)
        self._urgent = 0  # flushes (and a close) in progress: buffer_delay is ignored
        self._closed = False  # close() was called: push raises ShutDown
        self._stopped = False  # the loop's thread ended (close, or a BaseException)
        self._failures = 0  # consecutive failed attempts
        self._sent = self._batches = self._failed = 0
        self._last_error: Optional[str] = None
        self._last_success: Optional[float] = None
        self._pending_seen = waiting  # the last pending count seen (for stats() after close)
        self._durable_seen = durable  # whether the queue was durable, as last seen (for close)
        self._unsettled: List[Tuple[_Settle, Message]] = []  # acks/nacks the store refused
        self._thread_id: Optional[int] = None  # the loop's thread, once it has run a pass
        self._due_once = DueOnce()  # the queue's next_due, looked at once passed (loop's thread)
        # Messages this Pusher holds reserved (the batch being reserved or sent, and the
        # settles the store refused), and how often that number went down: a flush counts
        # the queue's ready events plus these, never another Pusher's batch in flight.
        self._held = 0
        self._released = 0

    # -- the loop's processor (runs in the loop's thread) ---------------------------------------

    def _process(self) -> Optional[float]:
        """Send one batch if it is time; return when to be called again (on the clock)."""
        try:
            return self._step()
        except ShutDown:  # the MessageQueue was closed under us: nothing more to do
            with self._mutex:
                self._state = IDLE
                self._steps += 1
                self._progress.notify_all()
            return None
        except Exception:  # the store failed (reserve, count): try again later
            logger.exception("Pusher %r: the queue failed; trying again in %.3g s",
                             self._queue, self._retry_delay)
            with self._mutex:
                self._state = BACKOFF
                self._steps += 1
                self._progress.notify_all()
            return self._clock() + self._retry_delay
        except BaseException:
            with self._mutex:
                self._stopped = True
                self._progress.notify_all()
            raise

    def _step(self) -> Optional[float]:
        self._thread_id = threading.get_ident()
        if self._unsettled:
            self._settle_again()
        with self._mutex:
            self._rung = False
            pushes = self._pushes
        pending = self._mq.count(self._queue)
        wake = None if pending else self._timed_wake()
        now = self._clock()
        with self._mutex:
            self._steps += 1
            self._progress.notify_all()
            self._hold_locked(len(self._unsettled))  # settled again, some of them
            self._base = pushes - pending
            self._pending_seen = pending
            if not pending:
                if self._pushes != pushes:  # a push landed after the count: look again
                    self._state = ARMED
                    return now
                self._state = IDLE
                return None if wake is None else now + wake
            failures, due = self._failures, self._due
            if now < due and (failures or not (self._urgent or pending >= self._batch_size)):
                if failures:
                    self._state = BACKOFF
                    return due
                self._state = ARMED
                if self._pushes - self._base >= self._batch_size:
                    return now  # pushes since the count may fill a batch: count again
                self._state = WAITING
                return due
            self._state = ARMED
            n = 1 if failures else min(pending, self._batch_size)
            self._held = n + len(self._unsettled)  # before reserving: a flush never undercounts
        batch = self._reserve(n)
        if batch:
            self._attempt(batch)
        return self._clock()  # at once: the next pass decides (another batch, wait, idle)

    def _timed_wake(self) -> Optional[float]:
        """Seconds until the queue's next timed change (``next_due``), which may make events
        ready with nobody ringing this Pusher: a delayed add by other code or, over a
        backend shared by processes, the lapse of the lease of a batch whose Pusher's
        process died (another Pusher then sends it). ``None``: nothing timed, or the same
        due time again once it passed (the queue's clock is not :func:`time.time`): wait
        for a push. Called by the loop's thread only, without the mutex.
        """
        once = self._due_once
        due = once.due(self._mq.next_due(self._queue))
        if due is None:
            return None
        wait = due - time.time()
        if wait > 0:
            return wait
        once.looked(due)  # (passed: looked at now, by the pass this wake-up starts)
        return 0.0

    def _hold_locked(self, n: int) -> None:
        """This Pusher now holds ``n`` messages reserved (see :meth:`_init_state`)."""
        if n < self._held:
            self._released += 1
        self._held = n

    def _reserve(self, n: int) -> List[Message]:
        """Reserve up to ``n`` messages, oldest first, in one step (none if the queue is empty).

        Each batch is reserved by one pusher: two Pushers on one queue never send the
        same event in two batches.
        """
        try:
            return self._mq.reserve_many(self._queue, n, timeout=0)
        except Empty:
            with self._mutex:
                self._hold_locked(len(self._unsettled))  # none held after all
            return []

    def _attempt(self, batch: List[Message]) -> None:
        """Send ``batch``: ack it on success, return it to the front on failure."""
        try:
            self._send(list(batch))
        except Exception as exc:
            self._settle(batch, self._mq.nack)
            now = self._clock()
            with self._mutex:
                self._hold_locked(len(self._unsettled))
                self._failures += 1
                self._failed += 1
                failures = self._failures
                self._last_error = repr(exc)
                backoff = self._backoff_locked()
                self._due = now + backoff
            logger.warning("Pusher %r: send failed (%d in a row); next attempt (a batch of one) "
                           "in %.3g s: %r", self._queue, failures, backoff, exc, exc_info=exc)
            return
        except BaseException:
            self._settle(batch, self._mq.nack)
            raise
        self._settle(batch, self._mq.ack)
        now = self._clock()
        with self._mutex:
            self._hold_locked(len(self._unsettled))
            self._failures = 0
            self._sent += len(batch)
            self._batches += 1
            self._last_success = time.time()
            self._due = now + self._buffer_delay

    def _backoff_locked(self) -> float:
        """The wait after the latest failure: doubling, capped; ``retry_delay`` in a flush."""
        if self._urgent:
            return self._retry_delay
        doublings = min(self._failures - 1, 64)
        return min(self._retry_delay * 2.0**doublings, self._max_retry_delay)

    def _settle(self, batch: List[Message], settle: _Settle) -> None:
        """Ack or nack the batch in one step (``ack_many``/``nack_many``); if that fails (a
        message was cleared meanwhile, or the store refused), each message on its own,
        keeping those the store refused, to try again."""
        many = self._mq.ack_many if settle == self._mq.ack else self._mq.nack_many
        try:
            many(batch)
            return
        except Exception:  # all or none: nothing was settled; settle one by one
            pass
        for message in batch:
            try:
                settle(message)
            except (ValueError, ShutDown):  # cleared or dropped meanwhile, or closed
                pass
            except Exception:
                logger.exception("Pusher %r: could not settle message %d; will try again",
                                 self._queue, message.id)
                self._unsettled.append((settle, message))

    def _settle_again(self) -> None:
        todo, self._unsettled = self._unsettled, []
        for settle, message in todo:
            self._settle([message], settle)
