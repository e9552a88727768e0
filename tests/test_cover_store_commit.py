"""FileStore group commit (fsync="always") under failures, interruptions and close().

Orderings are forced, never slept for: :class:`FsyncGate` holds the fsyncs of chosen
threads until the test opens it, :class:`Waiters` reports each committer that starts to
wait for a round (and can interrupt or pause it as it is woken), and
:class:`Watched` reports a close() or write_snapshot() waiting for a round to end.
Every join has a timeout: a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import errno
import os
import queue
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest

from unidist_queue import MessageQueue, StoreError
from unidist_queue.store import archive, file
from unidist_queue.store.file import FileStore

WAIT = 10.0


class Interrupted(BaseException):
    """Stands for KeyboardInterrupt (which pytest itself would react to)."""


class Worker:
    """A thread running ``fn``; ``result`` is what it returned, ``error`` what it raised."""

    def __init__(self, name: str, fn: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._run, args=(fn,), name=name, daemon=True)
        self.thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.result = fn()
        except BaseException as exc:
            self.error = exc

    def join(self) -> Worker:
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), f"{self.thread.name} hangs"
        return self


class FsyncGate:
    """``archive.fsync``, holding the calls of the threads named in ``held`` until opened.

    ``entered`` is set when a held call waits; once opened, a held call raises
    ``fail`` if set (an OSError: a failed fsync; a BaseException: an interrupt).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *held: str) -> None:
        self.held = set(held)
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.fail: Optional[BaseException] = None
        self.calls = 0
        self._real = archive.fsync
        monkeypatch.setattr(archive, "fsync", self)

    def __call__(self, fd: int) -> None:
        self.calls += 1
        if threading.current_thread().name in self.held:
            self.entered.set()
            assert self.opened.wait(WAIT), "the gate was never opened"
            if self.fail is not None:
                raise self.fail
        self._real(fd)

    def wait_entered(self) -> None:
        assert self.entered.wait(WAIT), "no held fsync began"

    def open(self, fail: Optional[BaseException] = None) -> None:
        self.fail = fail
        self.opened.set()


class _Lock:
    """A waiter's lock that interrupts (``"before"`` or ``"after"`` acquiring) or pauses
    (``"pause"``: reports the wake-up, then waits for ``go``) its thread."""

    def __init__(self, lock: Any, mode: str, woken: threading.Event, go: threading.Event) -> None:
        self.lock, self.mode, self.woken, self.go = lock, mode, woken, go

    def acquire(self) -> bool:
        if self.mode == "before":
            raise Interrupted()
        self.lock.acquire()
        self.woken.set()
        if self.mode == "after":
            raise Interrupted()
        assert self.go.wait(WAIT)
        return True

    def release(self) -> None:
        self.lock.release()


class Waiters:
    """Reports the seq of every committer that starts waiting for a round; the first wait
    of a thread named in ``modes`` gets a :class:`_Lock` of that mode."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, **modes: str) -> None:
        self.seqs: queue.Queue[int] = queue.Queue()
        self.modes: Dict[str, str] = dict(modes)
        self.woken = threading.Event()
        self.go = threading.Event()
        registry = self

        class Tracked(file._Waiter):
            __slots__ = ()

            def __init__(self, seq: int) -> None:
                super().__init__(seq)
                mode = registry.modes.pop(threading.current_thread().name, None)
                if mode is not None:
                    self.lock = _Lock(self.lock, mode, registry.woken, registry.go)  # type: ignore[assignment]
                registry.seqs.put(seq)

        monkeypatch.setattr(file, "_Waiter", Tracked)

    def wait(self, n: int) -> List[int]:
        """Until ``n`` more committers started waiting; their seqs."""
        return [self.seqs.get(timeout=WAIT) for _ in range(n)]

    def wait_woken(self) -> None:
        assert self.woken.wait(WAIT), "the paused waiter was never woken"


class Watched(threading.Condition):
    """The store's ``_synced`` condition, counting the threads that wait on it."""

    def __init__(self, lock: Any) -> None:
        super().__init__(lock)
        self.waiting: queue.Queue[None] = queue.Queue()

    def wait(self, timeout: Optional[float] = None) -> bool:
        self.waiting.put(None)
        return super().wait(timeout)

    def wait_for_waiters(self, n: int) -> None:
        for _ in range(n):
            self.waiting.get(timeout=WAIT)


def watch(store: FileStore) -> Watched:
    watched = Watched(store._mutex)
    store._synced = watched
    return watched


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "s")


def open_store(path: str) -> FileStore:
    store = FileStore(path, fsync="always")
    store.load()
    return store


def add(store: FileStore, i: int) -> int:
    """Append an add of message ``i`` (body ``i``) to queue "q"; return its seq."""
    return store.append(("add", "q", i, 0.0, None), store.encode(i))


def reopened(path: str) -> List[Any]:
    with MessageQueue(store=FileStore(path)) as mq:
        return mq.all("q")


def fail_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write is short and cannot be cut back: the store fails at the next append."""

    def no_truncate(fd: int, length: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(archive, "write", lambda fd, data: os.write(fd, data[:3]))
    monkeypatch.setattr(os, "ftruncate", no_truncate)


def test_an_add_waiting_for_the_next_round_raises_when_the_store_fails_meanwhile(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fails to write (and to cut back) while an fsync round runs and B waits for the
    next one: the store fails, and B gets a StoreError instead of waiting forever."""
    mq = MessageQueue(store=FileStore(path, fsync="always"))
    try:
        mq.add("q", 0)
        gate = FsyncGate(monkeypatch, "A")
        waiters = Waiters(monkeypatch)
        a = Worker("A", lambda: mq.add("q", 1))
        gate.wait_entered()
        b = Worker("B", lambda: mq.add("q", 2))
        waiters.wait(1)
        fail_writes(monkeypatch)
        with pytest.raises(StoreError, match="cannot write"):
            mq.add("q", 3)
        gate.open()
        assert a.join().error is None
        assert isinstance(b.join().error, StoreError)
        assert "failed" in str(b.error)
        with pytest.raises(StoreError, match="failed"):
            mq.add("q", 4)  # refused until reopened
    finally:
        mq.close()
    monkeypatch.undo()
    assert reopened(path)[:2] == [0, 1]  # returned adds survive; B's may or may not
