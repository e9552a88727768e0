"""Opening a store directory: the newest snapshot, the archives after it, and their damage.

Opening reads the newest snapshot ``G`` and replays every ``archive.<g>`` with
``g >= G`` in order, skipping records whose seq the snapshot already holds (a failed
snapshot attempt leaves ``archive.<G+1>`` to be written over by the next one, so an
archive may hold records its own snapshot holds too).

Only the end of the whole history can be torn by a crash: damage at the end of an
archive that records in a newer archive follow is damage (:class:`CorruptArchive`, or
skipped without cutting under ``recovery="salvage"``), never cut as a torn tail.

What opening dealt with (a torn tail, stretches skipped by salvage) is returned as
:attr:`Loaded.findings` and logged; those log records carry the attribute ``finding``
(``True``), so a tool that reports the findings itself can filter them out.
"""

from __future__ import annotations

import logging
import os
from typing import List, NamedTuple, Optional, Tuple

from ..errors import CorruptArchive, StoreError
from . import archive, directory
from .archive import ArchiveScan, Damage, Framer
from .base import Record, State
from .serializers import by_id
from .snapshot import check_settings, read_snapshot

__all__ = ["Finding", "Loaded", "Loader"]

logger = logging.getLogger("unidist_queue.store.file")  # the name of its messages before the split
FINDING = {"finding": True}  # the ``extra`` of the log records about findings


class Finding(NamedTuple):
    """A damaged stretch of an archive that opening dealt with (see :attr:`kind`).

    ``kind``: ``"torn"``, a torn tail (``size`` bytes from ``offset`` to the end of the
    file), cut by a writable open and left in place (but not replayed) by a read-only
    one; ``"skipped"``, damage that ``recovery="salvage"`` read past (``size`` bytes);
    ``"gap"``, a valid record at ``offset`` whose sequence number skips some (salvage
    accepts it; ``size`` is 0: records are missing before it, no bytes are skipped).
    """

    path: str
    offset: int
    size: int
    kind: str


class Loaded(NamedTuple):
    """What opening a directory found."""

    state: Optional[State]  # the newest snapshot's state (None: no snapshot)
    records: List[Record]  # the records after it, in order
    serializer: Optional[int]  # the ident of the serializer the files use (None: no files)
    last_seq: int  # the seq of the last record (or the snapshot's, or 0)
    base: int  # the generation of the newest snapshot (0: none)
    tail: Optional[Tuple[int, Framer, int]]  # the last archive: gen, framer, end of its valid records
    findings: List[Finding]  # the damage dealt with, in the order found


class _Scanned(NamedTuple):
    """What reading one archive found: enough to judge its damage once all are read."""

    path: str
    size: int
    damages: List[Damage]
    valid_end: int
    records: int  # valid records (those the snapshot holds included)


class Loader:
    """Reads one store directory, once (:meth:`load`).

    ``key``: the HMAC key or ``None``; ``serializer``: the ident of the serializer the
    files must use (``None``: whichever the first file names). Every file must match
    both (``StoreError`` otherwise). Not thread-safe: one thread, one call.
    """

    def __init__(self, path: str, key: Optional[bytes], serializer: Optional[int],
                 recovery: str, read_only: bool) -> None:
        self.path, self.key, self.serializer = path, key, serializer
        self.salvage = recovery == "salvage"
        self.read_only = read_only
        self.findings: List[Finding] = []

    def load(self) -> Loaded:
        """Read the newest snapshot and the records after it (see the module docstring).

        Unless read-only, also removes ``*.tmp`` files and generations older than the
        snapshot, and cuts a torn tail. Cost: O(size of the files); one
        deserialization per message record.

        :raises CorruptArchive: a damaged snapshot, or archive damage that cannot be a
            torn tail (unless ``recovery="salvage"``).
        :raises StoreError: unreadable files, or files written with other settings.
        """
        snapshots, archives = directory.listing(self.path, not self.read_only)
        state, last, base = None, 0, 0
        if snapshots:
            base = max(snapshots)
            snap = read_snapshot(directory.file_name(self.path, "snapshot", base), self.key, self.serializer)
            self._adopt(snap.serializer)
            state, last = snap.state, snap.last_seq
        records: List[Record] = []
        tail: Optional[Tuple[int, Framer, int]] = None
        scanned: List[_Scanned] = []
        for g in sorted(g for g in archives if g >= base):
            found = self._read_archive(g, last, records)
            if found is not None:
                last, framer, scan = found
                tail = (g, framer, scan.valid_end)
                scanned.append(scan)
        self._judge(scanned)
        if not self.read_only:
            directory.remove_older(self.path, base, snapshots, archives)
        return Loaded(state, records, self.serializer, last, base, tail, self.findings)

    def _adopt(self, ident: int) -> None:
        if self.serializer is None:
            self.serializer = ident

    def _read_archive(self, gen: int, last: int, out: List[Record]) -> Optional[Tuple[int, Framer, _Scanned]]:
        """Append the records of ``archive.<gen>`` after ``last`` to ``out``.

        Returns ``(last seq, framer, what the scan found)``, or ``None`` for an empty
        (0-byte) file. A damaged tail is judged later, by :meth:`_judge`.
        """
        path = directory.file_name(self.path, "archive", gen)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc}") from exc
        if not data:
            logger.warning("%s is empty (0 bytes); ignoring it", path)
            if not self.read_only:
                os.unlink(path)
            return None
        header = archive.unpack_header(data, path)
        check_settings(path, header.serializer, header.flags, self.key, self.serializer)
        self._adopt(header.serializer)
        framer = Framer(header, self.key)
        scan = ArchiveScan(data, path, framer, salvage=self.salvage)
        out.extend(scan.records(by_id(header.serializer).loads, last))
        found = _Scanned(path, len(data), scan.damages, scan.valid_end, scan.count)
        return max(last, scan.last_seq), framer, found

    def _judge(self, scanned: List[_Scanned]) -> None:
        """Report the damage found in the archives read (oldest first), see :meth:`_report`.

        A damaged tail is a torn tail only if no newer archive holds a record: an
        archive that later records follow was complete before they were written.
        Those come first in the list, so one raises before any tail is cut.
        """
        later = [0] * len(scanned)  # valid records in the archives after each one
        for i in range(len(scanned) - 2, -1, -1):
            later[i] = later[i + 1] + scanned[i + 1].records
        for found, after in zip(scanned, later, strict=True):
            self._report(found, sealed=after > 0)

    def _report(self, found: _Scanned, sealed: bool) -> None:
        """Log the damage a scan found and add it to :attr:`findings`; cut a torn tail when writable.

        :raises CorruptArchive: a damaged tail in an archive that records in a newer
            archive follow (``sealed``), unless ``recovery="salvage"`` (then logged as
            damage and left in place).
        :raises StoreError: a torn tail cannot be cut.
        """
        path = found.path
        for d in found.damages:
            if d.kind == "gap":
                self.findings.append(Finding(path, d.offset, 0, "gap"))
                logger.error("salvage: records missing before offset %d of %s (sequence gap)", d.offset, path,
                             extra=FINDING)
            elif d.kind != "torn":
                size = (found.size if d.resume is None else d.resume) - d.offset
                self.findings.append(Finding(path, d.offset, size, "skipped"))
                logger.error("salvage: skipped damaged bytes of %s at offset %d (resuming at %s)",
                             path, d.offset, d.resume, extra=FINDING)
            elif not sealed:
                self._cut_tail(found, d.offset)
            elif self.salvage:
                self.findings.append(Finding(path, d.offset, found.size - d.offset, "skipped"))
                logger.error("salvage: skipped damaged bytes of %s at offset %d (to its end: %s)",
                             path, d.offset, "a newer archive's records follow", extra=FINDING)
            else:
                raise CorruptArchive(
                    f"{path}: damaged record at offset {d.offset}, at the end of an archive "
                    "that a newer archive's records follow (only the newest can be torn)",
                    path,
                    d.offset,
                )

    def _cut_tail(self, found: _Scanned, offset: int) -> None:
        """Log a torn tail at ``offset``; cut the archive to its valid records when writable
        (read-only: say what an open would cut, and leave the file as it is).

        :raises StoreError: it cannot be cut.
        """
        self.findings.append(Finding(found.path, offset, found.size - offset, "torn"))
        if self.read_only:
            logger.warning("%s: torn or damaged last record at offset %d; %d bytes would be cut "
                           "on open (read-only: left as is)", found.path, offset, found.size - offset,
                           extra=FINDING)
        else:
            logger.warning("%s: torn or damaged last record at offset %d; cutting %d bytes",
                           found.path, offset, found.size - offset, extra=FINDING)
            try:
                os.truncate(found.path, found.valid_end)
            except OSError as exc:
                raise StoreError(f"cannot cut the torn tail of {found.path}: {exc}") from exc
