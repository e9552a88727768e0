"""QueueView.join counts the items put through the view (issue 13, DESIGN 3 ``view``).

``join`` returns once each item put through the view was either marked ``task_done``
(by anyone: an item taken with ``mq.oldest`` is marked on the view) or left the queue
without being delivered (evicted by ``maxlen``, expired, cleared, dropped, moved to a
dead-letter queue). Every ``join`` runs in a thread; the test waits for it with a timeout.
"""

from __future__ import annotations

from typing import Callable

import pytest
from conftest import ManualClock
from helpers import WAIT, joins

from unidist_queue import FileStore, MessageQueue, QueueAPI, QueueView


@pytest.fixture
def mq(either_mq: QueueAPI) -> QueueAPI:
    """The contract runs on both backends (DESIGN 12): see ``either_mq`` in conftest.py."""
    return either_mq


def assert_joins(view: QueueView) -> None:
    assert joins(view).wait(WAIT), "join() did not return"


def test_join_returns_when_maxlen_evicted_the_items(mq: MessageQueue) -> None:
    mq.declare("q", maxlen=1)
    view = mq.view("q")
    view.put("a")
    returned = joins(view)
    view.put("b")  # evicts "a": it left undelivered
    mq.add("q", "c")  # evicts "b" (an add by anyone)
    assert returned.wait(WAIT)
    assert view.unfinished_tasks == 0 and mq.all("q") == ["c"]


def test_items_taken_with_the_queue_api_are_marked_on_the_view(mq: MessageQueue) -> None:
    view = mq.view("q")
    view.put("a")
    view.put("b")
    view.put("c")
    assert mq.oldest("q") == "a"
    assert mq.newest("q") == "c"
    m = mq.reserve("q", timeout=0)
    mq.ack(m)  # "b", delivered
    for _ in range(3):
        view.task_done()
    assert_joins(view)


def test_a_delivered_item_waits_for_its_task_done(mq: MessageQueue) -> None:
    view = mq.view("q")
    view.put("a")
    assert mq.get("q", timeout=0) == "a"
    returned = joins(view)
    assert not returned.wait(0.05)  # taken, not done yet: join waits
    view.task_done()
    assert returned.wait(WAIT)


@pytest.mark.parametrize(
    "remove",
    [lambda mq: mq.clear("q"), lambda mq: mq.drop("q")],
    ids=["clear", "drop"],
)
def test_join_returns_when_the_items_were_removed(
    mq: MessageQueue, remove: Callable[[MessageQueue], object]
) -> None:
    view = mq.view("q")
    view.put("a")
    view.put("b")
    returned = joins(view)
    remove(mq)
    assert returned.wait(WAIT)
    with pytest.raises(ValueError):  # nothing pending: each one left
        view.task_done()


def test_join_returns_when_the_items_expired(cmq: MessageQueue, clock: ManualClock) -> None:
    cmq.declare("q", max_age=5)
    view = cmq.view("q")
    view.put("a")
    returned = joins(view)
    clock.advance(10)
    cmq.count("q")  # any look applies the expiry (join's own timer uses the queue's clock)
    assert returned.wait(WAIT)
    view.put("b")
    clock.advance(10)
    assert_joins(view)  # join applies what fell due itself
    assert cmq.stats("q").expired == 2


def test_join_returns_when_the_item_moved_to_a_dead_letter_queue(mq: MessageQueue) -> None:
    mq.declare("q", max_attempts=1, dead_letter="dlq")
    view = mq.view("q")
    view.put("poison")
    m = mq.reserve("q", timeout=0)
    returned = joins(view)
    mq.nack(m)
    assert returned.wait(WAIT)
    assert mq.all("dlq") == ["poison"]


def test_a_nacked_item_is_still_pending(mq: MessageQueue) -> None:
    view = mq.view("q")
    view.put("a")
    mq.nack(mq.reserve("q", timeout=0))
    assert view.unfinished_tasks == 1
    assert view.get(timeout=0) == "a"
    view.task_done()
    assert_joins(view)


def test_two_views_count_their_own_items(mq: MessageQueue) -> None:
    mq.declare("q", maxlen=2)
    first, second = mq.view("q"), mq.view("q")
    first.put("a")
    second.put("b")
    second.put("c")  # evicts "a", put by the first view
    assert (first.unfinished_tasks, second.unfinished_tasks) == (0, 2)
    second.shutdown(immediate=True)  # removes "b" and "c"
    assert_joins(first)
    assert_joins(second)


def test_task_done_with_nothing_pending_is_a_value_error(mq: MessageQueue) -> None:
    view = mq.view("q")
    with pytest.raises(ValueError):
        view.task_done()
    view.put("a")
    view.task_done()
    with pytest.raises(ValueError):
        view.task_done()


def test_the_queue_keeps_working_once_every_watched_item_is_gone(mq: MessageQueue) -> None:
    view = mq.view("q")
    view.put("a")
    assert view.get() == "a"
    view.task_done()
    for i in range(3):
        mq.add("q", i)
    assert [mq.oldest("q"), mq.get("q"), mq.count("q")] == [0, 1, 1]
    assert_joins(view)


def test_evicting_an_item_the_view_did_not_put_changes_nothing(mq: MessageQueue) -> None:
    mq.declare("q", maxlen=2)
    view = mq.view("q")
    mq.add("q", "x")
    view.put("a")
    mq.add("q", "y")  # evicts "x", added by the queue API
    assert view.unfinished_tasks == 1
    assert view.get(timeout=0) == "a"
    view.task_done()
    assert_joins(view)


def test_join_applies_an_expiry_of_a_durable_queue(path: str, clock: ManualClock) -> None:
    with MessageQueue(FileStore(path, fsync="never"), clock=clock) as mq:
        mq.declare("q", max_age=5)
        view = mq.view("q")
        view.put("a")
        clock.advance(3)
        view.put("b")
        clock.advance(3)
        returned = joins(view)  # it expires "a" (recorded), then waits for "b"
        clock.advance(3)
        mq.count("q")
        assert returned.wait(WAIT)
    with MessageQueue(FileStore(path, fsync="never"), clock=clock) as mq:
        assert mq.all("q") == [] and mq.queues() == ["q"]
