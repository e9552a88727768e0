"""The store contract: ``MessageQueue`` behaves the same on every :class:`Store`.

Every test here runs once per backend in :data:`BACKENDS` (but one: what MemoryStore
refuses). A new backend is one more entry there: a name, a function that opens the store
in a directory, and whether it is persistent. Tests take the fixture ``make_store``,
which opens a new store of the backend on the same directory each time it is called
(the second call reopens), or ``make_persistent_store`` for what only a persistent store
can do (reopen).

Three parts:

* queue behaviours (DESIGN.md section 3) that must give the same results on every store;
* the :class:`Store` interface itself (``load`` of a fresh store, records and snapshots
  round-trip, every record appended during a call is committed before the call returns);
* persistence: a reopened queue holds exactly the acknowledged state.
"""

from __future__ import annotations

import contextlib
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Iterable, List, Optional, Tuple

import attrs
import pytest
from helpers import in_thread, join

from unidist_queue import Empty, Full, MemoryStore, Message, MessageQueue, ShutDown, Store
from unidist_queue.store.base import Record, State
from unidist_queue.store.file import FileStore

MakeStore = Callable[[], Store]


@attrs.frozen
class Backend:
    """A store backend under the contract: ``open(directory)`` gives a new store."""

    name: str
    open: Callable[[Path], Store]
    persistent: bool


BACKENDS = [
    Backend("memory", lambda path: MemoryStore(), persistent=False),
    Backend("file-always", lambda path: FileStore(path, fsync="always"), persistent=True),
    Backend(
        "file-interval", lambda path: FileStore(path, fsync="interval", fsync_interval=0.01), persistent=True
    ),
    Backend("file-never", lambda path: FileStore(path, fsync="never"), persistent=True),
]
PERSISTENT = [b for b in BACKENDS if b.persistent]


def _name(backend: Backend) -> str:
    return backend.name


@pytest.fixture(params=BACKENDS, ids=_name)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> MakeStore:
    """Opens a new store of the backend under test, on the same directory every call."""
    backend: Backend = request.param
    return lambda: backend.open(tmp_path / "store")


@pytest.fixture(params=PERSISTENT, ids=_name)
def make_persistent_store(request: pytest.FixtureRequest, tmp_path: Path) -> MakeStore:
    """Like ``make_store``, for the persistent backends only."""
    backend: Backend = request.param
    return lambda: backend.open(tmp_path / "store")


@pytest.fixture
def mq(make_store: MakeStore, clock: Any) -> Iterable[MessageQueue]:
    """A MessageQueue on the backend under test and the manual clock."""
    with MessageQueue(store=make_store(), clock=clock) as mq:
        yield mq


class SpyStore(Store):
    """Wraps a store and records the sequence numbers appended and committed.

    The queue commits only the last record of a call (``commit(seq)`` covers every
    record up to ``seq``), so a record is uncommitted when no later commit covers it.
    """

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.persistent = inner.persistent
        self.read_only = inner.read_only
        self.appended: List[int] = []
        self.committed: List[int] = []

    def uncommitted(self) -> List[int]:
        top = max(self.committed, default=0)
        return [seq for seq in self.appended if seq > top]

    def load(self) -> Tuple[Optional[State], Iterable[Record]]:
        return self.inner.load()

    def encode(self, body: Any) -> bytes:
        return self.inner.encode(body)

    def append(self, record: Record, body: Optional[bytes] = None) -> int:
        seq = self.inner.append(record, body)
        self.appended.append(seq)
        return seq

    def commit(self, seq: int) -> None:
        self.inner.commit(seq)
        self.committed.append(seq)

    @property
    def compaction_due(self) -> bool:
        return self.inner.compaction_due

    def prepare_snapshot(self) -> None:
        self.inner.prepare_snapshot()

    def begin_snapshot(self) -> Any:
        return self.inner.begin_snapshot()

    def write_snapshot(self, state: State, token: Any) -> None:
        self.inner.write_snapshot(state, token)

    def close(self) -> None:
        self.inner.close()


# -- queue behaviours, the same on every store ------------------------------------------------


def test_fifo_oldest_newest_and_increasing_ids(mq: MessageQueue) -> None:
    ids = [mq.add("q", x) for x in "abcd"]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert mq.oldest("q", remove=False) == "a"
    assert mq.newest("q", remove=False) == "d"
    assert mq.count("q") == 4
    assert mq.oldest("q") == "a"
    assert mq.newest("q") == "d"
    assert mq.all("q") == ["b", "c"]
    assert mq.get("q", timeout=0) == "b"
    assert [m.id for m in mq.messages("q")] == [ids[2]]
    assert mq.add("q", "e") > ids[-1]


def test_unknown_and_empty_queues(mq: MessageQueue) -> None:
    assert (mq.count("nope"), mq.all("nope"), mq.messages("nope"), mq.exists("nope")) == (0, [], [], False)
    for take in (mq.oldest, mq.newest):
        with pytest.raises(Empty):
            take("nope")
        assert take("nope", default=None) is None
    with pytest.raises(Empty):
        mq.get("nope", timeout=0)
    with pytest.raises(Empty):
        mq.reserve("nope", timeout=0)
    mq.add("q", 1)
    mq.oldest("q")
    assert mq.exists("q") and mq.count("q") == 0  # an emptied queue still exists
    with pytest.raises(ValueError, match="timeout"):
        mq.get("q", timeout=-1)


def test_queues_clear_drop(mq: MessageQueue, clock: Any) -> None:
    mq.add("b", 1)
    mq.declare("a")
    mq.add("b", 2, delay=10)
    mq.add("b", 3)
    r = mq.reserve("b")
    assert mq.queues() == ["a", "b"]
    assert mq.clear("b") == 3  # ready, delayed and reserved
    assert mq.count("b") == 0 and mq.exists("b")
    with pytest.raises(ValueError, match="message"):
        mq.ack(r)
    clock.advance(20)
    assert mq.all("b") == []
    assert mq.drop("a") is True
    assert mq.drop("a") is False
    assert mq.queues() == ["b"]
    assert mq.clear("nope") == 0


def test_declare_options(mq: MessageQueue) -> None:
    mq.declare("drop", maxlen=2)
    for i in range(4):
        mq.add("drop", i)
    assert mq.all("drop") == [2, 3]
    mq.declare("drop", maxlen=1)  # smaller maxlen under drop_oldest evicts at once
    assert mq.all("drop") == [3]

    mq.declare("reject", maxlen=2, overflow="reject")
    mq.add("reject", 1)
    mq.add("reject", 2)
    with pytest.raises(Full):
        mq.add("reject", 3)
    mq.declare("reject", maxlen=1)  # the excess stays under reject; the overflow is kept
    assert mq.all("reject") == [1, 2]
    with pytest.raises(Full):
        mq.add("reject", 3)

    mq.declare("block", maxlen=1, overflow="block")
    mq.add("block", 1)
    with pytest.raises(Full):
        mq.add("block", 2, timeout=0)
    with pytest.raises(ValueError, match="maxlen"):  # "block" without a maxlen means nothing
        mq.declare("block", maxlen=None)
    mq.declare("block", maxlen=None, overflow="drop_oldest")
    mq.add("block", 2, timeout=0)
    assert mq.all("block") == [1, 2]
    stats = mq.stats("drop")
    assert (stats.added, stats.dropped) == (4, 3)
    with pytest.raises(ValueError, match="maxlen"):
        mq.declare("drop", maxlen=0)


def test_blocked_add_waits_for_room(mq: MessageQueue) -> None:
    mq.declare("q", maxlen=1, overflow="block")
    mq.add("q", 1)
    t, results = in_thread(lambda: mq.add("q", 2, timeout=60))
    assert mq.get("q", timeout=30) == 1
    join(t)
    assert results[0][0] == "ok"
    assert mq.get("q", timeout=30) == 2


def test_blocked_get_wakes_on_add(mq: MessageQueue) -> None:
    t, results = in_thread(lambda: mq.get("q", timeout=60))
    mq.add("q", "x")
    join(t)
    assert results == [("ok", "x")]
    assert mq.count("q") == 0


def test_asking_unknown_queues_leaves_nothing_behind(mq: MessageQueue) -> None:
    """Non-blocking and timed-out takes on many unknown names do not grow memory."""

    def ask(name: str) -> None:
        with pytest.raises(Empty):
            mq.get(name, timeout=0)
        with pytest.raises(Empty):
            mq.reserve(name, timeout=0)
        view = mq.view(name)
        with pytest.raises(Empty):
            view.get_nowait()
        with pytest.raises(Empty):
            view.get(timeout=0)
        view.shutdown()
        with pytest.raises(ShutDown):
            view.get(timeout=0)

    for i in range(100):  # warm-up: caches, interned strings
        ask(f"warm-{i}")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(1000):
            ask(f"unknown-{i}")
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 300_000, f"{grown} bytes kept for 1000 unknown queue names"
    assert mq.queues() == []
    assert not mq.exists("unknown-1")


def test_reserve_ack_nack(mq: MessageQueue) -> None:
    for x in "abcd":
        mq.add("q", x)
    ra, rb, rc = (mq.reserve("q") for _ in range(3))
    assert (ra.body, ra.queue, ra.attempts) == ("a", "q", 1)
    assert mq.all("q") == ["d"]
    assert mq.stats("q").reserved == 3
    mq.nack(rc)
    mq.nack(ra)
    assert mq.all("q") == ["a", "c", "d"]  # back at the front in id order
    mq.ack(rb)
    with pytest.raises(ValueError, match="message"):
        mq.ack(rb)
    again = mq.reserve("q")
    assert (again.id, again.attempts) == (ra.id, 2)
    mq.ack(again)
    stats = mq.stats("q")
    assert (stats.ready, stats.reserved, stats.removed) == (2, 0, 2)
    with pytest.raises(TypeError, match="message"):
        mq.ack("not a message")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="message"):
        mq.nack(Message(10**9, "q", None, 0.0, 1))


def test_delay_and_nack_delay(mq: MessageQueue, clock: Any) -> None:
    mq.add("q", "later", delay=10)
    mq.add("q", "now")
    assert mq.all("q") == ["now"]
    assert mq.stats("q").delayed == 1
    r = mq.reserve("q")
    mq.nack(r, delay=20)
    assert mq.count("q") == 0
    clock.advance(10)
    assert mq.all("q") == ["later"]  # due: joins the back
    clock.advance(10)
    assert mq.all("q") == ["now", "later"]  # a nack returns to the front
    assert mq.stats("q").delayed == 0


def test_a_delayed_add_overflows_when_due_not_at_the_add(mq: MessageQueue, clock: Any) -> None:
    """maxlen bounds the ready messages; a delayed one is not ready until it falls due."""
    for overflow in ("drop_oldest", "reject", "block"):
        mq.declare(overflow, maxlen=1, overflow=overflow)
        mq.add(overflow, "ready")
        mq.add(overflow, "delayed", delay=5, timeout=0)  # neither Full nor an eviction
        assert mq.all(overflow) == ["ready"]
        stats = mq.stats(overflow)
        assert (stats.ready, stats.delayed, stats.dropped) == (1, 1, 0)
    clock.advance(5)
    assert mq.all("drop_oldest") == ["delayed"]  # joined the back; the oldest made room
    assert mq.stats("drop_oldest").dropped == 1
    for overflow in ("reject", "block"):  # nobody to refuse or hold: the excess stays
        assert mq.all(overflow) == ["ready", "delayed"]
        assert mq.stats(overflow).dropped == 0


def test_max_age_expires_ready_delayed_and_nacked(mq: MessageQueue, clock: Any) -> None:
    mq.declare("q", max_age=10)
    mq.add("q", "old")
    mq.add("q", "delayed", delay=20)
    clock.advance(5)
    mq.add("q", "young")
    r = mq.reserve("q")
    assert r.body == "old"
    mq.nack(r, delay=1)
    clock.advance(6)
    assert mq.all("q") == ["young"]
    clock.advance(20)
    assert mq.all("q") == []
    assert mq.stats("q").expired == 3


def test_lease_returns_a_message_to_the_front(mq: MessageQueue, clock: Any) -> None:
    mq.add("q", "a")
    mq.add("q", "b")
    r = mq.reserve("q", lease=10)
    clock.advance(10)
    assert mq.all("q") == ["a", "b"]
    with pytest.raises(ValueError, match="message"):
        mq.ack(r)
    r2 = mq.reserve("q", lease=10)
    assert (r2.id, r2.attempts) == (r.id, 2)
    mq.ack(r2)
    assert mq.all("q") == ["b"]


def test_stats(make_store: MakeStore, clock: Any) -> None:
    store = make_store()
    mq = MessageQueue(store=store, clock=clock)
    mq.declare("q", maxlen=2, max_age=100)
    mq.add("q", "later", delay=5)
    for i in range(4):
        mq.add("q", i)
    mq.reserve("q")
    mq.oldest("q")
    stats = mq.stats("q")
    assert (stats.ready, stats.delayed, stats.reserved, stats.added) == (0, 1, 1, 5)
    assert (stats.removed, stats.expired, stats.dropped) == (1, 0, 2)
    assert stats.durable is store.persistent
    clock.advance(200)
    stats = mq.stats("q")
    assert (stats.delayed, stats.expired) == (0, 1)
    mq.close()


def test_close_wakes_waiters_and_refuses_calls(mq: MessageQueue) -> None:
    t, results = in_thread(lambda: mq.get("q", timeout=60))
    mq.close()
    join(t)
    assert results[0][0] == "raised" and isinstance(results[0][1], ShutDown)
    with pytest.raises(ShutDown):
        mq.add("q", 1)
    with pytest.raises(ShutDown):
        mq.count("q")
    mq.close()


# -- the Store interface ----------------------------------------------------------------------


def test_a_fresh_store_loads_no_state(make_store: MakeStore) -> None:
    store = make_store()
    try:
        state, records = store.load()
        assert state is None
        assert list(records) == []
        assert store.compaction_due is False
    finally:
        store.close()
        store.close()  # idempotent


def test_a_fresh_store_gives_an_empty_queue(make_store: MakeStore) -> None:
    with MessageQueue(store=make_store()) as mq:
        assert mq.queues() == []
        assert mq.add("q", 1) == 1


def test_records_and_snapshots_round_trip(make_persistent_store: MakeStore) -> None:
    store = make_persistent_store()
    store.load()
    body = store.encode({"x": [1, 2]})
    s1 = store.append(("declare", "q", 5, None, "reject"))
    s2 = store.append(("add", "q", 1, 100.0, None), body)
    assert s2 > s1
    store.commit(s2)
    store.close()

    store = make_persistent_store()
    state, records = store.load()
    assert state is None
    assert [tuple(r) for r in records] == [
        ("declare", "q", 5, None, "reject"),
        ("add", "q", 1, 100.0, None, {"x": [1, 2]}),
    ]
    store.prepare_snapshot()
    token = store.begin_snapshot()
    s3 = store.append(("remove", "q", 1))  # after the snapshot began: kept with it
    store.write_snapshot({"version": 1, "last_id": 1, "queues": {}}, token)
    store.commit(s3)
    store.close()

    store = make_persistent_store()
    state, records = store.load()
    store.close()
    assert state == {"version": 1, "last_id": 1, "queues": {}}
    assert [tuple(r) for r in records] == [("remove", "q", 1)]


def test_every_record_is_committed_before_the_call_returns(make_store: MakeStore, clock: Any) -> None:
    spy = SpyStore(make_store())
    calls: List[Tuple[str, Callable[[], Any]]] = []
    with MessageQueue(store=spy, clock=clock) as mq:
        held: List[Message] = []

        def step(name: str, fn: Callable[[], Any]) -> None:
            with contextlib.suppress(Empty, Full):
                fn()
            assert spy.uncommitted() == [], f"{name} returned with records not committed"
            calls.append((name, fn))

        step("declare", lambda: mq.declare("q", maxlen=3, max_age=50))
        step("add", lambda: mq.add("q", "a"))
        step("add delayed", lambda: mq.add("q", "d", delay=5))
        step("add more", lambda: [mq.add("q", i) for i in range(4)])
        step("reserve", lambda: held.append(mq.reserve("q", timeout=0, lease=30)))
        step("nack", lambda: mq.nack(held.pop()))
        step("reserve again", lambda: held.append(mq.reserve("q", timeout=0)))
        step("ack", lambda: mq.ack(held.pop()))
        step("nack delayed", lambda: mq.nack(mq.reserve("q"), delay=2))
        step("oldest", lambda: mq.oldest("q"))
        step("newest", lambda: mq.newest("q"))
        step("get", lambda: mq.get("q", timeout=0))
        clock.advance(10)
        step("count (promotes)", lambda: mq.count("q"))
        step("lease", lambda: held.append(mq.reserve("q", timeout=0, lease=1)))
        clock.advance(2)
        step("all (lease runs out)", lambda: mq.all("q"))
        clock.advance(100)
        step("messages (expires)", lambda: mq.messages("q"))
        step("get empty", lambda: mq.get("q", timeout=0))
        step("stats", lambda: mq.stats("q"))
        step("clear", lambda: mq.clear("q"))
        step("drop", lambda: mq.drop("q"))
        step("compact", mq.compact)
    assert len(calls) == 21


@pytest.mark.parametrize("view", [False, True], ids=["add", "view.put_nowait"])
def test_records_of_a_refresh_are_committed_when_the_add_raises_full(
    make_store: MakeStore, clock: Any, view: bool
) -> None:
    """Promotion and expiry done by an add that then raises Full are still committed."""
    spy = SpyStore(make_store())
    with MessageQueue(store=spy, clock=clock) as mq:
        mq.declare("promoted", maxlen=1, overflow="reject")
        mq.add("promoted", "ready")
        mq.add("promoted", "delayed", delay=5)
        mq.declare("expired", maxlen=3, overflow="reject")
        mq.add("expired", "old")
        clock.advance(5)
        mq.add("expired", "young 1")
        mq.add("expired", "young 2")
        mq.declare("expired", maxlen=1, max_age=8)  # the excess stays under reject
        clock.advance(4)  # "delayed" falls due, "old" expires
        for name in ("promoted", "expired"):
            appended = len(spy.appended)
            with pytest.raises(Full):
                if view:
                    mq.view(name).put_nowait("new")
                else:
                    mq.add(name, "new")
            if spy.persistent:
                assert len(spy.appended) == appended + 1  # the promotion or the expiry
            assert spy.uncommitted() == []
        assert mq.all("promoted") == ["ready", "delayed"]
        assert mq.all("expired") == ["young 1", "young 2"]
        assert mq.stats("expired").expired == 1


def test_memory_store_records_nothing() -> None:
    """The one backend-specific check: MemoryStore, not persistent, is never asked to
    encode or record, and refuses to; its snapshots save nothing."""
    store = MemoryStore()
    with pytest.raises(NotImplementedError):
        store.encode(1)
    with pytest.raises(NotImplementedError):
        store.append(("ids", 1))
    store.prepare_snapshot()
    assert store.begin_snapshot() is None


# -- persistence: reopen restores exactly the acknowledged state -----------------------------


def test_reopen_restores_ready_removed_and_options(make_persistent_store: MakeStore, clock: Any) -> None:
    with MessageQueue(store=make_persistent_store(), clock=clock) as mq:
        mq.declare("opts", maxlen=2, max_age=100, overflow="reject")
        mq.add("opts", "x")
        ids = [mq.add("q", i) for i in range(6)]
        assert mq.oldest("q") == 0
        assert mq.newest("q") == 5
        assert mq.get("q", timeout=0) == 1
        mq.add("gone", 1)
        mq.drop("gone")
        mq.add("emptied", 1)
        mq.clear("emptied")
    with MessageQueue(store=make_persistent_store(), clock=clock) as mq:
        assert mq.queues() == ["emptied", "opts", "q"]
        assert [(m.id, m.body) for m in mq.messages("q")] == list(zip(ids[2:5], [2, 3, 4], strict=True))
        assert mq.count("emptied") == 0
        clock.advance(50)
        mq.add("opts", "y")
        with pytest.raises(Full):
            mq.add("opts", "z")  # maxlen=2, overflow="reject" survived
        clock.advance(51)
        assert mq.all("opts") == ["y"]  # max_age=100 survived
        assert mq.stats("q").durable is True
        assert mq.add("q", "new") > ids[-1]


def test_reserved_unacked_come_back_at_the_front_in_id_order(
    make_persistent_store: MakeStore, clock: Any
) -> None:
    with MessageQueue(store=make_persistent_store(), clock=clock) as mq:
        for x in "abcdef":
            mq.add("q", x)
        ra, rb, rc, _rd = (mq.reserve("q", lease=1000) for _ in range(4))
        mq.nack(rb)  # ready: b e f; reserved: a c d
        mq.ack(rc)
    with MessageQueue(store=make_persistent_store(), clock=clock) as mq:
        assert mq.all("q") == ["a", "b", "d", "e", "f"]
        assert mq.stats("q").reserved == 0
        assert [m.attempts for m in mq.messages("q")] == [1, 1, 1, 0, 0]
        with pytest.raises(ValueError, match="message"):
            mq.ack(ra)  # a reservation does not outlive the restart
        again = mq.reserve("q")
        assert (again.id, again.attempts) == (ra.id, 2)


def test_a_restart_returns_reservations_as_nack_does(make_persistent_store: MakeStore, clock: Any) -> None:
    """Reserved messages go back to the front in id order, among the returned messages
    already there; ready messages that were never reserved keep their place (here:
    delayed messages that fell due and joined the back while others were reserved)."""

    def run(mq: MessageQueue) -> List[Message]:
        mq.add("q", "d1", delay=5)
        for x in "abc":
            mq.add("q", x)
        mq.add("q", "d2", delay=5)
        ra, rb, rc = (mq.reserve("q") for _ in range(3))
        mq.nack(ra)
        clock.advance(5)  # d1 and d2 join the back
        assert mq.all("q") == ["a", "d1", "d2"]
        return [rb, rc]

    with MessageQueue(clock=clock) as twin:  # the same calls in memory, then nack
        for m in run(twin):
            twin.nack(m)
        expected = twin.all("q")
    assert expected == ["a", "b", "c", "d1", "d2"]
    with MessageQueue(store=make_persistent_store(), clock=clock) as mq:
        run(mq)
    with MessageQueue(store=make_persistent_store(), clock=clock) as mq:
        assert mq.all("q") == expected
    with MessageQueue(store=make_persistent_store(), clock=clock) as mq:  # and again
        assert mq.all("q") == expected
        assert [m.attempts for m in mq.messages("q")] == [1, 1, 1, 0, 0]


def test_attempts_keep_counting_across_restarts(make_persistent_store: MakeStore) -> None:
    """A reservation released by a restart and reserved again counts each time."""
    for expected in (1, 2, 3):
        with MessageQueue(store=make_persistent_store()) as mq:
            if expected == 1:
                mq.add("q", "x")
                mq.add("q", "y")
            m = mq.reserve("q")
            assert (m.body, m.attempts) == ("x", expected)
    with MessageQueue(store=make_persistent_store()) as mq:
        assert [m.attempts for m in mq.messages("q")] == [3, 0]
        mq.nack(mq.reserve("q"))
        mq.ack(mq.reserve("q"))
    with MessageQueue(store=make_persistent_store()) as mq:
        assert mq.all("q") == ["y"]


def test_delayed_and_nacked_with_delay_survive(make_persistent_store: MakeStore, clock: Any) -> None:
    with MessageQueue(store=make_persistent_store(), clock=clock) as mq:
        mq.add("q", "later", delay=50)
        mq.add("q", "now")
        mq.nack(mq.reserve("q"), delay=10)
    with MessageQueue(store=make_persistent_store(), clock=clock) as mq:
        assert mq.stats("q").delayed == 2
        clock.advance(10)
        assert mq.all("q") == ["now"]
        clock.advance(40)
        assert mq.all("q") == ["now", "later"]


def test_overflow_of_a_delayed_add_survives(make_persistent_store: MakeStore, clock: Any) -> None:
    with MessageQueue(store=make_persistent_store(), clock=clock) as mq:
        mq.declare("q", maxlen=2)
        mq.add("q", "a")
        mq.add("q", "b")
        mq.add("q", "d", delay=5)
        clock.advance(5)
        assert mq.all("q") == ["b", "d"]
    with MessageQueue(store=make_persistent_store(), clock=clock) as mq:
        assert mq.all("q") == ["b", "d"]
        assert mq.stats("q").delayed == 0


def test_ids_keep_increasing_across_reopens(make_persistent_store: MakeStore) -> None:
    seen: List[int] = []
    for _ in range(3):
        with MessageQueue(store=make_persistent_store()) as mq:
            seen.append(mq.add("q", "x"))
            mq.oldest("q")
            mq.declare("memory only", durable=False)
            seen.append(mq.add("memory only", "y"))
    assert seen == sorted(seen) and len(set(seen)) == len(seen)


def test_compact_keeps_the_state(make_persistent_store: MakeStore, clock: Any) -> None:
    with MessageQueue(store=make_persistent_store(), clock=clock) as mq:
        mq.declare("q", maxlen=10, overflow="reject")
        for i in range(8):
            mq.add("q", i)
        mq.add("q", "delayed", delay=5)
        r = mq.reserve("q")
        mq.oldest("q")
        mq.compact()
        mq.add("q", 8)
        mq.compact()
        assert mq.all("q") == [2, 3, 4, 5, 6, 7, 8]
    with MessageQueue(store=make_persistent_store(), clock=clock) as mq:
        assert mq.all("q") == [r.body, 2, 3, 4, 5, 6, 7, 8]
        clock.advance(5)
        assert mq.newest("q") == "delayed"
        mq.add("q", 9)
        mq.add("q", 10)
        with pytest.raises(Full):
            mq.add("q", 11)
        last = mq.add("other", 0)
    with MessageQueue(store=make_persistent_store(), clock=clock) as mq:
        assert mq.all("q") == [r.body, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        assert mq.add("other", 1) > last

