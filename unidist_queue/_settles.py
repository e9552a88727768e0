"""Settling finished tasks in batches: a group commit with no thread of its own.

Internal. Over a backend that is not an in-process :class:`~unidist_queue.MessageQueue`
(each queue call a round trip), a worker that finishes a task hands its settle to
:meth:`Settles.commit`: the task's outcome for its submitter's reply queue (if another
handler submitted it) and its message to ack. The settles of the tasks that finish
while one is being written go out together:

* If no flush is in progress, the calling worker thread becomes the leader: it takes
  everything pending and writes it, the outcomes grouped by reply queue with one
  ``add_many`` each (:func:`~unidist_queue._replies.send_many`), then every message in
  one ``ack_many`` (one by one if a reservation ended meanwhile:
  :func:`~unidist_queue._deadletter.settle`); it loops while more was appended meanwhile,
  and returns once nothing is pending.
* A worker that finds a flush in progress appends its settle and returns at once: the
  leader writes it.

Outcomes before acks, batch by batch: a crash in between runs a task again (at least
once), it never loses an outcome. No latency is added: an idle handler's first settle is
written at once by its own worker; under load the batches grow by themselves. The
pending list holds a finished task's outcome and message only until the leader writes
them (the leader is a live worker thread that does not return before).

Thread-safety: one lock guards the pending list and the ``flushing`` flag; no queue
call, user code or log is made while it is held. :meth:`Settles.drain` (shutdown)
waits for a flush in progress, then writes what is left.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from ._deadletter import settle
from ._replies import Outcome, send_many

if TYPE_CHECKING:
    from .api import QueueAPI
    from .message import Message

__all__ = ["Reply", "Settles"]

logger = logging.getLogger("unidist_queue.tasks")

Reply = Tuple[str, Outcome]
"""An outcome to send before the ack: ``(reply queue, (key, value, failed))``."""


class Settles:
    """The pending settles of one handler's finished tasks (see the module)."""

    def __init__(self, mq: QueueAPI) -> None:
        self.mq = mq
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when a leader stops
        self._pending: List[Tuple[Optional[Reply], Message]] = []
        self._flushing = False

    def commit(self, reply: Optional[Reply], message: Message) -> None:
        """Settle a finished task: send ``reply`` (if any), then ack ``message``; written
        by this thread now (and what others add meanwhile) unless a flush is in
        progress, which writes it. Never raises an ``Exception`` (failures are logged).
        Cost: none for a follower; for a leader, per batch one ``exists`` and one
        ``add_many`` per reply queue, and one ``ack_many``."""
        with self._lock:
            self._pending.append((reply, message))
            if self._flushing:
                return
            self._flushing = True
        self._lead()

    def drain(self, timeout: Optional[float]) -> None:
        """Wait (at most ``timeout`` seconds) for a flush in progress, then write what is
        still pending (at shutdown: no outcome or ack is left behind)."""
        with self._lock:
            if not self._idle.wait_for(lambda: not self._flushing, timeout) or not self._pending:
                return
            self._flushing = True
        self._lead()

    def _lead(self) -> None:
        """Write the pending settles until none is left (``_flushing`` is set by the caller)."""
        try:
            while True:
                with self._lock:
                    batch, self._pending = self._pending, []
                    if not batch:
                        self._flushing = False
                        self._idle.notify_all()
                        return
                self._write(batch)
                del batch  # nothing of a finished task is kept
        except BaseException:
            with self._lock:
                self._flushing = False
                self._idle.notify_all()
            raise

    def _write(self, batch: List[Tuple[Optional[Reply], Message]]) -> None:
        """Outcomes first (by reply queue), then one ack of every message. Never raises
        an ``Exception``."""
        groups: Dict[str, List[Outcome]] = {}
        for reply, _ in batch:
            if reply is not None:
                groups.setdefault(reply[0], []).append(reply[1])
        for reply_to, outcomes in groups.items():
            sent = send_many(self.mq, reply_to, outcomes, True)
            for (key, value, failed), ok in zip(outcomes, sent, strict=True):
                if failed and not ok:  # nobody will see it: as an undelivered recovered task's
                    logger.error("recovered task %d (of %r) raised", key, reply_to, exc_info=value)
        settle(self.mq, [message for _, message in batch], ack=True)
