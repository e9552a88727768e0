"""Persistence backends: the :class:`Store` interface, :class:`MemoryStore`, :class:`FileStore`."""

from .base import MemoryStore as MemoryStore
from .base import Record as Record
from .base import State as State
from .base import Store as Store

__all__ = ["MemoryStore", "Record", "State", "Store"]
