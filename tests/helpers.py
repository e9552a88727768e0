"""Helpers shared by several test modules (``from helpers import ...``)."""

from __future__ import annotations

import pickle
from typing import Any

from unidist_queue.store.base import State, Store


class InMemoryStore(Store):
    """A persistent store kept in memory: no commits to wait for, never due for compaction,
    and snapshots that save nothing. A subclass supplies ``load`` and ``append``."""

    persistent = True

    def encode(self, body: Any) -> bytes:
        return pickle.dumps(body)

    def commit(self, seq: int) -> None:
        pass

    @property
    def compaction_due(self) -> bool:
        return False

    def prepare_snapshot(self) -> None:
        pass

    def begin_snapshot(self) -> Any:
        return None

    def write_snapshot(self, state: State, token: Any) -> None:
        pass

    def close(self) -> None:
        pass
