"""Taking a busy mutex without a lock convoy (internal).

The hot paths of the in-memory queue (``add``, ``get``, ``oldest``, ``aget`` and the
views' put and get) take the core's mutex as::

    if not mutex.acquire(False):
        acquire_contended(mutex)
    try:
        ...
    finally:
        mutex.release()

Why not ``with mutex``: a thread that finds the mutex held by another, which lost the
GIL while holding it, blocks in ``acquire`` with the GIL released; when the holder lets
go, the waiter takes the *mutex* first and then waits for the *GIL*, up to the switch
interval (5 ms), still holding the mutex. The other thread's next call then blocks on
the mutex, handing the GIL back, and the two go on trading both at every call: a lock
convoy, where each hand-off of an item costs a pair of context switches. Measured with
one producer thread and one consumer (``bench_async.py``'s hand-off shape, a plain
``Lock`` around a ``deque``): 920-950 ns per item with a blocking acquire, 450-560 ns
with this one, which met the mutex busy 4-5 times in 200,000 items instead of
thousands.

:func:`acquire_contended` gives the GIL to the holder (``time.sleep(0)``) and tries again
without blocking, so that the mutex is only ever taken by a thread that runs; after
:data:`SPINS` tries (a holder that sleeps or does I/O under the mutex) it blocks.
"""

from __future__ import annotations

import threading
import time

__all__ = ["SPINS", "acquire_contended"]

SPINS = 20
"""Tries, each after giving the GIL away, before a blocking acquire."""

_sleep = time.sleep


def acquire_contended(mutex: threading.Lock) -> None:
    """Take ``mutex``, which another thread holds (a non-blocking acquire just failed).

    Returns with ``mutex`` held. Cost: at most :data:`SPINS` yields of the GIL, then a
    blocking acquire. Thread-safe.
    """
    for _ in range(SPINS):
        _sleep(0)
        if mutex.acquire(False):
            return
    mutex.acquire()
