"""The durable add fast path of MessageQueue and the automatic compaction it triggers;
an add waiting for room in a queue that is dropped.

The fast path looks at the queue before taking the lock; whatever changes in between
(its options, the queue itself, the MessageQueue closing) must give the same result as
an add through the general path, with the body encoded once. Changes are made from
inside ``store.encode`` (which the fast path calls between its look and the lock), so no
thread timing is involved.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable, List

import pytest
from helpers import in_thread, join, reopened
from queue_core import wait_blocked

from unidist_queue import MessageQueue, ShutDown, StoreError
from unidist_queue.store.file import FileStore

WAIT = 10.0


def meanwhile(mq: MessageQueue, monkeypatch: pytest.MonkeyPatch, change: Callable[[], Any]) -> List[Any]:
    """Run ``change`` once, from the next ``encode`` of the store; returns the encoded bodies."""
    store = mq.store
    real = store.encode
    encoded: List[Any] = []

    def encode(body: Any) -> bytes:
        encoded.append(body)
        if len(encoded) == 1:
            change()
        return real(body)

    monkeypatch.setattr(store, "encode", encode)
    monkeypatch.setattr(store, "pickle_protocol", None)  # or the add pickles without encode
    return encoded


@pytest.mark.parametrize("policy", ["always", "never"])
def test_options_changed_before_the_lock_apply_to_the_add(
    path: str, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    with MessageQueue(store=FileStore(path, fsync=policy)) as mq:
        mq.add("q", 0)
        encoded = meanwhile(mq, monkeypatch, lambda: mq.declare("q", maxlen=1))
        mq.add("q", 1)  # maxlen=1, overflow="drop_oldest": 0 is evicted
        assert mq.all("q") == [1] and mq.stats("q").dropped == 1
        assert encoded == [1]  # encoded once, though it took the general path
    assert reopened(path) == [1]


def test_a_queue_dropped_before_the_lock_is_made_again(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with MessageQueue(store=FileStore(path)) as mq:
        mq.add("q", 0)
        meanwhile(mq, monkeypatch, lambda: mq.drop("q"))
        mq.add("q", 1)
        assert mq.all("q") == [1]
    assert reopened(path) == [1]


def test_a_queue_closed_before_the_lock_stores_nothing(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    mq = MessageQueue(store=FileStore(path, fsync="always"))
    mq.add("q", 0)
    meanwhile(mq, monkeypatch, mq.close)
    with pytest.raises(ShutDown):
        mq.add("q", 1)
    assert reopened(path) == [0]


def test_a_waiting_getter_is_woken_by_a_durable_add(path: str) -> None:
    with MessageQueue(store=FileStore(path, fsync="always")) as mq:
        mq.add("q", 0)
        mq.oldest("q")
        getter, got = in_thread(lambda: mq.get("q", timeout=WAIT))
        wait_blocked(mq, "q", getters=1)
        mq.add("q", 1)
        join(getter)
        assert got == [("ok", 1)]


def test_subscribers_hear_a_durable_add_once_it_is_visible(path: str) -> None:
    with MessageQueue(store=FileStore(path, fsync="always")) as mq:
        mq.add("q", 0)
        heard: List[Any] = []
        mq.subscribe("q", lambda name: heard.append((name, mq.all(name))))
        mq.subscribe(None, lambda name: heard.append(name))
        mq.add("q", 1)
        assert heard == [("q", [0, 1]), "q"]


def test_an_add_does_not_wait_for_a_compaction_in_progress(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with MessageQueue(store=FileStore(path, compact_every=3)) as mq:
        mq.add("q", 0)
        store = mq.store
        real = store.write_snapshot
        writing, go = threading.Event(), threading.Event()

        def slow_write(state: Any, token: Any) -> None:
            writing.set()
            assert go.wait(WAIT)
            real(state, token)

        monkeypatch.setattr(store, "write_snapshot", slow_write)
        errors: List[BaseException] = []

        def compact() -> None:
            try:
                mq.compact()
            except BaseException as exc:
                errors.append(exc)

        compactor = threading.Thread(target=compact)
        compactor.start()
        assert writing.wait(WAIT)
        mq.add("q", 1)
        mq.add("q", 2)  # compaction due: another thread is compacting, so this add returns
        assert compactor.is_alive()
        go.set()
        compactor.join(WAIT)
        assert not compactor.is_alive() and not errors
        assert "snapshot.1" in os.listdir(path) and "snapshot.2" not in os.listdir(path)
        mq.add("q", 3)  # still due: this add compacts
        assert "snapshot.2" in os.listdir(path)
    assert reopened(path) == [0, 1, 2, 3]


def test_an_add_whose_compaction_finds_the_queue_closed_returns(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mq = MessageQueue(store=FileStore(path, fsync="always", compact_every=1))
    mq.add("q", 0)
    store = mq.store
    real = store.commit

    def commit_then_close(seq: int) -> None:
        real(seq)
        monkeypatch.undo()
        mq.close()  # another thread closes between this add's commit and its compaction

    monkeypatch.setattr(store, "commit", commit_then_close)
    assert mq.add("q", 1) == 2
    assert reopened(path) == [0, 1]


def test_a_failed_automatic_compaction_is_logged_and_retried(
    path: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with MessageQueue(store=FileStore(path, compact_every=1)) as mq:
        store = mq.store

        def fail() -> None:
            raise StoreError("disk full")

        monkeypatch.setattr(store, "prepare_snapshot", fail)
        with caplog.at_level(logging.ERROR):
            mq.add("q", 0)
        assert "automatic compaction failed" in caplog.text
        assert not any(n.startswith("snapshot") for n in os.listdir(path))
        monkeypatch.undo()
        mq.add("q", 1)
        assert "snapshot.1" in os.listdir(path)
    assert reopened(path) == [0, 1]


def test_an_add_woken_by_drop_stores_its_body_in_the_queue_made_again(path: str) -> None:
    with MessageQueue(store=FileStore(path, fsync="never")) as mq:
        mq.declare("b", durable=False, maxlen=1, overflow="block")
        mq.add("b", "a")
        t, outcome = in_thread(lambda: mq.add("b", "late", timeout=60))
        wait_blocked(mq, "b", putters=1)
        mq.drop("b")
        join(t)
        assert [kind for kind, _ in outcome] == ["ok"]
        assert mq.stats("b").durable
    with MessageQueue(store=FileStore(path, fsync="never")) as mq:  # was IndexError: no body
        assert mq.all("b") == ["late"]
