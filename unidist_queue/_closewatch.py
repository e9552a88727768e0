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
from typing import TYPE_CHECKING, Any, Callable, Optional

from .errors import ShutDown

if TYPE_CHECKING:
    from .api import QueueAPI

__all__ = ["RETRY_MAX", "CloseWatch"]

logger = logging.getLogger("unidist_queue.tasks")

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
        self.thread = threading.Thread(
            target=_watch, args=(self._view, on_close, on_item, self._stopped), name="TaskHandler-watch",
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


def _watch(
    view: Any, on_close: Callable[[], Any], on_item: Callable[[Any], Any], stopped: threading.Event
) -> None:
    """The watching thread: get items until the view's ``get`` raises ``ShutDown``."""
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
        try:
            on_item(item)
        except Exception:
            logger.exception("a task outcome could not be handled")
        del item
    if not view.is_shutdown:
        try:
            on_close()
        except Exception:
            logger.exception("shutting down a TaskHandler whose MessageQueue was closed failed")
