"""Drop-in functions for code written against the original ``messagequeue`` module.

The original (unidist, 2010) kept named lists in a global dict, in memory only. These
functions keep its names and results on a module-level default :class:`MessageQueue`,
which :func:`set_default` replaces (for instance with a durable one)::

    >>> from unidist_queue import messagequeue as mq
    >>> mq.AddMessage("jobs", "a"); mq.AddMessage("jobs", "b")
    >>> mq.GetMessageCount("jobs"), mq.GetMessage_Oldest("jobs"), mq.GetAllMessages("jobs")
    (2, 'a', ['b'])

Unlike the original, every call is atomic: two consumers never get the same message.
As in the original, a stored ``None`` cannot be told apart from "empty" by the getters.
Thread-safe; the costs are those of the :class:`MessageQueue` methods named.
"""

from __future__ import annotations

import threading
from typing import Any, List, Optional

from .queues import MessageQueue

__all__ = [
    "AddMessage",
    "GetAllMessages",
    "GetMessageCount",
    "GetMessage_Newest",
    "GetMessage_Oldest",
    "QueueExists",
    "get_default",
    "set_default",
]

_lock = threading.Lock()
_default: Optional[MessageQueue] = None


def get_default() -> MessageQueue:
    """The MessageQueue these functions use (an in-memory one, made on first use)."""
    global _default
    with _lock:
        if _default is None:
            _default = MessageQueue()
        return _default


def set_default(mq: Optional[MessageQueue]) -> Optional[MessageQueue]:
    """Make ``mq`` the MessageQueue these functions use; return the previous one (or None).

    ``None`` goes back to a fresh in-memory queue made on next use. The previous queue
    is not closed.

    :raises TypeError: ``mq`` is neither a MessageQueue nor None.
    """
    global _default
    if mq is not None and not isinstance(mq, MessageQueue):
        raise TypeError(f"mq must be a MessageQueue or None, not {type(mq).__name__}")
    with _lock:
        previous, _default = _default, mq
    return previous


def AddMessage(queue: str, message: Any) -> None:
    """Append ``message`` to ``queue`` (created if unknown). Returns ``None``, as the original."""
    get_default().add(queue, message)


def GetMessageCount(queue: str) -> Optional[int]:
    """Ready messages in ``queue``: ``None`` for an unknown queue, 0 for an emptied one."""
    mq = get_default()
    n = mq.count(queue)
    if n == 0 and not mq.exists(queue):
        return None
    return n


def GetMessage_Oldest(queue: str, remove: bool = True) -> Any:
    """The oldest message (removed unless ``remove=False``); ``None`` if unknown or empty."""
    return get_default().oldest(queue, remove=remove, default=None)


def GetMessage_Newest(queue: str, remove: bool = True) -> Any:
    """The newest message (removed unless ``remove=False``); ``None`` if unknown or empty."""
    return get_default().newest(queue, remove=remove, default=None)


def GetAllMessages(queue: str) -> Optional[List[Any]]:
    """A copy of every message, oldest first; ``None`` if the queue is unknown or empty."""
    return get_default().all(queue) or None


def QueueExists(queue: str) -> bool:
    """Whether anything was ever added to ``queue`` (an emptied queue still exists)."""
    return get_default().exists(queue)
