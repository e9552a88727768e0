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
