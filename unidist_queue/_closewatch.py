"""Hearing that the queue-API object under a :class:`~unidist_queue.TaskHandler` was
closed, and reading the handler's replies: one thread for both.

Internal. The queue API tells a caller of a blocking method that the queue object was
closed (``close`` wakes blocked callers with :class:`~unidist_queue.ShutDown`, DESIGN
section 3), but an idle handler is blocked in no queue call: its worker threads wait on
their own inboxes, and a handler with no worker waits nowhere. So a handler over ``mq=``
keeps one daemon thread blocked in a queue call: ``mq.view(name).get()`` on its own
reply queue (``"task-reply:<random hex>"``, :mod:`unidist_queue._replies`; until the
handler's first stored submit declares it, waiting on that unknown name does not create
it, so nothing is recorded or listed).

* Each item it gets is a reply (another handler's worker ran a task submitted here): it
  calls ``on_item(item)``, which resolves the task's future. One thread does both jobs:
  no second thread, no polling.

* ``mq.close()`` wakes it with ``ShutDown``: it calls ``on_close()`` (the pool shuts
  itself down and fails the futures of the tasks left waiting in ``mq``).
* The handler's own shutdown calls :meth:`CloseWatch.stop`, which shuts the view down
  (``QueueView.shutdown``): the blocked ``get`` raises ``ShutDown`` too, and the thread
  sees the view's ``is_shutdown`` and ends without a call.

* A ``get`` that fails otherwise (a lost connection to a server, a read-only store) is
  tried again after a pause that doubles from 0.1 s up to :data:`RETRY_MAX` seconds,
  the first failure of a streak logged at WARNING (the handler hears neither replies
  nor the close meanwhile), the others at DEBUG; :meth:`CloseWatch.stop` ends the pause.

Only the public queue API is used (``view``, the view's ``get``, ``shutdown`` and
``is_shutdown``), so this works for any backend whose ``close`` wakes its blocked
callers, as the contract demands of every backend. Cost: one thread per handler over
``mq=``, blocked (no polling).
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, List, Optional

from .errors import ShutDown
from .queues import MessageQueue

if TYPE_CHECKING:
    from .api import QueueAPI

__all__ = ["RETRY_MAX", "CloseWatch"]

logger = logging.getLogger("unidist_queue.tasks")

BATCH = 256
"""The most replies taken at once after a ``get`` (see :func:`_more`)."""

RETRY_MAX = 5.0
"""The longest pause (seconds) before the watching thread tries a failed ``get`` again."""


class CloseWatch:
    """A daemon thread that gets the items of queue ``name`` (``on_item(item)`` for each)
    and calls ``on_close()`` once ``mq`` is closed (see the module).

    ``on_item`` and ``on_close`` run in the watching thread, with no lock held;
    ``on_close`` is not called after :meth:`stop` (unless ``mq`` was closed first); an
    ``on_item`` that raises is logged and the thread goes on. Thread-safe.

    :raises ShutDown: ``mq`` is already closed.
    """

    def __init__(
        self, mq: QueueAPI, on_close: Callable[[], Any], name: str, on_item: Callable[[Any], Any]
    ) -> None:
        self._view = mq.view(name)
        self._stopped = threading.Event()
        more = None if isinstance(mq, MessageQueue) else partial(_more, mq, name)
        self.thread = threading.Thread(
            target=_watch, args=(self._view, on_close, on_item, self._stopped, more),
            name="TaskHandler-watch",
            daemon=True,
        )
        self.thread.start()

    def stop(self) -> None:
        """Let the thread end without calling ``on_close`` (unless ``mq`` closed first). O(1)."""
        self._stopped.set()
        try:
            self._view.shutdown()
        except Exception:  # pragma: no cover - a backend that cannot even wake its waiters
            logger.debug("could not stop watching the task queues", exc_info=True)

    def join(self, timeout: Optional[float]) -> None:
        """Wait (at most ``timeout`` seconds) for the thread to end, unless it is this one."""
        if self.thread is not threading.current_thread():
            self.thread.join(timeout)


def _more(mq: QueueAPI, name: str) -> List[Any]:
    """The items ready in ``name`` now, taken (``count``, then ``reserve_many`` and
    ``ack_many`` of up to :data:`BATCH`); ``[]`` if none, or on any failure (the blocking
    ``get`` meets it again). Over a backend that is not an in-process ``MessageQueue``,
    read after each ``get``: a busy reply queue costs 3 round trips per batch, not one
    per item."""
    try:
        if not mq.count(name):
            return []
        batch = mq.reserve_many(name, BATCH, timeout=0)
    except Exception:
        return []
    try:
        mq.ack_many(batch)
    except Exception:  # they come back: a second outcome of a key is ignored
        logger.debug("could not ack %d task replies", len(batch), exc_info=True)
    return [m.body for m in batch]


def _watch(
    view: Any, on_close: Callable[[], Any], on_item: Callable[[Any], Any], stopped: threading.Event,
    more: Optional[Callable[[], List[Any]]] = None,
) -> None:
    """The watching thread: get items until the view's ``get`` raises ``ShutDown``
    (after each, the ones ready then too if ``more``)."""
    pause = 0.0
    while True:
        try:
            item = view.get()
        except ShutDown:
            break
        except Exception as exc:
            if not pause:
                logger.warning("cannot read the task replies (trying again): %r", exc, exc_info=exc)
            else:
                logger.debug("cannot read the task replies (trying again): %r", exc)
            pause = min(max(pause * 2, 0.1), RETRY_MAX)
            if stopped.wait(pause):
                return
            continue
        pause = 0.0
        for each in [item, *(more() if more is not None else ())]:
            try:
                on_item(each)
            except Exception:
                logger.exception("a task outcome could not be handled")
        del item, each
    if not view.is_shutdown:
        try:
            on_close()
        except Exception:
            logger.exception("shutting down a TaskHandler whose MessageQueue was closed failed")
