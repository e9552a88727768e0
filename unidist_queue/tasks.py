"""TaskHandler: a pool of worker threads fed from MessageQueue queues, as an Executor.

:class:`TaskHandler` is a :class:`concurrent.futures.Executor`. Tasks belong to a
*series*; a worker serves one or more series, each at a priority. Series ``S`` waits in
queue ``"task:S"`` of the handler's :class:`~unidist_queue.MessageQueue`; when that
queue is durable, its tasks survive a crash and run again after a restart.

Routing (after EventMQ's router): a new task goes at once to the free worker with the
highest priority for its series, equal priorities taking turns (least recently used
first). A worker that frees a slot takes the oldest waiting task of its series, looking
at them in the order it listed them.

``TaskHandler`` is a thin facade: the state, the routing and the worker side live in a
:class:`~unidist_queue._pool.Pool`, which the worker threads hold. Nothing holds the
facade but its users, so a handler nobody references any more is collected and its
workers shut down (see :mod:`unidist_queue._pool`); the interpreter-exit hook is in
:mod:`unidist_queue._exit`. Where tasks wait is one small internal interface
(:mod:`unidist_queue._waiting`): private deques, or the queues of ``mq=`` through the
queue API alone (:mod:`unidist_queue._queuetasks`).
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Set, TypeVar

from . import _exit
from ._pool import Pool
from ._routing import SeriesSpec, parse_series
from ._task import Task
from .api import QueueAPI

if TYPE_CHECKING:
    from typing import ParamSpec

    P = ParamSpec("P")

__all__ = ["Task", "TaskHandler", "default_workers"]

T = TypeVar("T")


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
    ``0`` hires none yet (tasks wait for a :meth:`hire`).

    ``mq``: where tasks wait. Omitted, each series waits in a private in-memory queue
    that nothing else can reach: tasks move fastest that way (single atomic deque
    operations hand them over, no lock, no MessageQueue). Given a queue-API object (a
    :class:`~unidist_queue.MessageQueue`, or any :class:`~unidist_queue.QueueAPI`
    backend), series ``S`` waits in its queue ``"task:S"``, through the public queue
    API alone: a task of a durable queue, and any task over a backend other than an
    in-process ``MessageQueue``, is stored as ``(function name, args, kwargs, reply
    address)`` (a durable one survives a crash); workers reserve tasks (no more than
    their free slots), ack them once run, and nack what they give back; tasks other
    code adds to ``"task:S"`` run too (heard of through ``subscribe``). Handlers on one
    ``mq`` (in one process, or in several sharing a backend) serve the same series: a
    stored task run by a worker of another handler sends its outcome to the
    submitter's reply queue ``"task-reply:<random hex>"`` before it is acked, and the
    submitter's watching thread resolves the future (the first outcome of a task run
    twice wins; an outcome the backend cannot serialize is a ``SerializationError`` in
    the future; see :mod:`unidist_queue._replies`). Tasks found in the durable
    ``"task:*"`` queues of ``mq`` (left by a process that died) run again once a
    qualified worker is hired. ``mq`` is left open by :meth:`shutdown`. Closing ``mq``
    first shuts the handler down by itself (a thread of the handler waits in a queue
    call that ``close`` wakes, see :mod:`unidist_queue._closewatch`): the futures of
    the tasks still waiting in ``mq`` fail with ``ShutDown`` (a durable series keeps
    them stored, to run after a restart), the tasks already handed to a worker run, and
    :meth:`submit` raises ``ShutDown``; nothing hangs.

    Durable series never lose a task silently. :meth:`submit` refuses, with
    ``SerializationError``, a function that a fresh interpreter could not find by its
    name (a lambda, a local function, an object that ``module:qualname`` does not give
    back, a function of a script run as ``python script.py``; one of a module run as
    ``python -m pkg.mod`` is stored as ``pkg.mod:name``: see the README). A stored task
    whose function cannot be imported when a worker takes it (its module gone or
    renamed since) does not run and is not dropped: its message moves, unchanged, to
    the series' dead-letter queue ``"task-dead:S"``, logged at ERROR (and counted as
    failed in :meth:`status`); :meth:`retry_dead` moves such tasks back.

    ``mq.declare("task:S", max_attempts=N, dead_letter="task-dead:S")`` bounds how often
    a stored task is taken without being finished (a task that raises is finished,
    acked, never retried): a task whose runs were cut short ``N`` times by the process
    ending (a poison task) moves to the dead-letter queue at the next open instead of
    running again (there, a stored ``(function name, args, kwargs)``, which
    :meth:`retry_dead` brings back when the dead-letter queue is ``"task-dead:S"``).
    Every reservation ended by a nack counts too: tasks a worker hands back
    (``shutdown(wait=False)``, :meth:`terminate`) and the tasks ahead of a cancelled one
    (a cancel reserves and nacks them); a live task moved so leaves its future pending:
    keep ``N`` above that.

    Methods by purpose:

    * submitting: :meth:`submit`, :meth:`submit_to`, :meth:`map` (as ``Executor.map``)
    * workers: :meth:`hire`, :meth:`roster`, :meth:`terminate`, :meth:`update`
    * the rest: :meth:`status`, :meth:`retry_dead`, :meth:`shutdown` (also a context
      manager)

    As with ``ThreadPoolExecutor`` (whose own tests are run against this class):

    * a worker keeps no reference to a finished task, its function, arguments or
      result; a task's exception carries the traceback of the task's own frames;
    * at interpreter exit, before ``atexit`` functions run, every handler is shut down
      and its workers finish the tasks already submitted (those a worker can run)
      before the process ends; ``submit`` then raises ``ShutDown``, a ``RuntimeError``;
    * a handler nobody references any more is shut down as by ``shutdown(wait=False)``,
      by one of its workers (they hold it only weakly): they run the tasks they can,
      then their threads exit (with no worker left, its waiting tasks stay pending, as
      nobody can hire one any more).

    Worker threads are daemon threads named after their worker: :meth:`shutdown` with
    ``wait=True`` (or the interpreter's exit) joins them, and a thread abandoned by
    ``terminate`` or a shutdown ``timeout`` never blocks interpreter exit.
    Thread-safety: every method may be called from any thread, tasks included (a task
    must not wait on its own worker's termination).

    Differences from ``ThreadPoolExecutor`` (DESIGN.md section 6): workers are hired at
    once, not started on demand; ``max_workers=0`` is allowed; there is no
    ``thread_name_prefix`` or ``initializer`` (see :meth:`hire` ``name`` and
    :meth:`update`); ``shutdown`` takes a ``timeout`` and returns the unfinished tasks.

    :raises TypeError, ValueError: a bad ``max_workers`` or ``mq``.
    """

    def __init__(self, max_workers: Optional[int] = None, *, mq: Optional[QueueAPI] = None) -> None:
        if max_workers is not None and (isinstance(max_workers, bool) or not isinstance(max_workers, int)):
            raise TypeError(f"max_workers must be an int or None, not {type(max_workers).__name__}")
        if max_workers is not None and max_workers < 0:
            raise ValueError(f"max_workers must be >= 0, not {max_workers}")
        if mq is not None and not isinstance(mq, QueueAPI):
            raise TypeError(f"mq must be a queue-API object (a MessageQueue), not {type(mq).__name__}")
        pool = self._pool = Pool(mq)
        self._submit = pool.submit  # the hot path: one attribute, no method binding
        self._mq = mq
        #: The workers hired at construction, ``ThreadPoolExecutor``'s private name for
        #: its thread limit (read by code written against it, and CPython's tests).
        self._max_workers = default_workers() if max_workers is None else max_workers
        pool.owner = weakref.ref(self, pool.orphaned)  # held by the pool: no cycle
        if not _exit.track(pool):  # the interpreter is exiting: refuse every task
            pool.shutdown_at_exit(False)
            return
        for _ in range(self._max_workers):
            pool.hire([(0, "default")], 1, None)

    @property
    def _threads(self) -> Set[threading.Thread]:
        """The threads of the current workers (``ThreadPoolExecutor``'s private name)."""
        return self._pool.threads()

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` in series ``"default"``; return its ``Future``.

        Cost: O(1) plus routing. Thread-safe.

        :raises ShutDown: after :meth:`shutdown`, or ``mq`` is closed.
        :raises SerializationError: the task is stored and cannot be (see
            :meth:`submit_to`); nothing was stored.
        """
        return self._submit("default", fn, args, kwargs)

    def submit_to(self, series: str, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` on a worker qualified for ``series``; return its ``Future``.

        The task goes at once to the best free worker, or waits in queue
        ``"task:<series>"`` (also when no worker serves the series yet: it waits for a
        hire). Cancel a waiting task with ``future.cancel()``. For a durable series (and
        every series over a backend other than an in-process ``MessageQueue``) the task
        is stored (function by importable name) before this returns; a function
        that a fresh interpreter could not find by that name is refused: a lambda, a
        local function (``<locals>`` in its ``__qualname__``), an object that its
        ``module:qualname`` does not give back (a bound method of an instance, a
        callable object), a function of a module that cannot be imported, and a
        function of ``__main__`` when the program is a script (``python script.py``,
        ``python -c``, an interactive session) or a package's ``__main__``
        (``python -m pkg``). A function of a module run as ``python -m pkg.mod`` is
        stored as ``"pkg.mod:name"``, the name a fresh interpreter imports it by.

        Cost: O(1) plus routing (O(p + f) for p priorities, f free workers). Thread-safe.

        :raises ShutDown: after :meth:`shutdown`, or ``mq`` is closed.
        :raises SerializationError: the task is stored (see above) and ``fn`` has no
            importable name, or the arguments cannot be serialized; nothing was stored.
        :raises StoreError: ``mq`` could not store the task (as its ``add`` says, it
            may or may not have been stored: if it was, it runs with nobody waiting).
        :raises TypeError: ``series`` is not a str or ``fn`` is not callable.
        """
        if not isinstance(series, str):
            raise TypeError(f"series must be a str, not {type(series).__name__}")
        return self._submit(series, fn, args, kwargs)

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
        return self._pool.hire(pairs, slots, name)

    def roster(self, series: Optional[str] = None) -> List[int]:
        """Ids of the current workers (qualified for ``series``), in hire order. O(w)."""
        return self._pool.roster(series)

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
        return [job.task() for job in self._pool.terminate(worker_id, timeout, crash, reassign)]

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
        return self._pool.update(fn, args, kwargs, series, ephemeral)

    def status(self) -> Dict[str, Any]:
        """A JSON-serializable snapshot: ``{"series": {...}, "workers": {...}}``.

        Per series: ``waiting`` (in its queue; a cancelled task counts until a worker
        skips it), ``running`` (given to a worker), ``processed`` (ran, failed ones
        included), ``failed``, and ``latency_ms``: ``queued_mean``/``queued_max``
        (submit to start) and ``run_mean``/``run_max``. Per worker, keyed by its id as a
        *string* (JSON keys are strings): ``name``, ``series`` (``[priority, name]``
        pairs), ``slots``, ``busy``, ``processed``. O(s + w). Thread-safe.
        """
        return self._pool.status()

    def shutdown(  # type: ignore[override]
        self, wait: bool = True, *, cancel_futures: bool = False, timeout: Optional[float] = None
    ) -> List[Task]:
        """Stop taking tasks; return the tasks that did not finish.

        As ``Executor.shutdown``: afterwards :meth:`submit` raises ``ShutDown``; with
        ``wait`` it returns once the workers ran every task they can (waiting tasks of
        their series included) and their threads ended; ``cancel_futures`` cancels the
        tasks waiting in their series, those no worker has started: a task already
        handed to a worker (routed to it, or taken by one of its threads) runs, as a
        work item a ``ThreadPoolExecutor`` thread took from its queue does. Returned: the
        cancelled tasks, the tasks waiting in a series no worker serves (their futures
        cancelled), and with ``timeout`` the tasks of workers still busy when it passed
        (abandoned as by :meth:`terminate`; futures of running tasks are left running).
        Waiting tasks of a durable series stay in their queue unless cancelled by
        ``cancel_futures``, and run after a restart. Over ``mq=``, tasks an abandoned
        worker held without starting them go back to their queue (nacked), and the
        handler stops listening to ``mq`` and watching it for its closing and for
        replies (with ``wait``, once its workers are done, and that thread is joined),
        drops its reply queue and cancels the futures of its tasks that run elsewhere
        still unresolved (returned too: another handler may still finish them, unheard).
        Over a shared ``mq=``, only this handler's tasks are cancelled or returned: the
        stored tasks of other handlers (or of a process that is gone) stay in their
        queue; but its draining workers run whatever they find in their series,
        whoever submitted it, so while other processes keep submitting a ``wait``
        without ``timeout`` may not return. Idempotent: later calls return ``[]``
        (also after the handler shut itself down because ``mq`` was closed).

        Thread-safe; from a task, it does not wait for that task.

        :raises ValueError, TypeError: a bad ``timeout``.
        """
        return [job.task() for job in self._pool.shutdown(wait, cancel_futures, timeout)]

    def retry_dead(self, series: str = "default") -> int:
        """Move the tasks of ``"task-dead:<series>"`` back to ``series``; return how many.

        A stored task goes to that dead-letter queue when a worker takes it and its
        function cannot be imported (see the class). Once the module is back, this
        runs them again: each is added to ``"task:<series>"`` (a new message id, at the
        back) and removed from the dead-letter queue, in that order (a crash between
        the two leaves a task in both queues, never in neither). The tasks there now
        are moved: one whose function is still missing goes back to the dead-letter
        queue when a worker takes it, once per call. A handler without ``mq=`` stores
        no task by name: ``0``. Tasks of a series no worker serves wait for a hire.

        Cost: O(n) for n tasks moved, one ``reserve_many``, ``add_many`` and
        ``ack_many`` each. Thread-safe.

        :raises ShutDown: after :meth:`shutdown`, or ``mq`` is closed.
        :raises StoreError: the move could not be recorded (the tasks stay dead).
        :raises TypeError: ``series`` is not a str.
        """
        if not isinstance(series, str):
            raise TypeError(f"series must be a str, not {type(series).__name__}")
        return self._pool.retry_dead(series)

    def __repr__(self) -> str:
        return f"<TaskHandler {self._pool.describe()}>"
