"""The session lease of a RedisMessageQueue: one thread renewing ``lease=None`` reservations (internal).

A reservation made with ``lease=None`` holds a lease of ``session_lease`` seconds; while
the client is open, :class:`Session` calls ``renew()`` every ``session_lease / 3``
seconds, which renews all of them in one script call. A killed client renews nothing, so
its reservations come back when the lease runs out. The thread starts with the first
session reservation (an idle client has none) and stops within a second of
:meth:`Session.close`. It is a daemon thread: a client never closed does not keep the
interpreter from exiting (its reservations then lapse, as a killed client's).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Optional

__all__ = ["Session"]

logger = logging.getLogger("unidist_queue.redisq")


class Session:
    """Calls ``renew()`` every ``period`` seconds from one thread, from :meth:`start` to :meth:`close`.

    A raising ``renew`` is logged at WARNING (Redis unreachable for a while: the next
    round tries again). Thread-safe; :meth:`start` and :meth:`close` are idempotent.
    Cost: one wake-up per period while started.
    """

    def __init__(self, period: float, renew: Callable[[], None]) -> None:
        self._period = period
        self._renew = renew
        self._lock = threading.Lock()
        self._stop = threading.Event()  # set by close(); the thread waits on it
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        """Start renewing (once; a no-op after :meth:`close`)."""
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="unidist-redis-session", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            try:
                self._renew()
            except Exception:
                logger.warning("renewing the session leases failed; trying again in %.3g s",
                               self._period, exc_info=True)

    def close(self) -> None:
        """Stop the thread; return once it ended (a renewal in flight finishes first). Idempotent."""
        with self._lock:
            self._stop.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
