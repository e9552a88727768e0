"""The seed-compatible functions keep the original module's results (ORIGINALS.md section 2)."""

from __future__ import annotations

import threading
from typing import Iterator

import pytest

from unidist_queue import MessageQueue
from unidist_queue import messagequeue as m


@pytest.fixture(autouse=True)
def fresh_default() -> Iterator[MessageQueue]:
    mq = MessageQueue()
    previous = m.set_default(mq)
    yield mq
    m.set_default(previous)
    mq.close()


def test_unknown_queue() -> None:
    assert m.GetMessageCount("nope") is None
    assert m.GetMessage_Oldest("nope") is None
    assert m.GetMessage_Newest("nope") is None
    assert m.GetAllMessages("nope") is None
    assert m.QueueExists("nope") is False


def test_add_newest_oldest_count() -> None:
    for i in (1, 2, 3):
        assert m.AddMessage("q", i) is None
    assert m.GetMessage_Newest("q") == 3
    assert m.GetMessage_Oldest("q") == 1
    assert m.GetMessageCount("q") == 1


def test_peek_keeps_count() -> None:
    m.AddMessage("q", "a")
    m.AddMessage("q", "b")
    assert m.GetMessage_Oldest("q", remove=False) == "a"
    assert m.GetMessage_Newest("q", remove=False) == "b"
    assert m.GetMessageCount("q") == 2


def test_emptied_queue() -> None:
    m.AddMessage("q", "a")
    m.GetMessage_Oldest("q")
    assert m.QueueExists("q") is True
    assert m.GetMessageCount("q") == 0
    assert m.GetMessage_Oldest("q") is None
    assert m.GetMessage_Newest("q") is None
    assert m.GetAllMessages("q") is None


def test_fifo_and_independent_queues() -> None:
    for i in range(5):
        m.AddMessage("a", i)
        m.AddMessage("b", -i)
    assert m.GetAllMessages("a") == [0, 1, 2, 3, 4]
    assert m.GetAllMessages("b") == [0, -1, -2, -3, -4]
    all_a = m.GetAllMessages("a")
    assert all_a is not None
    all_a.append(99)  # a copy, unlike the original's live list
    assert m.GetMessageCount("a") == 5


def test_set_default_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="mq"):
        m.set_default("not a queue")  # type: ignore[arg-type]


def test_get_default_is_the_one_set(fresh_default: MessageQueue) -> None:
    assert m.get_default() is fresh_default
    m.AddMessage("q", 1)
    assert fresh_default.count("q") == 1


def test_consumers_never_share_a_message() -> None:
    """The original's check-then-remove race is gone: each message goes to one consumer."""
    n, consumers = 2000, 4
    for i in range(n):
        m.AddMessage("q", i)
    got: list[list[int]] = [[] for _ in range(consumers)]
    start = threading.Barrier(consumers)

    def consume(out: list[int]) -> None:
        start.wait(timeout=10)
        while True:
            msg = m.GetMessage_Oldest("q")
            if msg is None:
                return
            out.append(msg)

    threads = [threading.Thread(target=consume, args=(got[i],)) for i in range(consumers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(x for out in got for x in out) == list(range(n))
