"""Routing tables of a :class:`~unidist_queue.TaskHandler`: series, free workers, naming.

Internal. A :class:`Series` holds, for one series, the free workers qualified for it
bucketed by priority (highest first, least recently used first within a bucket) and
the counters reported by ``status()``. Every method here is called with the handler's
lock held; none of them logs, blocks or calls user code.

Functions of a durable series are stored by importable name (:func:`name_of`) and found
again after a restart (:func:`resolve`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from .errors import SerializationError

if TYPE_CHECKING:
    from ._workers import Worker

__all__ = ["Series", "SeriesSpec", "Tally", "name_of", "parse_series", "resolve"]

SeriesSpec = Union[str, Sequence[Union[str, Tuple[int, str]]]]
"""What ``hire`` accepts: a name, or a list of names and ``(priority, name)`` pairs."""


class Tally:
    """Counters of one worker for one series (``status()`` adds them up).

    Written by the worker's threads under the worker's ``mutex`` (so the hot path takes
    no shared lock; ``TaskHandler.run_tasks`` counts a finished task inline); read
    without a lock by ``status()`` (each field read is atomic).
    """

    __slots__ = ("failed", "processed", "queued_max", "queued_sum", "run_max", "run_sum", "running")

    def __init__(self) -> None:
        self.running = 0  # tasks given to the worker (its inbox, or running)
        self.processed = 0  # tasks that ran, failed ones included
        self.failed = 0
        self.queued_sum = self.queued_max = 0.0
        self.run_sum = self.run_max = 0.0

    def fold(self, other: Tally) -> None:
        """Add ``other``'s finished counts to this one (``running`` excluded)."""
        self.processed += other.processed
        self.failed += other.failed
        self.queued_sum += other.queued_sum
        self.queued_max = max(self.queued_max, other.queued_max)
        self.run_sum += other.run_sum
        self.run_max = max(self.run_max, other.run_max)


class Series:
    """One series: its queue name, its free qualified workers and its counters.

    ``free[p]`` maps worker id to worker for the free workers (a slot open, taking
    tasks) that serve this series at priority ``p``; ``prios`` lists the priorities of
    all qualified workers, highest first. Choosing a worker costs O(p + f) for p
    priorities and f free workers of the best bucket. Counters live in one
    :class:`Tally` per worker (``tallies``, by worker id) until the worker is gone,
    then in ``past``.
    """

    __slots__ = ("free", "name", "past", "prios", "qualified", "queue", "tallies")

    def __init__(self, name: str) -> None:
        self.name = name
        self.queue = "task:" + name
        self.free: Dict[int, Dict[int, Worker]] = {}
        self.prios: List[int] = []
        self.qualified: Dict[int, int] = {}  # worker id -> priority, in hire order
        self.tallies: Dict[int, Tally] = {}  # worker id -> its counters, while it lives
        self.past = Tally()  # counters of the workers that are gone

    # -- qualified workers -------------------------------------------------------------

    def join(self, worker: Worker, priority: int) -> Tally:
        """Add ``worker`` to the qualified workers (not yet free); return its tally."""
        self.qualified[worker.id] = priority
        if priority not in self.free:
            self.free[priority] = {}
            self.prios = sorted(self.free, reverse=True)
        tally = self.tallies[worker.id] = Tally()
        return tally

    def leave(self, worker: Worker) -> None:
        """Remove ``worker`` from the routing of this series (free or not)."""
        priority = self.qualified.pop(worker.id, None)
        if priority is not None:
            self.free[priority].pop(worker.id, None)

    def retire_tally(self, worker_id: int) -> None:
        """The worker is gone: keep its finished counts in ``past``."""
        self.past.fold(self.tallies.pop(worker_id, _NO_TALLY))

    def set_free(self, worker: Worker, priority: int) -> None:
        self.free[priority][worker.id] = worker

    def set_busy(self, worker: Worker, priority: int) -> None:
        self.free[priority].pop(worker.id, None)

    def has_free(self) -> bool:
        """Whether a qualified worker is free. Safe without the lock (atomic reads)."""
        free = self.free
        for p in self.prios:  # noqa: SIM110 - a plain loop: no generator on the hot path
            if free[p]:
                return True
        return False

    def pick(self) -> Optional[Worker]:
        """The free worker with the highest priority, least recently used first."""
        for p in self.prios:
            bucket = self.free[p]
            if bucket:
                if len(bucket) == 1:
                    return next(iter(bucket.values()))
                return min(bucket.values(), key=_last_used)
        return None

    # -- counters -------------------------------------------------------------------------

    def status(self, waiting: int) -> Dict[str, Any]:
        """The JSON-serializable status entry of this series."""
        total = Tally()
        total.fold(self.past)
        running = 0
        for tally in list(self.tallies.values()):
            total.fold(tally)
            running += tally.running
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


def _last_used(worker: Worker) -> int:
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


def name_of(fn: Callable[..., Any]) -> str:
    """The importable name ``"module:qualname"`` of ``fn``.

    :raises SerializationError: ``fn`` cannot be imported back under that name
        (a lambda, a local function, a bound method, a callable object...).
    """
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        raise SerializationError(f"{fn!r} has no importable name (durable tasks need module-level functions)")
    name = f"{module}:{qualname}"
    try:
        found = resolve(name)
    except Exception as exc:
        raise SerializationError(f"{fn!r} cannot be imported back as {name!r}: {exc}") from exc
    if found is not fn and found != fn:
        raise SerializationError(f"{name!r} names another object than {fn!r}")
    return name


def resolve(name: str) -> Callable[..., Any]:
    """Import the function named ``"module:qualname"``.

    :raises ImportError, AttributeError: it cannot be found.
    :raises TypeError: what it names is not callable.
    """
    module, _, qualname = name.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{name!r} is not callable")
    return obj  # type: ignore[no-any-return]
