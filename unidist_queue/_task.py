"""The :class:`Task` value object of :class:`~unidist_queue.TaskHandler` (import it from ``tasks``)."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Callable, Dict, Tuple

import attrs

__all__ = ["Task"]


@attrs.frozen(eq=False, repr=False)
class Task:
    """One submitted call: ``fn(*args, **kwargs)`` for ``series``, resolving ``future``.

    Frozen, compared (and hashed) by identity. ``id`` counts 1, 2, 3... per handler. A
    task recovered from a durable series after a restart has a fresh ``future`` nobody
    waits on: its result is discarded and an exception is logged.
    """

    id: int
    series: str
    fn: Callable[..., Any]
    args: Tuple[Any, ...]
    kwargs: Dict[str, Any]
    future: Future[Any]
    _queued_at: float = 0.0  # time.monotonic() when submitted
    _msg_id: int = 0  # its message in a durable queue (0: in memory)
    _recovered: bool = False

    def __repr__(self) -> str:
        return f"<Task {self.id} {self.series!r} {getattr(self.fn, '__qualname__', self.fn)!r}>"
