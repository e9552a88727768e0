"""The Executor part of DESIGN.md section 6, through public behaviour.

``TaskHandler`` as a ``ThreadPoolExecutor``, one section per point of the contract:
``ShutDown`` is a ``RuntimeError``, and the default number of workers.
"""

from __future__ import annotations

import gc
import os
import queue
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import pytest

import unidist_queue
from unidist_queue import ShutDown, TaskHandler, UnidistQueueError
from unidist_queue.tasks import default_workers

WAIT = 10.0  # every wait in these tests is bounded


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Objects must be freed by reference counting alone (a cycle would keep them)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


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


# -- 2. max_workers=None hires as many workers as ThreadPoolExecutor() would run ------------


def _expected_default() -> int:
    """What each version's ``concurrent/futures/thread.py`` computes for ``max_workers=None``."""
    if sys.version_info >= (3, 13):
        cpus = os.process_cpu_count()
    else:
        cpus = os.cpu_count()
    return min(32, (cpus or 1) + 4)


def test_default_max_workers_is_the_thread_pool_executors() -> None:
    stdlib = ThreadPoolExecutor()
    try:
        assert stdlib._max_workers == _expected_default()
    finally:
        stdlib.shutdown()
    assert default_workers() == _expected_default()
    with TaskHandler() as th:
        n = _expected_default()
        assert th.roster() == th.roster("default") == list(range(1, n + 1))
        assert len(th.status()["workers"]) == n
        # they all run at once: each task waits at a barrier for the others
        barrier = threading.Barrier(n, timeout=WAIT)
        fs = [th.submit(barrier.wait) for _ in range(n)]
        assert sorted(f.result(WAIT) for f in fs) == list(range(n))


def test_zero_max_workers_hires_nobody_and_tasks_wait_for_a_hire() -> None:
    th = TaskHandler(0)
    assert th.roster() == []
    f = th.submit(int, "7")
    assert not f.done()
    th.hire()
    assert f.result(WAIT) == 7
    assert th.shutdown(timeout=WAIT) == []
