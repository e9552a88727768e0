"""The command ``verify``: check every snapshot and archive record of a store, a line per file.

Exit status 1 on damage, 0 otherwise, with a note when the only problem is a torn tail
(which opening the store would cut). Only the end of the history can be torn: a damaged
tail in an archive that records in a newer archive follow is damage. A record or
snapshot that passes its checks but names code this interpreter cannot import (a class
of the application's) is noted, not counted as damage. Only reads.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any, Callable, List, NamedTuple, Optional, Tuple

from ..errors import CorruptArchive, StoreError
from ..store import directory
from ..store.archive import ArchiveScan, Framer, unpack_header
from ..store.serializers import by_id
from ..store.snapshot import check_settings, read_snapshot
from .target import Target, missing_code

__all__ = ["verify"]


class _Checked(NamedTuple):
    """What checking one file found."""

    name: str
    ok: bool
    text: str
    records: int = 0  # valid archive records
    torn: Optional[Tuple[int, str]] = None  # an archive's damaged tail: (offset, the note on it)


def verify(t: Target, args: argparse.Namespace) -> int:
    """Check every file of the store ``t``; print a line per file, then ``ok`` or
    ``damage found``. Return 1 on damage, else 0. Cost: O(size of the files), one
    deserialization per message."""
    snapshots, archives = directory.listing(t.path, False)
    names = sorted([*snapshots.values(), *archives.values()], key=_order)
    checked: List[_Checked] = []
    for name in names:
        path = os.path.join(t.path, name)
        if name.startswith("snapshot."):
            checked.append(_Checked(name, *_verify_snapshot(path, t.key)))
        else:
            checked.append(_verify_archive(name, path, t.key))
    status = 0
    for i, c in enumerate(checked):
        ok, text = c.ok, c.text
        if c.torn is not None:
            followed = [n.name for n in checked[i + 1 :] if n.records]
            if followed:  # records were written after it: it was complete then
                ok = False
                text += (f"; DAMAGED at offset {c.torn[0]}: a damaged end of an archive that "
                         f"the records of {followed[0]} follow (only the newest archive can be torn)")
            else:
                text += c.torn[1]
        print(f"{c.name}: {text}")
        status = max(status, 0 if ok else 1)
    print("damage found" if status else "ok")
    return status


def _order(name: str) -> Tuple[int, str]:
    m = re.search(r"\.(\d+)$", name)
    return (int(m.group(1)) if m else -1, name)


class _Loads:
    """A serializer's ``loads`` that counts, instead of raising, the objects naming code
    that cannot be imported here (``ImportError``, ``AttributeError`` from pickle)."""

    def __init__(self, loads: Callable[[Any], Any]) -> None:
        self.loads = loads
        self.missing = 0
        self.first = ""

    def __call__(self, data: Any) -> Any:
        try:
            return self.loads(data)
        except (ImportError, AttributeError) as exc:
            self.missing += 1
            self.first = self.first or missing_code(exc)
            return None

    def note(self) -> str:
        if not self.missing:
            return ""
        return (f"; note: {self.missing} checked but not decoded here, they name code this "
                f"interpreter cannot import ({self.first})")


def _verify_snapshot(path: str, key: Optional[bytes]) -> Tuple[bool, str]:
    try:
        snap = read_snapshot(path, key, None)
    except CorruptArchive as exc:
        if isinstance(exc.__cause__, (ImportError, AttributeError)):
            return True, ("checked, not decoded here: it names code this interpreter cannot import "
                          f"({missing_code(exc.__cause__)})")
        return False, f"DAMAGED: {exc}"
    except StoreError as exc:
        return False, f"DAMAGED: {exc}"
    return True, f"ok (state up to seq {snap.last_seq})"


def _verify_archive(name: str, path: str, key: Optional[bytes]) -> _Checked:
    """Check one archive; a damaged tail is judged by :func:`verify` (is a newer archive's
    record after it?).

    :raises StoreError: the file cannot be read.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None
    if not data:
        return _Checked(name, True, "empty file (ignored on open)")
    try:
        header = unpack_header(data, path)
        check_settings(path, header.serializer, header.flags, key, None)
        scan = ArchiveScan(data, path, Framer(header, key), salvage=True)
        loads = _Loads(by_id(header.serializer).loads)
        for _record in scan.records(loads):
            pass
    except StoreError as exc:
        return _Checked(name, False, f"DAMAGED: {exc}")
    torn = [d for d in scan.damages if d.kind == "torn"]
    damaged = [d for d in scan.damages if d.kind != "torn"]
    text = f"{scan.count} records, last seq {scan.last_seq}"
    if damaged:
        text += "; DAMAGED at offsets " + ", ".join(str(d.offset) for d in damaged)
        return _Checked(name, False, text, scan.count)
    text += loads.note()
    if torn:
        cut = len(data) - torn[0].offset
        note = f"; note: torn tail in {name} at offset {torn[0].offset}: {cut} bytes would be cut on open"
        return _Checked(name, True, text, scan.count, (torn[0].offset, note))
    return _Checked(name, True, text + "; ok", scan.count)
