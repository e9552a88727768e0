"""Persistence backends: the :class:`Store` interface, :class:`MemoryStore`, :class:`FileStore`."""

from .base import MemoryStore as MemoryStore
from .base import Record as Record
from .base import State as State
from .base import Store as Store
from .file import FileStore as FileStore

__all__ = ["FileStore", "MemoryStore", "Record", "State", "Store"]
