"""Looking at a directory before opening it: is it a store, is it signed, does a key fit.

For tools such as the command line, which must refuse a directory that is not a store
without creating anything in it (opening a writable :class:`~.file.FileStore` on any
directory makes it a store), and must tell a missing or wrong HMAC key from damage.

A store is a directory holding at least one ``snapshot.<g>`` or ``archive.<g>`` that
starts with the magic bytes :mod:`.snapshot` or :mod:`.archive` writes. Nothing here
takes a lock, writes, or deserializes anything; every function only reads.
"""

from __future__ import annotations

import hmac
import os
import re
import struct
from typing import Dict, List, NamedTuple, Optional, Tuple

from ..errors import CorruptArchive, StoreError
from . import archive, snapshot
from .archive import FRAME, HEADER, TAG_SIZE, Framer, unpack_header

__all__ = ["Probe", "key_fits", "probe"]

_NAME = re.compile(r"^(snapshot|archive)\.(\d+)$")
# Both headers begin magic (8 bytes) | version u16 | serializer u8 | protocol u8 | flags u8.
_PREFIX = struct.Struct("<8sHBBB")
_MAGIC = {"snapshot": snapshot.MAGIC, "archive": archive.MAGIC}


class Probe(NamedTuple):
    """What :func:`probe` found: the store's files (names, oldest generation first) and
    whether any of them is signed."""

    snapshots: List[str]
    archives: List[str]
    signed: bool


def probe(path: str) -> Probe:
    """Check that ``path`` is a store directory (see the module docstring), reading only
    the first bytes of each file named like a snapshot or an archive.

    Cost: one directory listing and one short read per such file. Thread-safe.

    :raises StoreError: ``path`` is not a store (missing, not a directory, empty, or no
        file with a store's magic), or it (or one of those files) cannot be read; the
        message is one line saying which.
    """
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        raise StoreError(f"{path} is not a store: no such file or directory") from None
    except NotADirectoryError:
        raise StoreError(f"{path} is not a store: it is not a directory") from None
    except OSError as exc:
        raise StoreError(f"cannot list {path}: {exc.strerror}") from None
    if not names:
        raise StoreError(f"{path} is not a store: the directory is empty")
    found: Dict[str, List[Tuple[int, str]]] = {"snapshot": [], "archive": []}
    signed = False
    for name in names:
        m = _NAME.match(name)
        prefix = _prefix(os.path.join(path, name)) if m else None
        if m and prefix is not None and prefix[0] == _MAGIC[m.group(1)]:
            found[m.group(1)].append((int(m.group(2)), name))
            signed = signed or bool(prefix[4] & archive.FLAG_HMAC)
    if not found["snapshot"] and not found["archive"]:
        raise StoreError(f"{path} is not a store: it holds no snapshot or archive written by FileStore")
    return Probe([n for _, n in sorted(found["snapshot"])], [n for _, n in sorted(found["archive"])], signed)


def _prefix(path: str) -> Optional[Tuple[bytes, int, int, int, int]]:
    """The first header fields of the file at ``path`` (None: too short or not a file).

    :raises StoreError: it cannot be read.
    """
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(_PREFIX.size)
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None
    if len(head) < _PREFIX.size:
        return None
    magic, version, ser, proto, flags = _PREFIX.unpack(head)
    return magic, version, ser, proto, flags


def key_fits(path: str, found: Probe, key: bytes) -> Optional[bool]:
    """Whether ``key`` is the HMAC key of the store ``found`` in ``path``.

    ``True`` if the tag of any snapshot, or of any archive's first record, checks with
    it; ``False`` if some could be checked and none does (a wrong key: damage would
    spoil one file, not all); ``None`` if nothing signed could be checked (no records,
    or only damaged ones). Nothing is deserialized. Cost: O(size of the snapshots) plus
    one record per archive. Thread-safe.

    :raises StoreError: a file cannot be read.
    """
    checked = False
    for name in reversed(found.snapshots):
        try:
            ok = snapshot.signature_ok(os.path.join(path, name), key)
        except CorruptArchive:
            continue  # damage: reported when the store is read
        if ok:
            return True
        checked = checked or ok is not None
    for name in found.archives:
        ok = _first_record_fits(os.path.join(path, name), key)
        if ok:
            return True
        checked = checked or ok is not None
    return False if checked else None


def _first_record_fits(path: str, key: bytes) -> Optional[bool]:
    """Whether the first record of the archive at ``path`` checks with ``key`` (None: no
    signed, checksum-valid first record to check)."""
    try:
        with open(path, "rb") as f:
            data = f.read(HEADER.size + FRAME.size)
            header = unpack_header(data, path)
            if not header.flags & archive.FLAG_HMAC or len(data) < HEADER.size + FRAME.size:
                return None
            length, crc, _seq = FRAME.unpack_from(data, HEADER.size)
            if not TAG_SIZE < length <= archive.MAX_RECORD:
                return None
            data += f.read(length)
    except CorruptArchive:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None
    framer = Framer(header, key)
    end = HEADER.size + FRAME.size + length
    if len(data) < end or not framer.crc_ok(data, HEADER.size, end, crc):
        return None
    mv = memoryview(data)
    expected = framer.tag(mv[HEADER.size + 8 : HEADER.size + 16], mv[HEADER.size + 16 : end - TAG_SIZE])
    return hmac.compare_digest(expected, mv[end - TAG_SIZE : end])
