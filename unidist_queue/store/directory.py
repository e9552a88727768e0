"""The store directory: its files, their names, and the steps that create or delete them.

Directory layout::

    LOCK            held with flock(LOCK_EX | LOCK_NB) while a writable FileStore is open
    snapshot.<g>    the whole durable state (see :mod:`.snapshot`); at most one after a clean run
    archive.<g>     the records appended since snapshot.<g> (see :mod:`.archive`)
    *.tmp           written by a snapshot or archive creation in progress; removed on open

Files are created 0600 (the directory 0700), never through a symbolic link, and made
durable before they are named: written to ``*.tmp``, fsynced, renamed into place, then
the directory is fsynced. Plain functions of the directory's path; none keeps state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from typing import Any, Dict, List, Tuple

from ..errors import StoreError, StoreLocked
from . import archive
from .snapshot import fsync_dir

__all__ = [
    "create_archive", "delete_before", "file_name", "listing", "lock", "lockable", "make", "remove_older",
]

logger = logging.getLogger("unidist_queue.store.file")  # the name of its messages before the split

_NAME = re.compile(r"^(snapshot|archive)\.(\d+)$")


def file_name(path: str, kind: str, gen: int) -> str:
    """The path of ``<kind>.<gen>`` (``kind``: ``"snapshot"`` or ``"archive"``) in ``path``."""
    return os.path.join(path, f"{kind}.{gen}")


def make(path: str) -> None:
    """Create the directory ``path`` (mode 0700) if there is none.

    :raises StoreError: it cannot be created.
    """
    try:
        if not os.path.isdir(path):
            os.makedirs(path, mode=0o700, exist_ok=True)
            os.chmod(path, 0o700)
    except OSError as exc:
        raise StoreError(f"cannot open the store directory {path}: {exc}") from exc


def lockable(path: str) -> None:
    """Check that this platform can lock a store directory (it has ``fcntl.flock``);
    call it before creating anything, so that a refused store leaves nothing behind.
    Cost: O(1) (an import, cached after the first).

    :raises StoreError: this platform has no ``fcntl`` (Windows, say), naming ``path``.
    """
    _flock_module(path)


def _flock_module(path: str) -> Any:
    try:
        import fcntl  # here, not at the top: importing the package never needs fcntl (DESIGN 8)
    except ImportError:
        raise StoreError(
            f"cannot open the store directory {path} for writing: this platform has no fcntl.flock to lock it"
        ) from None
    return fcntl


def lock(path: str) -> int:
    """Open ``path``'s ``LOCK`` file and take its ``flock`` lock; return the descriptor,
    which holds the lock until closed. Call it holding :func:`.forksafe.guard`, and
    record the descriptor before releasing that (see :mod:`.forksafe`).

    :raises StoreLocked: another descriptor (this or another process) holds the lock.
    :raises StoreError: the file cannot be opened, or this platform has no ``fcntl``.
    """
    fcntl = _flock_module(path)
    try:
        fd = os.open(os.path.join(path, "LOCK"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot open the store directory {path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise StoreLocked(f"{path} is held by another FileStore (this or another process)") from exc
    return fd


def listing(path: str, writable: bool) -> Tuple[Dict[int, str], Dict[int, str]]:
    """The snapshot and archive generations present (``{gen: name}`` each); when
    ``writable``, also removes ``*.tmp`` files. A missing directory lists nothing.

    :raises StoreError: the directory cannot be listed.
    """
    snapshots: Dict[int, str] = {}
    archives: Dict[int, str] = {}
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return snapshots, archives
    except OSError as exc:
        raise StoreError(f"cannot list {path}: {exc}") from exc
    for name in names:
        if name.endswith(".tmp") and writable:
            logger.warning("removing %s, left by an interrupted snapshot", os.path.join(path, name))
            os.unlink(os.path.join(path, name))
        m = _NAME.match(name)
        if m:
            (snapshots if m.group(1) == "snapshot" else archives)[int(m.group(2))] = name
    return snapshots, archives


def create_archive(path: str, gen: int, header: bytes) -> int:
    """Create ``archive.<gen>`` holding ``header`` (a packed archive header), durably
    (see the module docstring); return its descriptor, open for appending after it.
    Writes with :func:`.archive.write` and fsyncs with :func:`.archive.fsync`.

    :raises StoreError: it cannot be created (no ``*.tmp`` is left behind).
    """
    final = file_name(path, "archive", gen)
    tmp = final + ".tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            if archive.write(fd, header) != len(header):
                raise OSError("short write of an archive header")
            archive.fsync(fd)
            os.replace(tmp, final)
            fsync_dir(path)
        except OSError:
            os.close(fd)
            raise
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StoreError(f"cannot create {final}: {exc}") from exc
    return fd


def remove_older(path: str, base: int, snapshots: Dict[int, str], archives: Dict[int, str]) -> None:
    """Delete the generations older than ``base`` (found by :func:`listing`): the newest
    snapshot, ``snapshot.<base>``, replaces them (left by a crash after it was written).

    :raises OSError: a file cannot be deleted.
    """
    old: List[str] = [n for g, n in snapshots.items() if g < base]
    old += [n for g, n in archives.items() if g < base]
    for name in old:
        logger.info("removing %s, replaced by snapshot.%d", name, base)
        os.unlink(os.path.join(path, name))
    if old:
        fsync_dir(path)


def delete_before(path: str, gen: int) -> None:
    """Delete every generation older than ``gen``, now that ``snapshot.<gen>`` is durable.

    A failure is logged, not raised: harmless, the next open removes them.
    """
    try:
        for name in os.listdir(path):
            m = _NAME.match(name)
            if m and int(m.group(2)) < gen:
                os.unlink(os.path.join(path, name))
        fsync_dir(path)
    except OSError as exc:
        logger.warning("%s: cannot delete files replaced by snapshot.%d: %s", path, gen, exc)
