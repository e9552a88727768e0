"""TaskHandler: a pool of worker threads fed from MessageQueue queues, as an Executor.

:class:`TaskHandler` is a :class:`concurrent.futures.Executor`. Tasks belong to a
*series*; a worker serves one or more series, each at a priority. Series ``S`` waits in
queue ``"task:S"`` of the handler's :class:`~unidist_queue.MessageQueue`; when that
queue is durable, its tasks survive a crash and run again after a restart.

Routing (after EventMQ's router): a new task goes at once to the free worker with the
highest priority for its series, equal priorities taking turns (least recently used
first). A worker that frees a slot takes the oldest waiting task of its series, looking
at them in the order it listed them. Dispatch happens in the submitting or finishing
thread: there is no dispatcher thread. Routing to a free worker takes the handler's
lock; in memory, a submitter that finds no free worker queues its task without it, and
a busy worker takes its next task under its own mutex (see ``_submit`` and
``run_tasks``).

Locking: one handler lock guards the routing tables, series and workers; a worker's
``mutex`` guards its tasks and counters; lock order is the handler's lock, then a
worker's mutex, then the MessageQueue's mutex (see :mod:`unidist_queue._workers`). No
task, update or callback runs and nothing is logged while any of them is held (the one
exception: adopting a durable task added through the public API imports its function).
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
import time
from concurrent.futures import Executor, Future, InvalidStateError
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Set, Tuple, TypeVar

from . import _lifecycle
from ._routing import Series, SeriesSpec, parse_series
from ._task import Job, Task
from ._taskstore import TaskStore
from ._workers import Update, Worker, serve
from .errors import ShutDown
from .queues import MessageQueue

if TYPE_CHECKING:
    from typing import ParamSpec

    P = ParamSpec("P")

__all__ = ["Task", "TaskHandler", "default_workers"]

logger = logging.getLogger(__name__)
T = TypeVar("T")
_GONE: Any = object()
_monotonic = time.monotonic


def default_workers() -> int:
    """How many workers ``TaskHandler()`` hires: as many threads as ``ThreadPoolExecutor()``
    of the running Python may start.

    ``min(32, (os.process_cpu_count() or 1) + 4)`` on Python 3.13+ (the CPUs this process
    may use), ``min(32, (os.cpu_count() or 1) + 4)`` before, as in each version's
    ``concurrent/futures/thread.py``.
    """
    if sys.version_info >= (3, 13):
        cpus = os.process_cpu_count()
    else:
        cpus = os.cpu_count()
    return min(32, (cpus or 1) + 4)


class TaskHandler(Executor):
    """A pool of worker threads, routing tasks by series and priority; an ``Executor``.

    ``TaskHandler(max_workers=None, *, mq=None)``: ``max_workers=N`` hires N workers
    (one thread each) for the ``"default"`` series at once; ``None`` hires as many as
    ``ThreadPoolExecutor()`` would run (:func:`default_workers`: ``min(32, CPUs + 4)``);
    ``0`` hires none yet (tasks wait for a :meth:`hire`). ``mq``: the MessageQueue holding
    waiting tasks (a private in-memory one if omitted, closed by :meth:`shutdown`; one
    passed in is left open; close it only after :meth:`shutdown`, as tasks still
    waiting in a closed queue can neither run nor be handed back). Tasks move fastest
    through the private one: nothing else can reach it, so they are handed over by
    single atomic deque operations, without its lock (and its task queues keep no
    ``stats`` counters). Tasks found in the durable ``"task:*"`` queues of ``mq`` (left by
    a process that died) run again once a qualified worker is hired.

    Methods by purpose:

    * submitting: :meth:`submit`, :meth:`submit_to`, :meth:`map` (as ``Executor.map``)
    * workers: :meth:`hire`, :meth:`roster`, :meth:`terminate`, :meth:`update`
    * the rest: :meth:`status`, :meth:`shutdown` (also a context manager)

    Worker threads are daemon threads named after their worker: :meth:`shutdown` with
    ``wait=True`` joins them, and a thread abandoned by ``terminate`` or a shutdown
    ``timeout`` never blocks interpreter exit. Thread-safety: every method may be called
    from any thread, tasks included (a task must not wait on its own worker's
    termination).

    :raises TypeError, ValueError: a bad ``max_workers`` or ``mq``.
    """

    def __init__(self, max_workers: Optional[int] = None, *, mq: Optional[MessageQueue] = None) -> None:
        if max_workers is not None and (isinstance(max_workers, bool) or not isinstance(max_workers, int)):
            raise TypeError(f"max_workers must be an int or None, not {type(max_workers).__name__}")
        if max_workers is not None and max_workers < 0:
            raise ValueError(f"max_workers must be >= 0, not {max_workers}")
        if mq is not None and not isinstance(mq, MessageQueue):
            raise TypeError(f"mq must be a MessageQueue, not {type(mq).__name__}")
        self._own_mq = mq is None
        self._mq = MessageQueue() if mq is None else mq
        self._store = TaskStore(self._mq, private=self._own_mq)
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
        self._mq_closed = False
        for name in self._store.recover(self._recovered_task):
            self._series_of(name)
        for _ in range(default_workers() if max_workers is None else max_workers):
            self.hire()

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` in series ``"default"``; return its ``Future``.

        Cost: O(1) plus routing. Thread-safe.

        :raises ShutDown: after :meth:`shutdown`.
        :raises SerializationError: the series is durable and the task cannot be stored.
        """
        return self._submit("default", fn, args, kwargs)

    def submit_to(self, series: str, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` on a worker qualified for ``series``; return its ``Future``.

        The task goes at once to the best free worker, or waits in queue
        ``"task:<series>"`` (also when no worker serves the series yet: it waits for a
        hire). Cancel a waiting task with ``future.cancel()``. For a durable series the
        task is stored (function by importable name) before this returns.

        Cost: O(1) plus routing (O(p + f) for p priorities, f free workers). Thread-safe.

        :raises ShutDown: after :meth:`shutdown`, or the MessageQueue is closed.
        :raises SerializationError: the series is durable and ``fn`` has no importable
            name, or the arguments cannot be serialized; nothing was stored.
        :raises TypeError: ``series`` is not a str or ``fn`` is not callable.
        """
        if not isinstance(series, str):
            raise TypeError(f"series must be a str, not {type(series).__name__}")
        return self._submit(series, fn, args, kwargs)

    def _submit(
        self, series: str, fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> Future[Any]:
        """Make the future and route the task: the submit path of the pool.

        In memory, a task for a series with no free worker is appended to its queue
        without the handler's lock (under the MessageQueue's mutex, or none for a private
        one: see :class:`~unidist_queue._taskstore.TaskStore`), so a busy pool's submitter
        and finishing workers do not contend. A worker that turns free at that
        moment either sees the task (it marks itself free, then looks at its queues:
        :meth:`_mark_free`) or is seen here afterwards (:meth:`_settle`): every step is
        atomic under the GIL, so one of the two hands the task over.
        """
        if not callable(fn):
            raise TypeError("fn must be callable")
        future: Future[Any] = Future()
        if self._mq._persistent:
            self._submit_durable(series, fn, args, kwargs, future)
            return future
        if self._shut:
            raise ShutDown("the TaskHandler is shut down")
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
                raise ShutDown("the TaskHandler is shut down")
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
                raise ShutDown("the TaskHandler is shut down")
            self._pump(s)

    def _submit_durable(
        self, series: str, fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any],
        future: Future[Any],
    ) -> None:
        """Store, then route or queue a task of a persistent MessageQueue (a durable series)."""
        if self._shut:
            raise ShutDown("the TaskHandler is shut down")
        stored = self._store.encode("task:" + series, fn, args, kwargs)
        while True:
            with self._lock:
                if self._shut:
                    raise ShutDown("the TaskHandler is shut down")
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

        Not after :meth:`shutdown`, which keeps waiting durable tasks for a restart
        (checked under the lock, which orders this against ``shutdown`` setting ``_shut``).
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
        (see :meth:`_submit`): look again once marked free, and pump.
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

    def run_tasks(self, worker: Worker, task: Job) -> Optional[Job]:
        """Run ``task`` in this worker thread, then each task the worker takes next.

        Returns ``None`` when the worker has nothing more to run (it is marked free) or
        was abandoned, or the next task when an update is pending (the caller runs it
        first). The hot path of the pool, so written flat: for each task the
        bookkeeping (counters, the slot freed, the next task taken) is done before its
        future is resolved; in memory, a busy worker does it under its own mutex and the
        queue's, never the handler's lock, which it takes only when it turns free; a
        durable store goes through :meth:`_finish_durable`.
        """
        resumed = self._resumed
        memory = not self._mq._persistent
        take = self._store.take
        assigned, tallies, mutex = worker.assigned, worker.tallies, worker.mutex
        while True:
            if worker.abandoned:
                return None  # given to it before it was abandoned: terminate returned it
            future = task.future
            failed = False
            if task in resumed or future.set_running_or_notify_cancel():
                start = _monotonic()
                try:
                    value = task.fn(*task.args, **task.kwargs)
                except BaseException as exc:
                    value = exc
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
            if nxt is None or worker.updates:
                return nxt
            task = nxt

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

    # -- workers ----------------------------------------------------------------------------------

    def hire(self, series: SeriesSpec = "default", *, slots: int = 1, name: Optional[str] = None) -> int:
        """Hire a worker for ``series``; return its id (1, 2, 3, ...).

        ``series``: a name, or a list of names and ``(priority, name)`` pairs (priority
        0 when omitted; higher runs first; the listed order decides which series a free
        worker drains first). ``slots``: how many tasks it runs at once, one daemon
        thread each, named ``"<name>_<i>"`` (``name`` defaults to ``"worker-<id>"``).
        The worker first runs the saved updates (see :meth:`update`), then takes tasks,
        waiting ones first.

        Cost: O(s + u) for s series and u saved updates, plus starting the threads.

        :raises ShutDown: after :meth:`shutdown`.
        :raises TypeError, ValueError: a bad ``series``, ``slots`` or ``name``.
        """
        pairs = parse_series(series)
        if isinstance(slots, bool) or not isinstance(slots, int):
            raise TypeError(f"slots must be an int, not {type(slots).__name__}")
        if slots < 1:
            raise ValueError(f"slots must be at least 1, not {slots}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, not {type(name).__name__}")
        with self._lock:
            if self._shut:
                raise ShutDown("the TaskHandler is shut down")
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

    def roster(self, series: Optional[str] = None) -> List[int]:
        """Ids of the current workers (qualified for ``series``), in hire order. O(w)."""
        with self._lock:
            if series is None:
                return [w.id for w in self._workers.values() if not w.retiring]
            s = self._series.get(series)
            return [] if s is None else [i for i in s.qualified if not self._workers[i].retiring]

    def terminate(
        self, worker_id: int, *, timeout: Optional[float] = None, crash: bool = False, reassign: bool = False
    ) -> List[Task]:
        """Remove worker ``worker_id``; return its unfinished tasks.

        Graceful (the default): it takes no new task, finishes those it was given (and
        pending updates), and ``[]`` is returned once its threads have ended. With
        ``timeout`` (seconds), past it, or at once with ``crash=True``, the worker is
        abandoned: the tasks it was given and had not finished are returned, their
        futures left as they are (running, or pending if not started) for the caller to
        handle, and whatever its threads still produce is discarded. ``reassign=True``
        puts those tasks back at the front of their series instead, where the next
        qualified worker runs them and resolves the same futures, and returns ``[]``.
        An unknown (or already terminated) id returns ``[]``. Called from one of the
        worker's own tasks, it does not wait for that task.

        Cost: waits for the worker's running tasks (at most ``timeout``). Thread-safe.

        :raises ValueError, TypeError: a bad ``timeout``.
        """
        return [job.task() for job in _lifecycle.terminate(self, worker_id, timeout, crash, reassign)]

    def update(
        self, fn: Callable[..., Any], *, args: Any = (), kwargs: Optional[Dict[str, Any]] = None,
        series: Optional[str] = None, ephemeral: bool = False,
    ) -> Future[List[Any]]:
        """Run ``fn(*args, **kwargs)`` once on every current worker (qualified for ``series``).

        Each worker runs it in one of its threads, before its next task. The returned
        future's result is the list of results ordered by worker id (``[]`` with no
        worker); if any raised, it holds the exception of the lowest worker id. A
        worker abandoned before running it is left out. Unless ``ephemeral``, workers
        hired later (qualified for ``series``) run it too, before their first task.

        Cost: O(w) for w workers. Thread-safe.

        :raises ShutDown: after :meth:`shutdown`.
        :raises TypeError: ``fn`` not callable, or a bad ``kwargs`` or ``series``.
        """
        return _lifecycle.update(self, fn, args, kwargs, series, ephemeral)

    def status(self) -> Dict[str, Any]:
        """A JSON-serializable snapshot: ``{"series": {...}, "workers": {...}}``.

        Per series: ``waiting`` (in its queue; a cancelled task counts until a worker
        skips it), ``running`` (given to a worker), ``processed`` (ran, failed ones
        included), ``failed``, and ``latency_ms``: ``queued_mean``/``queued_max``
        (submit to start) and ``run_mean``/``run_max``. Per worker, keyed by its id as a
        *string* (JSON keys are strings): ``name``, ``series`` (``[priority, name]``
        pairs), ``slots``, ``busy``, ``processed``. O(s + w). Thread-safe.
        """
        return _lifecycle.status(self)

    def shutdown(  # type: ignore[override]
        self, wait: bool = True, *, cancel_futures: bool = False, timeout: Optional[float] = None
    ) -> List[Task]:
        """Stop taking tasks; return the tasks that did not finish.

        As ``Executor.shutdown``: afterwards :meth:`submit` raises ``ShutDown``; with
        ``wait`` it returns once the workers ran every task they can (waiting tasks of
        their series included) and their threads ended; ``cancel_futures`` cancels the
        waiting tasks (and those given to a worker but not started). Returned: the
        cancelled tasks, the tasks waiting in a series no worker serves (their futures
        cancelled), and with ``timeout`` the tasks of workers still busy when it passed
        (abandoned as by :meth:`terminate`; futures of running tasks are left running).
        Waiting tasks of a durable series stay in their queue unless cancelled by
        ``cancel_futures``, and run after a restart. A private MessageQueue is closed
        once every worker thread ended. Idempotent: later calls return ``[]``.

        Thread-safe; from a task, it does not wait for that task.

        :raises ValueError, TypeError: a bad ``timeout``.
        """
        return [job.task() for job in _lifecycle.shutdown(self, wait, cancel_futures, timeout)]

    def __repr__(self) -> str:
        state = "shut down" if self._shut else f"{len(self._workers)} workers"
        return f"<TaskHandler {state}>"
