"""The classic leader/follower commit, as a baseline for FileStore's group commit.

:class:`LeaderFollowerStore` is a :class:`~unidist_queue.FileStore` (same files, same
framing, same single ``os.write`` per add under the queue's lock) whose :meth:`commit`
with ``fsync="always"`` is the textbook design instead of the library's group commit:

* one :class:`threading.Condition` on one mutex, a ``durable`` seq and a ``syncing`` flag;
* a committer whose seq is not yet durable waits on the condition while a sync runs;
* otherwise it becomes the leader: it records ``target`` = the last seq written, releases
  the mutex, fsyncs the archive, re-takes the mutex, sets ``durable = target`` and
  wakes everybody (``notify_all``); the followers it did not cover lead the next one.

It sets ``group_commit = False``, so :class:`~unidist_queue.MessageQueue` does not bracket
appends with ``enter()``/``leave()``: nothing holds a sync back for appends in flight.

Benchmark only: it serves ``fsync="always"`` with ``compact_every=None`` (no compaction,
so the archive descriptor never changes and no retired archive needs an fsync).
"""

from __future__ import annotations

import threading
from typing import Any, Optional, Tuple

from unidist_queue import FileStore, StoreError
from unidist_queue.store import archive


class LeaderFollowerStore(FileStore):
    """A FileStore whose ``commit`` is the one-Condition leader/follower (see the module)."""

    def __init__(self, path: Any, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        if self.fsync != "always":
            raise ValueError('LeaderFollowerStore only serves fsync="always"')
        if self.compact_every is not None:
            raise ValueError("LeaderFollowerStore needs compact_every=None (no retired archive to fsync)")
        self.group_commit = False  # FileStore.__init__ set it: MessageQueue skips enter()/leave()
        self._lf = threading.Condition(threading.Lock())
        self._lf_durable = 0  # every seq <= this was covered by a completed fsync
        self._lf_syncing = False
        self._lf_error: Optional[str] = None

    def _written(self) -> Tuple[int, int]:
        """``(last seq written, archive descriptor)``.

        The ONE place this benchmark reads FileStore internals (``_seq``, ``_fd``); there
        is no public accessor. ``append`` sets ``_seq`` after its ``os.write`` returned,
        so every record up to the value read here is in the file and the fsync covers it.
        """
        return self._seq, self._fd

    def commit(self, seq: int) -> None:
        """Return once an fsync begun after record ``seq`` was written has completed."""
        cond = self._lf
        with cond:
            while True:
                if self._lf_durable >= seq:
                    return
                if self._lf_error is not None:
                    raise StoreError(self._lf_error)
                if not self._lf_syncing:
                    break
                cond.wait()
            self._lf_syncing = True  # this thread leads
            target, fd = self._written()
        done = False
        try:
            archive.fsync(fd)  # the function FileStore's rounds call
            done = True
        except OSError as exc:
            with cond:
                self._lf_error = f"{self.path}: fsync failed: {exc}"
            raise StoreError(self._lf_error) from exc
        finally:
            with cond:
                self._lf_syncing = False
                if done and target > self._lf_durable:
                    self._lf_durable = target
                cond.notify_all()
