"""Appending framed records to the current archive: the write path of every durable change.

:class:`ArchiveWriter` is the base class of :class:`~unidist_queue.FileStore` that holds
the archive descriptor appends go to and writes each record (or batch) with one
``os.write``, cutting a failed write back. The store decides which descriptor that is
(opening, the switch of generations, closing); this class only writes to it.

A base class rather than an object the store calls, so that ``append``, which runs
once per durable change, costs no extra Python call (measured: 1.13 us a direct
``FileStore.append`` of a small add, 1.15-1.18 us through a delegating method; an add
to a durable queue takes ~3.5 us in all, 'add, fsync="never"' in
``benchmarks/bench_store.py``).
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import zlib
from typing import Any, NoReturn, Optional, Sequence, Tuple

from ..errors import StoreError
from . import archive
from .archive import LEN_CRC, OP_ADD, SEQ_ADD, Framer
from .base import Record
from .serializers import PICKLE_PROTOCOL, Serializer, by_name, pickling_error

__all__ = ["ArchiveWriter"]

logger = logging.getLogger("unidist_queue.store.file")  # the name of its messages before the split

_PICKLE = by_name("pickle")
_pickle_dumps = pickle.dumps
_crc32 = zlib.crc32


class ArchiveWriter:
    """Writes framed records to the archive descriptor ``_fd`` (see the module docstring).

    State (set by the store, see :class:`~unidist_queue.FileStore`): ``_fd`` and
    ``_framer``, the archive appends go to (``-1``/``None`` until it is opened);
    ``_end``, the offset after its last record; ``_seq``, the seq of the last record
    written; ``_compact_seq``, the seq from which a snapshot is due; ``_failed`` (why
    writes are refused, or ``None``), ``_closed`` and ``_forked`` (inherited through
    ``os.fork()``). ``_live`` is ``_framer`` while appends are allowed (open, neither
    read-only, failed nor closed), else ``None``: the appends' one test, kept by
    :meth:`_relive`, which the store calls after changing any of those.

    Thread-safety: :meth:`append` and :meth:`append_batch` are called with the queue's
    lock held (never concurrently); :meth:`encode` from any thread.
    """

    #: Whether ``compact_every`` records were appended since the last snapshot began
    #: (an attribute, set by :meth:`append`, cleared by ``begin_snapshot``).
    compaction_due: bool = False

    #: See :attr:`.Store.pickle_protocol`; set by :meth:`_serializer_known`.
    pickle_protocol: Optional[int] = None

    def __init__(self, path: str, serializer: Optional[Serializer], compact_every: Optional[int],
                 read_only: bool) -> None:
        self.path: str = path
        self.read_only: bool = read_only
        self._serializer: Optional[Serializer] = serializer
        self._compact_at = compact_every if compact_every is not None else sys.maxsize
        self._fd = -1
        self._framer: Optional[Framer] = None
        self._live: Optional[Framer] = None
        self.compaction_due = False  # an instance attribute: a class one is slower to read
        self._end = 0
        self._seq = 0
        self._compact_seq = self._compact_at
        self._failed: Optional[str] = None
        self._closed = False
        self._forked = False  # set in a child made by os.fork(): see FileStore._disown

    def encode(self, body: Any) -> bytes:
        """Serialize a body with the store's serializer (thread-safe, no lock).

        :raises SerializationError: the body cannot be represented; nothing was stored.
        """
        if self._serializer is _PICKLE:  # inlined: this runs once per durable add
            try:
                return _pickle_dumps(body, PICKLE_PROTOCOL)
            except Exception as exc:
                raise pickling_error(body, exc) from exc
        return (self._serializer or _PICKLE).dumps(body)

    def append_add(self, queue: str, msg_id: int, enqueued_at: float, body: bytes) -> int:
        """:meth:`append` of ``("add", queue, msg_id, enqueued_at, None)`` with ``body``, fused.

        The durable add's fast path: no record tuple, the frame built here as
        :meth:`.Framer.frame_add` builds it, and :meth:`append`'s tail repeated, on
        purpose: each call saved is worth ~5% of a durable add (``bench_store.py``,
        'add, fsync="never"' against its raw floor: 0.45x -> 0.48x for the tail,
        0.48x -> 0.50x for the frame). Signed stores take :meth:`append`. Called under
        the queue lock.

        :raises StoreError: as :meth:`append`.
        """
        framer = self._live
        if framer is None or framer.tag_size:
            return self.append(("add", queue, msg_id, enqueued_at, None), body)
        seq = self._seq + 1
        qb = framer.names.get(queue) or framer.name_bytes(queue)
        rec = SEQ_ADD.pack(seq, OP_ADD, 0, len(qb), msg_id, enqueued_at, 0.0) + qb + body
        data = LEN_CRC.pack(len(rec) - 8, _crc32(rec, framer.crc0)) + rec
        try:
            written = archive.write(self._fd, data)
        except OSError as exc:
            self._cut_back(exc)
        if written != len(data):
            self._short_write(written, len(data))
        self._end += written
        self._seq = seq
        if seq >= self._compact_seq:
            self.compaction_due = True
        return seq

    def append(self, record: Record, body: Optional[bytes] = None) -> int:
        """Write one framed record with a single ``os.write``; return its seq. Called under the queue lock.

        A failed or short write is cut back (``ftruncate``) so nothing of the record
        remains; if even that fails the store refuses writes until reopened.
        Cost: O(size of the record).

        :raises StoreError: the write failed, or the store is read-only, failed or closed.
        """
        framer = self._live
        if framer is None:
            framer = self._check_writable()  # raises
        seq = self._seq + 1
        data = framer.frame_record(seq, record, body)
        try:  # _write, inlined: this runs once per durable change
            written = archive.write(self._fd, data)
        except OSError as exc:
            self._cut_back(exc)
        if written != len(data):
            self._short_write(written, len(data))
        self._end += written
        self._seq = seq
        if seq >= self._compact_seq:
            self.compaction_due = True
        return seq

    def append_batch(self, records: Sequence[Tuple[Record, Optional[bytes]]]) -> int:
        """Write several records (each with the encoded body of an add, or None) with ONE
        ``os.write``; return the seq of the last. Called under the queue lock.

        The records get consecutive seqs, framed exactly as successive :meth:`append`
        calls would frame them, and each counts towards ``compact_every``. All or
        nothing: a failed or short write is cut back so that none of them remains (as
        for :meth:`append`; a batch larger than one ``write`` can take, ~2 GiB on
        Linux, fails that way). An empty sequence writes nothing and returns the
        current seq. Cost: O(total size of the records), one system call.

        :raises StoreError: the write failed, or the store is read-only, failed or closed.
        """
        framer = self._live
        if framer is None:
            framer = self._check_writable()  # raises
        n = len(records)
        seq = self._seq
        if not n:
            return seq
        frame = framer.frame_record
        self._write(b"".join([frame(seq + i, record, body) for i, (record, body) in enumerate(records, 1)]))
        self._seq = seq = seq + n
        if seq >= self._compact_seq:
            self.compaction_due = True
        return seq

    def _write(self, data: bytes) -> None:
        """Write ``data`` to the archive with one ``os.write``, or cut it back and raise.

        :raises StoreError: the write failed or was short (nothing of it remains).
        """
        try:
            written = archive.write(self._fd, data)
        except OSError as exc:
            self._cut_back(exc)
        if written != len(data):
            self._short_write(written, len(data))
        self._end += written

    def _short_write(self, written: int, size: int) -> NoReturn:
        self._cut_back(OSError(f"short write: {written} of {size} bytes (disk full?)"))

    def _cut_back(self, exc: OSError) -> NoReturn:
        """Remove a partly written record, then raise ``StoreError`` for ``exc``."""
        try:
            os.ftruncate(self._fd, self._end)
            os.lseek(self._fd, self._end, os.SEEK_SET)
        except OSError as cut:
            self._failed = f"cannot cut back a failed write: {cut}"
            self._relive()
            logger.error("%s: %s", self.path, self._failed)
        raise StoreError(f"{self.path}: cannot write to the archive: {exc}") from exc

    def _serializer_known(self) -> None:
        """Once the serializer is settled (at load): set :attr:`pickle_protocol` if it is pickle."""
        if (self._serializer or _PICKLE) is _PICKLE:
            self.pickle_protocol = PICKLE_PROTOCOL

    def _relive(self) -> None:
        """Refresh ``_live`` after ``_framer``, ``_failed`` or ``_closed`` changed. O(1)."""
        ok = self._failed is None and not self._closed and not self.read_only and self._fd >= 0
        self._live = self._framer if ok else None

    def _check_writable(self) -> Framer:
        """The framer of the archive appends go to; ``StoreError`` if nothing may be written."""
        if self._forked:
            self._refuse_forked()
        if self.read_only:
            raise StoreError(f"{self.path} is open read-only")
        if self._failed is not None:
            raise StoreError(f"{self.path}: the store failed ({self._failed}); reopen it")
        if self._closed:
            raise StoreError(f"{self.path}: the store is closed")
        if self._fd < 0 or self._framer is None:
            raise StoreError("FileStore.load() must be called first")
        return self._framer

    def _refuse_forked(self) -> NoReturn:
        raise StoreError(
            f"{self.path}: this FileStore belongs to the parent process (inherited through fork)"
        )
