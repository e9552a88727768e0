"""Small shared helpers: argument checks and monotonic deadlines."""

from __future__ import annotations

import math
import time
from typing import Any, Optional

__all__ = ["check_count", "check_seconds", "deadline_of", "remaining"]


def check_seconds(name: str, value: Any) -> float:
    """Return ``value`` as a float of seconds, or raise naming the argument ``name``.

    :raises TypeError: not a real number (``bool`` included).
    :raises ValueError: negative or NaN.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number of seconds, not {value!r}")
    return float(value)


def check_count(name: str, value: Any) -> int:
    """Return ``value``, a positive int, or raise naming the argument ``name``.

    :raises TypeError: not an int (``bool`` included).
    :raises ValueError: less than 1.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value!r}")
    return value


def deadline_of(timeout: Optional[float]) -> Optional[float]:
    """The :func:`time.monotonic` deadline ``timeout`` seconds from now (``None``: none)."""
    if timeout is None:
        return None
    return time.monotonic() + check_seconds("timeout", timeout)


def remaining(deadline: Optional[float]) -> Optional[float]:
    """Seconds left until ``deadline`` (``None``: no deadline); may be <= 0."""
    if deadline is None:
        return None
    return deadline - time.monotonic()


class DueOnce:
    """A queue's next timed change (``next_due``) as an idle thread waits for it.

    ``next_due`` is in the queue's clock, taken to be wall-clock :func:`time.time`
    (MessageQueue's default). Once a due time passed and was looked at, the same time
    reported again (a queue whose clock is behind ``time.time``) is not waited for
    again: :meth:`due` then says ``None`` (wait for a ring), never a wait that ends at
    once for ever. Not thread-safe: one per waiting thread.
    """

    __slots__ = ("_looked",)

    def __init__(self) -> None:
        self._looked: Optional[float] = None  # a due time looked at once it passed

    def due(self, due: Optional[float]) -> Optional[float]:
        """``due``, unless it is the time already looked at once passed: then ``None``."""
        return None if due is not None and due == self._looked else due

    def looked(self, due: Optional[float]) -> None:
        """The thread looked at the queue for ``due``; remembered if that time passed."""
        if due is not None and time.time() >= due:
            self._looked = due
