"""The state and the routing of a :class:`~unidist_queue.TaskHandler`'s pool.

Internal. :class:`PoolBase` holds everything a handler owns (series, workers, the
waiting tasks) and routes tasks to free workers. The :class:`~unidist_queue._pool.Pool`
is assembled from it and two mixins, each in a module of its own:
:mod:`unidist_queue._running` (the worker side) and :mod:`unidist_queue._lifecycle`
(terminate, update, status, shutdown).

Where tasks wait is a :class:`~unidist_queue._waiting.TaskQueue`: private deques for a
handler made without ``mq=``, the queues of ``mq`` otherwise. Tasks that become ready
in those queues without passing through this pool (other code's adds, nacks, leases
ending, this pool's own adds) are heard of by :meth:`PoolBase.ring`, the subscription
callback: it only puts the series in a free worker's inbox, and that worker's thread
routes (:meth:`PoolBase.look`). A submitter routes its own task.

Locking: one lock guards the routing tables, series and workers; a worker's ``mutex``
guards its tasks and counters; over ``mq=``, ``_submitting`` orders each submit (its add
and routing) against ``shutdown``. Lock order: ``_submitting``, the pool's lock, a
worker's mutex (and :mod:`unidist_queue._queuetasks`'s own lock last).
No task, update or callback runs and nothing is logged while either is held (a task
taken from ``mq`` with no live job here imports its function when a worker runs it).
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Set, Tuple

from ._closewatch import CloseWatch
from ._future import FUTURE
from ._queuetasks import QueueTasks
from ._replies import Replies
from ._routing import Series
from ._task import Job
from ._waiting import MemoryTasks, TaskQueue
from ._workers import Worker
from .errors import ShutDown

if TYPE_CHECKING:
    from .api import QueueAPI

__all__ = ["PoolBase", "Saved"]

Saved = Tuple[Optional[str], Callable[..., Any], Tuple[Any, ...], Dict[str, Any]]
"""A saved update: ``(series or None, fn, args, kwargs)``."""

_monotonic = time.monotonic


class PoolBase:
    """What a :class:`~unidist_queue.TaskHandler` owns, and its routing (see the module).

    ``mq``: the queue-API object holding waiting tasks; ``None``: private deques.
    """

    def __init__(self, mq: Optional[QueueAPI]) -> None:
        self._private = mq is None
        queued = None if mq is None else QueueTasks(mq, self.ring, self._recovered, self._spare)
        self._tasks: TaskQueue = MemoryTasks() if queued is None else queued
        self._replies: Optional[Replies] = None if queued is None else queued.replies
        # One lock for the routing tables, series and workers (a worker's tasks and
        # counters are under its own mutex). No Condition waits on it: threads are
        # joined, and an idle worker thread waits on its inbox (a SimpleQueue).
        self._lock = threading.Lock()
        self._submitting = threading.Lock()  # over mq=: a submit's add and routing; shutdown
        self._own_add = threading.local()  # .queue: the task queue this thread adds to now
        self._series: Dict[str, Series[Worker]] = {}
        self._workers: Dict[int, Worker] = {}
        self._resumed: Set[Job] = set()  # reassigned tasks whose future is already running
        self._saved: List[Saved] = []
        self._task_ids = itertools.count(1)  # next() is atomic: ids 1, 2, 3...
        self._worker_ids = 0
        self._stamps = itertools.count(1)  # last_used stamps (least recently used first)
        self._live = 0  # threads of workers not abandoned, not yet exited
        self._shut = False
        self._at_exit = False  # shut down by the interpreter's exit
        self._mq_gone = False  # shut down because mq= was closed under it
        self._watch: Optional[CloseWatch] = None  # over mq=: hears mq.close() (set by the Pool)
        self.owner: Any = None  # a weak reference to the facade (set by the facade)

    def closed(self) -> ShutDown:
        """The error for a call made after shutdown."""
        if self._at_exit:
            return ShutDown("the TaskHandler is shut down: no new task after interpreter shutdown")
        if self._mq_gone:
            return ShutDown("the TaskHandler is shut down: its MessageQueue was closed")
        return ShutDown("the TaskHandler is shut down")

    def _recovered(
        self, series: str, fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> Job:
        """A job for a stored task found in a queue (nobody waits on its future)."""
        return Job(next(self._task_ids), series, fn, args, kwargs, FUTURE(), _monotonic(), 0, True)

    def _spare(self, s: Series[Worker]) -> int:
        """With the lock held: the slots of the workers qualified for ``s`` (the prefetch
        of its queue: :mod:`unidist_queue._prefetch`). O(workers of ``s``)."""
        workers = self._workers
        return sum(workers[i].slots for i in s.qualified if i in workers)

    # -- hearing of ready tasks (any thread, no lock) -----------------------------------------

    def ring(self, queue: str) -> None:
        """Tasks became ready in ``queue``: wake a free worker of its series to route them.

        A subscription callback: it runs in whatever thread made the change (this pool's
        lock may be held there), so it takes no lock and never blocks; it only puts the
        series in the inbox of a free worker (:meth:`Series.peek`). With no free worker
        there is nothing to do: a worker turning free looks at its queues.
        """
        if queue == getattr(self._own_add, "queue", None):
            return  # this thread's own submit: it routes the task itself
        s = self._series.get(queue[5:])
        if s is None or self._shut:
            return
        worker = s.peek()
        if worker is not None:
            worker.inbox.put(s)

    def look(self, worker: Worker, s: Series[Worker]) -> Optional[Job]:
        """From a thread of ``worker``, rung for ``s``: route its ready tasks; maybe run one.

        A worker draining at shutdown is no longer routed to: it takes one task for this
        thread to run (nothing goes into its inbox after its stop marks). Otherwise the
        ready tasks go to the best free workers (this one or others: also when this one
        is being removed, so the ring is not lost).
        """
        with self._lock:
            if worker.retiring and worker.active and len(worker.assigned) < worker.slots:
                jobs = self._take_for(worker, 1)
                return jobs[0] if jobs else None
            self._pump(s)
        return None

    # -- routing (lock held) ------------------------------------------------------------------

    def _series_of(self, name: str) -> Series[Worker]:
        s = self._series.get(name)
        if s is None:
            s = Series(name)
            self._tasks.watch(s)
            self._series[name] = s
        return s

    def _assign(self, worker: Worker, s: Series[Worker], task: Job) -> None:
        """Give ``task`` to ``worker``'s inbox (it has a free slot)."""
        self._claim(worker, s, task)
        worker.put(task)

    def _claim(self, worker: Worker, s: Series[Worker], task: Job) -> None:
        """Book ``task`` on ``worker``: a slot taken, the worker used now."""
        with worker.mutex:
            worker.assigned[task] = None
            worker.last_used = next(self._stamps)
            full = len(worker.assigned) >= worker.slots
        if full:
            for p, ws in worker.series:
                ws.set_busy(worker, p)

    def _take_for(self, worker: Worker, n: int) -> List[Job]:
        """Up to ``n`` of the oldest waiting tasks of ``worker``'s series, in its listed
        order, claimed for it. Tasks that this take prefetched go to the other free
        workers at once (:meth:`_pump`)."""
        jobs: List[Job] = []
        for _, s in worker.series:
            for job in self._tasks.take(s, n - len(jobs)):
                self._claim(worker, s, job)
                jobs.append(job)
            if s.has_free() and self._tasks.prefetched(s):
                self._pump(s)
            if len(jobs) >= n:
                break
        return jobs

    def _fill(self, worker: Worker) -> None:
        """Give an idle ``worker`` waiting tasks for its free slots; then mark it free."""
        free = worker.slots - len(worker.assigned)
        if free <= 0:
            return
        jobs = self._take_for(worker, free)
        for job in jobs:
            worker.put(job)
        if len(jobs) < free:
            self._mark_free(worker)

    def _mark_free(self, worker: Worker) -> None:
        """``worker`` found nothing to take and has a free slot: route to it from now on.

        A submitter may have queued a task without the lock after the worker looked
        (see :meth:`Pool.submit`): look again once marked free, and pump.
        """
        if worker.retiring or not worker.active:
            return
        for p, s in worker.series:
            s.set_free(worker, p)
        for _, s in worker.series:
            if self._tasks.waiting(s):
                self._pump(s)

    def _reroute(self, worker: Worker) -> None:
        """``worker`` was taken out of the routing: a ring it was given goes to the others."""
        if not self._private:
            for _, s in worker.series:
                if self._tasks.waiting(s):
                    self._pump(s)

    def _pump(self, s: Series[Worker]) -> None:
        """Hand waiting tasks of ``s`` to its free workers, best first."""
        worker = s.pick()
        while worker is not None:
            jobs = self._tasks.take(s, worker.slots - len(worker.assigned))
            if not jobs:
                break
            for job in jobs:
                self._assign(worker, s, job)
            worker = s.pick()
