"""QueueView: subscribers, a blocked put woken by shutdown, immediate shutdown, repr."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, List, Tuple

import pytest

from unidist_queue import FileStore, MessageQueue, ShutDown

WAIT = 30.0


def wait_for_putter(mq: MessageQueue, queue: str) -> None:
    """Wait (bounded) until a thread is parked waiting for room in ``queue`` (an internal
    peek, only to make the wake-up deterministic)."""
    parked = threading.Event()
    for _ in range(3000):
        with mq._mutex:
            q = mq._queues.get(queue)
            if q is not None and q.putters:
                parked.set()
                break
        parked.wait(0.01)
    assert parked.is_set(), "the put never blocked"


def start_parked_put(
    mq: MessageQueue, queue: str, put: Callable[[], Any]
) -> Tuple[threading.Thread, List[BaseException]]:
    """Run ``put`` in a new thread and wait until it is parked waiting for room in
    ``queue``; return the thread and a list that gets what ``put`` raised."""
    raised: List[BaseException] = []

    def run() -> None:
        try:
            put()
        except BaseException as exc:
            raised.append(exc)

    t = threading.Thread(target=run)
    t.start()
    wait_for_putter(mq, queue)
    return t, raised


def test_a_put_through_the_view_notifies_subscribers_before_returning() -> None:
    with MessageQueue() as mq:
        heard: List[Any] = []
        mq.subscribe("q", lambda name: heard.append((name, mq.count(name))))
        view = mq.view("q")
        view.put("a")
        assert heard == [("q", 1)]
        view.put_nowait("b")
        assert heard == [("q", 1), ("q", 2)]


def test_a_put_waiting_for_room_wakes_with_shutdown_and_adds_nothing() -> None:
    with MessageQueue() as mq:
        view = mq.view("q", maxsize=1)
        view.put("a")
        t, outcome = start_parked_put(mq, "q", lambda: view.put("b", timeout=60))
        view.shutdown()
        t.join(WAIT)
        assert not t.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], ShutDown)
        assert mq.all("q") == ["a"]
        assert view.get(timeout=WAIT) == "a"


def test_a_put_woken_by_drop_stores_its_item_in_the_queue_made_again(tmp_path: Path) -> None:
    """The queue was not durable when the put began; dropped, it is made again durable
    (the store's default), so the item must be stored with its body."""
    with MessageQueue(store=FileStore(tmp_path / "s", fsync="never")) as mq:
        mq.declare("v", durable=False)
        view = mq.view("v", maxsize=1)
        view.put("a")
        t, outcome = start_parked_put(mq, "v", lambda: view.put("b", timeout=60))
        mq.drop("v")
        t.join(WAIT)
        assert not t.is_alive() and outcome == []
        assert mq.all("v") == ["b"] and mq.stats("v").durable
    with MessageQueue(store=FileStore(tmp_path / "s", fsync="never")) as mq:
        assert mq.all("v") == ["b"]


def test_immediate_shutdown_removes_every_item_counting_only_view_puts_as_done() -> None:
    with MessageQueue() as mq:
        mq.add("q", "added directly")
        view = mq.view("q")
        view.put("put through the view")
        view.shutdown(immediate=True)
        assert mq.count("q") == 0 and view.empty()
        view.join()  # the one item put through the view counts as done
        with pytest.raises(ValueError, match="too many times"):
            view.task_done()


def test_repr_names_the_queue_and_maxsize() -> None:
    with MessageQueue() as mq:
        assert repr(mq.view("jobs", 3)) == "<QueueView 'jobs' maxsize=3>"


def test_an_add_woken_by_drop_stores_its_body_in_the_queue_made_again(tmp_path: Path) -> None:
    with MessageQueue(store=FileStore(tmp_path / "s", fsync="never")) as mq:
        mq.declare("b", durable=False, maxlen=1, overflow="block")
        mq.add("b", "a")
        t, errors = start_parked_put(mq, "b", lambda: mq.add("b", "late", timeout=60))
        mq.drop("b")
        t.join(WAIT)
        assert not t.is_alive() and errors == []
        assert mq.stats("b").durable
    with MessageQueue(store=FileStore(tmp_path / "s", fsync="never")) as mq:  # was IndexError: no body
        assert mq.all("b") == ["late"]
