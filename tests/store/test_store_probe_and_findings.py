"""Looking at a directory before opening it (``store.probe``: is it a store, is it
signed, does a key fit) and what opening reports it dealt with (``FileStore.findings``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from unidist_queue import FileStore, MessageQueue, StoreError
from unidist_queue.store.archive import FRAME, HEADER, Framer, Header, pack_header, unpack_header
from unidist_queue.store.probe import key_fits, probe
from unidist_queue.store.snapshot import signature_ok


def _store(path: Path, n: int = 4, **options: object) -> str:
    with MessageQueue(store=FileStore(path, **options)) as mq:  # type: ignore[arg-type]
        for i in range(n):
            mq.add("q", i)
    return str(path)


def _records(path: str) -> list[int]:
    """The offsets of the records of ``path``'s archive.0."""
    data = Path(path, "archive.0").read_bytes()
    offsets, off = [], HEADER.size
    while off < len(data):
        offsets.append(off)
        off += FRAME.size + int.from_bytes(data[off : off + 4], "little")
    return offsets


def _found(store: FileStore) -> list[tuple[int, int, str]]:
    return [(f.offset, f.size, f.kind) for f in store.findings]


def test_probe_finds_the_files_with_a_stores_magic(tmp_path: Path) -> None:
    path = _store(tmp_path / "s")
    Path(path, "archive.7").write_bytes(b"not ours")
    Path(path, "snapshot.x").write_bytes(b"UQSNAP\r\n" + bytes(40))  # not a generation's name
    os.mkdir(Path(path, "archive.8"))
    found = probe(path)
    assert found.archives == ["archive.0"] and found.snapshots == [] and not found.signed
    for bad in ("missing", "file"):
        target = tmp_path / bad
        if bad == "file":
            target.write_bytes(b"")
        with pytest.raises(StoreError, match="is not a store"):
            probe(str(target))


def test_key_fits_a_signed_store(tmp_path: Path) -> None:
    path = _store(tmp_path / "s", hmac_key=b"k")
    assert probe(path).signed
    assert key_fits(path, probe(path), b"k") is True
    assert key_fits(path, probe(path), b"other") is False
    with MessageQueue(store=FileStore(path, hmac_key=b"k")) as mq:
        mq.compact()
    assert probe(path).snapshots == ["snapshot.1"]
    assert signature_ok(os.path.join(path, "snapshot.1"), b"k") is True
    assert key_fits(path, probe(path), b"other") is False
    snap = Path(path, "snapshot.1")
    snap.write_bytes(snap.read_bytes()[:-1])  # damaged: not checked, the archive decides
    assert key_fits(path, probe(path), b"k") is None  # archive.1 holds no record yet
    plain = _store(tmp_path / "plain")
    with MessageQueue(store=FileStore(plain)) as mq:
        mq.compact()
    assert signature_ok(os.path.join(plain, "snapshot.1"), b"k") is None  # not signed


def test_key_fits_nothing_checkable(tmp_path: Path) -> None:
    """A header alone, an unsigned file, a damaged first record: nothing to check."""
    d = tmp_path / "s"
    d.mkdir()
    header = Header(1, 5, 1, 42, 0)
    Path(d, "archive.0").write_bytes(pack_header(header))
    assert key_fits(str(d), probe(str(d)), b"k") is None
    record = Framer(header, b"k").frame(1, b'J["clear","q"]')
    Path(d, "archive.0").write_bytes(pack_header(header) + record[:-1])  # cut short
    assert key_fits(str(d), probe(str(d)), b"k") is None
    Path(d, "archive.0").write_bytes(pack_header(header) + FRAME.pack(5, 0, 1))  # too short for a tag
    assert key_fits(str(d), probe(str(d)), b"k") is None
    bad_crc = bytearray(pack_header(header) + record)
    bad_crc[-1] ^= 1
    Path(d, "archive.0").write_bytes(bytes(bad_crc))
    assert key_fits(str(d), probe(str(d)), b"k") is None
    Path(d, "archive.0").write_bytes(pack_header(header) + record)
    assert key_fits(str(d), probe(str(d)), b"k") is True
    unsigned = pack_header(header._replace(flags=0))
    Path(d, "archive.1").write_bytes(unsigned + Framer(unpack_header(unsigned, "x"), None).frame(2, b"J[]"))
    damaged_header = bytearray(unsigned)
    damaged_header[20] ^= 1
    Path(d, "archive.2").write_bytes(bytes(damaged_header))
    assert key_fits(str(d), probe(str(d)), b"other") is False


def test_a_read_only_open_reports_a_torn_tail_and_cuts_nothing(tmp_path: Path) -> None:
    path = _store(tmp_path / "s")
    archive = Path(path, "archive.0")
    torn = archive.read_bytes() + FRAME.pack(1000, 0, 99) + b"partial"
    archive.write_bytes(torn)
    store = FileStore(path, read_only=True)
    assert _found(store) == []  # before the load
    with MessageQueue(store=store) as mq:
        assert mq.all("q") == [0, 1, 2, 3]
    assert _found(store) == [(len(torn) - 23, 23, "torn")]
    assert archive.read_bytes() == torn
    store = FileStore(path)
    with MessageQueue(store=store):
        pass
    assert [f.kind for f in store.findings] == ["torn"]
    assert len(archive.read_bytes()) < len(torn)


def test_salvage_reports_what_it_skips_and_sequence_gaps(tmp_path: Path) -> None:
    path = _store(tmp_path / "s", n=6)
    archive = Path(path, "archive.0")
    data = archive.read_bytes()
    offsets = _records(path)
    gap = data[: offsets[3]] + data[offsets[4] :]  # a whole record gone: a sequence gap
    archive.write_bytes(gap)
    store = FileStore(path, read_only=True, recovery="salvage")
    with MessageQueue(store=store):
        pass
    assert _found(store) == [(offsets[3], 0, "gap")]
    damaged = bytearray(data)
    damaged[offsets[2] + 20] ^= 0xFF
    archive.write_bytes(bytes(damaged))
    store = FileStore(path, read_only=True, recovery="salvage")
    with MessageQueue(store=store):
        pass
    assert _found(store) == [
        (offsets[2], offsets[3] - offsets[2], "skipped")
    ]
