"""Every public name: importable from ``unidist_queue``, documented, and as DESIGN.md names it."""

from __future__ import annotations

import importlib
import inspect
import queue

import pytest

import unidist_queue

EXPECTED = {
    "AsyncQueueView", "CorruptArchive", "DelegateLoop", "Empty", "FileStore", "Full", "Loop", "MemoryStore",
    "Message",
    "MessageQueue", "PushStats", "Pusher", "QueueAPI", "QueueStats", "QueueView", "RedisMessageQueue",
    "SerializationError",
    "ShutDown", "Store", "StoreError", "StoreLocked", "Task", "TaskHandler", "UnidistQueueError",
}


def test_all_lists_the_public_names() -> None:
    assert set(unidist_queue.__all__) == EXPECTED
    assert isinstance(unidist_queue.__version__, str)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_public_name_imports_and_has_a_docstring(name: str) -> None:
    module = importlib.import_module("unidist_queue")
    obj = getattr(module, name)
    assert inspect.getdoc(obj), f"{name} has no docstring"
    exec(f"from unidist_queue import {name}", {})  # the import a user writes


def test_public_methods_have_docstrings() -> None:
    missing = []
    for name in sorted(EXPECTED):
        cls = getattr(unidist_queue, name)
        for attr, value in vars(cls).items():
            if attr.startswith("_") or not callable(value):
                continue
            if not inspect.getdoc(value):
                missing.append(f"{name}.{attr}")
    assert missing == []


def test_error_hierarchy_is_as_designed() -> None:
    u = unidist_queue
    for error in (u.Empty, u.Full, u.ShutDown, u.SerializationError, u.StoreError):
        assert issubclass(error, u.UnidistQueueError)
    assert issubclass(u.Empty, queue.Empty) and issubclass(u.Full, queue.Full)
    assert issubclass(u.SerializationError, TypeError)
    assert issubclass(u.CorruptArchive, u.StoreError) and issubclass(u.StoreLocked, u.StoreError)
    if hasattr(queue, "ShutDown"):  # Python 3.13+
        assert issubclass(u.ShutDown, queue.ShutDown)


def test_the_seed_module_and_the_command_line_import() -> None:
    from unidist_queue import messagequeue
    from unidist_queue.__main__ import main

    for name in ("AddMessage", "GetMessageCount", "GetMessage_Oldest", "GetMessage_Newest",
                 "GetAllMessages", "QueueExists", "set_default", "get_default"):
        assert inspect.getdoc(getattr(messagequeue, name)), name
    assert inspect.getdoc(main)


def test_message_queue_implements_the_queue_api_protocol() -> None:
    """Every method of the protocol exists on MessageQueue, with the same parameters."""
    api = unidist_queue.QueueAPI
    with unidist_queue.MessageQueue() as mq:
        assert isinstance(mq, api)
    names = [n for n, v in vars(api).items() if not n.startswith("_") and callable(v)]
    assert len(names) == 30  # every method of DESIGN 3, and aget, areserve, areserve_many, aview (11)
    for name in names:
        ours = inspect.signature(getattr(unidist_queue.MessageQueue, name)).parameters
        assert list(ours) == list(inspect.signature(getattr(api, name)).parameters), name


def test_redis_message_queue_has_the_queue_api_signatures() -> None:
    """Every method of the protocol exists on RedisMessageQueue, with the same parameters
    and defaults (no server needed: the class is inspected, not instantiated)."""
    api = unidist_queue.QueueAPI
    names = [n for n, v in vars(api).items() if not n.startswith("_") and callable(v)]
    for name in names:
        ours = inspect.signature(getattr(unidist_queue.RedisMessageQueue, name)).parameters
        mine = inspect.signature(getattr(unidist_queue.MessageQueue, name)).parameters
        assert list(ours) == list(inspect.signature(getattr(api, name)).parameters), name
        assert [p.default for p in ours.values()] == [p.default for p in mine.values()], name
    assert isinstance(unidist_queue.RedisMessageQueue.closed, property)
