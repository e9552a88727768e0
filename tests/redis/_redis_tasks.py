"""Task functions for ``test_tasks_across_processes.py``, importable by the same name
(``_redis_tasks``) in the test and in its worker process (tests/redis/ is on the path of
both)."""

from __future__ import annotations

import os


def square(x: int) -> tuple[int, int]:
    """``x * x`` and the id of the process that ran it."""
    return x * x, os.getpid()


def boom(text: str) -> None:
    raise ValueError(text)
