"""Client processes for the Redis benchmark's "4 processes vs 1" figures.

:class:`ClientPool` spawns ``size`` processes once (spawned, not forked: each opens its
own connections) and keeps them for every repetition. A job runs the same loop in the
first ``k`` of them at once, over one time window: every process is told the same
start and end (``time.monotonic``, one clock for every process of the machine), sleeps
until the start, cycles until the end and reports how many cycles it finished; the
figure is their total over the window. So neither a late start nor a straggler at the
end counts (with a fixed number of cycles per process, the last one to finish ran
alone for a while and the figure measured less than the processes together do), and
the one-process and four-process figures come from the same processes, with the same
warm connections, measured in turn. Each job names the CPUs its processes (every thread
of them) may run on: the clients' CPUs only, or every CPU (the server's too).

Jobs: ``"ours"`` (``add`` + ``reserve`` + ``ack`` of one message on a shared queue of a
:class:`~unidist_queue.RedisMessageQueue`) and ``"floor"`` (``LPUSH`` + ``RPOP`` on a
shared list, one round trip each); the wake-up of a caller blocked in the first
process by an add from this one: ``"wake ours"`` (a blocking ``get``) and
``"wake floor"`` (``BLPOP``); and ``"tasks"``: a worker-only
:class:`~unidist_queue.TaskHandler` over the process's queue client, made for the job
(``n`` workers) and shut down when this process says ``"stop"`` (see
:meth:`ClientPool.tasks_begin`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from multiprocessing.connection import Connection
from typing import Any, Callable, FrozenSet, Iterable, List, Optional, Tuple

QUEUE = "shared"
WAKE_QUEUE, WAKE_LIST = "wake", "floor:wake"
FLOOR_LIST = "floor:shared"
LEAD = 0.03
"""Seconds between sending a windowed job and its start: every process is awake by then."""
JOB_TIMEOUT = 600.0


def _ours(url: str, namespace: str) -> Any:
    from unidist_queue import RedisMessageQueue

    return RedisMessageQueue(url, namespace=namespace)


def _sleep_until(start: float) -> None:
    left = start - time.monotonic()
    if left > 0:
        time.sleep(left)


def _cycle_ours(mq: Any, payload: Any, start: float, end: float) -> int:
    """``add`` + ``reserve`` + ``ack`` of one message from ``start`` until ``end``: how many."""
    add, reserve, ack, now = mq.add, mq.reserve, mq.ack, time.monotonic
    n = 0
    _sleep_until(start)
    while now() < end:
        add(QUEUE, payload)
        ack(reserve(QUEUE, timeout=30.0))
        n += 1
    return n


def _cycle_floor(r: Any, data: bytes, start: float, end: float) -> int:
    """``LPUSH`` + ``RPOP`` of one item from ``start`` until ``end``: how many."""
    lpush, rpop, now = r.lpush, r.rpop, time.monotonic
    n = 0
    _sleep_until(start)
    while now() < end:
        lpush(FLOOR_LIST, data)
        rpop(FLOOR_LIST)
        n += 1
    return n


def _move_to(cpus: FrozenSet[int]) -> None:
    """Let every thread of this process run on ``cpus`` only (a thread inherits the
    affinity of the thread that started it, so the queue's own threads need it too)."""
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), cpus)


def _wake_ours(mq: Any, n: int) -> List[float]:
    """``n`` blocking ``get``s; each body is the ``time.monotonic()`` of its ``add``."""
    get = mq.get
    out = []
    for _ in range(n):
        sent = get(WAKE_QUEUE, timeout=30.0)
        out.append(time.monotonic() - sent)
    return out


def _run_tasks(conn: Connection, mq: Any, workers: int) -> None:
    """A worker-only handler with ``workers`` workers runs the tasks waiting in ``mq``
    until this process's parent sends ``"stop"``; then it shuts down (waiting)."""
    from unidist_queue import TaskHandler

    th = TaskHandler(max_workers=workers, mq=mq)
    try:
        conn.send("running")
        stop = conn.recv()
        assert stop == "stop", stop
    finally:
        th.shutdown(wait=True, timeout=60.0)
    conn.send("stopped")


def _wake_floor(r: Any, n: int) -> List[float]:
    """``n`` ``BLPOP``s; each value is the ``time.monotonic()`` of its ``LPUSH``."""
    blpop = r.blpop
    out = []
    for _ in range(n):
        got = blpop([WAKE_LIST], timeout=30)
        out.append(time.monotonic() - float(got[1]))
    return out


def serve(conn: Connection, url: str, floor_url: str, namespace: str, payload: Any,
          with_ours: bool) -> None:
    """The body of one client process: run jobs sent on ``conn`` until ``None``.

    A job ``(kind, arg, cpus)`` answers the number of cycles finished in the window
    ``arg = (start, end)`` for ``"ours"`` and ``"floor"``, and the list of wake-up
    latencies of ``arg`` items for ``"wake ours"``/``"wake floor"``.
    """
    import pickle

    import redis

    r = redis.Redis.from_url(floor_url)
    data = pickle.dumps(payload)
    mq = _ours(url, namespace) if with_ours else None
    try:
        conn.send("ready")
        while True:
            job: Optional[Tuple[str, Any, FrozenSet[int]]] = conn.recv()
            if job is None:
                break
            kind, n, cpus = job
            _move_to(cpus)
            if kind == "wake ours":
                conn.send(_wake_ours(mq, n))
                continue
            if kind == "wake floor":
                conn.send(_wake_floor(r, n))
                continue
            if kind == "tasks":
                _run_tasks(conn, mq, n)
                continue
            if kind == "ours":
                conn.send(_cycle_ours(mq, payload, *n))
            else:
                conn.send(_cycle_floor(r, data, *n))
    finally:
        if mq is not None:
            mq.close()
        r.close()


class ClientPool:
    """``size`` spawned client processes, kept for the whole run; ``close()`` ends them."""

    def __init__(self, size: int, url: str, floor_url: str, namespace: str, payload: Any,
                 with_ours: bool) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns: List[Connection] = []
        self.procs: List[Any] = []
        try:
            for _ in range(size):
                mine, theirs = ctx.Pipe()
                p = ctx.Process(target=serve, args=(theirs, url, floor_url, namespace, payload, with_ours),
                                daemon=True)
                p.start()
                theirs.close()
                self.conns.append(mine)
                self.procs.append(p)
            for c in self.conns:
                self._recv(c)  # "ready": imported and connected
        except BaseException:
            self.close()
            raise

    def _recv(self, c: Connection) -> Any:
        if not c.poll(JOB_TIMEOUT):
            raise RuntimeError("a benchmark client process did not answer")
        return c.recv()

    def window(self, kind: str, processes: int, seconds: float, cpus: Iterable[int]) -> int:
        """Cycles of ``kind`` that ``processes`` clients finished together, on ``cpus``,
        in one window of ``seconds`` (the same start and end for each)."""
        conns = self.conns[:processes]
        start = time.monotonic() + LEAD
        for c in conns:
            c.send((kind, (start, start + seconds), frozenset(cpus)))
        return sum(int(self._recv(c)) for c in conns)

    def wake_ups(self, n: int, cpus: Iterable[int], pace: float, send_ours: Optional[Callable[[float], Any]],
                 send_floor: Callable[[float], Any]) -> Tuple[List[float], List[float]]:
        """Wake-up latencies (seconds) of a blocking ``get`` in the first client process
        and of a ``BLPOP`` in the second, taking turns item by item: this process calls
        ``send_ours(time.monotonic())`` then ``send_floor(time.monotonic())``, ``n`` times,
        ``pace`` seconds apart, so each caller is blocked again before its next item.
        ``send_ours=None``: the floor alone (our list is empty)."""
        ours, floor = self.conns[0], self.conns[1]
        if send_ours is not None:
            ours.send(("wake ours", n, frozenset(cpus)))
        floor.send(("wake floor", n, frozenset(cpus)))
        time.sleep(pace)
        for _ in range(n):
            if send_ours is not None:
                send_ours(time.monotonic())
                time.sleep(pace)
            send_floor(time.monotonic())
            time.sleep(pace)
        return (list(self._recv(ours)) if send_ours is not None else []), list(self._recv(floor))

    def tasks_begin(self, workers: int, cpus: Iterable[int]) -> None:
        """Start a worker-only handler with ``workers`` workers in the last client process
        (on ``cpus``); it runs tasks until :meth:`tasks_end`. Returns at once: the
        handler is made (and starts taking) while this process goes on."""
        self.conns[-1].send(("tasks", workers, frozenset(cpus)))

    def tasks_end(self) -> None:
        """Wait until the handler started by :meth:`tasks_begin` runs, then shut it down
        (its process stays for the next job)."""
        c = self.conns[-1]
        assert self._recv(c) == "running"
        c.send("stop")
        assert self._recv(c) == "stopped"

    def close(self) -> None:
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.send(None)
        for p in self.procs:
            p.join(timeout=30.0)
            if p.is_alive():
                p.kill()
                p.join(timeout=10.0)
        for c in self.conns:
            c.close()
