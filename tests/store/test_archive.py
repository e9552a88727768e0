"""The archive and snapshot formats under damage: torn tails, bit flips, hostile lengths, fuzz,
future versions, and records or snapshots that pass their checks but cannot be read.

Every damaged file must give either a valid prefix of what was written or a
``StoreError`` (``CorruptArchive`` naming the file) -- never an altered record, another
exception type, a hang or a large allocation.
"""

from __future__ import annotations

import logging
import os
import pickle
import random
import struct
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from helpers import assert_unlocked, fill, reopened
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unidist_queue import CorruptArchive, MessageQueue, StoreError
from unidist_queue.store import archive, snapshot
from unidist_queue.store.archive import (
    FRAME,
    HEADER,
    ArchiveScan,
    Framer,
    decode_payload,
    encode_record,
    unpack_header,
)
from unidist_queue.store.file import FileStore
from unidist_queue.store.serializers import PickleSerializer

N = 20


def build(path: str, n: int = N, *, snapshot_at: Optional[int] = None) -> List[Any]:
    """A store of ``n`` add records (a snapshot after ``snapshot_at``); return the records as loaded.

    Without a snapshot the archive holds nothing but the adds (written through the
    store, as a MessageQueue writes them), so record ``k`` is the ``k``-th message.
    """
    if snapshot_at is None:
        store = FileStore(path, fsync="never")
        store.load()
        for i in range(n):
            body = store.encode({"i": i, "pad": "x" * (i % 7)})
            store.append(("add", "q", i + 1, time.time(), None), body)
        store.close()
        return load(path)[1]
    with MessageQueue(store=FileStore(path, fsync="never")) as mq:
        for i in range(n):
            mq.add("q", {"i": i, "pad": "x" * (i % 7)})
            if i + 1 == snapshot_at:
                mq.compact()
    return load(path)[1]


def adds(records: List[Any]) -> List[Any]:
    """The add records of ``records`` (a MessageQueue also records id blocks and its last id)."""
    return [r for r in records if r[0] == "add"]


def load(path: str, **options: Any) -> Tuple[Any, List[Any]]:
    store = FileStore(path, read_only=True, serializer=None, **options)
    try:
        state, records = store.load()
        return state, list(records)
    finally:
        store.close()


def offsets(data: bytes) -> List[int]:
    """Start offsets of the records of a valid archive, and its end."""
    result, off = [], HEADER.size
    while off < len(data):
        result.append(off)
        off += FRAME.size + FRAME.unpack_from(data, off)[0]
    return [*result, off]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Tuple[bytes, List[Any]]:
    path = str(tmp_path_factory.mktemp("pristine") / "s")
    records = build(path)
    return Path(path, "archive.0").read_bytes(), records


def put(path: str, data: bytes, name: str = "archive.0") -> None:
    os.makedirs(path, exist_ok=True)
    Path(path, name).write_bytes(data)


def test_truncation_at_every_offset_of_the_last_records(
    tmp_path: Path, pristine: Tuple[bytes, List[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    data, records = pristine
    ends = offsets(data)
    for cut in range(ends[-4], len(data)):
        path = str(tmp_path / f"cut{cut}")
        put(path, data[:cut])
        whole = sum(1 for end in ends[1:] if end <= cut)
        with caplog.at_level(logging.WARNING), MessageQueue(store=FileStore(path)) as mq:
            assert mq.count("q") == whole
            mq.add("q", "next")  # the cut-back file takes a clean append
        assert os.path.getsize(Path(path, "archive.0")) > ends[whole]
        again = adds(load(path)[1])
        assert again[:whole] == records[:whole]
        assert again[whole][-1] == "next"
    assert "torn" in caplog.text


def test_every_bit_flip_is_detected(tmp_path: Path, pristine: Tuple[bytes, List[Any]]) -> None:
    data, records = pristine
    path = str(tmp_path / "flip")
    put(path, data)
    target = Path(path, "archive.0")
    logging.disable(logging.CRITICAL)
    try:
        for byte in range(len(data)):
            for bit in range(8):
                damaged = bytearray(data)
                damaged[byte] ^= 1 << bit
                target.write_bytes(damaged)
                try:
                    _, got = load(path)
                except StoreError:
                    continue
                assert len(got) < len(records), (byte, bit)
                assert got == records[: len(got)], (byte, bit)
    finally:
        logging.disable(logging.NOTSET)


def test_damage_in_the_middle_raises_with_offset(path: str, pristine: Tuple[bytes, List[Any]]) -> None:
    data, _records = pristine
    ends = offsets(data)
    damaged = bytearray(data)
    damaged[ends[10] + FRAME.size + 3] ^= 0xFF
    put(path, bytes(damaged))
    with pytest.raises(CorruptArchive) as info:
        MessageQueue(store=FileStore(path))
    assert info.value.offset == ends[10]
    assert info.value.path == os.path.join(path, "archive.0")
    assert Path(path, "archive.0").read_bytes() == bytes(damaged)  # nothing dropped


def test_salvage_skips_the_damaged_record_and_keeps_the_rest(
    path: str, pristine: Tuple[bytes, List[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    data, records = pristine
    ends = offsets(data)
    damaged = bytearray(data)
    damaged[ends[10] + FRAME.size + 3] ^= 0xFF
    put(path, bytes(damaged))
    with caplog.at_level(logging.ERROR):
        _, got = load(path, recovery="salvage")
    assert got == records[:10] + records[11:]
    assert "salvage" in caplog.text
    with MessageQueue(store=FileStore(path, recovery="salvage")) as mq:
        assert mq.count("q") == N - 1
        mq.add("q", "more")
    assert len(adds(load(path, recovery="salvage")[1])) == N


def test_damaged_last_record_is_a_torn_tail(path: str, pristine: Tuple[bytes, List[Any]]) -> None:
    data, records = pristine
    damaged = bytearray(data)
    damaged[-2] ^= 0x10
    put(path, bytes(damaged))
    assert load(path)[1] == records[:-1]


@pytest.mark.parametrize("size", [512, 4096, 65536])
@pytest.mark.parametrize("fill", ["zeros", "garbage"])
def test_zero_or_garbage_tail_is_cut(
    path: str, pristine: Tuple[bytes, List[Any]], size: int, fill: str
) -> None:
    data, records = pristine
    tail = bytes(size) if fill == "zeros" else random.Random(size).randbytes(size)
    put(path, data + tail)
    with MessageQueue(store=FileStore(path)) as mq:
        assert mq.count("q") == N
        assert os.path.getsize(Path(path, "archive.0")) == len(data)
        mq.add("q", "next")
    got = adds(load(path)[1])
    assert got[:N] == records and got[N][-1] == "next"


@pytest.mark.parametrize("record", [5, N - 1])
def test_hostile_length_neither_allocates_nor_hangs(
    path: str, pristine: Tuple[bytes, List[Any]], record: int
) -> None:
    data, records = pristine
    at = offsets(data)[record]
    damaged = bytearray(data)
    struct.pack_into("<I", damaged, at, 0xFFFFFFFF)
    put(path, bytes(damaged))
    tracemalloc.start()
    started = time.monotonic()
    try:
        if record == N - 1:
            assert load(path)[1] == records[:-1]
        else:
            with pytest.raises(CorruptArchive):
                load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * len(data) + (1 << 20)
    assert time.monotonic() - started < 10  # generous: only catches a hang


def test_duplicated_record_mid_file(path: str, pristine: Tuple[bytes, List[Any]]) -> None:
    data, records = pristine
    ends = offsets(data)
    doubled = data[: ends[6]] + data[ends[5] : ends[6]] + data[ends[6] :]
    put(path, doubled)
    with pytest.raises(CorruptArchive) as info:
        load(path)
    assert info.value.offset == ends[6]
    assert load(path, recovery="salvage")[1] == records  # the repeat is skipped


def test_records_spliced_from_another_file_never_validate(tmp_path: Path) -> None:
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    records = build(a, 5)
    build(b, 10)
    data_a = Path(a, "archive.0").read_bytes()
    data_b = Path(b, "archive.0").read_bytes()
    spliced = data_a + data_b[offsets(data_b)[5] :]  # seq 6.. of b after seq 1..5 of a
    put(a, spliced)
    assert load(a)[1] == records


def test_bad_header_raises(path: str, pristine: Tuple[bytes, List[Any]]) -> None:
    data, _ = pristine
    for damaged in (b"XX" + data[2:], data[:8] + b"\x09\x00" + data[10:], data[:20]):
        put(path, damaged)
        with pytest.raises(CorruptArchive):
            load(path)


def test_empty_archive_file_is_ignored(path: str) -> None:
    put(path, b"")
    with MessageQueue(store=FileStore(path)) as mq:
        assert mq.queues() == []
        mq.add("q", 1)
    assert [r[-1] for r in adds(load(path)[1])] == [1]


def test_damaged_snapshot_raises_naming_it(path: str) -> None:
    build(path, 10, snapshot_at=6)
    snap = Path(path, "snapshot.1")
    data = snap.read_bytes()
    for damaged in (data[:-1], data[:30], data[:60] + bytes([data[60] ^ 4]) + data[61:], b""):
        snap.write_bytes(damaged)
        with pytest.raises(CorruptArchive) as info:
            load(path)
        assert info.value.path == str(snap)


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [(8, 99, "format version 99 not supported"), (10, 9, "unknown serializer id 9")],
    ids=["version", "serializer"],
)
def test_snapshot_of_a_future_version_is_refused(
    path: str, offset: int, value: int, message: str
) -> None:
    build(path, 3, snapshot_at=2)
    snap = Path(path, "snapshot.1")
    data = bytearray(snap.read_bytes())
    data[offset] = value
    body_len = struct.unpack_from("<Q", data, 32)[0]
    crc = zlib.crc32(data[48 : 48 + body_len], zlib.crc32(data[:40]))
    struct.pack_into("<I", data, 40, crc)  # a valid checksum: only the field is wrong
    snap.write_bytes(bytes(data))
    with pytest.raises(CorruptArchive, match=message) as info:
        load(path)
    assert (info.value.path, info.value.offset) == (str(snap), 0)


def test_snapshot_then_archive_replay(path: str) -> None:
    build(path, 10, snapshot_at=6)
    state, records = load(path)
    assert [item[2]["i"] for item in state["queues"]["q"]["ready"]] == list(range(6))
    assert [r[-1]["i"] for r in adds(records)] == list(range(6, 10))


def _check_prefix(path: str, records: List[Any]) -> None:
    try:
        _, got = load(path)
    except StoreError:
        return
    assert got == records[: len(got)]


_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@_FUZZ
@given(st.binary(max_size=2000))
def test_fuzz_random_bytes_after_a_valid_header(
    tmp_path_factory: pytest.TempPathFactory, pristine: Tuple[bytes, List[Any]], junk: bytes
) -> None:
    data, records = pristine
    path = str(tmp_path_factory.mktemp("fz"))
    put(path, data[: HEADER.size] + junk)
    logging.disable(logging.CRITICAL)
    try:
        _check_prefix(path, records)
        put(path, junk)
        _check_prefix(path, records)
    finally:
        logging.disable(logging.NOTSET)


@_FUZZ
@given(st.data())
def test_fuzz_mutated_archives(
    tmp_path_factory: pytest.TempPathFactory, pristine: Tuple[bytes, List[Any]], data: st.DataObject
) -> None:
    original, records = pristine
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 6))):
        kind = data.draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        at = data.draw(st.integers(0, max(0, len(mutated) - 1)))
        if kind == "flip" and mutated:
            mutated[at] ^= data.draw(st.integers(1, 255))
        elif kind == "set":
            mutated[at : at + 4] = data.draw(st.binary(min_size=4, max_size=4))
        elif kind == "cut":
            del mutated[at:]
        elif kind == "insert":
            mutated[at:at] = data.draw(st.binary(min_size=1, max_size=64))
        else:
            del mutated[at : at + data.draw(st.integers(1, 64))]
    path = str(tmp_path_factory.mktemp("fz"))
    put(path, bytes(mutated))
    logging.disable(logging.CRITICAL)
    try:
        _check_prefix(path, records)
    finally:
        logging.disable(logging.NOTSET)


@_FUZZ
@given(st.data())
def test_fuzz_mutated_snapshots(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    path = str(tmp_path_factory.mktemp("fz") / "s")
    build(path, 4, snapshot_at=4)
    snap = Path(path, "snapshot.1")
    original = snap.read_bytes()
    mutated = bytearray(original)
    at = data.draw(st.integers(0, len(mutated) - 1))
    if data.draw(st.booleans()):
        mutated[at] ^= data.draw(st.integers(1, 255))
    else:
        del mutated[at:]
    snap.write_bytes(bytes(mutated))
    with pytest.raises(CorruptArchive):
        load(path)


# -- records and snapshots that pass their checks but cannot be read ---------------------------


def test_an_archive_of_a_future_format_version_is_refused(path: str) -> None:
    fill(path)
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
    fill(path)
    data, framer, last = _frames(path)
    after = framer.frame_record(last + 2, ("add", "q", 91, 0.0, None), pickle.dumps("after"))
    Path(path, "archive.0").write_bytes(data + framer.frame(last + 1, payload) + after)
    with pytest.raises(CorruptArchive, match="passes its checks but cannot be read") as info:
        MessageQueue(store=FileStore(path))
    assert info.value.offset == len(data)
    with caplog.at_level(logging.ERROR):
        assert reopened(path, recovery="salvage") == [0, 1, 2, 3, "after"]
    assert "salvage: skipping" in caplog.text


def test_a_scan_checks_but_does_not_return_records_up_to_after(path: str) -> None:
    fill(path, 5)
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


def _snapshot_with_body(path: str, body: bytes) -> None:
    """Replace snapshot.1's body with ``body`` (checksum recomputed: only decoding fails)."""

    class Raw(PickleSerializer):
        def dumps(self, obj: Any) -> bytes:
            return body

    snapshot.write_snapshot(path, "snapshot.1", {}, 4, Raw(), None)


def test_a_snapshot_that_cannot_be_decoded(path: str) -> None:
    fill(path)
    with MessageQueue(store=FileStore(path)) as mq:
        mq.compact()
    _snapshot_with_body(path, b"\x80\x05 not a pickle")
    with pytest.raises(CorruptArchive, match="snapshot body cannot be decoded") as info:
        MessageQueue(store=FileStore(path))
    assert info.value.path == os.path.join(path, "snapshot.1")
    assert_unlocked(path)


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
