"""FileStore: a directory holding a snapshot and an append-only archive of every change.

The store is assembled from one module per concept: its settings (:mod:`.options`),
the directory's files and their names (:mod:`.directory`), the record framing
(:mod:`.archive`), snapshots (:mod:`.snapshot`), opening (:mod:`.loading`), appending
(:mod:`.writer`, the base class), the fsync rounds (:mod:`.groupcommit`, an object the
store owns), closing (:mod:`.closing`, a base class: also in a forked child and when
the store is garbage) and fork safety (:mod:`.forksafe`). This module holds what ties
them together: opening the store, and the switch of archive generations.

A compaction (:meth:`prepare_snapshot`, :meth:`begin_snapshot`, :meth:`write_snapshot`)
creates ``archive.<G+1>`` first, switches appends to it, writes ``snapshot.<G+1>``
atomically and only then deletes the older generations: a crash at any point leaves a
set of files that opens to the acknowledged state. If the snapshot cannot be written,
appends stay in ``archive.<G+1>`` and the next attempt writes ``snapshot.<G+1>`` over it
(records the snapshot already holds are skipped on replay): failed attempts make no
new files.
"""

from __future__ import annotations

import os
import threading
from typing import Any, List, Optional, Tuple

from ..errors import StoreError
from . import archive, directory, forksafe, options
from .archive import HEADER, Framer, Header, pack_header
from .base import Record, State, Store
from .closing import Closing
from .groupcommit import GroupCommit
from .loading import Finding, Loader
from .serializers import PICKLE_PROTOCOL, by_id, by_name
from .snapshot import write_snapshot

__all__ = ["FileStore"]


class FileStore(Closing, Store):
    """A durable :class:`~unidist_queue.Store` in the directory ``path``.

    ``FileStore(path, *, fsync="interval", fsync_interval=1.0, compact_every=100_000,
    serializer="pickle", hmac_key=None, recovery="tolerate_tail", read_only=False)``

    * ``fsync``: ``"always"`` (``add`` returns once an fsync covering its record is done;
      concurrent writers share one fsync: group commit), ``"interval"`` (a daemon thread
      of this store fsyncs every ``fsync_interval`` seconds when something was written),
      ``"never"`` (the OS decides; :meth:`close` still fsyncs). In every mode the record
      is in the file (one ``os.write``, no user-space buffer) before ``add`` returns, so
      killing the process loses nothing acknowledged; a machine crash can lose what was
      not yet fsynced.
    * ``compact_every``: records after which the queue compacts by itself (``None``: never).
    * ``serializer``: ``"pickle"``, ``"json"``, or ``None`` to use the one the files were
      written with (pickle for a new store). Files written otherwise raise ``StoreError``.
    * ``hmac_key`` (bytes): sign every record and snapshot with HMAC-SHA256 and check the
      tags before anything is deserialized. Files signed (or not) otherwise: ``StoreError``.
    * ``recovery``: ``"tolerate_tail"`` cuts a torn, zero-filled or garbage last record
      (logged as a warning) and raises :class:`~unidist_queue.CorruptArchive` for damage
      followed by valid records; ``"salvage"`` skips damaged stretches and logs them.
    * ``read_only``: open without the lock and change nothing on disk (for inspection
      while another process writes); :meth:`append` and snapshots raise ``StoreError``.

    After :meth:`load`, ``findings`` lists the damaged stretches of the archives that it
    dealt with, as :class:`~.loading.Finding` tuples ``(path, offset, size, kind)``: a
    torn tail (cut, or only reported when read-only) and what ``"salvage"`` skipped;
    empty before the load and for healthy files. The command line reports them.

    Loading pickle runs code from the files: give an ``hmac_key`` or use ``"json"``
    when the directory could be written by someone else.

    The directory's lock is an ``flock`` lock, which dies with the process that opened
    the store even if it forks (see :mod:`.forksafe`): in a child made by ``os.fork()``
    every FileStore not yet closed has closed its descriptors and refuses every use
    (``StoreError``: "belongs to the parent process"); :meth:`close` there only forgets
    the store (no fsync, nothing of the parent's touched). A child opens a store of its
    own as usual. (An archive descriptor that another thread is creating at the moment
    of the fork may stay open in the child; it holds no lock.)

    Close it (:meth:`close`, or close the ``MessageQueue`` over it, or use ``with``). A
    store nobody references any more (nor its ``MessageQueue``) is closed when it is
    collected, which releases the lock in this process too, and warns as an unclosed
    file does: ``ResourceWarning: unclosed FileStore '<path>'`` (shown with ``-X dev``
    or ``-W default``).

    Thread-safety: as :class:`~unidist_queue.Store` requires. One mutex, shared with the
    store's :class:`~.groupcommit.GroupCommit`, guards the fsync rounds and the switch of
    archive descriptors they fsync; :meth:`append`, :meth:`append_batch` and
    :meth:`begin_snapshot` rely on the queue's lock.

    :raises TypeError, ValueError: a bad argument (named in the message).
    :raises StoreLocked: another FileStore (any process) holds the directory.
    :raises StoreError: the directory cannot be created or locked, or (unless
        ``read_only``) this platform cannot lock it (no ``fcntl``): then nothing is
        created.
    """

    persistent = True

    def __init__(
        self,
        path: Any,
        *,
        fsync: str = "interval",
        fsync_interval: float = 1.0,
        compact_every: Optional[int] = 100_000,
        serializer: Optional[str] = "pickle",
        hmac_key: Optional[bytes] = None,
        recovery: str = "tolerate_tail",
        read_only: bool = False,
    ) -> None:
        name = os.fsdecode(os.fspath(path))
        o = options.check(fsync, fsync_interval, compact_every, serializer, hmac_key, recovery, read_only)
        super().__init__(name, o.serializer, o.compact_every, o.read_only)
        self.fsync, self.fsync_interval, self.compact_every = o.fsync, o.fsync_interval, o.compact_every
        self.recovery, self._key = o.recovery, o.key
        # Guards the fsync rounds (the GroupCommit's state), the switch of archive
        # descriptors a round captures (begin_snapshot), _retired and _closed.
        self._mutex = threading.Lock()
        self._commit = GroupCommit(
            self._mutex, self.path, written=lambda: self._seq, capture=self._round_files,
            close_retired=self._close_retired, failed=lambda: self._failed,
            closed=lambda: self._closed, fail=self._fail,
        )
        self.group_commit = self.needs_commit = self.fsync == "always"
        self._gen = 0
        self._loaded = False
        self._retired: List[int] = []
        self._prepared: Optional[Tuple[int, int, Framer]] = None
        # Set when write_snapshot failed: the current archive has no snapshot yet, and
        # the next snapshot goes over it instead of starting yet another generation.
        self._reuse_gen = False
        self._lock_fd = -1
        self.findings: Tuple[Finding, ...] = ()
        if not read_only:
            self._lock_directory()
        else:
            with forksafe.guard():
                forksafe.track(self, FileStore._disown)

    # -- opening -----------------------------------------------------------------------------

    def _lock_directory(self) -> None:
        """Create the directory if need be and take its lock (see the class docstring)."""
        directory.lockable(self.path)  # first: where nothing can lock it, create nothing
        directory.make(self.path)
        # From opening the lock file to track(), a fork would hand down a descriptor
        # (locked, or about to be: the lock is the open file description's) that the
        # child hook cannot see.
        with forksafe.guard():
            self._lock_fd = directory.lock(self.path)
            forksafe.track(self, FileStore._disown)

    def load(self) -> Tuple[Optional[State], List[Record]]:
        """Read the newest snapshot and the records after it (see :mod:`.loading`).

        Writable stores also remove ``*.tmp`` files and generations older than the
        snapshot, cut a damaged tail, and open the last archive for appending.
        Cost: O(size of the files); one deserialization per message record.

        :raises CorruptArchive: a damaged snapshot, or archive damage that cannot be a
            torn tail (unless ``recovery="salvage"``).
        :raises StoreError: unreadable files, or files written with other settings, or
            this store was inherited through ``os.fork()``.
        """
        if self._forked:
            self._refuse_forked()
        if self._loaded:
            raise StoreError("FileStore.load() may only be called once")
        self._loaded = True
        try:
            return self._load()
        except BaseException:
            self.close()  # release the lock: the caller never gets a usable store
            raise

    def _load(self) -> Tuple[Optional[State], List[Record]]:
        found = Loader(self.path, self._key, self._ser_id(), self.recovery, self.read_only).load()
        self.findings = tuple(found.findings)
        if found.serializer is not None:
            self._adopt(found.serializer)
        self._seq = found.last_seq
        self._compact_seq = self._seq + self._compact_at
        self._serializer_known()
        if not self.read_only:
            self._open_tail(found.tail, found.base)
            self._relive()
        interval = self.fsync_interval if self.fsync == "interval" and not self.read_only else None
        self._commit.start(found.last_seq, interval)
        return found.state, found.records

    def _open_tail(self, tail: Optional[Tuple[int, Framer, int]], base: int) -> None:
        """Open the last archive for appending (creating one if there is none)."""
        if tail is None:
            self._gen = base
            self._fd, self._framer = self._create_archive(base)
            self._end = HEADER.size
        else:
            self._gen, self._framer, self._end = tail
            try:
                name = directory.file_name(self.path, "archive", self._gen)
                self._fd = os.open(name, os.O_WRONLY | os.O_NOFOLLOW)
                os.lseek(self._fd, self._end, os.SEEK_SET)
            except OSError as exc:
                raise StoreError(f"cannot open the archive for appending: {exc}") from exc

    def _create_archive(self, gen: int) -> Tuple[int, Framer]:
        """Create ``archive.<gen>`` holding a fresh header, durably; return its fd and framer."""
        ser = self._serializer or by_name("pickle")
        self._serializer = ser
        flags = archive.FLAG_HMAC if self._key is not None else 0
        epoch = int.from_bytes(os.urandom(8), "little")
        header = Header(ser.ident, PICKLE_PROTOCOL, flags, epoch, self._seq)
        return directory.create_archive(self.path, gen, pack_header(header)), Framer(header, self._key)

    @property
    def serializer(self) -> Optional[str]:
        """The serializer's name (``None`` until :meth:`load` reads it, for ``serializer=None``)."""
        return None if self._serializer is None else self._serializer.name

    @property
    def signed(self) -> bool:
        """Whether records and snapshots are signed with an HMAC key."""
        return self._key is not None

    # -- helpers -------------------------------------------------------------------------------

    def _ser_id(self) -> Optional[int]:
        return None if self._serializer is None else self._serializer.ident

    def _adopt(self, ident: int) -> None:
        if self._serializer is None:
            self._serializer = by_id(ident)

    # -- durability ----------------------------------------------------------------------------

    def commit(self, seq: int) -> None:
        """Make record ``seq`` durable per the policy; with ``"always"``, group commit.

        Returns once an fsync that began after ``seq`` was written has completed; one
        caller (the leader of a round) fsyncs for every waiter. ``"interval"`` and
        ``"never"``: returns at once. See :meth:`.GroupCommit.commit` for how rounds are batched.

        :raises StoreError: the fsync failed (the store then refuses writes), or the
            store was closed before ``seq`` could be made durable, or it was inherited
            through ``os.fork()``.
        """
        if self._forked:
            self._refuse_forked()
        if self.fsync == "always":
            self._commit.commit(seq)

    def enter(self) -> None:
        """With ``fsync="always"``: a thread is about to append (see :meth:`Store.enter`). O(1)."""
        self._commit.enter()

    def leave(self) -> None:
        """The thread that called :meth:`enter` appended (or gave up); the last one out may
        lead an fsync round (see :meth:`.GroupCommit.leave`). O(1), plus that fsync."""
        self._commit.leave()

    # -- what the group commit needs (see GroupCommit) -----------------------------------------

    def _round_files(self) -> Tuple[int, int, Optional[List[int]]]:
        """With the mutex held: the last seq written, the archive descriptor, the retired ones."""
        return self._seq, self._fd, list(self._retired) if self._retired else None

    def _close_retired(self, fds: List[int]) -> None:
        """With the mutex held: close retired descriptors (atomically as to a fork)."""
        with forksafe.guard():
            for fd in fds:
                self._retired.remove(fd)
                os.close(fd)

    def _fail(self, reason: str) -> None:
        """With the mutex held: refuse writes from now on (an fsync failed)."""
        self._failed = reason
        self._relive()

    # -- snapshots -----------------------------------------------------------------------------

    def prepare_snapshot(self) -> None:
        """Create the next archive (header written and fsynced, directory fsynced). Idempotent.

        After a failed :meth:`write_snapshot` it creates nothing: the next snapshot goes
        over the current archive (see :meth:`begin_snapshot`).

        :raises StoreError: the store is read-only, failed or closed, or the file cannot be made.
        """
        self._check_writable()
        if self._prepared is None and not self._reuse_gen:
            fd, framer = self._create_archive(self._gen + 1)
            self._prepared = (self._gen + 1, fd, framer)

    def begin_snapshot(self) -> Tuple[int, int]:
        """Switch appends to the prepared archive (no I/O); return the token ``(gen, last seq)``.

        After a failed :meth:`write_snapshot` nothing is switched: the token names the
        current archive, whose records up to ``last seq`` the snapshot will hold
        (opening skips them). O(1).

        :raises StoreError: :meth:`prepare_snapshot` was not called, or the store was
            inherited through ``os.fork()``.
        """
        if self._forked:
            self._refuse_forked()
        if self._prepared is None and not self._reuse_gen:
            raise StoreError("FileStore.prepare_snapshot() must be called before begin_snapshot()")
        with self._mutex:
            self._compact_seq = self._seq + self._compact_at
            self.compaction_due = False
            if self._prepared is None:
                return self._gen, self._seq
            gen, fd, framer = self._prepared
            self._retired.append(self._fd)  # each descriptor stays named, for _disown
            self._fd, self._framer, self._end, self._gen = fd, framer, HEADER.size, gen
            self._prepared = None
            self._relive()
            return gen, self._seq

    def write_snapshot(self, state: State, token: Any) -> None:
        """Write ``snapshot.<gen>`` atomically, then delete the generations it replaces.

        If it cannot be written, the descriptors :meth:`begin_snapshot` retired are
        fsynced and closed (see :meth:`_snapshot_failed`) and the next snapshot reuses
        the current archive: repeated failures add no descriptor and no file.
        Cost: O(size of the state) plus two fsyncs. Appends go on meanwhile.

        :raises StoreError: the snapshot could not be written (the older files remain).
        """
        gen, last_seq = token
        self._check_writable()
        assert self._serializer is not None
        try:
            write_snapshot(self.path, f"snapshot.{gen}", state, last_seq, self._serializer, self._key)
        except BaseException:
            self._snapshot_failed()
            raise
        with self._mutex:
            self._commit.wait_no_round()
            self._reuse_gen = False
            self._close_retired(list(self._retired))  # their records are in the snapshot now
        directory.delete_before(self.path, gen)

    def _snapshot_failed(self) -> None:
        """After a failed snapshot: reuse the current archive next time; fsync and close
        the retired descriptors (their records are in no snapshot).

        They are fsynced by an fsync round this thread leads (once no round runs, the
        mutex released during the fsync, as any round), so that a committer whose record
        is in one of them is released only once it is durable, and then closed. A failed
        fsync fails the store, as in any round (logged; the snapshot's error is the one
        raised); a failed or closed store closes them in :meth:`close`.
        """
        with self._mutex:
            self._reuse_gen = True
            self._commit.wait_no_round()
            if not self._retired or self._closed or self._failed is not None:
                return
            self._commit.sync_now()

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else f"fsync={self.fsync}"
        return f"<FileStore {self.path!r} {mode}>"

