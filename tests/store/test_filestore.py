"""MessageQueue on a FileStore: a reopened queue holds exactly the acknowledged state; and
the smaller parts of FileStore's own API (load once, prepare_snapshot, repr)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Iterator, List

import pytest
from helpers import fill, reopened

from unidist_queue import Empty, Full, MessageQueue, SerializationError, StoreError
from unidist_queue.store.file import FileStore

POLICIES = ["always", "interval", "never"]


def open_mq(path: str, **options: Any) -> MessageQueue:
    return MessageQueue(store=FileStore(path, **options))


@pytest.fixture(params=POLICIES)
def policy(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param


def test_reopen_restores_ready_removed_and_declared(path: str, policy: str) -> None:
    with open_mq(path, fsync=policy) as mq:
        mq.declare("a", maxlen=10, overflow="reject")
        ids = [mq.add("a", {"n": i}) for i in range(5)]
        assert mq.oldest("a") == {"n": 0}
        assert mq.newest("a") == {"n": 4}
    with open_mq(path, fsync=policy) as mq:
        assert mq.all("a") == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert [m.id for m in mq.messages("a")] == ids[1:4]
        stats = mq.stats("a")
        assert (stats.ready, stats.durable) == (3, True)
        for i in range(7):
            mq.add("a", i)
        with pytest.raises(Full):
            mq.add("a", 12)  # maxlen=10 with overflow="reject" survived the restart


def test_ids_keep_increasing_across_restarts(path: str) -> None:
    seen: List[int] = []
    for _ in range(3):
        with open_mq(path, fsync="never") as mq:
            seen.append(mq.add("q", "x"))
            mq.oldest("q")
    assert seen == sorted(seen) and len(set(seen)) == 3


def test_ids_increase_after_non_durable_adds(path: str) -> None:
    with open_mq(path) as mq:
        mq.declare("mem", durable=False)
        last = max(mq.add("mem", i) for i in range(10))
    with open_mq(path) as mq:
        assert mq.add("q", "x") > last
        assert not mq.exists("mem")


def test_reserved_unacked_come_back_at_the_front_in_id_order(path: str) -> None:
    with open_mq(path) as mq:
        for i in range(5):
            mq.add("q", i)
        m1 = mq.reserve("q")
        m2 = mq.reserve("q")
        m3 = mq.reserve("q")
        mq.ack(m2)
        assert (m1.body, m3.body) == (0, 2)
    with open_mq(path) as mq:
        assert mq.all("q") == [0, 2, 3, 4]
        assert mq.stats("q").reserved == 0


def test_nack_and_delayed_survive(path: str) -> None:
    clock = [1000.0]
    with MessageQueue(store=FileStore(path), clock=lambda: clock[0]) as mq:
        mq.add("q", "later", delay=50)
        mq.add("q", "now")
        m = mq.reserve("q")
        mq.nack(m, delay=10)
    with MessageQueue(store=FileStore(path), clock=lambda: clock[0]) as mq:
        assert mq.count("q") == 0
        assert mq.stats("q").delayed == 2
        clock[0] += 20
        assert mq.all("q") == ["now"]
        clock[0] += 40
        assert mq.all("q") == ["now", "later"]


def test_clear_and_drop_survive(path: str) -> None:
    with open_mq(path) as mq:
        mq.add("a", 1)
        mq.add("b", 2)
        mq.clear("a")
        mq.drop("b")
    with open_mq(path) as mq:
        assert mq.exists("a") and mq.count("a") == 0
        assert not mq.exists("b")


def test_compaction_keeps_state_and_removes_old_files(path: str, policy: str) -> None:
    with open_mq(path, fsync=policy) as mq:
        for i in range(20):
            mq.add("q", i)
        for _ in range(5):
            mq.oldest("q")
        mq.compact()
        mq.add("q", 20)
        assert sorted(os.listdir(path)) == ["LOCK", "archive.1", "snapshot.1"]
    with open_mq(path, fsync=policy) as mq:
        assert mq.all("q") == list(range(5, 21))
        mq.compact()
        mq.compact()
    assert sorted(os.listdir(path)) == ["LOCK", "archive.3", "snapshot.3"]
    with open_mq(path, fsync=policy) as mq:
        assert mq.all("q") == list(range(5, 21))


def test_automatic_compaction(path: str) -> None:
    with open_mq(path, fsync="never", compact_every=10) as mq:
        for i in range(35):
            mq.add("q", i)
        names = sorted(os.listdir(path))
        assert [n for n in names if n.startswith("snapshot")] == ["snapshot.3"]
    with open_mq(path) as mq:
        assert mq.all("q") == list(range(35))


def test_crash_between_snapshot_steps_is_harmless(path: str) -> None:
    """Snapshot begun (appends on the new archive) but never written: both archives replay."""
    store = FileStore(path, fsync="never")
    mq = MessageQueue(store=store)
    for i in range(5):
        mq.add("q", i)
    store.prepare_snapshot()
    store.begin_snapshot()  # as if the process died before write_snapshot
    mq.add("q", 5)
    mq.close()
    assert {"archive.0", "archive.1"} <= set(os.listdir(path))
    with open_mq(path) as mq:
        assert mq.all("q") == list(range(6))


def test_snapshot_newer_than_archive_skips_replayed_records(path: str) -> None:
    """A crash after the snapshot's rename but before the old files' deletion."""
    with open_mq(path) as mq:
        for i in range(5):
            mq.add("q", i)
    old = Path(path, "archive.0").read_bytes()
    with open_mq(path) as mq:
        mq.compact()
        mq.oldest("q")
    Path(path, "archive.0").write_bytes(old)
    with open_mq(path) as mq:
        assert mq.all("q") == [1, 2, 3, 4]
    assert "archive.0" not in os.listdir(path)


def test_stale_tmp_is_removed(path: str) -> None:
    with open_mq(path) as mq:
        mq.add("q", 1)
    Path(path, "snapshot.7.tmp").write_bytes(b"half a snapshot")
    with open_mq(path) as mq:
        assert mq.all("q") == [1]
    assert not any(n.endswith(".tmp") for n in os.listdir(path))


def test_json_serializer(path: str) -> None:
    with open_mq(path, serializer="json") as mq:
        mq.add("q", {"a": [1, 2.5, None, True, "é"]})
        mq.add("q", (1, 2))
        for bad in ({1, 2}, {1: "x"}, b"raw", float("nan"), object()):
            with pytest.raises(SerializationError):
                mq.add("q", bad)
        assert mq.count("q") == 2
        mq.compact()
        mq.add("q", "after")
    with open_mq(path, serializer="json") as mq:
        assert mq.all("q") == [{"a": [1, 2.5, None, True, "é"]}, [1, 2], "after"]


def test_serializer_mismatch_is_refused(path: str) -> None:
    with open_mq(path, serializer="json") as mq:
        mq.add("q", 1)
    with pytest.raises(StoreError, match="json"):
        open_mq(path, serializer="pickle")
    with open_mq(path, serializer=None) as mq:  # None: take the files' serializer
        assert mq.all("q") == [1]


def test_read_only_store_changes_nothing(path: str) -> None:
    with open_mq(path) as mq:
        mq.add("q", 1)
        before = {n: Path(path, n).read_bytes() for n in os.listdir(path)}
        with MessageQueue(store=FileStore(path, read_only=True, serializer=None)) as ro:
            assert ro.all("q") == [1]
            with pytest.raises(StoreError):
                ro.add("q", 2)
        mq.add("q", 3)
    with open_mq(path) as mq:
        assert mq.all("q") == [1, 3]
    assert before["archive.0"] == Path(path, "archive.0").read_bytes()[: len(before["archive.0"])]


def test_read_only_store_refuses_writes_directly(path: str) -> None:
    store = FileStore(path, read_only=True)
    assert store.load() == (None, [])
    with pytest.raises(StoreError):
        store.append(("ids", 5))
    with pytest.raises(StoreError):
        store.prepare_snapshot()
    store.close()
    assert not os.path.exists(path)


def test_group_commit_with_threads(path: str) -> None:
    with open_mq(path, fsync="always") as mq:
        def produce(k: int) -> None:
            for i in range(50):
                mq.add("q", (k, i))

        threads = [threading.Thread(target=produce, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
            assert not t.is_alive()
    with open_mq(path) as mq:
        items = mq.all("q")
    assert len(items) == 400
    for k in range(8):
        assert [i for kk, i in items if kk == k] == list(range(50))


def test_interval_flusher_thread_stops_on_close(path: str) -> None:
    before = set(threading.enumerate())
    mq = open_mq(path, fsync="interval", fsync_interval=0.01)
    mq.add("q", 1)
    mq.close()
    assert set(threading.enumerate()) <= before


def test_close_is_idempotent_and_commit_after_close(path: str) -> None:
    store = FileStore(path, fsync="always")
    store.load()
    seq = store.append(("ids", 10))
    store.close()
    store.close()
    store.commit(seq)  # already durable: close fsynced it
    with pytest.raises(StoreError):
        store.append(("ids", 20))


def test_empty_reads_after_reopen(path: str) -> None:
    with open_mq(path) as mq:
        mq.add("q", 1)
        mq.oldest("q")
    with open_mq(path) as mq, pytest.raises(Empty):
        mq.oldest("q")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fsync": "sometimes"},
        {"fsync_interval": 0},
        {"fsync_interval": "1"},
        {"compact_every": 0},
        {"compact_every": 1.5},
        {"serializer": "yaml"},
        {"hmac_key": "text"},
        {"hmac_key": b""},
        {"recovery": "ignore"},
        {"read_only": 1},
    ],
)
def test_bad_arguments_name_the_argument(path: str, kwargs: Any) -> None:
    name = next(iter(kwargs))
    with pytest.raises((TypeError, ValueError), match=name):
        FileStore(path, **kwargs)


# -- the store API ---------------------------------------------------------------------------


def test_load_runs_once(path: str) -> None:
    store = FileStore(path)
    try:
        store.load()
        with pytest.raises(StoreError, match="only be called once"):
            store.load()
    finally:
        store.close()


def test_a_prepared_snapshot_is_idempotent_and_closed_with_the_store(path: str) -> None:
    store = FileStore(path)
    with pytest.raises(StoreError, match="load"):
        store.prepare_snapshot()
    store.load()
    with pytest.raises(StoreError, match="prepare_snapshot"):
        store.begin_snapshot()
    store.prepare_snapshot()
    store.prepare_snapshot()
    assert sorted(os.listdir(path)) == ["LOCK", "archive.0", "archive.1"]
    store.close()  # without beginning it: archive.1 holds just its header
    fill(path, 2)
    assert reopened(path) == [0, 1]


def test_compact_every_none_never_asks_for_a_compaction(path: str) -> None:
    for compact_every, due in ((None, False), (3, True)):
        store = FileStore(path, compact_every=compact_every)
        store.load()
        for i in range(5):
            store.append(("ids", i))
        assert store.compaction_due is due
        store.close()


def test_signed_and_repr(path: str) -> None:
    store = FileStore(path, fsync="always", hmac_key=b"k")
    assert store.signed and repr(store) == f"<FileStore {path!r} fsync=always>"
    store.close()
    store = FileStore(path, read_only=True)
    assert not store.signed and repr(store) == f"<FileStore {path!r} read-only>"
