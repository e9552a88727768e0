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

import abc
import itertools
import logging
import math
import threading
import time
from types import TracebackType
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Type, TypeVar

from sortedcontainers import SortedKeyList

from ._util import check_seconds, deadline_of, remaining

__all__ = ["DelegateLoop", "Loop", "LoopBase", "Processor"]

logger = logging.getLogger(__name__)

Processor = Callable[[], object]
"""A callable with no arguments returning ``None`` or a wake-up time on the loop's clock."""

_Self = TypeVar("_Self", bound="LoopBase")
_Timer = Tuple[float, int, Processor]  # (due on clock, sequence number, processor)
_Work = Tuple[bool, List[Processor]]  # (a full pass?, else the due processors; [] = look again)


def _timer_key(entry: _Timer) -> Tuple[float, int]:
    return entry[0], entry[1]


class LoopBase(abc.ABC):
    """What :class:`Loop` and :class:`DelegateLoop` share; see :class:`Loop`."""

    def __init__(self, *, min_delay: float = 5.0, clock: Callable[[], float] = time.time,
                 name: Optional[str] = None) -> None:
        self._min_delay = check_seconds("min_delay", min_delay)
        self._clock = clock
        self._name = name or f"{type(self).__name__}-{id(self):x}"
        self._mutex = threading.Lock()
        # wake: notified by trigger(), poke() and stop(); only the loop thread waits on it.
        self._wake = threading.Condition(self._mutex)
        # quiet: notified by the loop thread when it goes idle or exits; wait_quiet() waits.
        self._quiet = threading.Condition(self._mutex)
        self._timers = SortedKeyList(key=_timer_key)  # of _Timer, earliest first
        self._timer_of: Dict[Processor, _Timer] = {}  # processor -> its entry in _timers
        self._seq = itertools.count()  # ties between equal due times go first-set first
        self._running = False  # between start() and stop(): rings are accepted
        self._ring = False  # a full pass is pending
        self._busy = False  # the thread is running a pass or a timer wake-up
        self._thread: Optional[threading.Thread] = None  # until it commits to exit

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop's thread. It runs nothing until the first :meth:`trigger`.

        Starting a running loop does nothing. After :meth:`stop` the loop starts afresh
        (no ring and no timer pending); if a ``stop(timeout)`` timed out and its thread is
        still finishing a processor, that thread carries on as the loop's thread.

        The thread is a daemon thread, so it never keeps the interpreter alive; call
        :meth:`stop` (or use the loop as a context manager) to end it cleanly.

        Cost: O(t) for t pending timers (they are dropped). Thread-safe.
        """
        with self._mutex:
            if self._running:
                return
            self._running = True
            self._ring = False
            self._clear_timers_locked()
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def stop(self, timeout: Optional[float] = None) -> None:
        """Let the current processor finish, then end the thread; join it up to ``timeout``.

        A pending pass is dropped; the rest of a running pass is not run. Safe to call
        twice, before :meth:`start`, and from a processor (which then does not wait).
        :meth:`start` works again afterwards.

        :raises ValueError: ``timeout`` is negative.
        """
        deadline = deadline_of(timeout)
        with self._mutex:
            self._running = False
            self._ring = False
            thread = self._thread
            self._wake.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(remaining(deadline))

    def __enter__(self: _Self) -> _Self:
        self.start()
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.stop()

    # -- ringing --------------------------------------------------------------------------------

    def trigger(self) -> None:
        """Ring the doorbell: a full pass over all processors starts after this call.

        A ring during a pass gives exactly one more full pass after it; many rings merge
        into one. A ring cancels every pending timer (the full pass runs everyone) and
        ends a timer wake-up after its current processor. A ring while the loop is not
        running (before :meth:`start`, after :meth:`stop`) is ignored, logged at DEBUG.

        Cost: O(1); never blocks on a processor. Thread-safe; may be called from a
        processor.
        """
        with self._mutex:
            running = self._running
            if running:
                self._ring = True
                self._wake.notify()
        if not running:
            logger.debug("%s: rung while not running; ring ignored", self._name)

    def poke(self) -> None:
        """Make the thread re-read the clock and run the processors now due.

        The thread sleeps until the earliest timer is due, measured in real seconds from
        its last look at ``clock``. A clock that jumps (a manual test clock after
        ``advance()``, a wall clock after a step) is seen at the next wake-up; ``poke()``
        makes that wake-up happen now. It is not a ring: no full pass, no timer cancelled.
        Production code with a real clock never needs it.

        Cost: O(1). Thread-safe.
        """
        with self._mutex:
            self._wake.notify()

    # -- quiet ----------------------------------------------------------------------------------

    def is_quiet(self) -> bool:
        """Whether no pass nor timer wake-up is running and no pass is pending.

        A pending timer does not count, even a due one the thread has not yet begun.
        A snapshot; may be stale. Cost: O(1). Thread-safe.
        """
        with self._mutex:
            return self._quiet_locked()

    def wait_quiet(self, timeout: Optional[float] = None) -> bool:
        """Wait until :meth:`is_quiet`, at most ``timeout`` seconds; return whether it is.

        :raises ValueError: ``timeout`` is negative.
        :raises RuntimeError: called from the loop's own thread (it would never be quiet).
        """
        deadline = deadline_of(timeout)
        with self._quiet:
            if self._thread is threading.current_thread():
                raise RuntimeError("wait_quiet() from a processor would wait for itself")
            while not self._quiet_locked():
                left = remaining(deadline)
                if left is not None and left <= 0:
                    return False
                self._quiet.wait(left)
            return True

    def _quiet_locked(self) -> bool:
        return not self._busy and not self._ring

    # -- the processors: what subclasses provide (called outside the lock) ---------------------

    @abc.abstractmethod
    def _pass_processors(self) -> List[Processor]:
        """The processors of a full pass, in order."""

    def _pass_processors_locked(self) -> List[Processor]:
        """The processors of a full pass if known without user code, else ``[]``."""
        return []

    @abc.abstractmethod
    def _registered(self, due: List[Processor]) -> List[Processor]:
        """Those of ``due`` (timers that fired) that are still the loop's processors."""

    def _still_registered_locked(self, processor: Processor) -> bool:
        """Checked under the lock before each call, and before setting its timer."""
        return True

    # -- timers (all with the lock held) -------------------------------------------------------

    def _clear_timers_locked(self) -> None:
        self._timers.clear()
        self._timer_of.clear()

    def _drop_timer_locked(self, processor: Processor) -> None:
        entry = self._timer_of.pop(processor, None)
        if entry is not None:
            self._timers.remove(entry)

    def _set_timer_locked(self, processor: Processor, due: float) -> None:
        self._drop_timer_locked(processor)
        entry: _Timer = (due, next(self._seq), processor)
        self._timer_of[processor] = entry
        self._timers.add(entry)

    def _pop_due_locked(self, now: float) -> List[Processor]:
        due: List[Processor] = []
        while self._timers and self._timers[0][0] <= now:
            entry = self._timers.pop(0)
            del self._timer_of[entry[2]]
            due.append(entry[2])
        return due

    # -- the thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        me = threading.current_thread()
        try:
            while True:
                now = self._clock()  # user code: outside the lock
                with self._mutex:
                    work = self._take_work_locked(now)
                if work is None:
                    return
                full, due = work
                if full:
                    self._run_batch(due or self._pass_processors(), full=True)
                elif due:
                    self._run_batch(self._registered(due), full=False)
        finally:
            with self._mutex:
                if self._thread is me:  # left by an exception: leave a stopped, usable loop
                    self._running = False
                    self._retire_locked()

    def _take_work_locked(self, now: float) -> Optional[_Work]:
        """The next work item, or ``None``: exit (the thread has retired).

        ``(True, processors)`` is a full pass (``processors`` may be ``[]``: ask for them
        outside the lock); ``(False, due)`` a timer wake-up, or with ``due == []`` a
        request to read the clock again (outside the lock) after a wait. A ring or a stop
        found on waking is taken at once, without reading the clock.
        """
        waited = False
        while True:
            if not self._running:
                self._retire_locked()
                return None
            if self._ring:
                self._ring = False
                self._clear_timers_locked()
                self._busy = True
                return True, self._pass_processors_locked()
            if waited:
                return False, []
            due = self._pop_due_locked(now)
            if due:
                self._busy = True
                return False, due
            if self._busy:
                self._busy = False
                self._quiet.notify_all()
            timeout = None
            if self._timers:
                timeout = min(self._timers[0][0] - now, threading.TIMEOUT_MAX)
            self._wake.wait(timeout)
            waited = True

    def _retire_locked(self) -> None:
        """The thread commits to exit: from now on start() makes a new one."""
        self._thread = None
        self._ring = False
        self._busy = False
        self._quiet.notify_all()

    def _run_batch(self, batch: Iterable[Processor], full: bool) -> None:
        """Call each processor in turn (stopping early on stop(), or on a ring if not ``full``)."""
        for processor in batch:
            with self._mutex:
                if not self._running or (self._ring and not full):
                    return
                if not self._still_registered_locked(processor):
                    continue
            start = self._clock()
            try:
                result = processor()
            except Exception:
                logger.exception("%s: processor %r raised", self._name, processor)
                continue
            self._schedule(processor, start, result)

    def _schedule(self, processor: Processor, start: float, result: object) -> None:
        """Set ``processor``'s timer from its ``result`` (``start``: when its call began)."""
        if result is None:
            return
        if isinstance(result, bool) or not isinstance(result, (int, float)) or math.isnan(result):
            logger.error("%s: processor %r returned %r, not a time on the clock or None",
                         self._name, processor, result)
            return
        with self._mutex:
            if self._still_registered_locked(processor):
                self._set_timer_locked(processor, max(float(result), start + self._min_delay))

    def __repr__(self) -> str:
        with self._mutex:
            state = "running" if self._running else "stopped"
            timers = len(self._timers)
        return f"<{type(self).__name__} {self._name!r} {state}, {timers} timer(s)>"


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
