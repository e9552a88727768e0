"""Helpers shared by several test modules (``from helpers import ...``)."""

from __future__ import annotations

import errno
import os
import pickle
import threading
from typing import Any, Callable, Dict, List, Tuple

from unidist_queue import MessageQueue, QueueView
from unidist_queue.store.base import State, Store
from unidist_queue.store.file import FileStore


class InMemoryStore(Store):
    """A persistent store kept in memory: no commits to wait for, never due for compaction,
    and snapshots that save nothing. A subclass supplies ``load`` and ``append``."""

    persistent = True

    def encode(self, body: Any) -> bytes:
        return pickle.dumps(body)

    def commit(self, seq: int) -> None:
        pass

    @property
    def compaction_due(self) -> bool:
        return False

    def prepare_snapshot(self) -> None:
        pass

    def begin_snapshot(self) -> Any:
        return None

    def write_snapshot(self, state: State, token: Any) -> None:
        pass

    def close(self) -> None:
        pass


# -- store directories -----------------------------------------------------------------------


def fill(path: str, n: int = 4, **options: Any) -> None:
    """Make a store at ``path`` whose queue "q" holds ``0 .. n-1`` (message ids ``1 .. n``).

    Its archive holds an id block (seq 1), the adds (seqs ``2 .. n+1``) and the last id
    recorded by the clean close (seq ``n+2``).
    """
    with MessageQueue(store=FileStore(path, fsync="never", **options)) as mq:
        for i in range(n):
            mq.add("q", i)


def reopened(path: str, queue: str = "q", **options: Any) -> List[Any]:
    """What ``queue`` holds once the store at ``path`` is opened again (with ``options``)."""
    with MessageQueue(store=FileStore(path, **options)) as mq:
        return mq.all(queue)


def file_size(path: str, name: str = "archive.0") -> int:
    """The size of the store's file ``name``."""
    return os.path.getsize(os.path.join(path, name))


def assert_unlocked(path: str) -> None:
    """The directory's lock was released: another FileStore can take it."""
    FileStore(path).close()


def eio(*args: Any) -> Any:
    """Stands for a failing system call (write, fsync, truncate, unlink...)."""
    raise OSError(errno.EIO, "I/O error")


# -- threads ---------------------------------------------------------------------------------


def in_thread(fn: Callable[[], Any]) -> Tuple[threading.Thread, List[Any]]:
    """Run ``fn`` in a new thread; return, once the thread is about to call it, the thread
    and a list that gets its result: ``("ok", value)`` or ``("raised", exception)``."""
    results: List[Any] = []
    started = threading.Event()

    def run() -> None:
        started.set()
        try:
            results.append(("ok", fn()))
        except BaseException as exc:
            results.append(("raised", exc))

    t = threading.Thread(target=run)
    t.start()
    assert started.wait(30)
    return t, results


def join(t: threading.Thread) -> None:
    t.join(30)
    assert not t.is_alive()


# -- TaskHandler tests ------------------------------------------------------------------------

WAIT = 10.0  # every wait in these helpers is bounded


def who() -> str:
    """The worker name of the calling thread ("worker-3_0" -> "worker-3")."""
    return threading.current_thread().name.rsplit("_", 1)[0]


def wait_until(predicate: Callable[[], bool]) -> None:
    """Bounded wait for a state another thread reaches (checked every 10 ms)."""
    done = threading.Event()
    for _ in range(int(WAIT * 100)):
        if predicate():
            done.set()
            break
        done.wait(0.01)
    assert done.is_set()


def threads_named(prefix: str) -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


def worker_threads() -> List[threading.Thread]:
    return threads_named("worker-")


def blocker() -> Tuple[threading.Event, threading.Event, Callable[[Any], Any]]:
    """A task function that signals ``started`` and waits for ``release``."""
    started = threading.Event()
    release = threading.Event()

    def fn(value: Any = None) -> Any:
        started.set()
        assert release.wait(WAIT)
        return value

    return started, release, fn


class Gate:
    """Tasks that block until opened; ``started`` counts the ones that began, ``runs()``
    gives ``(tag, worker name)`` in start order."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.started = threading.Semaphore(0)
        self.lock = threading.Lock()
        self.log: List[Tuple[Any, str]] = []  # (tag, worker name), in start order

    def task(self, tag: Any) -> Callable[[], Any]:
        def run() -> Any:
            with self.lock:
                self.log.append((tag, who()))
            self.started.release()
            assert self.opened.wait(WAIT)
            return tag

        return run

    def wait_started(self, n: int = 1) -> None:
        for _ in range(n):
            assert self.started.acquire(timeout=WAIT)

    def runs(self) -> List[Tuple[Any, str]]:
        with self.lock:
            return list(self.log)


class Recorder:
    """A task function recording ``(argument, worker name)`` in ``seen`` (thread-safe);
    ``values()`` gives the arguments."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: List[Tuple[Any, str]] = []

    def __call__(self, x: Any) -> Any:
        with self.lock:
            self.seen.append((x, who()))
        return x

    def values(self) -> List[Any]:
        with self.lock:
            return [x for x, _ in self.seen]


class RunCounter:
    """A task function counting in ``counts`` how many times it ran with each argument
    (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Dict[int, int] = {}

    def __call__(self, i: int) -> int:
        with self.lock:
            self.counts[i] = self.counts.get(i, 0) + 1
        return i


# -- the queue API alone ---------------------------------------------------------------------


class ApiOnly:
    """A queue backend that offers the :class:`~unidist_queue.QueueAPI` methods and nothing
    else, by delegation to a wrapped queue: what is built on the queue API (Pusher,
    TaskHandler with ``mq=``) must work over it, as over any other backend."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @property
    def closed(self) -> bool:
        return bool(self._inner.closed)

    def __enter__(self) -> ApiOnly:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _delegate(name: str) -> Callable[..., Any]:
    def method(self: ApiOnly, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._inner, name)(*args, **kwargs)

    method.__name__ = name
    return method


def _api_methods() -> List[str]:
    from unidist_queue import QueueAPI

    return [n for n, v in vars(QueueAPI).items() if not n.startswith("_") and callable(v)]


for _name in _api_methods():
    setattr(ApiOnly, _name, _delegate(_name))


class Serializing(ApiOnly):
    """The queue API of a wrapped queue, with bodies serialized as a backend in another
    process would (``RedisMessageQueue``): every added body is pickled and unpickled, so a
    taker gets a copy, never the object added, and a body that cannot be pickled is a
    ``SerializationError`` with nothing added."""

    def add(self, queue: str, message: Any, **options: Any) -> int:
        return self._inner.add(queue, _copy(message), **options)  # type: ignore[no-any-return]

    def add_many(self, queue: str, messages: Any, **options: Any) -> List[int]:
        return self._inner.add_many(queue, [_copy(m) for m in messages], **options)  # type: ignore[no-any-return]


def _copy(body: Any) -> Any:
    from unidist_queue.errors import SerializationError

    try:
        data = pickle.dumps(body)
    except Exception as exc:
        raise SerializationError(f"cannot pickle {type(body).__name__}: {exc}") from exc
    return pickle.loads(data)


def joins(view: QueueView[Any]) -> threading.Event:
    """Start ``view.join()`` in a daemon thread; the event is set when it returns (wait for
    it with a timeout)."""
    returned = threading.Event()

    def run() -> None:
        view.join()
        returned.set()

    threading.Thread(target=run, daemon=True).start()
    return returned
