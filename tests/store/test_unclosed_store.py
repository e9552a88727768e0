"""A FileStore nobody references any more releases its directory's lock, with a
``ResourceWarning`` as an unclosed file gives (issue 13); a closed one says nothing."""

from __future__ import annotations

import gc
import threading
import warnings
from typing import Any, List

import pytest
from helpers import fill, reopened

from unidist_queue import FileStore, MessageQueue, StoreLocked


def flushers() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("FileStore flusher")]


def test_an_unreferenced_store_warns_and_lets_go_of_its_lock(path: str) -> None:
    store = FileStore(path)
    with pytest.raises(StoreLocked):
        FileStore(path)
    del store
    with pytest.warns(ResourceWarning, match=r"^unclosed FileStore '.*/s'$"):
        gc.collect()
    FileStore(path).close()  # this process opens it again: the lock was released


@pytest.mark.parametrize("policy", ["always", "interval", "never"])
def test_an_unreferenced_message_queue_over_it_too(path: str, policy: str) -> None:
    """Its flusher thread (``fsync="interval"``) does not keep the store alive: it ends."""
    mq = MessageQueue(FileStore(path, fsync=policy, fsync_interval=0.001))
    mq.add("q", "kept")
    mq.add("q", "also kept")
    del mq
    with pytest.warns(ResourceWarning, match="unclosed FileStore"):
        gc.collect()
    assert flushers() == []
    assert reopened(path) == ["kept", "also kept"]


def test_a_closed_store_says_nothing(path: str) -> None:
    fill(path)
    stores: List[Any] = [FileStore(path), MessageQueue(FileStore(path + "2"))]
    for store in stores:
        store.close()
    read_only = FileStore(path, read_only=True)  # holds no descriptor: nothing to release
    read_only.load()
    stores.append(read_only)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del store, read_only
        stores.clear()
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_a_store_that_failed_to_open_says_nothing(path: str) -> None:
    holder = FileStore(path)
    try:
        with pytest.raises(StoreLocked):
            FileStore(path)  # never got the lock: nothing to release
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gc.collect()
        assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    finally:
        holder.close()
