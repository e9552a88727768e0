"""What the Pusher tests share: a receiver, a way to wait for a logged failure or for the
Pusher's thread to end, and :func:`settle`, which drives the Pusher's loop by hand.

:func:`settle` is the one place the tests reach inside a Pusher (its loop): nothing
public rings the loop as its timer would, or tells that it is quiet, and without that a
test on a manual clock could only sleep. ruff.toml allows SLF001 in this file only.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Callable, Iterator, List, Optional

from helpers import threads_named

from unidist_queue import Message
from unidist_queue.push import Pusher

WAIT = 30.0  # generous upper bound for every wait: a hang fails, speed never does


class Receiver:
    """Records batches; fails while ``failures`` > 0; can be held up by ``gate``."""

    def __init__(self, failures: int = 0, clock: Optional[Callable[[], float]] = None) -> None:
        self.failures = failures
        self.clock = clock
        self.batches: List[List[Message]] = []  # delivered (send returned)
        self.attempts: List[int] = []  # batch sizes of every attempt, failed ones too
        self.times: List[float] = []  # clock time of every attempt
        self.gate: Optional[threading.Event] = None
        self.entered = threading.Event()
        self.cond = threading.Condition()

    def __call__(self, batch: List[Message]) -> None:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(WAIT)
        with self.cond:
            self.attempts.append(len(batch))
            if self.clock is not None:
                self.times.append(self.clock())
            if self.failures > 0:
                self.failures -= 1
                self.cond.notify_all()
                raise ConnectionError("receiver down")
            self.batches.append(batch)
            self.cond.notify_all()

    def messages(self) -> List[Message]:
        with self.cond:
            return [m for b in self.batches for m in b]

    def bodies(self) -> List[Any]:
        return [m.body for m in self.messages()]

    def ids(self) -> List[int]:
        return [m.id for m in self.messages()]

    def wait_for(self, predicate: Callable[[], bool]) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, WAIT)


def settle(p: Pusher) -> None:
    """Ring the Pusher's loop as its timer would, and wait until it waits again.

    The pass re-reads the clock: a batch that is due goes, one that is not stays. The
    loop is quiet only once no pass is running or pending, and a pass that sent a batch
    asks to run again at once, so everything due by now has happened on return.
    """
    p._loop.trigger()
    assert p._loop.wait_quiet(WAIT)


class _Failures(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        if "send failed" in record.getMessage():
            with self.cond:
                self.count += 1
                self.cond.notify_all()

    def wait(self, n: int = 1) -> None:
        """Until ``n`` failed attempts were logged (a Pusher logs one once it counted it)."""
        with self.cond:
            assert self.cond.wait_for(lambda: self.count >= n, WAIT), "no failure was logged"


@contextlib.contextmanager
def logged_failures() -> Iterator[_Failures]:
    """Count the failed attempts the Pusher logs (at WARNING, after it recorded each)."""
    handler = _Failures()
    logger = logging.getLogger("unidist_queue.push")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def join_pusher_thread(queue: str = "push") -> None:
    """Wait until the thread of the Pusher on ``queue`` has ended."""
    for t in threads_named(f"Pusher-{queue}"):
        t.join(WAIT)
        assert not t.is_alive(), f"{t.name} still runs"
