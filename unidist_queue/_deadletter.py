"""The dead-letter queue of a task series: ``"task-dead:S"``.

Internal. A stored task (a message ``(function name, args, kwargs)`` of ``"task:S"``)
whose function cannot be imported when a worker takes it (its module is gone or was
renamed since it was stored, or the name now names something that cannot be called) is
never dropped: :func:`bury` moves it, the same body, to ``"task-dead:S"``, and
:func:`revive` (``TaskHandler.retry_dead``) moves such tasks back to ``"task:S"``.
Both use the public queue API alone.

Why the order (add to the other queue first, then ack the original) cannot lose a
task: until the ack, the original message stays reserved in its queue, so a crash (or a
failed write) between the two steps leaves the task in its queue (ready again after a
restart, moved again then) and perhaps also in the other one. The task may then be
found twice, never zero times: at least once, as everything else the handler stores.
The other order (ack, then add) would lose it in a crash between the two.

:func:`settle` acks or nacks task messages as one step (used for every settle of
:class:`~unidist_queue._queuetasks.QueueTasks`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, List

from .errors import Empty, ShutDown

if TYPE_CHECKING:
    from .api import QueueAPI
    from .message import Message

__all__ = ["bury", "dead_queue", "revive", "settle"]

logger = logging.getLogger("unidist_queue.tasks")


def dead_queue(series: str) -> str:
    """The name of the dead-letter queue of ``series``: ``"task-dead:<series>"``."""
    return f"task-dead:{series}"


def bury(mq: QueueAPI, series: str, message: Message, why: str) -> None:
    """Move the reserved ``message`` of ``series`` to its dead-letter queue (add, then ack).

    Logs the reason at ERROR (call it with no lock held). If the add fails, the message
    stays reserved (ready again after a restart, never acked) and that is logged too.
    Thread-safe; O(1) queue calls.
    """
    dead = dead_queue(series)
    try:
        mq.add(dead, message.body)
    except Exception as exc:
        logger.error(
            "task message %d of %r: its function %s cannot be imported (%s) and the task could not be "
            "moved to %r (%s): "
            "it stays reserved, ready again after a restart", message.id, message.queue, _name(message), why,
            dead, exc,
        )
        return
    logger.error(
        "task message %d of %r: its function %s cannot be imported (%s): moved to %r "
        "(TaskHandler.retry_dead brings it back)", message.id, message.queue, _name(message), why, dead,
    )
    try:
        mq.ack(message)
    except (ValueError, ShutDown):  # cleared or dropped meanwhile; closed: at least once
        logger.debug("task message %d is no longer reserved", message.id)
    except Exception:
        logger.exception("the task queue could not commit; a restart may move task %d again", message.id)


def revive(mq: QueueAPI, series: str, queue: str) -> int:
    """Move the tasks waiting in ``series``' dead-letter queue to ``queue``; return how many.

    Takes the ones there now (as many as ``count`` says, oldest first, in one
    ``reserve_many``), so tasks moved there again meanwhile wait for the next call. Each
    moved task has a new id; ``"task-dead:S"`` keeps its own counters. O(n) for n tasks.

    :raises ShutDown: ``mq`` is closed.
    :raises StoreError: the move could not be recorded (the tasks stay where they were).
    """
    dead = dead_queue(series)
    n = mq.count(dead)
    if not n:
        return 0
    try:
        batch: List[Message] = mq.reserve_many(dead, n, timeout=0)
    except Empty:  # taken by someone else meanwhile
        return 0
    try:
        mq.add_many(queue, [m.body for m in batch])
    except BaseException:
        mq.nack_many(batch)
        raise
    mq.ack_many(batch)
    return len(batch)


def settle(mq: QueueAPI, messages: List[Message], ack: bool) -> None:
    """Ack (or nack) ``messages`` as one step; one by one if some are gone meanwhile.

    Never raises: a closed ``mq`` leaves them as they are (DEBUG), another failure is
    logged at ERROR. One queue call (n when some reservation ended meanwhile).
    """
    if not messages:
        return
    try:
        try:
            (mq.ack_many if ack else mq.nack_many)(messages)
        except ValueError:  # a reservation ended meanwhile (cleared, dropped)
            for m in messages:
                try:
                    (mq.ack if ack else mq.nack)(m)
                except ValueError:
                    logger.debug("task message %d is no longer reserved", m.id)
    except ShutDown:
        logger.debug("the task queues are closed: %d messages left as they are", len(messages))
    except Exception:
        logger.exception("the task queue could not commit; a restart may rerun tasks")


def _name(message: Message) -> str:
    body = message.body
    return repr(body[0]) if isinstance(body, (tuple, list)) and body else "?"
