"""FileStore.append_batch: several records with one write, all or nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from helpers import file_size

from unidist_queue import StoreError
from unidist_queue.store import archive
from unidist_queue.store.file import FileStore

Batch = List[Tuple[Tuple[Any, ...], Optional[bytes]]]


def batch(store: FileStore, first: int = 1) -> Batch:
    """A mix of records: adds (with and without a due time, two queues) and JSON records."""
    return [
        (("declare", "q", None, None, "drop_oldest"), None),
        (("add", "q", first, 1.5, None), store.encode({"n": first})),
        (("add", "q", first + 1, 2.5, 9.0), store.encode("two")),
        (("add", "é", first + 2, 3.5, None), store.encode([3])),
        (("reserve", "q", first), None),
        (("remove", "q", first), None),
        (("ids", first + 10), None),
    ]


def opened(path: str, **options: Any) -> FileStore:
    store = FileStore(path, fsync="never", **options)
    store.load()
    return store


def records(path: str, **options: Any) -> List[Any]:
    store = FileStore(path, read_only=True, **{"serializer": None, **options})
    try:
        return list(store.load()[1])
    finally:
        store.close()


@pytest.mark.parametrize(
    "options", [{}, {"hmac_key": b"k"}, {"serializer": "json"}], ids=["pickle", "hmac", "json"]
)
def test_a_batch_reopens_as_the_same_records_as_separate_appends(
    tmp_path: Path, options: Dict[str, Any]
) -> None:
    one, many = str(tmp_path / "one"), str(tmp_path / "many")
    store = opened(one, **options)
    seqs = [store.append(("ids", 1))]
    seqs += [store.append(r, b) for r, b in batch(store)]
    store.close()
    store = opened(many, **options)
    assert store.append(("ids", 1)) == 1
    assert store.append_batch(batch(store)) == seqs[-1] == 8
    assert store.append(("ids", 99)) == 9  # seqs go on from the batch's last
    store.close()
    store = opened(one, **options)
    store.append(("ids", 99))
    store.close()
    assert records(many, **options) == records(one, **options)
    assert len(records(many, **options)) == 9


def test_an_empty_batch_writes_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    store = opened(path)
    try:
        assert store.append_batch([]) == 0
        store.append(("ids", 1))
        before = file_size(path)
        assert store.append_batch([]) == 1
        assert file_size(path) == before
    finally:
        store.close()


def test_every_record_of_a_batch_counts_towards_compaction(tmp_path: Path) -> None:
    store = opened(str(tmp_path / "s"), compact_every=5)
    try:
        store.append_batch(batch(store)[:4])
        assert not store.compaction_due
        store.append_batch(batch(store)[:1])
        assert store.compaction_due
        store.prepare_snapshot()
        store.begin_snapshot()
        assert not store.compaction_due
        store.append_batch(batch(store))  # 7 records at once
        assert store.compaction_due
    finally:
        store.close()


def disk_full(path: str, room: int, fail: str) -> Any:
    """An ``archive.write`` for a disk with ``room`` bytes left: a write that does not fit
    writes what fits, then raises (``fail="raise"``) or returns the short count."""

    def write(fd: int, data: bytes) -> int:
        fits = min(len(data), max(0, room - file_size(path)))
        written = os.write(fd, data[:fits])
        if written < len(data) and fail == "raise":
            raise OSError(28, "injected: no space left on the device")
        return written

    return write


def batch_size(tmp_path: Path) -> int:
    """How many bytes ``batch()`` takes in an archive."""
    path = str(tmp_path / "measure")
    store = opened(path)
    try:
        before = file_size(path)
        store.append_batch(batch(store))
        return file_size(path) - before
    finally:
        store.close()


@pytest.mark.parametrize("fail", ["raise", "short"])
def test_a_failed_batch_leaves_none_of_its_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: str
) -> None:
    path = str(tmp_path / "s")
    room = batch_size(tmp_path) // 2  # the first records of the batch would fit
    store = opened(path)
    try:
        assert store.append(("ids", 1)) == 1
        before = file_size(path)
        monkeypatch.setattr(archive, "write", disk_full(path, before + room, fail))
        with pytest.raises(StoreError, match="cannot write to the archive"):
            store.append_batch(batch(store))
        monkeypatch.undo()
        assert file_size(path) == before  # cut back: none of the batch remains
        assert not store.compaction_due
        assert store.append(("ids", 2)) == 2  # the failed batch used up no seq
        assert store.append_batch(batch(store)) == 9
    finally:
        store.close()
    got = records(path)
    assert [r for r in got if r[0] == "ids"][:2] == [("ids", 1), ("ids", 2)]
    assert len(got) == 9


def test_a_batch_on_a_store_that_cannot_write(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    store = opened(path)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.append_batch([(("ids", 1), None)])
    reader = FileStore(path, read_only=True)
    reader.load()
    try:
        with pytest.raises(StoreError, match="read-only"):
            reader.append_batch([(("ids", 1), None)])
    finally:
        reader.close()
