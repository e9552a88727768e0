"""Snapshots: the whole durable state in one checksummed (optionally signed) file.

File layout (little-endian)::

    magic b"UQSNAP\\r\\n" | version u16 | serializer u8 | pickle protocol u8 | flags u8
    | 3 zero bytes | epoch u64 | last_seq u64 | body_len u64 | crc32 u32 | 4 zero bytes
    | body (the serialized state) | HMAC-SHA256 tag (32 bytes, only if flags bit 0)

The CRC covers the first 40 header bytes and the body; the tag covers them too and is
checked with :func:`hmac.compare_digest` before the body is deserialized. ``last_seq``
is the sequence number of the last record the state includes: replay skips every record
up to it.

Writing is atomic: ``snapshot.<gen>.tmp`` is written, flushed, fsynced, renamed over
``snapshot.<gen>`` and the directory fsynced; a crash leaves either the old files or the
new one (plus a ``.tmp`` file that the next writable open deletes).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import struct
import zlib
from typing import Any, NamedTuple, Optional, Tuple

from ..errors import CorruptArchive, StoreError
from . import archive
from .serializers import PICKLE_PROTOCOL, Serializer, by_id

__all__ = ["Snapshot", "fsync_dir", "read_snapshot", "signature_ok", "write_snapshot"]

MAGIC = b"UQSNAP\r\n"
VERSION = 1
_HEAD = struct.Struct("<8sHBBBxxxQQQI4x")
_COVERED = 40  # header bytes under the CRC and the tag


class Snapshot(NamedTuple):
    """A snapshot read back: its state, its last seq, and the id of its serializer."""

    state: Any
    last_seq: int
    serializer: int


def fsync_dir(path: str) -> None:
    """fsync the directory ``path`` so renames, creations and deletions in it are durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        archive.fsync(fd)
    finally:
        os.close(fd)


def _tag(key: bytes, covered: Any, body: Any) -> bytes:
    mac = hmac.new(key, b"UQSNAP", hashlib.sha256)
    mac.update(covered)
    mac.update(body)
    return mac.digest()


def write_snapshot(
    directory: str, name: str, state: Any, last_seq: int, serializer: Serializer, key: Optional[bytes]
) -> str:
    """Write ``state`` atomically as ``directory/name``; return the final path.

    Cost: O(size of the state), one file fsync, one directory fsync.

    :raises StoreError: the state cannot be serialized, or the write failed (the
        temporary file is removed; an older snapshot is untouched).
    """
    data = _encode(state, last_seq, serializer, key)
    final = os.path.join(directory, name)
    tmp = final + ".tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = archive.write(fd, view)  # type: ignore[arg-type]
                if written <= 0:
                    raise OSError("write wrote nothing (disk full?)")
                view = view[written:]
            archive.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        fsync_dir(directory)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise StoreError(f"cannot write snapshot {final}: {exc}") from exc
    return final


def _encode(state: Any, last_seq: int, serializer: Serializer, key: Optional[bytes]) -> bytes:
    """The bytes of a snapshot file holding ``state``.

    :raises StoreError: the state cannot be serialized.
    """
    try:
        body = serializer.dumps(state)
    except Exception as exc:
        raise StoreError(f"cannot serialize the snapshot state: {exc}") from exc
    flags = archive.FLAG_HMAC if key is not None else 0
    epoch = int.from_bytes(os.urandom(8), "little")
    head = _HEAD.pack(MAGIC, VERSION, serializer.ident, PICKLE_PROTOCOL, flags, epoch, last_seq, len(body), 0)
    covered = head[:_COVERED]
    crc = zlib.crc32(body, zlib.crc32(covered))
    return covered + struct.pack("<I4x", crc) + body + (_tag(key, covered, body) if key is not None else b"")


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def read_snapshot(path: str, key: Optional[bytes], serializer: Optional[int]) -> Snapshot:
    """Read, check and deserialize the snapshot at ``path``.

    ``serializer``: the id the store is configured with (``None``: take the file's).
    Checks, in order: header and size, CRC, HMAC (before any deserializing), settings.

    :raises CorruptArchive: the file is damaged (names the file; offset 0 for the header,
        else the body's offset).
    :raises StoreError: the file was written with another serializer or HMAC setting,
        or it cannot be read.
    """
    ser, flags, last_seq, covered, body, tag = _unframe(path, _read(path))
    check_settings(path, ser, flags, key, serializer)
    if key is not None and not hmac.compare_digest(_tag(key, covered, body), tag):
        raise CorruptArchive(
            f"{path}: snapshot fails its HMAC check (wrong hmac_key, or the file was tampered with)", path, 0
        )
    try:
        state = by_id(ser).loads(body)
    except Exception as exc:
        raise CorruptArchive(f"{path}: snapshot body cannot be decoded: {exc}", path, _HEAD.size) from exc
    return Snapshot(state, last_seq, ser)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise StoreError(f"cannot read snapshot {path}: {exc}") from exc


def signature_ok(path: str, key: bytes) -> Optional[bool]:
    """Whether the snapshot at ``path`` carries a valid HMAC tag made with ``key``;
    ``None`` if it is not signed. Nothing is deserialized. Cost: O(size of the file).

    :raises CorruptArchive: the file is damaged (see :func:`read_snapshot`).
    :raises StoreError: it cannot be read.
    """
    _ser, flags, _last, covered, body, tag = _unframe(path, _read(path))
    if not flags & archive.FLAG_HMAC:
        return None
    return hmac.compare_digest(_tag(key, covered, body), tag)


def _unframe(path: str, data: bytes) -> Tuple[int, int, int, memoryview, memoryview, memoryview]:
    """Check a snapshot file's header, size, CRC and version; return ``(serializer id,
    flags, last seq, the bytes the CRC covers, the body, the HMAC tag)`` (views of ``data``).

    :raises CorruptArchive: the file is damaged.
    """
    if len(data) < _HEAD.size:
        raise CorruptArchive(f"{path}: snapshot truncated ({len(data)} bytes)", path, 0)
    magic, version, ser, _proto, flags, _epoch, last_seq, body_len, crc = _HEAD.unpack_from(data, 0)
    if magic != MAGIC:
        raise CorruptArchive(f"{path}: not a snapshot (bad magic)", path, 0)
    tag_size = archive.TAG_SIZE if flags & archive.FLAG_HMAC else 0
    if len(data) != _HEAD.size + body_len + tag_size:
        raise CorruptArchive(f"{path}: snapshot size does not match its header", path, _HEAD.size)
    mv = memoryview(data)
    covered, body = mv[:_COVERED], mv[_HEAD.size : _HEAD.size + body_len]
    if zlib.crc32(body, zlib.crc32(covered)) != crc or any(mv[_COVERED + 4 : _HEAD.size]):
        raise CorruptArchive(f"{path}: snapshot checksum mismatch", path, _HEAD.size)
    if version != VERSION:
        raise CorruptArchive(f"{path}: snapshot format version {version} not supported", path, 0)
    return ser, flags, last_seq, covered, body, mv[len(data) - tag_size :]


def check_settings(path: str, ser: int, flags: int, key: Optional[bytes], serializer: Optional[int]) -> None:
    """Refuse a file written with another serializer or HMAC setting than the store's.

    :raises StoreError: on any mismatch, naming the file.
    """
    try:
        name = by_id(ser).name
    except KeyError:
        raise CorruptArchive(f"{path}: unknown serializer id {ser}", path, 0) from None
    if serializer is not None and ser != serializer:
        raise StoreError(f"{path} was written with serializer={name!r}; open the store with it")
    signed = bool(flags & archive.FLAG_HMAC)
    if signed and key is None:
        raise StoreError(f"{path} is signed: an hmac_key is needed to open it")
    if key is not None and not signed:
        raise StoreError(f"{path} is not signed, but an hmac_key was given: refusing to trust it")
