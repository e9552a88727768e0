"""Task functions for ``test_tasks_prefetch_and_batched_settles.py``, importable by the
same name in the test and in its worker process (tests/redis/ is on the path of both)."""

from __future__ import annotations

import os
import threading
from typing import List, Tuple

GATE = threading.Event()  # gated() waits for it
STARTED = threading.Semaphore(0)  # released by every gated() that started
RAN: List[int] = []


def gated(x: int) -> int:
    STARTED.release()
    assert GATE.wait(30.0)
    return x


def record(x: int) -> int:
    RAN.append(x)
    return x


def square(x: int) -> Tuple[int, int]:
    """``x * x`` and the id of the process that ran it."""
    return x * x, os.getpid()


def boom(x: int) -> None:
    raise ValueError(f"boom {x}")
