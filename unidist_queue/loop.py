"""Loop: a doorbell that runs processors one at a time, when rung or when their timer is due.

A :class:`Loop` owns one daemon thread and one mutex with two Conditions on it. Ringing
(:meth:`~LoopBase.trigger`) sets a flag and notifies the thread, so a ring is never lost
and a ring during a timed wait interrupts it at once. Timers sit in a
:class:`sortedcontainers.SortedKeyList` ordered by due time, and the thread waits on the
Condition with a timeout computed from the earliest one: no polling, no busy waiting.

>>> import threading
>>> ran = threading.Event()
>>> with Loop(ran.set) as loop:
...     loop.trigger()
...     ran.wait(10)
True
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Dict, Iterable, List, Optional

from ._loopbase import LoopBase, Processor

__all__ = ["DelegateLoop", "Loop", "LoopBase", "Processor"]

logger = logging.getLogger(__name__)


class Loop(LoopBase):
    """Run processors in a thread of its own, one at a time, in the order they were added.

    A processor is a callable with no arguments that returns ``None`` or a wake-up time
    on ``clock``. Methods by purpose:

    * registering: :meth:`add`, :meth:`remove`, :meth:`processors`;
    * life cycle: :meth:`start`, :meth:`stop`, context manager (start on enter, stop on
      exit);
    * ringing: :meth:`trigger`, :meth:`poke` (manual clocks);
    * quiet: :meth:`is_quiet`, :meth:`wait_quiet`.

    **Rings.** :meth:`trigger` rings the doorbell: a full pass over all processors starts
    after the ring. Rings during a pass give exactly one more full pass after it; many
    rings merge. A ring cancels every pending timer. Rings while the loop is not running
    are ignored (logged at DEBUG). A pass calls the processors registered when it
    begins, skipping any removed meanwhile; one added meanwhile waits for the next ring.

    **Timers.** A processor returning a number ``t`` is called again, alone (not a full
    pass), at ``max(t, start_of_its_call + min_delay)`` on ``clock``: a time in the past
    means ``start_of_its_call + min_delay``, and with ``min_delay=0`` returning
    ``clock()`` asks to run again at once. A processor has at most one timer; the next
    result replaces it, and ``None`` sets none. A timer wake-up runs
    the due processors in due order, only those still registered, and a ring ends it
    after the current processor (the full pass runs everyone). Any other result, a
    ``bool`` or NaN included, is logged at ERROR. The thread sleeps on the Condition for
    ``due - clock()`` real seconds (:func:`time.monotonic`), re-reading the clock when it
    wakes, so a processor never runs before its due time; see :meth:`poke` for clocks
    that jump.

    **Errors.** A processor raising :class:`Exception` is logged at ERROR with its
    traceback and the pass goes on. A ``BaseException`` (``SystemExit``) ends the thread
    and leaves the loop stopped; :meth:`start` works again.

    :param processors: the first processors, in order (duplicates keep the first).
    :param min_delay: the least number of seconds between the start of a processor's call
        and the timer it asks for.
    :param clock: the clock of the wake-up times; :func:`time.time` by default (the
        Pusher uses :func:`time.monotonic`). It is called outside the lock.
    :param name: the thread's name, also used in log messages.
    :raises TypeError: ``min_delay`` is not a number.
    :raises ValueError: ``min_delay`` is negative or NaN.

    Thread-safety: every method may be called from any thread; :meth:`trigger`,
    :meth:`add`, :meth:`remove` and :meth:`stop` from a processor too. No user code runs
    and nothing is logged while the loop's lock is held.
    """

    def __init__(self, *processors: Processor, min_delay: float = 5.0,
                 clock: Callable[[], float] = time.time, name: Optional[str] = None) -> None:
        super().__init__(min_delay=min_delay, clock=clock, name=name)
        self._processors: Dict[Processor, None] = dict.fromkeys(processors)  # ordered set

    def add(self, processor: Processor) -> None:
        """Register ``processor`` at the end of the order (adding twice keeps one, in place).

        It runs from the next full pass. Cost: O(1). Thread-safe.
        """
        with self._mutex:
            self._processors[processor] = None

    def remove(self, processor: Processor) -> None:
        """Unregister ``processor`` and drop its timer. A call in progress finishes.

        Cost: O(log t) for t timers. Thread-safe.

        :raises KeyError: ``processor`` is not registered.
        """
        with self._mutex:
            del self._processors[processor]
            self._drop_timer_locked(processor)

    def processors(self) -> List[Processor]:
        """The registered processors, in order (a copy). Cost: O(n). Thread-safe."""
        with self._mutex:
            return list(self._processors)

    def _pass_processors(self) -> List[Processor]:
        return self.processors()

    def _pass_processors_locked(self) -> List[Processor]:
        return list(self._processors)

    def _registered(self, due: List[Processor]) -> List[Processor]:
        return due  # remove() drops the timer, and _run_batch checks again before each call

    def _still_registered_locked(self, processor: Processor) -> bool:
        return processor in self._processors


class DelegateLoop(LoopBase):
    """A loop that asks ``get_processors()`` for its processors at the start of each pass.

    Everything else is as :class:`Loop` (it has no ``add``/``remove``). A timer wake-up
    also calls ``get_processors()`` and runs only the due processors it still returns.
    An exception from ``get_processors()`` is logged at ERROR with its traceback; that
    pass (or wake-up) runs nothing, and the loop stays usable.

    :param get_processors: returns an iterable of processors (hashable callables); called
        in the loop's thread, outside the lock.
    :param options: ``min_delay``, ``clock``, ``name`` as for :class:`Loop`.
    """

    def __init__(self, get_processors: Callable[[], Iterable[Processor]], *,
                 min_delay: float = 5.0, clock: Callable[[], float] = time.time,
                 name: Optional[str] = None) -> None:
        super().__init__(min_delay=min_delay, clock=clock, name=name)
        self._get_processors = get_processors

    def _pass_processors(self) -> List[Processor]:
        try:
            return list(dict.fromkeys(self._get_processors()))
        except Exception:
            logger.exception("%s: get_processors raised; nothing run", self._name)
            return []

    def _registered(self, due: List[Processor]) -> List[Processor]:
        current = set(self._pass_processors())
        return [p for p in due if p in current]
