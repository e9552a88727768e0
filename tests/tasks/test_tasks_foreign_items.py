"""Foreign items in an in-memory task queue: a worker skips them, however many.

A ``TaskHandler`` on a MessageQueue passed in (not private) shares its ``"task:S"`` queues
with the public API (DESIGN.md section 6): other code may add messages to them, declare
options on them or put through a view of one. A worker taking its next task skips what
is not a task and removes it; it once did so by recursion, and a long run of such items
raised ``RecursionError`` in the worker thread, after its task ran and before its future
was resolved. A queue declared with ``max_age`` still runs every task, and a put waiting
for room in a task queue's view wakes when a worker takes a task. Every wait is bounded.
"""

from __future__ import annotations

import threading
from typing import Tuple

from helpers import blocker
from queue_core import wait_blocked

from unidist_queue import MessageQueue, TaskHandler

WAIT = 5.0


def test_a_long_run_of_foreign_items_in_a_task_queue_is_skipped() -> None:
    mq = MessageQueue()
    th = TaskHandler(0, mq=mq)
    gate = threading.Event()
    try:
        th.hire()
        first = th.submit(gate.wait, WAIT)
        for i in range(5000):  # not tasks: added through the public API
            mq.add("task:default", i)
        second = th.submit(str, "second")
        gate.set()
        assert first.result(timeout=2.0) is True
        assert second.result(timeout=WAIT) == "second"
    finally:
        gate.set()
        th.shutdown(wait=False)
        mq.close()


def test_messages_that_are_not_tasks_are_skipped_and_removed(mq: MessageQueue) -> None:
    started, release, gate = blocker()
    mq.add("task:default", "not a task")
    mq.add("task:other", "not a task either")
    with TaskHandler(0, mq=mq) as th:
        th.hire()  # looks at the waiting messages: nothing to run
        assert mq.count("task:default") == 0
        early = th.submit_to("other", abs, -1)  # waits (nobody serves "other") behind the junk
        th.hire("other")  # skips the junk, runs the task
        assert early.result(WAIT) == 1 and mq.count("task:other") == 0
        first = th.submit(gate, 1)
        assert started.wait(WAIT)
        mq.add("task:default", "junk")
        second = th.submit(abs, -2)  # waits behind the junk
        release.set()
        assert (first.result(WAIT), second.result(WAIT)) == (1, 2)
        started2, release2, gate2 = blocker()
        busy = th.submit(gate2, 3)
        assert started2.wait(WAIT)
        mq.add("task:default", "more junk")
        waiting = th.submit(abs, -4)
        returned = th.shutdown(wait=False, cancel_futures=True)
        assert [t.future for t in returned] == [waiting] and waiting.cancelled()
        release2.set()
        assert busy.result(WAIT) == 3
    assert mq.count("task:default") == 0


def test_a_task_queue_declared_with_max_age_still_runs_every_task(mq: MessageQueue) -> None:
    mq.declare("task:default", max_age=3600)
    mq.add("task:default", "not a task")
    started, release, gate = blocker()
    with TaskHandler(0, mq=mq) as th:
        th.hire()
        first = th.submit(gate, 0)
        assert started.wait(WAIT)
        rest = [th.submit(abs, -i) for i in range(1, 6)]  # wait in the declared queue
        mq.add("task:default", "junk in between")
        rest += [th.submit(abs, -i) for i in range(6, 9)]
        release.set()
        assert [f.result(WAIT) for f in [first, *rest]] == list(range(9))
        assert th.status()["series"]["default"]["processed"] == 9
    assert mq.count("task:default") == 0


def test_a_put_waiting_for_room_in_a_task_queue_view_wakes_when_a_worker_takes(mq: MessageQueue) -> None:
    view = mq.view("task:default", maxsize=1)
    started, release, gate = blocker()

    def put_in_thread(item: str) -> Tuple[threading.Thread, threading.Event]:
        done = threading.Event()
        putter = threading.Thread(target=lambda: (view.put(item, timeout=WAIT), done.set()))
        putter.start()
        wait_blocked(mq, "task:default", putters=1)
        return putter, done

    with TaskHandler(0, mq=mq) as th:
        first = th.submit(gate, 1)  # no worker: it waits, and the view is full
        putter, done = put_in_thread("marker 1")
        th.hire()  # takes "first": room
        assert done.wait(WAIT) and started.wait(WAIT)
        putter.join(WAIT)
        second = th.submit(abs, -2)  # waits behind "marker 1"
        putter, done = put_in_thread("marker 2")
        release.set()  # the worker takes the marker, then "second": room
        assert done.wait(WAIT)
        putter.join(WAIT)
        assert (first.result(WAIT), second.result(WAIT)) == (1, 2)
    assert not putter.is_alive()
