"""Letting go of a FileStore's descriptors: closing, a forked child's copies, garbage.

:class:`Closing` is the base class of :class:`~unidist_queue.FileStore` (on top of
:class:`~.writer.ArchiveWriter`) holding the three ways a store lets go of its
descriptors and its directory's lock:

* :meth:`Closing.close`: stop the flusher, fsync, close the files, release the lock;
* :meth:`Closing._disown`: in a child made by ``os.fork()`` (see :mod:`.forksafe`), close
  the child's copies and refuse every later use;
* ``__del__``: a store nobody references any more warns (``ResourceWarning``, as an
  unclosed file does) and closes itself, so its lock is released in this process too.
  The store is collectable: its flusher thread holds it only weakly (see
  :meth:`.GroupCommit.start`).

The state it reads is the store's (set in ``FileStore.__init__`` and ``load``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings
from typing import Callable, List, Optional, Tuple

from . import forksafe
from .archive import Framer
from .groupcommit import GroupCommit
from .writer import ArchiveWriter

__all__ = ["Closing"]


class Closing(ArchiveWriter):
    """close, the fork hook's disown, and finalization of a FileStore (see the module)."""

    # Set by FileStore: its mutex (shared with its GroupCommit), the fsync rounds, the
    # archive descriptors a snapshot retired or prepared, and the lock's descriptor.
    _mutex: threading.Lock
    _commit: GroupCommit
    _retired: List[int]
    _prepared: Optional[Tuple[int, int, Framer]]
    _lock_fd: int

    def close(self) -> None:
        """Stop the flusher, fsync, close the files and release the lock. Idempotent, thread-safe.

        In a child made by ``os.fork()`` it only marks the store closed: the child's
        copies of its descriptors were closed at the fork, and the files are the parent's.
        """
        if self._forked:
            self._closed = True
            self._relive()
            return
        commit = self._commit
        commit.stop()
        with self._mutex:
            if self._closed:
                return
            commit.wait_no_round()
            if self._closed:  # another close() finished meanwhile
                return
            if self._fd >= 0 and self._failed is None:
                commit.sync_now()  # covers every waiter: each has appended already
            self._closed = True
            self._relive()
            commit.release_all()  # appended during the last fsync: they raise "closed"
            with forksafe.guard():  # no fork between forgetting a descriptor and closing it
                fds = [*self._retired, self._fd, self._lock_fd]
                if self._prepared is not None:
                    fds.append(self._prepared[1])
                self._retired, self._prepared, self._fd, self._lock_fd = [], None, -1, -1
                for fd in fds:
                    if fd >= 0:
                        os.close(fd)
                forksafe.forget(self)

    def _disown(self) -> None:
        """In a child made by ``os.fork()`` (from :mod:`.forksafe`'s hook): close this store's
        descriptors, the child's copies, and refuse every later use.

        Only attribute writes and ``os.close``: no lock is taken (another thread of the
        parent may have held one at the fork). The parent's files and its lock are
        untouched: a lock held through a shared open file description stays with the
        parent's own descriptor.
        """
        prepared = self._prepared
        fds = {self._lock_fd, self._fd, *self._retired, -1 if prepared is None else prepared[1]}
        self._forked = True
        self._commit.disown()
        self._framer = self._live = None
        self.compaction_due = False
        self._retired, self._prepared, self._fd, self._lock_fd = [], None, -1, -1
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def __del__(
        self, _warn: Callable[..., None] = warnings.warn, _exiting: Callable[[], bool] = sys.is_finalizing
    ) -> None:
        """Nobody references this store any more: as an unclosed file does, warn
        (``ResourceWarning: unclosed FileStore '<path>'``) and :meth:`close` it, which
        releases the lock. Nothing to warn of once closed, in a forked child, or for a
        read-only store (it holds no descriptor between calls); nothing is done while the
        interpreter finalizes (its flusher thread may be frozen: the process's end
        releases the lock)."""
        if (getattr(self, "_lock_fd", -1) < 0 and getattr(self, "_fd", -1) < 0) or _exiting():
            return
        try:
            _warn(f"unclosed FileStore {self.path!r}", ResourceWarning, stacklevel=2, source=self)
        finally:
            self.close()
