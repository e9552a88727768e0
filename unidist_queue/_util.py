"""Small shared helpers: argument checks and monotonic deadlines."""

from __future__ import annotations

import math
import time
from typing import Any, Optional

__all__ = ["check_seconds", "deadline_of", "remaining"]


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
