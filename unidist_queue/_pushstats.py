"""PushStats, and the checks of a Pusher's arguments (DESIGN 7)."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import attrs

from ._util import check_seconds

__all__ = ["PushStats", "check_callables", "check_pusher_options"]


@attrs.frozen(slots=True)
class PushStats:
    """A snapshot of a :class:`Pusher`'s counters (since it was made)."""

    sent: int
    """Events delivered (``send`` returned for their batch)."""
    batches: int
    """Batches delivered."""
    failed: int
    """Attempts whose ``send`` raised."""
    pending: int
    """Events in the queue now, the batch in flight included."""
    last_error: Optional[str]
    """``repr`` of the exception of the last failed attempt (``None``: none yet)."""
    last_success: Optional[float]
    """``time.time()`` of the last delivered batch (``None``: none yet)."""


def check_callables(**functions: Any) -> None:
    """:raises TypeError: one of ``functions`` is not callable (named in the message)."""
    for name, fn in functions.items():
        if not callable(fn):
            raise TypeError(f"{name} must be callable")


def check_pusher_options(
    queue: Any, batch_size: Any, buffer_delay: Any, retry_delay: Any, max_retry_delay: Any
) -> Tuple[float, float, float]:
    """Check a Pusher's options; return ``(buffer_delay, retry_delay, max_retry_delay)``.

    :raises TypeError: ``queue`` is not a str, or a delay is not a number.
    :raises ValueError: ``batch_size`` < 1, a negative delay, ``retry_delay`` <= 0, or
        ``max_retry_delay`` < ``retry_delay``.
    """
    if not isinstance(queue, str):
        raise TypeError(f"queue must be a str, not {type(queue).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
    delays = (
        check_seconds("buffer_delay", buffer_delay),
        check_seconds("retry_delay", retry_delay),
        check_seconds("max_retry_delay", max_retry_delay),
    )
    if delays[1] <= 0:
        raise ValueError("retry_delay must be positive")
    if delays[2] < delays[1]:
        raise ValueError("max_retry_delay must be at least retry_delay")
    return delays
