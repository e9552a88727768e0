"""LoopBase: the engine of :class:`~unidist_queue.Loop` and :class:`~unidist_queue.DelegateLoop` (internal).

Loop: a doorbell that runs processors one at a time, when rung or when their timer is due.

A :class:`Loop` owns one daemon thread and one mutex with two Conditions on it. Ringing
(:meth:`~LoopBase.trigger`) sets a flag and notifies the thread, so a ring is never lost
and a ring during a timed wait interrupts it at once. Timers sit in a
:class:`sortedcontainers.SortedKeyList` ordered by due time, and the thread waits on the
Condition with a timeout computed from the earliest one: no polling, no busy waiting.
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

__all__ = ["LoopBase", "Processor"]

logger = logging.getLogger("unidist_queue.loop")

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
        self._retired: Optional[threading.Thread] = None  # the last thread that committed to exit

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
            thread = self._thread or self._retired  # (a retired one may still be ending)
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
        """The thread commits to exit: from now on start() makes a new one (and stop()
        joins this one: it runs no processor any more, so it ends at once)."""
        self._retired = self._thread
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
