"""Loop: a doorbell that runs processors one at a time, when rung or when their timer is due.

First version: behaviour as DESIGN.md section 5; timers are kept in a dict (scanned with
``min``), to move to a sortedcontainers structure as issue 4 asks.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Dict, Iterable, List, Optional

__all__ = ["DelegateLoop", "Loop"]

logger = logging.getLogger(__name__)

Processor = Callable[[], Optional[float]]


class Loop:
    """Run processors in a thread of its own, one at a time, in the order they were added.

    ``trigger()`` rings the doorbell: a full pass over all processors starts after the
    ring; rings during a pass cause exactly one more pass; many rings merge; a ring
    cancels every pending timer; rings while not running are ignored (logged at debug).
    A processor returning a number ``t`` (on ``clock``) is called again, alone, at
    ``max(t, start_of_its_call + min_delay)``; ``None`` sets no timer; anything else is
    logged as an error. A raising processor is logged with its traceback and the pass
    goes on. The thread is a daemon thread; :meth:`stop` joins it.

    Thread-safety: every method may be called from any thread, ``trigger`` from a
    processor too. Cost: ``trigger`` is O(1); a timer wake-up is O(t) for t timers.
    """

    def __init__(self, *processors: Processor, min_delay: float = 5.0,
                 clock: Callable[[], float] = time.time, name: Optional[str] = None) -> None:
        if isinstance(min_delay, bool) or not isinstance(min_delay, (int, float)) or min_delay < 0:
            raise ValueError(f"min_delay must be a non-negative number, not {min_delay!r}")
        self._min_delay = float(min_delay)
        self._clock = clock
        self._name = name or f"Loop-{id(self):x}"
        self._mutex = threading.Lock()
        # wake: notified by trigger(), stop() and poke(); the loop thread waits on it.
        self._wake = threading.Condition(self._mutex)
        # quiet: notified by the loop thread when it goes idle; wait_quiet() waits on it.
        self._quiet = threading.Condition(self._mutex)
        self._processors: Dict[Processor, None] = dict.fromkeys(processors)
        self._timers: Dict[Processor, float] = {}
        self._ring = False
        self._busy = False
        self._stopping = False
        self._thread: Optional[threading.Thread] = None

    def add(self, processor: Processor) -> None:
        """Register ``processor`` (adding twice keeps one). O(1)."""
        with self._mutex:
            self._processors[processor] = None

    def remove(self, processor: Processor) -> None:
        """Unregister ``processor``. O(1). :raises KeyError: it is not registered."""
        with self._mutex:
            del self._processors[processor]
            self._timers.pop(processor, None)

    def _current(self) -> List[Processor]:
        """The processors of a full pass (called outside the lock)."""
        with self._mutex:
            return list(self._processors)

    def start(self) -> None:
        """Start the thread; it runs nothing until the first ring. Starting twice is a no-op."""
        with self._mutex:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = self._ring = False
            self._timers.clear()
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def stop(self, timeout: Optional[float] = None) -> None:
        """Let the current processor finish, then end the thread (joined up to ``timeout``)."""
        with self._mutex:
            thread = self._thread
            self._stopping = True
            self._wake.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def trigger(self) -> None:
        """Ring the doorbell: a full pass starts after this. O(1)."""
        with self._mutex:
            running = self._thread is not None and not self._stopping
            if running:
                self._ring = True
                self._wake.notify()
        if not running:
            logger.debug("%s rung while not running; ignored", self._name)

    def poke(self) -> None:
        """Make the thread re-check its timers now (e.g. after a manual clock moved)."""
        with self._mutex:
            self._wake.notify()

    def is_quiet(self) -> bool:
        """No pass running or pending (a pending timer does not count)."""
        with self._mutex:
            return not self._busy and not self._ring

    def wait_quiet(self, timeout: Optional[float] = None) -> bool:
        """Wait until :meth:`is_quiet`; return whether it is."""
        with self._quiet:
            return self._quiet.wait_for(lambda: not self._busy and not self._ring, timeout)

    def _next_batch(self) -> Optional[List[Processor]]:
        """With the mutex held: wait for a ring or a due timer; ``None`` means stop."""
        while True:
            if self._stopping:
                return None
            if self._ring:
                self._ring = False
                self._timers.clear()
                return []  # a full pass: the processors are asked for outside the lock
            now = self._clock()
            due = [p for p, t in self._timers.items() if t <= now]
            if due:
                for p in due:
                    del self._timers[p]
                return [p for p in due if p in self._processors or isinstance(self, DelegateLoop)]
            self._busy = False
            self._quiet.notify_all()
            wait = max(0.0, min(self._timers.values()) - now) if self._timers else None
            self._wake.wait(wait)

    def _run(self) -> None:
        while True:
            with self._mutex:
                batch = self._next_batch()
                if batch is None:
                    self._busy = False
                    self._quiet.notify_all()
                    return
                self._busy = True
            if not batch:
                batch = self._current()
            self._run_batch(batch)

    def _run_batch(self, batch: Iterable[Processor]) -> None:
        for processor in batch:
            with self._mutex:
                if self._stopping:
                    return
            start = self._clock()
            try:
                result = processor()
            except Exception:
                logger.exception("%s: processor %r raised", self._name, processor)
                continue
            if result is None:
                continue
            if isinstance(result, bool) or not isinstance(result, (int, float)):
                logger.error("%s: processor %r returned %r, not a time or None",
                             self._name, processor, result)
                continue
            with self._mutex:
                self._timers[processor] = max(float(result), start + self._min_delay)

    def __enter__(self) -> Loop:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class DelegateLoop(Loop):
    """A :class:`Loop` that asks ``get_processors()`` for its processors at each pass.

    An exception from ``get_processors`` is logged at ERROR and the loop stays usable.
    It has no ``add``/``remove``.
    """

    def __init__(self, get_processors: Callable[[], Iterable[Processor]], *,
                 min_delay: float = 5.0, clock: Callable[[], float] = time.time,
                 name: Optional[str] = None) -> None:
        super().__init__(min_delay=min_delay, clock=clock, name=name)
        self._get_processors = get_processors

    def _current(self) -> List[Processor]:
        try:
            return list(self._get_processors())
        except Exception:
            logger.exception("%s: get_processors raised", self._name)
            return []

    def add(self, processor: Processor) -> None:
        raise AttributeError("DelegateLoop has no add(); its processors come from get_processors")

    def remove(self, processor: Processor) -> None:
        raise AttributeError("DelegateLoop has no remove(); its processors come from get_processors")
