"""FileStore's files when things go wrong: unreadable, damaged, missing or stale files,
failing writes, fsyncs and deletions, and the smaller parts of the store API.

What a user sees is checked each time: the error raised (and what it names), that the
directory's lock is released when opening fails, that nothing acknowledged is lost, and
that a later open repairs what can be repaired.
"""

from __future__ import annotations

import errno
import logging
import os
import pickle
import struct
import zlib
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from unidist_queue import CorruptArchive, MemoryStore, MessageQueue, StoreError
from unidist_queue.store import archive, snapshot
from unidist_queue.store.archive import (
    HEADER,
    ArchiveScan,
    Framer,
    decode_payload,
    encode_record,
    unpack_header,
)
from unidist_queue.store.file import FileStore
from unidist_queue.store.serializers import PickleSerializer, by_name


def build(path: str, n: int = 4, **options: Any) -> None:
    """A store whose queue "q" holds ``0 .. n-1`` (message ids ``1 .. n``).

    Its archive holds an id block (seq 1), the adds (seqs ``2 .. n+1``) and the last id
    recorded by the clean close (seq ``n+2``).
    """
    with MessageQueue(store=FileStore(path, fsync="never", **options)) as mq:
        for i in range(n):
            mq.add("q", i)


def contents(path: str, **options: Any) -> List[Any]:
    with MessageQueue(store=FileStore(path, **options)) as mq:
        return mq.all("q")


def eio(*args: Any) -> Any:
    raise OSError(errno.EIO, "I/O error")


def assert_unlocked(path: str) -> None:
    """The directory's lock was released: another FileStore can take it."""
    FileStore(path).close()


# -- opening ---------------------------------------------------------------------------------


def test_a_path_that_is_a_file_is_refused(path: str) -> None:
    Path(path).write_bytes(b"not a directory")
    with pytest.raises(StoreError, match="cannot open the store directory"):
        FileStore(path)
    store = FileStore(path, read_only=True)  # takes no lock: fails when it lists the files
    with pytest.raises(StoreError, match="cannot list"):
        store.load()


def test_load_runs_once(path: str) -> None:
    store = FileStore(path)
    try:
        store.load()
        with pytest.raises(StoreError, match="only be called once"):
            store.load()
    finally:
        store.close()


@pytest.mark.parametrize("name", ["archive.0", "snapshot.1"])
def test_an_unreadable_file_fails_the_open_and_releases_the_lock(path: str, name: str) -> None:
    build(path)
    if name == "snapshot.1":
        with MessageQueue(store=FileStore(path)) as mq:
            mq.compact()
    target = Path(path, name)
    saved = target.read_bytes()
    target.unlink()
    target.mkdir()  # reading it fails (as with EACCES, which root would not get)
    with pytest.raises(StoreError, match="cannot read"):
        MessageQueue(store=FileStore(path))
    assert_unlocked(path)
    target.rmdir()
    target.write_bytes(saved)
    assert contents(path) == [0, 1, 2, 3]


def test_a_torn_tail_that_cannot_be_cut_fails_the_open(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    build(path)
    with open(os.path.join(path, "archive.0"), "ab") as f:
        f.write(b"\x00" * 7)  # a torn last record
    monkeypatch.setattr(os, "truncate", eio)
    with pytest.raises(StoreError, match="cannot cut the torn tail"):
        MessageQueue(store=FileStore(path))
    assert_unlocked(path)
    assert contents(path, read_only=True) == [0, 1, 2, 3]  # read-only cuts nothing
    monkeypatch.undo()
    assert contents(path) == [0, 1, 2, 3]


def test_a_symlinked_archive_is_not_opened_for_appending(path: str, tmp_path: Path) -> None:
    build(path)
    elsewhere = tmp_path / "elsewhere"
    os.replace(os.path.join(path, "archive.0"), elsewhere)
    os.symlink(elsewhere, os.path.join(path, "archive.0"))
    with pytest.raises(StoreError, match="cannot open the archive for appending"):
        MessageQueue(store=FileStore(path))
    assert_unlocked(path)
    assert contents(path, read_only=True) == [0, 1, 2, 3]


@pytest.mark.parametrize("failure", ["short header", "fsync"])
def test_a_new_archive_that_cannot_be_made_leaves_nothing_behind(
    path: str, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    if failure == "fsync":
        monkeypatch.setattr(archive, "fsync", eio)
    else:
        monkeypatch.setattr(archive, "write", lambda fd, data: os.write(fd, data[:10]))
    with pytest.raises(StoreError, match="cannot create"):
        MessageQueue(store=FileStore(path))
    assert os.listdir(path) == ["LOCK"]  # no archive, no .tmp
    assert_unlocked(path)
    monkeypatch.undo()
    build(path, 1)
    assert contents(path) == [0]


def test_an_archive_of_a_future_format_version_is_refused(path: str) -> None:
    build(path)
    archive_path = os.path.join(path, "archive.0")
    data = bytearray(Path(archive_path).read_bytes())
    struct.pack_into("<H", data, 8, archive.VERSION + 1)
    struct.pack_into("<I", data, 32, zlib.crc32(data[:32]))  # a valid header otherwise
    Path(archive_path).write_bytes(bytes(data))
    with pytest.raises(CorruptArchive, match="version 2 not supported") as info:
        MessageQueue(store=FileStore(path))
    assert (info.value.path, info.value.offset) == (archive_path, 0)


def _frames(path: str) -> Tuple[bytes, Framer, int]:
    """The archive's bytes, a framer for it, and its last seq."""
    data = Path(path, "archive.0").read_bytes()
    framer = Framer(unpack_header(data, path), None)
    off, seq = HEADER.size, 0
    while off < len(data):
        ln, _, seq = archive.FRAME.unpack_from(data, off)
        off += archive.FRAME.size + ln
    return data, framer, seq


def _long_name_add() -> bytes:
    payload = bytearray(encode_record(("add", "q", 90, 0.0, None), pickle.dumps("x", 0)))
    struct.pack_into("<I", payload, 2, 1000)  # the name's length: name and body (ASCII) make
    return bytes(payload)  # a valid name, and no body is left


UNREADABLE = {
    "garbage body": encode_record(("add", "q", 90, 0.0, None), b"not a pickle"),
    "queue name past the end": _long_name_add(),
    "unknown record type": b"Z" + b"?" * 40,
    "bad JSON": b"J[" + b" " * 40,
}


@pytest.mark.parametrize("payload", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_a_record_that_passes_its_checks_but_cannot_be_read(
    path: str, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A checksum-valid record that does not decode (a bug or a forgery, not a torn
    write): the default refuses to open, naming the offset; salvage skips it."""
    build(path)
    data, framer, last = _frames(path)
    after = framer.frame_record(last + 2, ("add", "q", 91, 0.0, None), pickle.dumps("after"))
    Path(path, "archive.0").write_bytes(data + framer.frame(last + 1, payload) + after)
    with pytest.raises(CorruptArchive, match="passes its checks but cannot be read") as info:
        MessageQueue(store=FileStore(path))
    assert info.value.offset == len(data)
    with caplog.at_level(logging.ERROR):
        assert contents(path, recovery="salvage") == [0, 1, 2, 3, "after"]
    assert "salvage: skipping" in caplog.text


def test_a_scan_checks_but_does_not_return_records_up_to_after(path: str) -> None:
    build(path, 5)
    data, framer, _ = _frames(path)
    scan = ArchiveScan(data, path, framer)
    assert [r[-1] for r in scan.records(pickle.loads, after=4) if r[0] == "add"] == [3, 4]
    assert (scan.count, scan.last_seq, scan.valid_end) == (7, 7, len(data))


def test_more_queue_names_than_the_framer_caches(path: str) -> None:
    store = FileStore(path, fsync="never")
    store.load()
    names = [f"q{i}" for i in range(4200)]
    for i, name in enumerate(names, 1):
        store.append(("add", name, i, 0.0, None), store.encode(i))
    store.close()
    with MessageQueue(store=FileStore(path)) as mq:
        assert mq.queues() == sorted(names)
        assert [mq.all(name) for name in (names[0], names[4097], names[-1])] == [[1], [4098], [4200]]


# -- snapshots -----------------------------------------------------------------------------


def _snapshot_with_body(path: str, body: bytes) -> None:
    """Replace snapshot.1's body with ``body`` (checksum recomputed: only decoding fails)."""

    class Raw(PickleSerializer):
        def dumps(self, obj: Any) -> bytes:
            return body

    snapshot.write_snapshot(path, "snapshot.1", {}, 4, Raw(), None)


def test_a_snapshot_that_cannot_be_decoded(path: str) -> None:
    build(path)
    with MessageQueue(store=FileStore(path)) as mq:
        mq.compact()
    _snapshot_with_body(path, b"\x80\x05 not a pickle")
    with pytest.raises(CorruptArchive, match="snapshot body cannot be decoded") as info:
        MessageQueue(store=FileStore(path))
    assert info.value.path == os.path.join(path, "snapshot.1")
    assert_unlocked(path)


def test_a_state_the_serializer_cannot_write(path: str) -> None:
    os.makedirs(path)
    with pytest.raises(StoreError, match="cannot serialize the snapshot state"):
        snapshot.write_snapshot(path, "snapshot.1", {"x": {1, 2}}, 0, by_name("json"), None)
    assert os.listdir(path) == []


def test_a_snapshot_write_that_writes_nothing(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    mq = MessageQueue(store=FileStore(path))
    try:
        for i in range(3):
            mq.add("q", i)
        mq._store.prepare_snapshot()  # the next archive exists: compact() only writes the snapshot
        monkeypatch.setattr(archive, "write", lambda fd, data: 0)
        with pytest.raises(StoreError, match="disk full"):
            mq.compact()
        assert sorted(os.listdir(path)) == ["LOCK", "archive.0", "archive.1"]  # no snapshot, no .tmp
        monkeypatch.undo()
        mq.add("q", 3)
    finally:
        mq.close()
    assert contents(path) == [0, 1, 2, 3]


def test_a_snapshot_whose_directory_fsync_fails(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    mq = MessageQueue(store=FileStore(path))
    try:
        for i in range(3):
            mq.add("q", i)
        monkeypatch.setattr(snapshot, "fsync_dir", eio)
        with pytest.raises(StoreError, match="cannot write snapshot"):
            mq.compact()  # renamed into place, but the rename may not be durable
        monkeypatch.undo()
        mq.add("q", 3)
        assert contents(path, read_only=True) == [0, 1, 2, 3]
        mq.compact()  # rewrites snapshot.1 over archive.1 (no new generation), removes archive.0
        assert sorted(os.listdir(path)) == ["LOCK", "archive.1", "snapshot.1"]
        mq.add("q", 4)
    finally:
        mq.close()
    assert contents(path) == [0, 1, 2, 3, 4]


def test_files_a_snapshot_replaces_that_cannot_be_deleted(
    path: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    build(path)
    with MessageQueue(store=FileStore(path)) as mq:
        monkeypatch.setattr(os, "unlink", eio)
        with caplog.at_level(logging.WARNING):
            mq.compact()  # harmless: the snapshot is durable
        monkeypatch.undo()
        assert "cannot delete files replaced by snapshot.1" in caplog.text
        assert "archive.0" in os.listdir(path)
    assert contents(path) == [0, 1, 2, 3]  # the next open removes them
    assert sorted(os.listdir(path)) == ["LOCK", "archive.1", "snapshot.1"]


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
    build(path, 2)
    assert contents(path) == [0, 1]


# -- the rest of the API ----------------------------------------------------------------------


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


def test_memory_store_records_nothing() -> None:
    store = MemoryStore()
    with pytest.raises(NotImplementedError):
        store.encode(1)
    with pytest.raises(NotImplementedError):
        store.append(("ids", 1))
    store.prepare_snapshot()
    assert store.begin_snapshot() is None


def test_framing_helpers() -> None:
    framer = Framer(archive.Header(1, 5, 0, 7, 0), None)
    assert framer.tag(b"12345678", b"payload") == b""  # unsigned: no tag
    with pytest.raises(StoreError, match="cannot record"):
        encode_record(("declare", {"not": "a plain value"}, {1}), None)
    names: Dict[Any, str] = {}
    payload = memoryview(encode_record(("add", "q", 3, 1.5, 2.5), pickle.dumps("body")))
    for _ in range(2):  # the second time, the queue name comes from ``names``
        assert decode_payload(payload, pickle.loads, names) == ("add", "q", 3, 1.5, 2.5, "body")
    assert names == {b"q": "q"}
