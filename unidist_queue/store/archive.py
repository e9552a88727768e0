"""The archive: an append-only log of framed, checksummed, numbered records.

File layout (all integers little-endian)::

    header (40 bytes): magic b"UQARCH\\r\\n" | version u16 | serializer u8 | pickle protocol u8
                       | flags u8 (bit 0: HMAC-signed) | 3 zero bytes | epoch u64 | base_seq u64
                       | crc32 of the 32 bytes before it u32 | 4 zero bytes
    record:            len u32 | crc32 u32 | seq u64 | payload (len bytes)

``epoch`` is random per file; the record CRC covers epoch + seq + payload, so a record
copied from another file (or an older generation) never validates here. ``base_seq`` is
a lower bound: every record of the file has ``seq > base_seq``, and within a file each
record's ``seq`` is the previous one's plus one (a gap or a step back is damage).

With an HMAC key the payload ends with a 32-byte HMAC-SHA256 tag over (serializer,
flags, epoch, seq, payload); it is checked with :func:`hmac.compare_digest` *before*
the payload is decoded, so a forged record never reaches the unpickler.

Payloads: an ``add`` record is ``b"A" | has_due u8 | len(q) u32 | id u64 | enqueued_at
f64 | due f64 | q (UTF-8) | body``, so loading costs one deserialization per message;
every other record is ``b"J"`` followed by the record as a JSON list (records are plain
values, so no pickle is ever involved there).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import struct
import zlib
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple

from ..errors import CorruptArchive, StoreError

__all__ = [
    "FLAG_HMAC",
    "HEADER",
    "MAX_RECORD",
    "ArchiveScan",
    "Damage",
    "Framer",
    "Header",
    "decode_payload",
    "encode_record",
    "pack_header",
    "unpack_header",
]

logger = logging.getLogger(__name__)

MAGIC = b"UQARCH\r\n"
VERSION = 1
FLAG_HMAC = 1
HEADER = struct.Struct("<8sHBBBxxxQQI4x")
_HEADER_BODY = 32  # the bytes the header CRC covers
FRAME = struct.Struct("<IIQ")
_ADD = struct.Struct("<BBIQdd")
_SEQ = struct.Struct("<Q")
LEN_CRC = struct.Struct("<II")  # a frame's length and CRC, packed apart from the rest (see Framer.frame_add)
SEQ_ADD = struct.Struct("<QBBIQdd")  # seq then an add payload's head: the CRC covers them in a row
_FRAME_ADD = struct.Struct("<IIQBBIQdd")  # a whole add record's fixed part, read in one call
TAG_SIZE = 32
MAX_RECORD = 1 << 30
"""No record is longer than this (1 GiB); a longer length field is damage, never an allocation."""

OP_ADD = 0x41  # "A"
_OP_JSON = 0x4A  # "J"

# Injection points for the failure tests: every write and fsync of the store goes through these.
write: Callable[[int, bytes], int] = os.write
fsync: Callable[[int], None] = os.fsync


class Header(NamedTuple):
    """The fields of an archive (or snapshot) header."""

    serializer: int
    protocol: int
    flags: int
    epoch: int
    base_seq: int


def pack_header(h: Header) -> bytes:
    """The 40 header bytes for ``h``."""
    body = HEADER.pack(MAGIC, VERSION, h.serializer, h.protocol, h.flags, h.epoch, h.base_seq, 0)
    return body[:_HEADER_BODY] + struct.pack("<I4x", zlib.crc32(body[:_HEADER_BODY]))


def unpack_header(data: bytes, path: str) -> Header:
    """Parse and check the header at the start of ``data``.

    :raises CorruptArchive: wrong magic, unknown version, or bad header checksum (offset 0).
    """
    if len(data) < HEADER.size:
        raise CorruptArchive(f"{path}: archive header truncated ({len(data)} bytes)", path, 0)
    magic, version, ser, proto, flags, epoch, base, crc = HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise CorruptArchive(f"{path}: not an archive (bad magic)", path, 0)
    if zlib.crc32(data[:_HEADER_BODY]) != crc or any(data[_HEADER_BODY + 4 : HEADER.size]):
        raise CorruptArchive(f"{path}: archive header checksum mismatch", path, 0)
    if version != VERSION:
        raise CorruptArchive(f"{path}: archive format version {version} not supported", path, 0)
    return Header(ser, proto, flags, epoch, base)


class Framer:
    """Frames and checks records for one file (its epoch and, if signed, its key). Thread-safe."""

    def __init__(self, header: Header, key: Optional[bytes]) -> None:
        self.header = header
        self.crc0 = zlib.crc32(_SEQ.pack(header.epoch))
        self.tag_size = TAG_SIZE if key is not None else 0
        #: queue name -> its encoded bytes, filled by :meth:`name_bytes` (read directly by
        #: ``ArchiveWriter.append_add``, the durable add's fast path)
        self.names: Dict[str, bytes] = {}
        self._mac: Optional[Any] = None
        if key is not None:
            prefix = b"UQREC" + struct.pack("<BBQ", header.serializer, header.flags, header.epoch)
            self._mac = hmac.new(key, prefix, hashlib.sha256)

    def tag(self, seq_bytes: Any, payload: Any) -> bytes:
        """The HMAC tag of a record (empty without a key)."""
        if self._mac is None:
            return b""
        mac = self._mac.copy()
        mac.update(seq_bytes)
        mac.update(payload)
        return bytes(mac.digest())

    def frame(self, seq: int, payload: bytes) -> bytes:
        """The bytes of record ``seq`` with ``payload``. Cost: O(len(payload))."""
        seq_bytes = _SEQ.pack(seq)
        if self._mac is not None:
            payload += self.tag(seq_bytes, payload)
        crc = zlib.crc32(payload, zlib.crc32(seq_bytes, self.crc0))
        return FRAME.pack(len(payload), crc, seq) + payload

    def frame_record(self, seq: int, record: Tuple[Any, ...], body: Optional[bytes]) -> bytes:
        """The bytes of record ``seq``: :func:`encode_record` then :meth:`frame`, fused for adds.

        The fast path (an unsigned ``add``) packs seq and the add head in one call and
        checksums seq, head, queue name and body in one pass. Cost: O(len(body)).
        """
        if body is None or self._mac is not None or record[0] != "add":
            return self.frame(seq, encode_record(record, body))
        _, q, msg_id, enqueued_at, due = record
        return self.frame_add(seq, q, msg_id, enqueued_at, due, body)

    def frame_add(
        self, seq: int, q: str, msg_id: int, enqueued_at: float, due: Optional[float], body: bytes
    ) -> bytes:
        """The bytes of an unsigned ``add`` record (no HMAC key): seq and the add head
        packed in one call, seq, head, queue name and body checksummed in one pass.
        Cost: O(len(body))."""
        qb = self.names.get(q) or self.name_bytes(q)
        if due is None:
            rec = SEQ_ADD.pack(seq, OP_ADD, 0, len(qb), msg_id, enqueued_at, 0.0) + qb + body
        else:
            rec = SEQ_ADD.pack(seq, OP_ADD, 1, len(qb), msg_id, enqueued_at, due) + qb + body
        return LEN_CRC.pack(len(rec) - 8, zlib.crc32(rec, self.crc0)) + rec

    def name_bytes(self, q: str) -> bytes:
        """The bytes of queue name ``q`` in an add record, cached in :attr:`names` (at most
        4,096 names are kept). O(len(q))."""
        if len(self.names) > 4096:
            self.names.clear()
        qb = self.names[q] = q.encode("utf-8", "surrogatepass")
        return qb

    def crc_ok(self, data: Any, off: int, end: int, crc: int) -> bool:
        """Whether the record at ``off`` (ending at ``end``) has checksum ``crc``.

        The CRC covers epoch, seq and payload; seq and payload lie side by side in the frame.
        """
        return zlib.crc32(data[off + 8 : end], self.crc0) == crc


class Damage(NamedTuple):
    """A damaged stretch of an archive: where it starts, what it is, where valid records resume."""

    offset: int
    # "torn" (no valid record after it), "damage" (valid records follow, from resume on),
    # or "gap" (a valid record at offset whose seq skips some: accepted, nothing skipped)
    kind: str
    resume: Optional[int]  # None for "torn"


class ArchiveScan:
    """Iterate over the valid records of one archive's bytes, finding damage on the way.

    :meth:`records` yields the decoded records after each one's checksum (and HMAC) was
    verified. Afterwards ``valid_end`` is the offset
    after the last record accepted, ``damages`` lists what was found, ``last_seq`` is
    the last accepted seq. Mid-file damage raises :class:`CorruptArchive` unless
    ``salvage``; a damaged tail (nothing valid after it) ends the scan with a ``"torn"``
    entry. A length field is never trusted beyond the bytes present: no allocation, no
    hang. Cost: O(n) for n bytes, plus O(bytes) per damaged stretch to look for a resume.

    :raises CorruptArchive: damage followed by valid records (not ``salvage``), a
        sequence number out of order, or an HMAC mismatch (a wrong key or tampering,
        raised in every mode).
    """

    def __init__(self, data: bytes, path: str, framer: Framer, salvage: bool = False) -> None:
        self.data = data
        self._mv = memoryview(data)
        self.path = path
        self.framer = framer
        self.salvage = salvage
        self.valid_end = HEADER.size
        self.last_seq = framer.header.base_seq
        self.damages: List[Damage] = []
        self.count = 0

    def _check(self, off: int, after: int, strict: bool) -> Optional[Tuple[int, int]]:
        """``(seq, end)`` if a valid frame starts at ``off`` with ``seq`` after ``after``.

        ``off`` leaves room for a frame header (:meth:`_resume` looks no further).
        """
        data = self.data
        n = len(data)
        ln, crc, seq = FRAME.unpack_from(data, off)
        end = off + FRAME.size + ln
        if ln <= self.framer.tag_size or ln > MAX_RECORD or end > n or seq <= after:
            return None
        if not strict and seq > after + (n - off) // FRAME.size + 1:
            return None
        if not self.framer.crc_ok(self._mv, off, end, crc):
            return None
        return seq, end

    def _resume(self, off: int) -> Optional[int]:
        """The offset of the next valid record after damage at ``off``, or None."""
        for p in range(off + 1, len(self.data) - FRAME.size + 1):
            if self._check(p, self.last_seq, False) is not None:
                return p
        return None

    def records(self, loads: Callable[[Any], Any], after: int = 0) -> Iterator[Tuple[Any, ...]]:
        """Yield the decoded records with ``seq > after`` (an ``add`` with its body last).

        Every record is checked (length, CRC, seq order, HMAC) before it is decoded;
        records up to ``after`` are checked but not decoded. One ``loads`` per add, on a
        memoryview of the file's bytes (no copy); an add's fixed fields are read with
        one ``unpack_from``. ``count``, ``last_seq`` and ``valid_end`` are kept in locals
        and stored back whenever the scan stops or calls out.
        """
        # One long loop on purpose: it runs once per record on open, so the frame checks
        # and an add's decoding are inlined, with locals for everything. Measured on the
        # store of bench_store.py's 'open 1,000,000 msgs, 50% snapshot' row (1.37-1.60 s
        # there; archive.1 holds 500,123 records): this loop 0.70 s, the same checks made
        # by one _check() and one decode_payload() call per record 0.91 s (median of 5).
        data, mv, n = self.data, self._mv, len(self.data)
        off, tag = HEADER.size, self.framer.tag_size
        unpack, unpack_add = FRAME.unpack_from, _FRAME_ADD.unpack_from
        crc32, crc0 = zlib.crc32, self.framer.crc0
        full = _FRAME_ADD.size
        names: Dict[Any, str] = {}
        expect: Optional[int] = None  # the first record only needs seq > base_seq
        count, last_seq, valid_end = self.count, self.last_seq, self.valid_end
        try:
            while off < n:
                if n - off >= full:
                    ln, crc, seq, op, has_due, qlen, msg_id, enqueued_at, due = unpack_add(data, off)
                    end = off + 16 + ln
                    ok = tag < ln <= MAX_RECORD and end <= n and crc32(mv[off + 8 : end], crc0) == crc
                elif n - off >= 16:
                    ln, crc, seq = unpack(data, off)
                    op = -1  # too short to be an add: decoded by decode_payload below
                    end = off + 16 + ln
                    ok = tag < ln <= MAX_RECORD and end <= n and crc32(mv[off + 8 : end], crc0) == crc
                else:
                    ok = False
                if not ok or seq != expect:
                    self.count, self.last_seq, self.valid_end = count, last_seq, valid_end
                    if not ok:
                        off = self._damaged(off)
                        expect = None
                        if off < 0:
                            return
                        continue
                    if not self._sequence_ok(off, end, seq, expect):
                        off = end
                        continue
                if tag:
                    self._verify_tag(mv, off, end, seq)
                count += 1
                last_seq, expect, valid_end = seq, seq + 1, end
                if seq > after:
                    try:
                        qs = off + full
                        if op == OP_ADD and qs + qlen <= end - tag:
                            qb = data[qs : qs + qlen]
                            q = names.get(qb)
                            if q is None:
                                q = names[qb] = qb.decode("utf-8", "surrogatepass")
                            record: Tuple[Any, ...] = (
                                "add", q, msg_id, enqueued_at, due if has_due else None,
                                loads(mv[qs + qlen : end - tag]),
                            )
                        else:
                            record = decode_payload(mv[off + 16 : end - tag], loads, names)
                    except Exception as exc:
                        self.count, self.last_seq, self.valid_end = count, last_seq, valid_end
                        self._undecodable(off, end, seq, exc)
                        record = ()
                    if record:
                        yield record
                off = end
        finally:
            self.count, self.last_seq, self.valid_end = count, last_seq, valid_end

    def _undecodable(self, off: int, end: int, seq: int, exc: Exception) -> None:
        """A record (``off`` to ``end``) passed every check but cannot be decoded: raise,
        or skip it under salvage."""
        message = f"{self.path}: record seq {seq} at offset {off} passes its checks but cannot be read: {exc}"
        if not self.salvage:
            raise CorruptArchive(message, self.path, off) from exc
        self.damages.append(Damage(off, "damage", end))
        logger.error("salvage: skipping %s", message, extra={"finding": True})  # see .loading

    def _damaged(self, off: int) -> int:
        """Record damage at ``off``; return where to go on, or -1 to stop (a torn tail)."""
        resume = self._resume(off)
        if resume is None:
            self.damages.append(Damage(off, "torn", None))
            return -1
        self.damages.append(Damage(off, "damage", resume))
        if not self.salvage:
            raise CorruptArchive(
                f"{self.path}: damaged record at offset {off} followed by valid records at {resume}",
                self.path,
                off,
            )
        return resume

    def _sequence_ok(self, off: int, end: int, seq: int, expect: Optional[int]) -> bool:
        """For a checksum-valid record (``off`` to ``end``) whose seq is not the expected
        one: accept, skip, or raise."""
        if expect is None and seq > self.last_seq:
            return True
        if self.salvage:
            if seq > self.last_seq:  # a gap is accepted, a repeat skipped
                self.damages.append(Damage(off, "gap", off))
                return True
            self.damages.append(Damage(off, "damage", end))
            return False
        raise CorruptArchive(
            f"{self.path}: record at offset {off} has seq {seq}, expected {expect}", self.path, off
        )

    def _verify_tag(self, mv: memoryview, off: int, end: int, seq: int) -> None:
        expected = self.framer.tag(mv[off + 8 : off + 16], mv[off + 16 : end - TAG_SIZE])
        if not hmac.compare_digest(expected, mv[end - TAG_SIZE : end]):
            raise CorruptArchive(
                f"{self.path}: record seq {seq} at offset {off} fails its HMAC check "
                "(wrong hmac_key, or the file was tampered with)",
                self.path,
                off,
            )


def encode_record(record: Tuple[Any, ...], body: Optional[bytes]) -> bytes:
    """The payload for ``record`` (and the encoded body of an ``add``). Cost: O(size)."""
    if record[0] == "add" and body is not None:
        _, q, msg_id, enqueued_at, due = record
        qb: bytes = q.encode("utf-8", "surrogatepass")
        has_due = due is not None
        head = _ADD.pack(OP_ADD, has_due, len(qb), msg_id, enqueued_at, due if has_due else 0.0)
        return head + qb + body
    try:
        text = json.dumps(list(record), separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"cannot record {record!r}: {exc}") from exc
    return bytes([_OP_JSON]) + text.encode("utf-8", "surrogatepass")


def decode_payload(
    payload: memoryview, loads: Callable[[Any], Any], names: Dict[Any, str]
) -> Tuple[Any, ...]:
    """The record a payload holds; an ``add`` gets its decoded body appended.

    ``names`` caches queue names by their bytes. Cost: one ``loads`` per add record.

    :raises Exception: whatever ``loads`` or the JSON decoder raise on bad data.
    """
    op = payload[0]
    if op == OP_ADD:
        _, has_due, qlen, msg_id, enqueued_at, due = _ADD.unpack_from(payload, 0)
        start = _ADD.size + qlen
        qb = payload[_ADD.size : start]
        q = names.get(qb)
        if q is None:
            q = names[bytes(qb)] = bytes(qb).decode("utf-8", "surrogatepass")
        return ("add", q, msg_id, enqueued_at, due if has_due else None, loads(payload[start:]))
    if op == _OP_JSON:
        return tuple(json.loads(bytes(payload[1:]).decode("utf-8", "surrogatepass")))
    raise ValueError(f"unknown record type {op}")
