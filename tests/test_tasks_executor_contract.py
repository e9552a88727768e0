"""The Executor part of DESIGN.md section 6, through public behaviour.

CPython's own ``ThreadPoolExecutor`` tests run against ``TaskHandler`` in
``test_tasks_cpython_futures.py`` where the interpreter ships them; the checks here run
on every interpreter: ``ShutDown`` is a ``RuntimeError``, the default number of
workers, no stale references, ``cancel_futures`` and what a worker already took,
interpreter exit, and a handler nobody references.
"""

from __future__ import annotations

import queue
import sys

import pytest

import unidist_queue
from unidist_queue import ShutDown, TaskHandler, UnidistQueueError

WAIT = 10.0  # every wait in these tests is bounded


# -- 1. ShutDown is a RuntimeError ----------------------------------------------------------


def test_shutdown_error_is_a_runtime_error_and_more() -> None:
    assert issubclass(ShutDown, UnidistQueueError)
    assert issubclass(ShutDown, RuntimeError)
    assert ShutDown.__mro__[1:3] == (UnidistQueueError, RuntimeError)
    if sys.version_info >= (3, 13):
        assert issubclass(ShutDown, queue.ShutDown)
    assert unidist_queue.ShutDown is ShutDown


def test_submit_after_shutdown_raises_a_runtime_error() -> None:
    th = TaskHandler(1)
    assert th.shutdown(timeout=WAIT) == []
    with pytest.raises(RuntimeError) as info:
        th.submit(abs, -1)
    assert isinstance(info.value, ShutDown)
