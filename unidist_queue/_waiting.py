"""Where a :class:`~unidist_queue.TaskHandler`'s waiting tasks live: one small interface.

Internal. :class:`TaskQueue` is what the pool asks of the place where each series'
tasks wait; it has two implementations:

* :class:`MemoryTasks` (here): a handler made without ``mq=``. Its own ``deque`` of
  jobs per series and nothing else: no MessageQueue, no lock. A task is appended to,
  and taken from, its series' deque by single ``deque`` operations, which are atomic
  (under the GIL, and per object on free-threaded builds), so the submitting thread and
  the workers never wait on each other. Every other change (``discard``, ``requeue``,
  ``take_all``) is also made of single atomic deque operations, so it never races a
  take. This is the fast path (``benchmarks/bench_tasks.py``).
* :class:`~unidist_queue._queuetasks.QueueTasks`: any queue-API object passed as
  ``mq=``, through its public methods only; series ``S`` waits in queue ``"task:S"``.

Calling conventions (the pool's lock is "the lock"): :meth:`~TaskQueue.add`,
:meth:`~TaskQueue.done` and :meth:`~TaskQueue.revive` are called without it (``add`` and
``revive`` over ``mq=`` under the pool's ``_submitting`` only); :meth:`~TaskQueue.take_one`
by a worker thread holding only its own mutex (in memory); every other method with the
lock held.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Deque, Dict, List, Optional, Protocol, Sequence

from ._task import Job

if TYPE_CHECKING:
    from ._routing import Series

__all__ = ["MemoryTasks", "TaskQueue", "job_id"]


class TaskQueue(Protocol):
    """The waiting tasks of every series of one pool (see the module for who calls what)."""

    def watch(self, s: Series[Any]) -> None:
        """A new series: get ready to hold its tasks (and hear of tasks others add)."""

    def recover(self) -> List[str]:
        """At start-up: the names of the series that already have tasks waiting."""

    def add(self, s: Series[Any], job: Job) -> None:
        """Queue a new task at the back of ``s``.

        :raises SerializationError, StoreError, ShutDown: as the queue's ``add`` does.
        """

    def discard(self, s: Series[Any], job: Job) -> bool:
        """Remove a just-added ``job`` if it still waits; whether it did."""

    def take(self, s: Series[Any], n: int) -> List[Job]:
        """Up to ``n`` of the oldest waiting tasks of ``s``, now held by the caller."""

    def take_one(self, s: Series[Any]) -> Optional[Job]:
        """The oldest waiting task of ``s`` or ``None`` (a worker's next task)."""

    def done(self, job: Job, value: Any = None, failed: bool = False) -> None:
        """``job`` was taken and ran (or was skipped, cancelled): it leaves for good.
        ``value``: its result (its exception if ``failed``), for a submitter elsewhere."""

    def forget(self, s: Series[Any], job: Job) -> None:
        """A waiting ``job`` was cancelled by its caller: remove it if it can be."""

    def requeue(self, s: Series[Any], jobs: Sequence[Job]) -> None:
        """Put taken ``jobs`` back at the front of ``s``, oldest first (reassigned)."""

    def release(self, jobs: Sequence[Job], give_back: bool) -> None:
        """Taken ``jobs`` of an abandoned worker: back in their queue (``give_back``), or
        handed to the caller (they leave the queue unless it keeps them for a restart)."""

    def take_all(self, s: Series[Any], remove: bool) -> List[Job]:
        """Every waiting task of ``s`` submitted here; removed unless ``remove`` is false
        and the queue keeps its tasks for a restart (tasks of others are left waiting)."""

    def waiting(self, s: Series[Any]) -> int:
        """How many tasks of ``s`` wait (a cancelled one counts until it is skipped)."""

    def prefetched(self, s: Series[Any]) -> int:
        """How many tasks of ``s`` this handler holds in hand, reserved, for its workers
        (its prefetch; counted by :meth:`waiting` too). O(1)."""

    def settled(self, timeout: Optional[float]) -> None:
        """At shutdown, once the workers are done (no lock held): write the settles of
        finished tasks still pending, waiting at most ``timeout`` seconds for a batch
        being written."""

    def next_due(self, s: Series[Any]) -> Optional[float]:
        """When a task of ``s`` may become ready by itself (a delay or a lease ending), as
        the queue's ``next_due`` tells it (its clock time); ``None``: never."""

    def stranded(self) -> List[Job]:
        """The queue holding the tasks was closed: the tasks submitted to it that still
        wait (to fail their futures); forgotten from now on."""

    def revive(self, s: Series[Any]) -> int:
        """Move the tasks of ``s``' dead-letter queue back to ``s``; how many (called with
        no lock held but the pool's ``_submitting``)."""

    def close(self) -> None:
        """The pool shut down: stop listening (no :meth:`add` comes after this)."""

    def unresolved(self) -> List[Job]:
        """The end of a shutdown: the tasks submitted here still awaiting an outcome from
        elsewhere (to cancel them); forgotten from now on, and nothing more will come."""


def job_id(job: Job) -> int:
    """Sort key: a job's id (submission order)."""
    return job.id


class MemoryTasks:
    """A :class:`TaskQueue` of plain deques: a private handler's (see the module).

    A task cancelled while waiting stays in its deque until a worker skips it
    (:meth:`forget` does nothing); :meth:`done` and :meth:`release` have nothing to do.
    """

    def __init__(self) -> None:
        self._queues: Dict[str, Deque[Job]] = {}

    def watch(self, s: Series[Any]) -> None:
        self._queues[s.name] = deque()

    def recover(self) -> List[str]:
        return []

    def add(self, s: Series[Any], job: Job) -> None:
        self._queues[s.name].append(job)  # atomic: see the module

    def discard(self, s: Series[Any], job: Job) -> bool:
        try:
            self._queues[s.name].remove(job)  # atomic; a worker may have taken it meanwhile
        except ValueError:
            return False
        return True

    def take(self, s: Series[Any], n: int) -> List[Job]:
        jobs: List[Job] = []
        while len(jobs) < n:
            job = self.take_one(s)
            if job is None:
                break
            jobs.append(job)
        return jobs

    def take_one(self, s: Series[Any]) -> Optional[Job]:
        try:
            return self._queues[s.name].popleft()  # atomic: see the module
        except IndexError:
            return None

    def done(self, job: Job, value: Any = None, failed: bool = False) -> None:
        pass

    def forget(self, s: Series[Any], job: Job) -> None:
        pass

    def requeue(self, s: Series[Any], jobs: Sequence[Job]) -> None:
        self._queues[s.name].extendleft(sorted(jobs, key=job_id, reverse=True))

    def release(self, jobs: Sequence[Job], give_back: bool) -> None:
        pass

    def take_all(self, s: Series[Any], remove: bool) -> List[Job]:
        return self.take(s, len(self._queues[s.name]))

    def waiting(self, s: Series[Any]) -> int:
        return len(self._queues[s.name])

    def prefetched(self, s: Series[Any]) -> int:
        return 0  # every waiting task is in the deque

    def settled(self, timeout: Optional[float]) -> None:
        pass  # nothing to settle

    def next_due(self, s: Series[Any]) -> Optional[float]:
        return None  # nothing is timed here (never called: workers of a private pool are not timed)

    def stranded(self) -> List[Job]:
        return []  # nothing closes a private deque (never called)

    def revive(self, s: Series[Any]) -> int:
        return 0  # a private handler stores no task by name: none can be dead

    def close(self) -> None:
        pass

    def unresolved(self) -> List[Job]:
        return []  # every task of a private deque runs here
