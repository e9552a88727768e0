"""FileStore group commit (fsync="always") under failures, interruptions and close().

Orderings are forced, never slept for: :class:`FsyncGate` holds the fsyncs of chosen
threads until the test opens it, :class:`Waiters` reports each committer that starts to
wait for a round (and can interrupt or pause it as it is woken), and
:class:`Watched` reports a close() or write_snapshot() waiting for a round to end.
Every join has a timeout: a hang fails the test instead of stalling the suite.

These are unit tests of an internal object, the GroupCommit a FileStore owns
(``unidist_queue/store/groupcommit.py``): :class:`Waiters` replaces its waiter class and
:func:`watch` the condition it notifies when a round ends, to force orderings that
nothing public can. ruff.toml allows SLF001 (private members) in this file for that.
"""

from __future__ import annotations

import errno
import os
import queue
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

import pytest
from helpers import eio, reopened, threads_named

from unidist_queue import MessageQueue, ShutDown, StoreError
from unidist_queue.store import archive, groupcommit
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

        class Tracked(groupcommit._Waiter):
            __slots__ = ()

            def __init__(self, seq: int) -> None:
                super().__init__(seq)
                mode = registry.modes.pop(threading.current_thread().name, None)
                if mode is not None:
                    self.lock = _Lock(self.lock, mode, registry.woken, registry.go)  # type: ignore[assignment]
                registry.seqs.put(seq)

        monkeypatch.setattr(groupcommit, "_Waiter", Tracked)

    def wait(self, n: int) -> List[int]:
        """Until ``n`` more committers started waiting; their seqs."""
        return [self.seqs.get(timeout=WAIT) for _ in range(n)]

    def wait_woken(self) -> None:
        assert self.woken.wait(WAIT), "the paused waiter was never woken"


class Watched(threading.Condition):
    """The group commit's ``_synced`` condition, counting the threads that wait on it."""

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
    store._commit._synced = watched
    return watched


def open_store(path: str) -> FileStore:
    store = FileStore(path, fsync="always")
    store.load()
    return store


def add(store: FileStore, i: int) -> int:
    """Append an add of message ``i`` (body ``i``) to queue "q"; return its seq."""
    return store.append(("add", "q", i, 0.0, None), store.encode(i))


def fail_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write is short and cannot be cut back: the store fails at the next append."""
    monkeypatch.setattr(archive, "write", lambda fd, data: os.write(fd, data[:3]))
    monkeypatch.setattr(os, "ftruncate", eio)


def a_in_a_round(
    mq: MessageQueue, monkeypatch: pytest.MonkeyPatch, **modes: str
) -> Tuple[FsyncGate, Waiters, Worker]:
    """After one add: thread A's add is inside an fsync round (held at ``gate``); the
    committers that wait from then on are reported (``modes``: as for :class:`Waiters`)."""
    mq.add("q", 0)
    gate = FsyncGate(monkeypatch, "A")
    waiters = Waiters(monkeypatch, **modes)
    a = Worker("A", lambda: mq.add("q", 1))
    gate.wait_entered()
    return gate, waiters, a


def a_in_a_round_b_waiting(
    mq: MessageQueue, monkeypatch: pytest.MonkeyPatch, **modes: str
) -> Tuple[FsyncGate, Waiters, Worker, Worker]:
    """As :func:`a_in_a_round`, and thread B's add waits for the next round."""
    gate, waiters, a = a_in_a_round(mq, monkeypatch, **modes)
    b = Worker("B", lambda: mq.add("q", 2))
    waiters.wait(1)
    return gate, waiters, a, b


def test_an_add_waiting_for_the_next_round_raises_when_the_store_fails_meanwhile(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fails to write (and to cut back) while an fsync round runs and B waits for the
    next one: the store fails, and B gets a StoreError instead of waiting forever."""
    mq = MessageQueue(store=FileStore(path, fsync="always"))
    try:
        gate, _waiters, a, b = a_in_a_round_b_waiting(mq, monkeypatch)
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


def _producers(mq: MessageQueue, n: int, stop: Type[BaseException]) -> List[Worker]:
    """``n`` threads adding ``(k, i)`` to "q" until an add raises ``stop``."""

    def produce(k: int) -> List[int]:
        done: List[int] = []
        for i in range(1000):
            try:
                mq.add("q", (k, i))
            except stop:
                return done
            done.append(i)
        raise AssertionError("never stopped")

    return [Worker(f"P{k}", lambda k=k: produce(k)) for k in range(n)]  # type: ignore[misc]


def _check_survivors(path: str, workers: List[Worker]) -> None:
    """Every add that returned is there after a reopen, in order; nothing else is."""
    items = reopened(path)
    for k, w in enumerate(workers):
        assert w.join().error is None
        mine = [i for kk, i in items if kk == k]
        assert mine[: len(w.result)] == w.result
        assert mine == list(range(len(mine))) and len(mine) <= len(w.result) + 1


def test_adds_from_8_threads_when_fsync_starts_failing(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = archive.fsync
    calls: List[int] = []

    def failing(fd: int) -> None:
        calls.append(fd)
        if len(calls) >= 20:
            raise OSError(errno.EIO, "I/O error")
        real(fd)

    mq = MessageQueue(store=FileStore(path, fsync="always"))
    try:
        monkeypatch.setattr(archive, "fsync", failing)
        workers = _producers(mq, 8, StoreError)
        for w in workers:
            w.join()
        with pytest.raises(StoreError, match="fsync failed"):
            mq.add("q", "after")  # refused until reopened
    finally:
        mq.close()
    monkeypatch.undo()
    _check_survivors(path, workers)


def test_close_while_8_threads_add(path: str) -> None:
    mq = MessageQueue(store=FileStore(path, fsync="always"))
    heard: List[str] = []
    enough = threading.Event()

    def count(name: str) -> None:
        heard.append(name)
        if len(heard) >= 40:
            enough.set()

    mq.subscribe("q", count)
    try:
        workers = _producers(mq, 8, ShutDown)
        assert enough.wait(WAIT)
    finally:
        mq.close()  # every add in flight either returns (durable) or raises ShutDown
    _check_survivors(path, workers)


def test_waiters_get_the_error_of_a_failed_fsync(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    mq = MessageQueue(store=FileStore(path, fsync="always"))
    try:
        gate, waiters, a, b = a_in_a_round_b_waiting(mq, monkeypatch)
        c = Worker("C", lambda: mq.add("q", 3))
        waiters.wait(1)
        gate.open(OSError(errno.EIO, "I/O error"))
        assert isinstance(a.join().error, StoreError) and "fsync failed" in str(a.error)
        for w in (b, c):
            assert isinstance(w.join().error, StoreError) and "failed" in str(w.error)
        with pytest.raises(StoreError, match="failed"):
            mq.add("q", 4)
    finally:
        mq.close()
    monkeypatch.undo()
    assert reopened(path) == [0, 1, 2, 3]  # written, though never fsynced


def test_commits_after_a_failed_fsync_raise(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(path)
    try:
        s1, s2 = add(store, 1), add(store, 2)
        monkeypatch.setattr(archive, "fsync", eio)
        with pytest.raises(StoreError, match="fsync failed"):
            store.commit(s1)
        with pytest.raises(StoreError, match="failed"):
            store.commit(s2)  # not made durable by anyone: it raises too
        with pytest.raises(StoreError, match="failed"):
            add(store, 3)
    finally:
        store.close()


def test_close_waits_for_the_round_in_progress(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    mq = MessageQueue(store=FileStore(path, fsync="always"))
    gate, _waiters, a, b = a_in_a_round_b_waiting(mq, monkeypatch)
    watched = watch(mq.store)  # type: ignore[arg-type]
    closer = Worker("close", mq.close)
    watched.wait_for_waiters(1)
    gate.open()
    for w in (a, b, closer):
        assert w.join().error is None
    assert reopened(path) == [0, 1, 2]


def test_two_closes_during_a_round(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(path)
    s1 = add(store, 1)
    watched = watch(store)
    gate = FsyncGate(monkeypatch, "A")
    a = Worker("A", lambda: store.commit(s1))
    gate.wait_entered()
    closers = [Worker(f"close{i}", store.close) for i in range(2)]
    watched.wait_for_waiters(2)
    gate.open()
    for w in (a, *closers):
        assert w.join().error is None
    with pytest.raises(StoreError, match="closed"):
        add(store, 2)
    assert reopened(path) == [1]


def test_an_interrupted_fsync_counts_as_nothing(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(path)
    try:
        s1 = add(store, 1)
        real = archive.fsync
        calls: List[int] = []

        def interrupted_once(fd: int) -> None:
            calls.append(fd)
            if len(calls) == 1:
                raise Interrupted()
            real(fd)

        monkeypatch.setattr(archive, "fsync", interrupted_once)
        with pytest.raises(Interrupted):
            store.commit(s1)
        store.commit(s1)  # not durable yet: a new round fsyncs
        assert len(calls) == 2
        store.commit(s1)  # durable now: nothing to do
        assert len(calls) == 2
    finally:
        store.close()


def test_an_interrupted_leader_passes_the_round_on(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    mq = MessageQueue(store=FileStore(path, fsync="always"))
    try:
        gate, _waiters, a, b = a_in_a_round_b_waiting(mq, monkeypatch)
        gate.open(Interrupted())
        assert isinstance(a.join().error, Interrupted)
        assert b.join().error is None  # B led the next round, covering A's record too
        assert gate.calls == 2
        mq.add("q", 3)
    finally:
        mq.close()
    assert reopened(path) == [0, 1, 2, 3]


def test_a_waiter_interrupted_before_its_turn_is_forgotten(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mq = MessageQueue(store=FileStore(path, fsync="always"))
    try:
        gate, _waiters, a, b = a_in_a_round_b_waiting(mq, monkeypatch, B="before")
        assert isinstance(b.join().error, Interrupted)
        gate.open()
        assert a.join().error is None
        mq.add("q", 3)
    finally:
        mq.close()
    assert reopened(path) == [0, 1, 2, 3]


@pytest.mark.parametrize("others", [0, 1])
def test_a_waiter_interrupted_as_it_is_made_leader_passes_the_role_on(
    path: str, monkeypatch: pytest.MonkeyPatch, others: int
) -> None:
    """A's fsync is interrupted: B is made to lead, but is interrupted too; C (if there is
    one) leads instead. Either way, nothing is left waiting and later adds work."""
    mq = MessageQueue(store=FileStore(path, fsync="always"))
    try:
        gate, waiters, a, b = a_in_a_round_b_waiting(mq, monkeypatch, B="after")
        rest = [Worker("C", lambda: mq.add("q", 3))] if others else []
        waiters.wait(others)
        gate.open(Interrupted())
        assert isinstance(a.join().error, Interrupted)
        assert isinstance(b.join().error, Interrupted)
        for w in rest:
            assert w.join().error is None
        mq.add("q", 4)
    finally:
        mq.close()
    assert reopened(path) == [0, 1, 2, *([3] if others else []), 4]


@pytest.mark.parametrize("others", [0, 1])
def test_a_covered_waiter_interrupted_as_it_wakes_still_wakes_the_next(
    path: str, monkeypatch: pytest.MonkeyPatch, others: int
) -> None:
    store = open_store(path)
    try:
        s1, s2, s3 = add(store, 1), add(store, 2), add(store, 3)
        gate = FsyncGate(monkeypatch, "A")
        waiters = Waiters(monkeypatch, B="after")
        a = Worker("A", lambda: store.commit(s1))  # its round covers 1..3
        gate.wait_entered()
        b = Worker("B", lambda: store.commit(s2))
        waiters.wait(1)
        rest = [Worker("C", lambda: store.commit(s3))] if others else []
        waiters.wait(others)
        gate.open()
        assert a.join().error is None
        assert isinstance(b.join().error, Interrupted)
        for w in rest:
            assert w.join().error is None
        calls = gate.calls
        store.commit(s2)  # B's record was made durable all the same
        assert gate.calls == calls
    finally:
        store.close()


def _hand_the_lead_to_a_paused_waiter(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A leads a round covering C; B waits for the next one. When C leaves, B is made to
    lead, and pauses as it wakes. Returns (waiters, [A, B, C], B's seq)."""
    s1, s2 = add(store, 1), add(store, 2)
    gate = FsyncGate(monkeypatch, "A")
    waiters = Waiters(monkeypatch, B="pause")
    a = Worker("A", lambda: store.commit(s1))
    gate.wait_entered()
    c = Worker("C", lambda: store.commit(s2))
    waiters.wait(1)
    s3 = add(store, 3)
    b = Worker("B", lambda: store.commit(s3))
    waiters.wait(1)
    gate.open()
    waiters.wait_woken()
    assert a.join().error is None and c.join().error is None
    return waiters, b, s3


def test_a_woken_leader_waits_again_for_a_thread_about_to_append(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(path)
    try:
        waiters, b, s3 = _hand_the_lead_to_a_paused_waiter(store, monkeypatch)
        store.enter()  # a thread about to append: its record should join the round
        waiters.go.set()
        assert waiters.wait(1) == [s3]  # B waits again, for the round this thread leads
        s4 = add(store, 4)
        store.leave()  # the last one about to append leads
        assert b.join().error is None
        store.commit(s4)
    finally:
        store.close()
    assert reopened(path) == [1, 2, 3, 4]


def test_a_woken_leader_raises_when_the_store_failed_meanwhile(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(path)
    try:
        waiters, b, _ = _hand_the_lead_to_a_paused_waiter(store, monkeypatch)
        fail_writes(monkeypatch)
        with pytest.raises(StoreError, match="cannot write"):
            add(store, 4)
        waiters.go.set()
        assert isinstance(b.join().error, StoreError) and "failed" in str(b.error)
    finally:
        store.close()


def test_the_last_appender_releases_waiters_when_its_write_failed_the_store(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(path)
    try:
        waiters = Waiters(monkeypatch)
        s1 = add(store, 1)
        store.enter()
        b = Worker("B", lambda: store.commit(s1))  # waits: a thread is about to append
        waiters.wait(1)
        fail_writes(monkeypatch)
        with pytest.raises(StoreError, match="cannot write"):
            add(store, 2)
        store.leave()
        assert isinstance(b.join().error, StoreError) and "failed" in str(b.error)
    finally:
        store.close()


def test_a_record_appended_while_close_fsyncs_is_not_claimed_durable(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(path)
    add(store, 1)
    gate = FsyncGate(monkeypatch, "close")
    waiters = Waiters(monkeypatch)
    closer = Worker("close", store.close)
    gate.wait_entered()  # close() fsyncs record 1
    store.enter()
    s2 = add(store, 2)
    b = Worker("B", lambda: store.commit(s2))
    waiters.wait(1)
    gate.open()
    assert closer.join().error is None
    assert isinstance(b.join().error, StoreError) and "closed before record" in str(b.error)
    store.leave()
    with pytest.raises(StoreError, match="is closed"):
        store.commit(s2)
    assert reopened(path)[:1] == [1]


def test_the_interval_flusher_stops_when_the_store_fails(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileStore(path, fsync="interval", fsync_interval=0.001)
    store.load()
    try:
        (flusher,) = threads_named("FileStore flusher")
        assert flusher.is_alive()
        add(store, 1)
        fail_writes(monkeypatch)
        with pytest.raises(StoreError):
            add(store, 2)
        flusher.join(WAIT)
        assert not flusher.is_alive()
    finally:
        store.close()


def test_a_snapshot_waits_for_the_round_in_progress(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    mq = MessageQueue(store=FileStore(path, fsync="always"))
    gate, _waiters, a = a_in_a_round(mq, monkeypatch)
    watched = watch(mq.store)  # type: ignore[arg-type]
    compactor = Worker("compact", mq.compact)
    watched.wait_for_waiters(1)  # the snapshot is written; the old archive is still being fsynced
    assert os.path.exists(os.path.join(path, "archive.0"))
    gate.open()
    assert compactor.join().error is None and a.join().error is None
    assert not os.path.exists(os.path.join(path, "archive.0"))
    mq.add("q", 2)
    mq.close()
    assert reopened(path) == [0, 1, 2]
