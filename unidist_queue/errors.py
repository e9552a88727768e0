"""The exception hierarchy of :mod:`unidist_queue`.

Every error the library raises on purpose derives from :class:`UnidistQueueError`.
Where a standard-library exception already names the situation, ours derives from it
too, so code written against :mod:`queue` and :mod:`concurrent.futures` keeps working:
:class:`Empty` *is a* :class:`queue.Empty`, :class:`Full` *is a* :class:`queue.Full`,
and :class:`ShutDown` *is a* :class:`RuntimeError` (what ``Executor.submit`` raises after
``shutdown``) and, on Python 3.13+, a :class:`queue.ShutDown`.

Bad arguments raise plain :class:`ValueError` / :class:`TypeError` naming the argument.
"""

from __future__ import annotations

import asyncio
import queue as _stdlib_queue
from typing import Optional, Tuple, Type

__all__ = [
    "CorruptArchive",
    "Empty",
    "Full",
    "QueueEmpty",
    "QueueFull",
    "QueueShutDown",
    "SerializationError",
    "ShutDown",
    "StoreError",
    "StoreLocked",
    "UnidistQueueError",
]


class UnidistQueueError(Exception):
    """Root of every error raised by :mod:`unidist_queue`."""


class Empty(UnidistQueueError, _stdlib_queue.Empty):
    """Nothing to return: the queue is empty or unknown, or a wait timed out."""


class Full(UnidistQueueError, _stdlib_queue.Full):
    """A bounded queue with ``overflow="reject"`` is full, or a blocking add timed out."""


# MRO: ShutDown, UnidistQueueError, RuntimeError, queue.ShutDown (3.13+), Exception, ...
_shutdown_bases: Tuple[Type[BaseException], ...] = (UnidistQueueError, RuntimeError)
if hasattr(_stdlib_queue, "ShutDown"):  # pragma: no cover - taken on Python 3.13+ only (queue.ShutDown)
    _shutdown_bases += (_stdlib_queue.ShutDown,)


class ShutDown(*_shutdown_bases):  # type: ignore[misc]
    """The object was closed or shut down.

    Raised by calls made after ``close()``/``shutdown()``, and by calls that were blocked
    waiting when it happened. It is a :class:`RuntimeError`, as ``Executor.submit``
    raises after ``shutdown``, and on Python 3.13+ also a :class:`queue.ShutDown`.
    """


class QueueEmpty(Empty, asyncio.QueueEmpty):
    """What an :class:`~unidist_queue.AsyncQueueView` raises for nothing ready: this
    library's :class:`Empty` and :class:`asyncio.QueueEmpty` both (MRO: ``Empty``,
    ``UnidistQueueError``, ``queue.Empty``, ``asyncio.QueueEmpty``)."""


class QueueFull(Full, asyncio.QueueFull):
    """What an :class:`~unidist_queue.AsyncQueueView` raises when full: this library's
    :class:`Full` and :class:`asyncio.QueueFull` both."""


_queue_shutdown_bases: Tuple[Type[BaseException], ...] = (ShutDown,)
if hasattr(asyncio, "QueueShutDown"):  # pragma: no cover - taken on Python 3.13+ only
    _queue_shutdown_bases += (asyncio.QueueShutDown,)


class QueueShutDown(*_queue_shutdown_bases):  # type: ignore[misc]
    """What an :class:`~unidist_queue.AsyncQueueView` raises once shut down (or its
    MessageQueue closed): this library's :class:`ShutDown` and, on Python 3.13+,
    :class:`asyncio.QueueShutDown` (before 3.13 asyncio has none: it is our ``ShutDown``)."""


class SerializationError(UnidistQueueError, TypeError):
    """A message for a durable queue cannot be serialized; nothing was stored."""


class StoreError(UnidistQueueError):
    """The store cannot read or write (disk full, I/O error, wrong settings, bad key)."""


class CorruptArchive(StoreError):
    """A snapshot or archive is damaged where it cannot be a torn tail.

    :ivar path: the damaged file.
    :ivar offset: the byte offset of the first damaged record (``None`` if unknown).
    """

    def __init__(self, message: str, path: str, offset: Optional[int] = None) -> None:
        super().__init__(message)
        self.path = path
        self.offset = offset

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.args[0], self.path, self.offset))


class StoreLocked(StoreError):
    """Another :class:`~unidist_queue.FileStore` (in this or another process) holds the directory."""
