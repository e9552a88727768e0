"""unidist_queue: named message queues in memory, durable when asked, feeding worker threads."""

from typing import TYPE_CHECKING, Any

from .api import QueueAPI as QueueAPI
from .aview import AsyncQueueView as AsyncQueueView
from .errors import CorruptArchive as CorruptArchive
from .errors import Empty as Empty
from .errors import Full as Full
from .errors import SerializationError as SerializationError
from .errors import ShutDown as ShutDown
from .errors import StoreError as StoreError
from .errors import StoreLocked as StoreLocked
from .errors import UnidistQueueError as UnidistQueueError
from .loop import DelegateLoop as DelegateLoop
from .loop import Loop as Loop
from .message import Message as Message
from .message import QueueStats as QueueStats
from .push import Pusher as Pusher
from .push import PushStats as PushStats
from .queues import MessageQueue as MessageQueue
from .store import FileStore as FileStore
from .store import MemoryStore as MemoryStore
from .store import Store as Store
from .tasks import Task as Task
from .tasks import TaskHandler as TaskHandler
from .view import QueueView as QueueView

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .redisq import RedisMessageQueue as RedisMessageQueue


def __getattr__(name: str) -> Any:
    """``RedisMessageQueue`` is imported on first use: importing unidist_queue never imports redis."""
    if name == "RedisMessageQueue":
        from .redisq import RedisMessageQueue

        globals()[name] = RedisMessageQueue
        return RedisMessageQueue
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "AsyncQueueView",
    "CorruptArchive",
    "DelegateLoop",
    "Empty",
    "FileStore",
    "Full",
    "Loop",
    "MemoryStore",
    "Message",
    "MessageQueue",
    "PushStats",
    "Pusher",
    "QueueAPI",
    "QueueStats",
    "QueueView",
    "RedisMessageQueue",
    "SerializationError",
    "ShutDown",
    "Store",
    "StoreError",
    "StoreLocked",
    "Task",
    "TaskHandler",
    "UnidistQueueError",
]
