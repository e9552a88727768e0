"""Group commit: the fsync rounds that make a FileStore's appended records durable.

A :class:`GroupCommit` serves one store. With ``fsync="always"`` every committer
(:meth:`GroupCommit.commit`) waits for, or leads, a *round*: one fsync of everything
written when the round began, shared by every record it covers. With
``fsync="interval"`` a daemon thread (:meth:`GroupCommit.start`) leads a round every
``fsync_interval`` seconds when something was written since the last one.

It knows nothing of the store's files but what the store hands it at construction,
as callables: the last seq written, the descriptors to fsync (the current archive and
the retired ones a snapshot switched away from), how to close retired descriptors once
fsynced, and whether the store failed or closed (and how to mark it failed). It uses
the store's mutex, because the descriptors it captures change under that same mutex
(:meth:`FileStore.begin_snapshot <unidist_queue.store.file.FileStore.begin_snapshot>`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from typing import Callable, List, Optional, Tuple

from ..errors import StoreError
from . import archive

__all__ = ["GroupCommit"]

logger = logging.getLogger("unidist_queue.store.file")  # the name of its messages before the split

#: A waiter's fate: its seq is durable; it leads the next round; the store failed or closed.
_COVERED, _LEAD, _FAILED = 1, 2, 3


class _Waiter:
    """A committer waiting for an fsync round: its seq, a lock it blocks on, and its fate.

    Created locked; whoever settles it sets ``state`` (covered, lead the next round, or
    failed) and then releases ``lock``, which the waiter acquires to wake up.
    """

    __slots__ = ("lock", "next", "seq", "state")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.state = 0
        self.next: Optional[_Waiter] = None  # the next covered waiter to wake
        self.lock = threading.Lock()
        self.lock.acquire()


class GroupCommit:
    """The fsync rounds of one store (see the module docstring).

    ``GroupCommit(mutex, name, *, written, capture, close_retired, failed, closed, fail)``:

    * ``mutex``: the store's mutex, which guards this object's state too (no other lock).
    * ``name``: the store's path, for messages and the flusher thread's name.
    * ``written()``: the seq of the last record written (an int; read with or without the mutex).
    * ``capture()``, with the mutex: ``(target, fd, retired)``: the last seq written, the
      archive descriptor holding it, and the retired descriptors to fsync first (a list
      the store will not change, or ``None``).
    * ``close_retired(fds)``, with the mutex: those retired descriptors are fsynced: close them.
    * ``failed()``, ``closed()``, with the mutex: why the store refuses writes (or ``None``);
      whether it is closed. ``fail(reason)``, with the mutex: an fsync failed.

    Thread-safety: every method may be called from any thread. The mutex is never held
    during an fsync. :meth:`wait_no_round`, :meth:`sync_now` and :meth:`release_all` are
    for the store, called with the mutex held.
    """

    def __init__(
        self,
        mutex: threading.Lock,
        name: str,
        *,
        written: Callable[[], int],
        capture: Callable[[], Tuple[int, int, Optional[List[int]]]],
        close_retired: Callable[[List[int]], None],
        failed: Callable[[], Optional[str]],
        closed: Callable[[], bool],
        fail: Callable[[str], None],
    ) -> None:
        self.name = name
        self._written, self._capture, self._close_retired = written, capture, close_retired
        self._failed, self._closed, self._fail = failed, closed, fail
        self._mutex = mutex
        # Notified by the thread leading an fsync round when it ends, and by release_all()
        # (the store's close()); only wait_no_round() waits on it (the store's close() and
        # write_snapshot()): committers wait on their own _Waiter.
        self._synced = threading.Condition(mutex)
        self._watchers = 0  # threads waiting on _synced (see wait_no_round)
        self._waiters: List[_Waiter] = []  # committers waiting for a round to come
        # One item per thread about to append (between enter() and leave(), or released
        # by a round and not yet out of commit()); list.append/pop are atomic.
        self._busy: List[None] = []
        self._durable = 0  # every seq <= this is covered by a completed fsync
        self._syncing = False  # a round runs, or a waiter was told to lead one
        self._stop = threading.Event()
        self._flusher: Optional[threading.Thread] = None
        self._disowned = False  # set in a child made by os.fork(): see disown

    # -- the store's side -------------------------------------------------------------------

    def start(self, durable: int, interval: Optional[float]) -> None:
        """The store's files are open, every record up to ``durable`` durable; with an
        ``interval``, start the daemon thread that leads a round every ``interval``
        seconds when something was written. Called once, before any commit. O(1).

        The thread holds this object (and so the store, whose callables it holds) only
        weakly, and only for a round: a store nobody references any more can be
        collected (and release its lock, see ``FileStore.__del__``); the thread then ends."""
        self._durable = durable
        if interval is not None:
            args = (weakref.ref(self), self._stop, interval)
            self._flusher = threading.Thread(target=_flush_loop, args=args,
                                             name=f"FileStore flusher {self.name}", daemon=True)
            self._flusher.start()

    def stop(self) -> None:
        """Stop the flusher thread and wait for it to end (unless called from it). Idempotent."""
        self._stop.set()
        flusher = self._flusher
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join()

    def wait_no_round(self) -> None:
        """With the mutex held: wait until no fsync round runs or is about to."""
        self._watchers += 1
        try:
            while self._syncing:
                self._synced.wait()
        finally:
            self._watchers -= 1

    def sync_now(self) -> None:
        """With the mutex held and no round running (see :meth:`wait_no_round`): lead a
        round now, covering every waiter. A failed fsync fails the store and is logged,
        not raised (the waiters get it)."""
        self._syncing = True
        with contextlib.suppress(StoreError):
            self._lead_round()

    def release_all(self) -> None:
        """With the mutex held, once the store is closed: every waiter left raises, and
        whoever waits in :meth:`wait_no_round` wakes."""
        self._settle_all(_FAILED)
        self._synced.notify_all()

    def disown(self) -> None:
        """In a child made by ``os.fork()``: never take the mutex again (a thread of the
        parent may have held it at the fork). Only an attribute write."""
        self._disowned = True

    # -- committers --------------------------------------------------------------------------

    def enter(self) -> None:
        """A thread is about to append (see :meth:`Store.enter <unidist_queue.Store.enter>`). O(1)."""
        self._busy.append(None)

    def leave(self) -> None:
        """The thread that called :meth:`enter` appended (or gave up).

        The last one to leave, if committers are waiting and no round runs, leads the
        round itself (see :meth:`commit`): it is running already, where waking one of
        the waiters would cost a thread switch. O(1), plus that fsync when it leads.
        A failed fsync is logged and raised to the waiters, not here: this thread's
        own :meth:`commit` raises it.
        """
        busy = self._busy
        busy.pop()
        if not busy and not self._disowned:
            with self._mutex:
                if self._waiters and not busy and not self._syncing:
                    if self._failed() is not None or self._closed():
                        self._settle_all(_FAILED)
                        return
                    self._syncing = True
                    with contextlib.suppress(StoreError):
                        self._lead_round()

    def commit(self, seq: int) -> None:
        """Group commit: wait for, or lead, an fsync round that covers ``seq``.

        A round fsyncs everything written when it begins (its *target*). A committer
        arriving while a round runs, or while other threads are about to append,
        registers a :class:`_Waiter` and blocks on its own lock. When the fsync
        returns, the round's leader releases the waiters it covered, one after another
        (each wakes the next: no herd of threads contending for the GIL at once).

        The next round is led by the last thread to leave the set of threads about to
        append (from :meth:`enter` to :meth:`leave`, or released by the last round and
        not yet out of here), so the records they were about to write join it instead
        of missing it by a few microseconds and waiting a whole fsync more. An
        appender that leaves last leads at once; a released committer that leaves last
        (it may not append again) wakes the oldest waiter to lead, which first checks
        that nobody started to append meanwhile (else it waits again: the last of those
        leads). These threads never block for long (they take the queue lock and write
        once, or return), so a round always starts: no sleep, no timer, and a lone
        committer leads at once. Thread-safe; the mutex is never held during an fsync.

        :raises StoreError: the fsync failed, or the store failed or closed meanwhile.
        """
        with self._mutex:
            if self._durable >= seq:
                return
            failed = self._failed()
            if failed is not None:
                raise StoreError(f"{self.name}: the store failed ({failed}); reopen it")
            if self._closed():
                raise StoreError(f"{self.name}: the store is closed")
            if not (self._syncing or self._busy):
                self._syncing = True
                self._lead_round()
                return
            waiter = _Waiter(seq)
            self._waiters.append(waiter)
        self._wait(waiter, seq)

    def _wait(self, waiter: _Waiter, seq: int) -> None:
        """Block on ``waiter`` (registered for ``seq``) until it is covered, or leads a
        round that covers it (see :meth:`commit`).

        :raises StoreError: the store failed or closed before ``seq`` was made durable.
        """
        mutex = self._mutex
        while True:
            try:
                waiter.lock.acquire()  # released once this waiter's fate is settled
            except BaseException:  # interrupted (KeyboardInterrupt): pass on what it was given
                self._abandon(waiter)
                raise
            state = waiter.state
            if state == _COVERED:
                if waiter.next is not None:
                    waiter.next.lock.release()  # covered too: one wake-up at a time, in order
                self._leave_covered()
                return
            with mutex:
                if state == _LEAD and self._failed() is None and not self._closed():
                    if not self._busy:
                        self._lead_round()
                        return
                    self._syncing = False  # threads are about to append: the last of them leads
                    waiter = _Waiter(seq)
                    self._waiters.append(waiter)
                    continue
                if state == _LEAD:
                    self._syncing = False
                    self._settle_all(_FAILED)
                failed = self._failed()
                if failed is not None:
                    raise StoreError(f"{self.name}: the store failed ({failed}); reopen it")
            raise StoreError(f"{self.name}: the store was closed before record {seq} was fsynced")

    def _leave_covered(self) -> None:
        """A released committer leaves :meth:`commit`: like :meth:`leave`, but if it is the
        last one out it wakes a waiter to lead instead (it may never append again)."""
        busy = self._busy
        busy.pop()
        if not busy:
            with self._mutex:
                if self._waiters and not busy and not self._syncing:
                    self._hand_over()

    def _abandon(self, waiter: _Waiter) -> None:
        """A waiter was interrupted: forget it, or pass on the role it was given meanwhile."""
        with self._mutex:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
                return
            if waiter.state == _LEAD:
                self._syncing = False
                if self._waiters:
                    self._hand_over()
                self._notify_watchers()
        if waiter.state == _COVERED:
            if waiter.next is not None:
                waiter.next.lock.release()  # keep the chain of wake-ups going
            self._leave_covered()

    # -- rounds (with the mutex held) ---------------------------------------------------------

    def _hand_over(self) -> None:
        """With the mutex held: make the oldest waiter lead the next round."""
        waiter = self._waiters.pop(0)
        self._syncing = True
        waiter.state = _LEAD
        waiter.lock.release()

    def _settle_all(self, state: int) -> None:
        """With the mutex held: release every waiter with ``state``."""
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            w.state = state
            w.lock.release()

    def _notify_watchers(self) -> None:
        """With the mutex held: wake close() or write_snapshot() waiting for no round."""
        if self._watchers:
            self._synced.notify_all()

    def _lead_round(self) -> None:
        """With the mutex held and ``_syncing`` set: fsync everything written so far.

        One :meth:`_round` after another: after each, the covered waiters are released
        (each counted as about to append again, see :meth:`commit`); if waiters are left
        and no thread is about to append, this thread leads the next round too. On
        failure (or if the store failed meanwhile: a write that could not be cut back)
        the store is marked failed and every waiter left is released with an error; if
        interrupted (``KeyboardInterrupt``), nothing counts as durable and a waiter is
        made to lead instead.

        :raises StoreError: the fsync failed.
        """
        while True:
            error = self._round()
            if error is not None:
                logger.error("%s: fsync failed (%s); the store refuses writes until reopened",
                             self.name, error)
                raise StoreError(f"{self.name}: fsync failed: {error}") from error
            if self._failed() is not None:  # a write failed meanwhile (not cut back): no more rounds
                self._settle_all(_FAILED)
                return
            if not self._waiters or self._busy or self._closed():
                return
            self._syncing = True  # waiters left and nobody else to lead: go on

    def _round(self) -> Optional[OSError]:
        """With the mutex held and ``_syncing`` set: one fsync round, the mutex released
        during the fsync; the error it failed with, if any (see :meth:`_lead_round`)."""
        target, fd, retired = self._capture()  # fsync the retired ones too, then close them
        error: Optional[OSError] = None
        done = False
        self._mutex.release()
        try:
            if retired is not None:
                for old in retired:
                    archive.fsync(old)
            archive.fsync(fd)
            done = True
        except OSError as exc:
            error = exc
        finally:
            self._mutex.acquire()
            self._syncing = False
            if done:
                self._round_done(target, retired)
            elif error is not None:
                self._fail(f"fsync failed: {error}")
                self._settle_all(_FAILED)
            elif self._waiters:
                self._hand_over()
            self._notify_watchers()
        return error

    def _round_done(self, target: int, retired: Optional[List[int]]) -> None:
        """With the mutex held: record ``target`` as durable and release the waiters it covers."""
        if target > self._durable:
            self._durable = target
        if retired is not None:
            self._close_retired(retired)
        waiters = self._waiters
        if not waiters:
            return
        pending = [w for w in waiters if w.seq > target]
        if len(pending) == len(waiters):
            return
        busy = self._busy
        first: Optional[_Waiter] = None
        for w in reversed(waiters):
            if w.seq <= target:
                busy.append(None)  # popped by the waiter on its way out
                w.state = _COVERED
                w.next = first
                first = w
        self._waiters = pending
        assert first is not None
        first.lock.release()  # it wakes the next one: see _wait

    def flush_due(self) -> bool:
        """For the ``"interval"`` flusher: lead a round if something was written since the
        last one; ``False`` once no round will ever be due (the store closed or failed).
        Thread-safe (takes the mutex)."""
        with self._mutex:
            if self._closed() or self._failed() is not None:
                return False
            if self._syncing or self._durable >= self._written():
                return True
            self._syncing = True
            try:
                self._lead_round()
            except StoreError:
                return False  # logged by _lead_round; appends now raise
            return True


def _flush_loop(ref: weakref.ref[GroupCommit], stop: threading.Event, interval: float) -> None:
    """The ``"interval"`` flusher thread: a round every ``interval`` seconds when dirty,
    until ``stop`` is set, the store closes or fails, or the store is garbage."""
    while not stop.wait(interval):
        commit = ref()
        if commit is None or not commit.flush_due():
            return
        del commit  # between rounds the thread keeps nothing of the store alive
