"""The core of a :class:`~unidist_queue.TaskHandler`: its state, routing and worker side.

Internal. A :class:`Pool` holds everything a handler owns (series, workers, the task
store) and does the routing; :class:`~unidist_queue.TaskHandler` is the public facade
the user holds, and the only object holding it. Worker threads hold the pool, never the
facade: when nobody references the facade any more, a weak reference's callback
(:meth:`Pool.orphaned`) wakes one thread of every worker, which shuts the pool down as
``shutdown(wait=False)`` would; the workers run every task they can and their threads
exit. This is ``ThreadPoolExecutor``'s arrangement, whose threads hold the work queue
and the executor only weakly.

Dispatch happens in the submitting or finishing thread: there is no dispatcher thread.
Routing to a free worker takes the pool's lock; in memory, a submitter that finds no
free worker queues its task without it, and a busy worker takes its next task under its
own mutex (see :meth:`Pool.submit` and :meth:`Pool.run_tasks`).

Locking: one lock guards the routing tables, series and workers; a worker's ``mutex``
guards its tasks and counters; lock order is the pool's lock, then a worker's mutex,
then the MessageQueue's mutex (see :mod:`unidist_queue._workers`). No task, update or
callback runs and nothing is logged while any of them is held (the one exception:
adopting a durable task added through the public API imports its function).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from concurrent.futures import Future, InvalidStateError
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from . import _lifecycle
from ._routing import Series
from ._task import Job
from ._taskstore import TaskStore
from ._workers import ORPHANED, Update, Worker, serve
from .errors import ShutDown
from .queues import MessageQueue

__all__ = ["Pool"]

logger = logging.getLogger("unidist_queue.tasks")
_GONE: Any = object()
_monotonic = time.monotonic


class Pool:
    """What a :class:`~unidist_queue.TaskHandler` owns; worker threads hold this, not it.

    ``mq``: the MessageQueue holding waiting tasks (``None``: a private in-memory one,
    closed once the pool is shut down and its threads ended).
    """

    def __init__(self, mq: Optional[MessageQueue]) -> None:
        self._own_mq = mq is None
        self._mq = MessageQueue() if mq is None else mq
        self._store = TaskStore(self._mq, private=self._own_mq)
        self._persistent = self._mq._persistent  # fixed for the MessageQueue's life
        # One lock for the routing tables, series and workers (a worker's tasks and
        # counters are under its own mutex). No Condition waits on it: threads are
        # joined, and an idle worker thread waits on its inbox (a SimpleQueue).
        self._lock = threading.Lock()
        self._series: Dict[str, Series] = {}
        self._workers: Dict[int, Worker] = {}
        self._resumed: Set[Job] = set()  # reassigned tasks whose future is already running
        self._saved: List[Tuple[Optional[str], Callable[..., Any], Tuple[Any, ...], Dict[str, Any]]] = []
        self._task_ids = itertools.count(1)  # next() is atomic: ids 1, 2, 3...
        self._worker_ids = 0
        self._stamps = itertools.count(1)  # last_used stamps (least recently used first)
        self._live = 0  # threads of workers not abandoned, not yet exited
        self._shut = False
        self._at_exit = False  # shut down by the interpreter's exit
        self._mq_closed = False
        self.owner: Any = None  # a weak reference to the facade (set by the facade)
        for name in self._store.recover(self._recovered_task):
            self._series_of(name)

    def closed(self) -> ShutDown:
        """The error for a call made after shutdown."""
        if self._at_exit:
            return ShutDown("the TaskHandler is shut down: no new task after interpreter shutdown")
        return ShutDown("the TaskHandler is shut down")

    # -- submitting ---------------------------------------------------------------------------

    def submit(
        self, series: str, fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> Future[Any]:
        """Make the future and route the task: the submit path of the pool.

        In memory, a task for a series with no free worker is appended to its queue
        without the pool's lock (under the MessageQueue's mutex, or none for a private
        one: see :class:`~unidist_queue._taskstore.TaskStore`), so a busy pool's submitter
        and finishing workers do not contend. A worker that turns free at that
        moment either sees the task (it marks itself free, then looks at its queues:
        :meth:`_mark_free`) or is seen here afterwards (:meth:`_settle`): every step is
        atomic under the GIL, so one of the two hands the task over.
        """
        if not callable(fn):
            raise TypeError("fn must be callable")
        future: Future[Any] = Future()
        if self._persistent:
            self._submit_durable(series, fn, args, kwargs, future)
            return future
        if self._shut:
            raise self.closed()
        job = Job(next(self._task_ids), series, fn, args, kwargs, future, _monotonic())
        s = self._series.get(series)
        if s is None or s.has_free():
            self._route(series, job)
        else:
            self._store.push(s, job)
            if self._shut or s.has_free():
                self._settle(s, job)
        return future

    def _route(self, series: str, job: Job) -> None:
        """Under the lock: give ``job`` to the best free worker, or queue it."""
        with self._lock:
            if self._shut:
                raise self.closed()
            s = self._series_of(series)
            worker = s.pick()
            if worker is None:
                self._store.push(s, job)
            else:
                self._assign(worker, s, job)

    def _settle(self, s: Series, job: Job) -> None:
        """``job`` was queued without the lock, but a worker is free or the pool shut down."""
        with self._lock:
            if self._shut and self._store.discard(s, job):
                raise self.closed()
            self._pump(s)

    def _submit_durable(
        self, series: str, fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any],
        future: Future[Any],
    ) -> None:
        """Store, then route or queue a task of a persistent MessageQueue (a durable series)."""
        if self._shut:
            raise self.closed()
        stored = self._store.encode("task:" + series, fn, args, kwargs)
        while True:
            with self._lock:
                if self._shut:
                    raise self.closed()
                result, seq = self._enqueue(series, fn, args, kwargs, future, stored)
            if result is not None:
                break
            stored = self._store.encode("task:" + series, fn, args, kwargs)  # became durable
        self._store.commit(seq)
        if result.msg_id:
            job = result
            future.add_done_callback(lambda f: self._forget(job) if f.cancelled() else None)

    def _forget(self, job: Job) -> None:
        """A durable task was cancelled by its caller: it leaves the store unless running.

        Not after shutdown, which keeps waiting durable tasks for a restart (checked
        under the lock, which orders this against ``shutdown`` setting ``_shut``).
        """
        with self._lock:
            if self._shut:
                return
            seq = self._store.forget(job)
        self._store.commit(seq)

    def _enqueue(
        self, series: str, fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any],
        future: Future[Any], stored: Any,
    ) -> Tuple[Optional[Job], int]:
        """With the lock held: route a new task, or queue it. ``(None, 0)``: encode first."""
        s = self._series.get(series) or self._series_of(series)
        worker = s.pick()
        now = _monotonic()

        def make(msg_id: int) -> Job:
            return Job(next(self._task_ids), series, fn, args, kwargs, future, now, msg_id)

        result, seq = self._store.add(s, make, stored, worker is not None)
        if result is not None and worker is not None:
            self._assign(worker, s, result)
        return result, seq

    def _recovered_task(
        self, series: str, fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any], msg_id: int
    ) -> Job:
        return Job(next(self._task_ids), series, fn, args, kwargs, Future(), _monotonic(), msg_id, True)

    # -- routing (lock held) ----------------------------------------------------------------------

    def _series_of(self, name: str) -> Series:
        s = self._series.get(name)
        if s is None:
            s = self._series[name] = Series(name)
        return s

    def _assign(self, worker: Worker, s: Series, task: Job) -> None:
        """Give ``task`` to ``worker``'s inbox (it has a free slot)."""
        self._claim(worker, s, task)
        worker.put(task)

    def _claim(self, worker: Worker, s: Series, task: Job) -> None:
        """Book ``task`` on ``worker``: a slot taken, the worker used now."""
        with worker.mutex:
            worker.assigned[task] = None
            worker.tallies[s.name].running += 1
            worker.last_used = next(self._stamps)
            full = len(worker.assigned) >= worker.slots
        if full:
            for p, ws in worker.series:
                ws.set_busy(worker, p)

    def _take_for(self, worker: Worker) -> Tuple[Optional[Job], int]:
        """The oldest waiting task of ``worker``'s series, in its listed order, claimed."""
        for _, s in worker.series:
            task, seq = self._store.pop(s)
            if task is not None:
                self._claim(worker, s, task)
                return task, seq
        return None, 0

    def _fill(self, worker: Worker) -> int:
        """Give an idle ``worker`` waiting tasks for its free slots; then mark it free."""
        seq = 0
        while len(worker.assigned) < worker.slots:
            task, seq2 = self._take_for(worker)
            seq = seq2 or seq
            if task is None:
                seq = self._mark_free(worker) or seq
                break
            worker.put(task)
        return seq

    def _mark_free(self, worker: Worker) -> int:
        """``worker`` found nothing to take and has a free slot: route to it from now on.

        A submitter may have queued a task without the lock after the worker looked
        (see :meth:`submit`): look again once marked free, and pump.
        """
        if worker.retiring or not worker.active:
            return 0
        seq = 0
        for p, s in worker.series:
            s.set_free(worker, p)
        for _, s in worker.series:
            if self._store.waiting(s):
                seq = self._pump(s) or seq
        return seq

    def _pump(self, s: Series) -> int:
        """Hand waiting tasks of ``s`` to its free workers."""
        seq = 0
        worker = s.pick()
        while worker is not None:
            task, seq2 = self._store.pop(s)
            seq = seq2 or seq
            if task is None:
                break
            self._assign(worker, s, task)
            worker = s.pick()
        return seq

    # -- called by worker threads -------------------------------------------------------------------

    def run_tasks(self, worker: Worker, box: List[Optional[Job]]) -> Optional[Job]:
        """Run the task in ``box`` (emptied) in this worker thread, then each task it takes next.

        Returns ``None`` when the worker has nothing more to run (it is marked free) or
        was abandoned, or the next task when an update is pending (the caller runs it
        first). The hot path of the pool, so written flat: for each task the
        bookkeeping (counters, the slot freed, the next task taken) is done before its
        future is resolved; in memory, a busy worker does it under its own mutex and the
        queue's, never the pool's lock, which it takes only when it turns free; a
        durable store goes through :meth:`_finish_durable`.

        No reference to a finished task, its function, arguments or result outlives it
        here (the caller hands the task over in ``box`` so it keeps none either), and a
        task's exception leaves without this frame in its traceback.
        """
        resumed = self._resumed
        memory = not self._persistent
        take = self._store.take
        assigned, tallies, mutex = worker.assigned, worker.tallies, worker.mutex
        task = box[0]
        box[0] = None
        while task is not None:
            if worker.abandoned:
                return None  # given to it before it was abandoned: terminate returned it
            future = task.future
            failed = False
            if task in resumed or future.set_running_or_notify_cancel():
                start = _monotonic()
                try:
                    value = task.fn(*task.args, **task.kwargs)
                except BaseException as exc:
                    value = _without_caller(exc)
                    failed = True
                    del exc
                end = _monotonic()
            else:  # cancelled while waiting
                start = end = -1.0
                value = None
            nxt: Optional[Job] = None
            with mutex:
                if assigned.pop(task, _GONE) is _GONE:
                    return None  # abandoned: the output is discarded
                tally = tallies[task.series]
                tally.running -= 1
                if start >= 0:  # the counters of Tally, inline
                    tally.processed += 1
                    queued = start - task.queued_at
                    tally.queued_sum += queued
                    if queued > tally.queued_max:
                        tally.queued_max = queued
                    run = end - start
                    tally.run_sum += run
                    if run > tally.run_max:
                        tally.run_max = run
                    if failed:
                        tally.failed += 1
                if resumed:
                    resumed.discard(task)
                if memory and worker.active:
                    for _, ws in worker.series:
                        nxt = take(ws)
                        if nxt is not None:
                            assigned[nxt] = None
                            tallies[ws.name].running += 1
                            worker.last_used = next(self._stamps)
                            break
            if not memory:
                nxt = self._finish_durable(worker, task)
            elif nxt is None and worker.active and len(assigned) < worker.slots:
                nxt = self._turn_free(worker)
            if start >= 0:
                if failed or task.recovered:
                    self._resolve(task, value, failed)
                else:
                    try:
                        future.set_result(value)
                    except InvalidStateError:  # resolved elsewhere meanwhile (reassigned)
                        logger.debug("future of %r already resolved", task)
            del value, future  # the worker keeps nothing of a finished task
            if worker.updates:
                return nxt
            task = nxt
        return None

    def _turn_free(self, worker: Worker) -> Optional[Job]:
        """An in-memory worker found its queues empty: mark it free, or, while it drains at
        shutdown, look once more under the lock and return what it finds.

        The lock orders that look after ``shutdown`` set ``_shut``, so a task queued
        without the lock by a submitter that still saw the pool open is found here.
        """
        with self._lock:
            if not worker.retiring:
                self._mark_free(worker)
                return None
            return self._take_for(worker)[0] if worker.active else None

    def _finish_durable(self, worker: Worker, task: Job) -> Optional[Job]:
        """Ack a finished task of a persistent MessageQueue; take the worker's next task."""
        with self._lock:
            seq = self._store.ack(task) if task.msg_id else 0
            nxt, seq2 = self._take_for(worker) if worker.active else (None, 0)
            if nxt is None and len(worker.assigned) < worker.slots:
                seq2 = self._mark_free(worker) or seq2
        self._store.commit(seq2 or seq)
        return nxt

    @staticmethod
    def _resolve(task: Job, value: Any, failed: bool) -> None:
        """Settle a task that failed or was recovered (``run_tasks`` sets plain results).

        A recovered task has no caller: its result is dropped and its exception logged.
        """
        if task.recovered:
            if failed:
                logger.error("recovered task %r raised", task, exc_info=value)
            return
        try:
            task.future.set_exception(value)
        except InvalidStateError:  # resolved elsewhere meanwhile (reassigned)
            logger.debug("future of %r already resolved", task)

    def activate(self, worker: Worker) -> None:
        """A new worker ran its saved updates: it starts taking tasks."""
        with self._lock:
            seq = 0
            if self._workers.get(worker.id) is worker and not worker.retiring:
                worker.active = True
                seq = self._fill(worker)
        self._store.commit(seq)

    def exited(self, worker: Worker) -> None:
        """A worker thread ends."""
        with self._lock:
            if not worker.abandoned:
                worker.live -= 1
                self._live -= 1
                if worker.live == 0:
                    if self._workers.get(worker.id) is worker:
                        del self._workers[worker.id]
                        _lifecycle.leave(worker)
                    _lifecycle.retire_tallies(worker)
            close = self._shut and self._live == 0 and self._own_mq and not self._mq_closed
            if close:
                self._mq_closed = True
        if close:
            self._mq.close()

    def orphaned(self, _ref: Any = None) -> None:
        """The facade is gone (a weak reference's callback): wake a thread of every worker.

        It may run in any thread, in the middle of anything (a garbage collection), so
        it takes no lock: it only puts a mark in each worker's inbox; the thread that
        takes it calls :meth:`release`.
        """
        for worker in list(self._workers.values()):
            worker.inbox.put(ORPHANED)

    def release(self) -> None:
        """From a worker thread, once the facade is gone: ``shutdown(wait=False)``."""
        _lifecycle.shutdown(self, False, False, None)

    # -- workers ----------------------------------------------------------------------------------

    def hire(self, pairs: List[Tuple[int, str]], slots: int, name: Optional[str]) -> int:
        """Hire a worker (arguments checked by the facade); return its id."""
        with self._lock:
            if self._shut:
                raise self.closed()
            worker, replay = self._new_worker(pairs, slots, name)
            seq = 0 if replay else self._fill(worker)
        self._store.commit(seq)
        for thread in worker.threads:
            thread.start()
        return worker.id

    def _new_worker(
        self, pairs: List[Tuple[int, str]], slots: int, name: Optional[str]
    ) -> Tuple[Worker, List[Update]]:
        self._worker_ids += 1
        wid = self._worker_ids
        worker = Worker(wid, name or f"worker-{wid}", [(p, self._series_of(n)) for p, n in pairs], slots)
        worker.last_used = next(self._stamps)
        for p, s in worker.series:
            worker.tallies[s.name] = s.join(worker, p)
        names = {n for _, n in pairs}
        replay = [Update(fn, a, k, None) for ser, fn, a, k in self._saved if ser is None or ser in names]
        for i in range(slots):
            worker.threads.append(threading.Thread(
                target=serve, args=(self, worker, replay if i == 0 else ()),
                name=f"{worker.name}_{i}", daemon=True,
            ))
        worker.live = slots
        self._live += slots
        self._workers[wid] = worker
        worker.active = not replay
        return worker, replay

    def roster(self, series: Optional[str]) -> List[int]:
        with self._lock:
            if series is None:
                return [w.id for w in self._workers.values() if not w.retiring]
            s = self._series.get(series)
            return [] if s is None else [i for i in s.qualified if not self._workers[i].retiring]

    def threads(self) -> Set[threading.Thread]:
        """The threads of the current workers (retiring ones included)."""
        with self._lock:
            return {t for w in self._workers.values() for t in w.threads}


def _without_caller(exc: BaseException) -> BaseException:
    """``exc`` caught in :meth:`Pool.run_tasks`, without that frame in its traceback.

    The frame holds the pool and the worker: a failed task's future would keep them
    alive (and a reference cycle through the frame would keep the task itself until a
    garbage collection). The traceback keeps the frames of the task's own code.
    """
    tb = exc.__traceback__
    return exc.with_traceback(None if tb is None else tb.tb_next)
