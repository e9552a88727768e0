"""What :class:`~unidist_queue.TaskHandler` keeps of a submitted call: :class:`Task` and :class:`Job`.

``Task`` is the public, frozen view (import it from ``unidist_queue``); ``Job`` is the
handler's own record of the same call, a plain slotted object that is cheap to make on
the submit path. A job's ``Task`` is made when the handler hands it out (from
``terminate`` or ``shutdown``, which hand a job out once at most).
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Callable, Dict, Optional, Tuple

import attrs

from .message import Message

__all__ = ["Job", "Task"]


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

    def __repr__(self) -> str:
        return f"<Task {self.id} {self.series!r} {getattr(self.fn, '__qualname__', self.fn)!r}>"


class Job:
    """The handler's record of one call (internal); :meth:`task` is its public view.

    ``queued_at``: ``time.monotonic()`` at submit; ``msg_id``: its message in a durable
    queue (0: none, or not durable); ``message``: its reservation while a worker of this
    process holds it (over the queue API); ``recovered``: built from a stored task (left
    by a process that died, or added through the queue API), so nobody waits on its
    future; ``home``: while it waits in a queue of ``mq=`` as itself (not durable), the
    dict of waiting jobs of the handler that added it (whoever takes it removes it
    there); ``reply``: for a stored task another handler submitted, its submitter's
    reply queue and the task's key there (:mod:`unidist_queue._replies`). Compared and
    hashed by identity. Making one is O(1) and about four times cheaper than making a
    frozen ``Task``.
    """

    __slots__ = (
        "args", "fn", "future", "home", "id", "kwargs", "message", "msg_id", "queued_at", "recovered",
        "reply", "series",
    )

    def __init__(
        self,
        id: int,
        series: str,
        fn: Callable[..., Any],
        args: Tuple[Any, ...],
        kwargs: Dict[str, Any],
        future: Future[Any],
        queued_at: float,
        msg_id: int = 0,
        recovered: bool = False,
    ) -> None:
        self.id = id
        self.series = series
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.future = future
        self.queued_at = queued_at
        self.msg_id = msg_id
        self.recovered = recovered
        self.message: Optional[Message] = None
        self.home: Optional[Dict[Job, None]] = None
        self.reply: Optional[Tuple[str, int]] = None

    def task(self) -> Task:
        """The public :class:`Task` of this job (a job is handed out once at most)."""
        return Task(self.id, self.series, self.fn, self.args, self.kwargs, self.future)

    def __repr__(self) -> str:
        return f"<Task {self.id} {self.series!r} {getattr(self.fn, '__qualname__', self.fn)!r}>"
