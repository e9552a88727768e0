"""Foreign items in an in-memory task queue: a worker skips them, however many.

A ``TaskHandler`` on a MessageQueue passed in (not private) shares its ``"task:S"`` queues
with the public API. A worker taking its next task skips what is not a task; it once did
so by recursion, and a long run of such items raised ``RecursionError`` in the worker
thread, after its task ran and before its future was resolved.
"""

from __future__ import annotations

import threading

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
