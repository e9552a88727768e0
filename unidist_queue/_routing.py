"""Routing tables of a :class:`~unidist_queue.TaskHandler`: series and free workers.

Internal. A :class:`Series` holds, for one series, the free workers qualified for it
bucketed by priority (highest first, least recently used first within a bucket) and
the counters reported by ``status()``. Every method here is called with the pool's lock
held, except :meth:`Series.has_free` and :meth:`Series.peek` (lock-free reads); none
of them logs, blocks or calls user code.

A series is generic in its worker type: all it reads of a worker is :class:`Member`
(its ``id`` and ``last_used`` stamp), so this module needs nothing of the workers'.
"""

from __future__ import annotations

from typing import Any, Dict, Generic, List, Optional, Protocol, Sequence, Tuple, TypeVar, Union

__all__ = ["Member", "Series", "SeriesSpec", "Tally", "parse_series"]

SeriesSpec = Union[str, Sequence[Union[str, Tuple[int, str]]]]
"""What ``hire`` accepts: a name, or a list of names and ``(priority, name)`` pairs."""


class Member(Protocol):
    """What a series reads of a worker."""

    @property
    def id(self) -> int:
        """The worker's id."""

    @property
    def last_used(self) -> int:
        """Stamp of the last task given to it (least recently used first)."""


W = TypeVar("W", bound=Member)


class Tally:
    """Counters of one worker for one series (``status()`` adds them up).

    Written by the worker's threads under the worker's ``mutex`` (so the hot path takes
    no shared lock); read without a lock by ``status()`` (each field read is atomic).
    """

    __slots__ = ("failed", "processed", "queued_max", "queued_sum", "run_max", "run_sum")

    def __init__(self) -> None:
        self.processed = 0  # tasks that ran, failed ones included
        self.failed = 0
        self.queued_sum = self.queued_max = 0.0
        self.run_sum = self.run_max = 0.0

    def add(self, queued: float, run: float, failed: bool) -> None:
        """Count one task that ran: ``queued`` and ``run`` seconds, ``failed`` or not."""
        self.processed += 1
        self.queued_sum += queued
        if queued > self.queued_max:
            self.queued_max = queued
        self.run_sum += run
        if run > self.run_max:
            self.run_max = run
        if failed:
            self.failed += 1

    def fold(self, other: Tally) -> None:
        """Add ``other``'s finished counts to this one."""
        self.processed += other.processed
        self.failed += other.failed
        self.queued_sum += other.queued_sum
        self.queued_max = max(self.queued_max, other.queued_max)
        self.run_sum += other.run_sum
        self.run_max = max(self.run_max, other.run_max)


class Series(Generic[W]):
    """One series: its queue name, its free qualified workers and its counters.

    ``free[p]`` maps worker id to worker for the free workers (a slot open, taking
    tasks) that serve this series at priority ``p``; ``nfree`` counts them (read
    without the lock by a submitter: one attribute); ``prios`` lists the priorities of
    all qualified workers, highest first. Choosing a worker costs O(p + f) for p
    priorities and f free workers of the best bucket. Counters live in one
    :class:`Tally` per worker (``tallies``, by worker id) until the worker is gone,
    then in ``past``.
    """

    __slots__ = ("free", "name", "nfree", "past", "prios", "qualified", "queue", "tallies")

    def __init__(self, name: str) -> None:
        self.name = name
        self.queue = "task:" + name
        self.free: Dict[int, Dict[int, W]] = {}
        self.nfree = 0
        self.prios: List[int] = []
        self.qualified: Dict[int, int] = {}  # worker id -> priority, in hire order
        self.tallies: Dict[int, Tally] = {}  # worker id -> its counters, while it lives
        self.past = Tally()  # counters of the workers that are gone

    # -- qualified workers -------------------------------------------------------------

    def join(self, worker: W, priority: int) -> Tally:
        """Add ``worker`` to the qualified workers (not yet free); return its tally."""
        self.qualified[worker.id] = priority
        if priority not in self.free:
            self.free[priority] = {}
            self.prios = sorted(self.free, reverse=True)
        tally = self.tallies[worker.id] = Tally()
        return tally

    def leave(self, worker: W) -> None:
        """Remove ``worker`` from the routing of this series (free or not)."""
        priority = self.qualified.pop(worker.id, None)
        if priority is not None:
            self.set_busy(worker, priority)

    def retire_tally(self, worker_id: int) -> None:
        """The worker is gone: keep its finished counts in ``past``."""
        self.past.fold(self.tallies.pop(worker_id, _NO_TALLY))

    def set_free(self, worker: W, priority: int) -> None:
        bucket = self.free[priority]
        if worker.id not in bucket:
            bucket[worker.id] = worker
            self.nfree += 1

    def set_busy(self, worker: W, priority: int) -> None:
        if self.free[priority].pop(worker.id, None) is not None:
            self.nfree -= 1

    def has_free(self) -> bool:
        """Whether a qualified worker is free. Safe without the lock (one attribute read)."""
        return self.nfree > 0

    def pick(self) -> Optional[W]:
        """The free worker with the highest priority, least recently used first."""
        for p in self.prios:
            bucket = self.free[p]
            if bucket:
                if len(bucket) == 1:
                    return next(iter(bucket.values()))
                return min(bucket.values(), key=_last_used)
        return None

    def peek(self) -> Optional[W]:
        """:meth:`pick` without the lock, best effort (a subscriber's wake-up uses it).

        Reads only copies (``list`` of a dict is one atomic step), so a concurrent
        change under the lock cannot break it; the worker it returns may have turned
        busy meanwhile.
        """
        free = self.free
        for p in self.prios:
            bucket = free.get(p)
            workers = [] if bucket is None else list(bucket.values())
            if workers:
                return min(workers, key=_last_used)
        return None

    # -- counters -------------------------------------------------------------------------

    def status(self, waiting: int, running: int) -> Dict[str, Any]:
        """The JSON-serializable status entry of this series (``running``: its tasks held
        by workers)."""
        total = Tally()
        total.fold(self.past)
        for tally in list(self.tallies.values()):
            total.fold(tally)
        return {
            "waiting": waiting,
            "running": running,
            "processed": total.processed,
            "failed": total.failed,
            "latency_ms": {
                "queued_mean": _mean_ms(total.queued_sum, total.processed),
                "queued_max": total.queued_max * 1000.0,
                "run_mean": _mean_ms(total.run_sum, total.processed),
                "run_max": total.run_max * 1000.0,
            },
        }


_NO_TALLY = Tally()  # folds nothing: a worker retired twice counts once


def _last_used(worker: Member) -> int:
    return worker.last_used


def _mean_ms(total: float, n: int) -> float:
    return total * 1000.0 / n if n else 0.0


def parse_series(series: Any) -> List[Tuple[int, str]]:
    """``hire``'s ``series`` as a list of ``(priority, name)``, in the order given.

    :raises TypeError: not a str, or a list of str and ``(int, str)`` pairs.
    :raises ValueError: empty, or a series listed twice.
    """
    items = [series] if isinstance(series, str) else series
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"series must be a str or a list, not {type(series).__name__}")
    result: List[Tuple[int, str]] = []
    for item in items:
        if isinstance(item, str):
            result.append((0, item))
        elif (
            isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], str)
            and isinstance(item[0], int) and not isinstance(item[0], bool)
        ):
            result.append((item[0], item[1]))
        else:
            raise TypeError(f"series: each item must be a name or a (priority, name) pair, not {item!r}")
    names = [name for _, name in result]
    if not names:
        raise ValueError("series must name at least one series")
    if len(set(names)) != len(names):
        raise ValueError(f"series: a series is listed twice in {names!r}")
    return result
